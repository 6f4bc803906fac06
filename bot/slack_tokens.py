"""The Slack credentials ``kpibot serve`` needs, checked before it starts: which variables each
mode needs, the kind of each token (its prefix), then Slack's own answer (``auth.test`` for the
bot token, ``apps.connections.open`` for the app token). Every problem is a ``TokenProblem``
whose message (``token.*`` in the catalogs) names the variable and says how to fix it;
secrets never appear in it.

Socket Mode needs ``SLACK_BOT_TOKEN`` and ``SLACK_APP_TOKEN``; HTTP mode needs
``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET``.
"""

from __future__ import annotations

from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.settings import Secrets
from bot.worded import WordedError
from conversation.views import Phrase

BOT_TOKEN = "SLACK_BOT_TOKEN"
APP_TOKEN = "SLACK_APP_TOKEN"
SIGNING_SECRET = "SLACK_SIGNING_SECRET"

# Where each variable's value is found in the app's settings (token.where.*). Slack's page
# names are not translated (its settings are in English); "&" is not catalog text.
_WHERE = {
    BOT_TOKEN: Phrase("token.where.bot", {"page": "OAuth & Permissions"}),
    APP_TOKEN: Phrase("token.where.app"),
    SIGNING_SECRET: Phrase("token.where.signing"),
}
_PREFIX = {BOT_TOKEN: "xoxb-", APP_TOKEN: "xapp-"}
# What a token of another kind is, by its prefix (token.kind.*).
_KINDS = {"xoxb-": "bot", "xapp-": "app", "xoxp-": "user", "xoxe": "refresh"}
# Slack's documented errors for a token it will not take, each with its words (token.refusal.*).
_REFUSALS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive",
     "not_allowed_token_type"}
)  # fmt: skip


class TokenProblem(WordedError):
    """A credential that is missing, of the wrong kind, or refused by Slack."""


def required(secrets: Secrets, *, http_mode: bool) -> None:
    """Every variable the mode needs is set, and each token is of the right kind."""
    values = {
        BOT_TOKEN: secrets.slack_bot_token,
        SIGNING_SECRET if http_mode else APP_TOKEN: (
            secrets.slack_signing_secret if http_mode else secrets.slack_app_token
        ),
    }
    mode = Phrase("token.mode.http" if http_mode else "token.mode.socket")
    for name, value in values.items():
        where = _WHERE[name]
        if not value:
            raise TokenProblem("token.unset", name=name, mode=mode, where=where)
        prefix = _PREFIX.get(name)
        if prefix and not value.startswith(prefix):
            kind = next((k for p, k in _KINDS.items() if value.startswith(p)), "other")
            raise TokenProblem(
                "token.wrong_kind", name=name, kind=Phrase(f"token.kind.{kind}"), where=where
            )


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
        reason = Phrase(f"token.refusal.{code if code in _REFUSALS else 'other'}")
        raise TokenProblem(
            "token.refused", name=name, error=code, reason=reason, where=_WHERE[name]
        ) from None
