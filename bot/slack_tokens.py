"""The Slack credentials ``kpibot serve`` needs, checked before it starts: which variables each
mode needs, the kind of each token (its prefix), then Slack's own answer (``auth.test`` for the
bot token, ``apps.connections.open`` for the app token). Every problem is a ``TokenProblem``
whose message names the variable and says how to fix it; secrets never appear in it.

Socket Mode needs ``SLACK_BOT_TOKEN`` and ``SLACK_APP_TOKEN``; HTTP mode needs
``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET``.
"""

from __future__ import annotations

from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.settings import Secrets

BOT_TOKEN = "SLACK_BOT_TOKEN"
APP_TOKEN = "SLACK_APP_TOKEN"
SIGNING_SECRET = "SLACK_SIGNING_SECRET"

_WHERE = {
    BOT_TOKEN: "the Bot User OAuth Token (xoxb-…) from OAuth & Permissions",
    APP_TOKEN: "an App-Level Token (xapp-…) with connections:write, from Basic Information",
    SIGNING_SECRET: "the Signing Secret from Basic Information → App Credentials",
}
_PREFIX = {BOT_TOKEN: "xoxb-", APP_TOKEN: "xapp-"}
_KINDS = {
    "xoxb-": "a bot token",
    "xapp-": "an app-level token",
    "xoxp-": "a user token",
    "xoxe": "a refresh token",
}
# Slack's documented errors for a token it will not take.
_REFUSALS = {
    "invalid_auth": "Slack does not know it: mistyped, revoked, or from another app",
    "not_authed": "no token reached Slack",
    "token_revoked": "it has been revoked",
    "token_expired": "it has expired",
    "account_inactive": "its workspace or bot user is deactivated",
    "not_allowed_token_type": "it is not the kind of token this call takes",
}


class TokenProblem(Exception):
    """A credential that is missing, of the wrong kind, or refused by Slack."""


def required(secrets: Secrets, *, http_mode: bool) -> None:
    """Every variable the mode needs is set, and each token is of the right kind."""
    values = {
        BOT_TOKEN: secrets.slack_bot_token,
        SIGNING_SECRET if http_mode else APP_TOKEN: (
            secrets.slack_signing_secret if http_mode else secrets.slack_app_token
        ),
    }
    mode = "HTTP mode" if http_mode else "Socket Mode (the default; --http for HTTP mode)"
    for name, value in values.items():
        if not value:
            raise TokenProblem(f"{name} is not set: {mode} needs {_WHERE[name]}")
        prefix = _PREFIX.get(name)
        if prefix and not value.startswith(prefix):
            kind = next(
                (k for p, k in _KINDS.items() if value.startswith(p)),
                "something that is not a Slack token",
            )
            raise TokenProblem(f"{name} holds {kind}; it needs {_WHERE[name]}")


def accepted(client: WebClient, secrets: Secrets, *, http_mode: bool) -> None:
    """Slack takes the bot token (and, for Socket Mode, the app token). A network failure is
    left to the caller: it is not a token problem."""
    _ask(BOT_TOKEN, lambda: client.auth_test())
    app_token = secrets.slack_app_token
    if not http_mode and app_token:
        _ask(APP_TOKEN, lambda: client.apps_connections_open(app_token=app_token))


def _ask(name: str, call: Callable[[], object]) -> None:
    try:
        call()
    except SlackApiError as error:
        code = str(error.response.get("error", "unknown_error"))
        reason = _REFUSALS.get(code, "Slack refused it")
        raise TokenProblem(
            f"{name} was refused ({code}): {reason}; it needs {_WHERE[name]}"
        ) from None
