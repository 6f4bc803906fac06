"""What HTTP mode accepts at ``/slack/events`` before Bolt sees a request: a valid signature,
then a body of a shape Slack sends and kpibot serves. Anything else is a ``Refused`` with the
status code to answer and a reason, so that no malformed request reaches Bolt's parsers (which
answer 500 with a traceback on a JSON list, an empty ``actions`` list or a body that is not
UTF-8).

Order matters: a request without signature headers is 401; headers that cannot be a Slack
signature (a timestamp that is not whole Unix seconds) or a body that is not UTF-8 is 400; a
signature that does not match, or is older than five minutes, is 401. Only signed requests are
parsed, so the 400s for a malformed body are answered to the holder of the signing secret
alone. ``ssl_check`` requests are verified like every other (Bolt answers them before its own
verification; here verification comes first).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from slack_sdk.signature import SignatureVerifier

# Slack's timestamps are Unix seconds; twelve digits reach the year 33658.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class Refused(Exception):
    """A request answered with ``status`` and ``reason`` and not dispatched."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Shape(BaseModel):
    # Slack adds fields over time: only the ones read are checked.
    model_config = ConfigDict(extra="allow")


class Context(_Shape):
    """What Bolt reads from every request to build its context and log it (``team``,
    ``user``, ``channel``...), checked on every body so that Bolt's middleware never meets a
    type it does not expect. Bolt reads the same fields again inside ``event``, each of
    ``authorizations`` and the objects it finds under ``message``, ``previous_message``,
    ``item`` and ``assistant_thread``: so does this model."""

    team: str | dict[str, Any] | None = None
    user: str | dict[str, Any] | None = None
    channel: str | dict[str, Any] | None = None
    enterprise: str | dict[str, Any] | None = None
    authorizations: list[Context] | None = None
    # Bolt reads these whenever the key is there: absent is fine, null is not (below).
    # Slack sends response_urls with modals only; Bolt fails when there are several.
    response_urls: list[dict[str, Any]] | None = Field(default=None, max_length=1)
    event: Context | None = None
    view: dict[str, Any] | None = None
    # Bolt looks inside these only when they are objects.
    message: Nested = None
    previous_message: Nested = None
    item: Nested = None
    assistant_thread: Nested = None

    @field_validator("response_urls", "event", "view", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value


# Anything but an object that is not a well-formed ``Context``.
Nested = Context | str | int | float | bool | list[Any] | None
Context.model_rebuild()


class SlashCommand(_Shape):
    command: str
    text: str
    user_id: str
    channel_id: str
    team_id: str
    response_url: str


class SslCheck(_Shape):
    ssl_check: Literal["1"]


class _User(_Shape):
    id: str


class _Option(_Shape):
    value: str


class _Action(_Shape):
    action_id: str
    type: str
    value: str | None = None
    selected_option: _Option | None = None


class BlockActions(_Shape):
    type: Literal["block_actions"]
    user: _User
    actions: list[_Action] = Field(min_length=1)


class _Event(_Shape):
    type: str
    team: str | None = None
    user_team: str | None = None
    message: dict[str, Any] | None = None
    previous_message: dict[str, Any] | None = None


class EventCallback(_Shape):
    type: Literal["event_callback"]
    event: _Event


class UrlVerification(_Shape):
    type: Literal["url_verification"]
    challenge: str


# Interactive payloads (``payload=`` in a form) and Events API bodies (JSON) kpibot serves;
# kpibot has no modals or shortcuts, so ``view_submission`` and the like are refused.
INTERACTIVE: dict[str, type[_Shape]] = {"block_actions": BlockActions}
EVENTS: dict[str, type[_Shape]] = {
    "event_callback": EventCallback,
    "url_verification": UrlVerification,
}


@dataclass(frozen=True)
class Accepted:
    """A signed, well-formed request: its body as text, and as what Bolt must read of it (the
    JSON object, the interactive payload, or the form's fields)."""

    text: str
    body: dict[str, Any]


def accept(headers: Mapping[str, str], body: bytes, verifier: SignatureVerifier) -> Accepted:
    """The body, if the request is signed and well formed; else ``Refused``. ``headers`` are
    looked up by lower-case name (Starlette's are)."""
    text = verified(headers, body, verifier)
    # Bolt reads a body as JSON when its Content-Type is exactly that or it starts with "{":
    # judge it the same way, so that what is checked is what Bolt will read.
    content_type = (headers.get("content-type") or "").split(";")[0]
    if content_type == "application/json" or text.startswith("{"):
        return Accepted(text, _events_body(text))
    return Accepted(text, _form_body(text))


def verified(headers: Mapping[str, str], body: bytes, verifier: SignatureVerifier) -> str:
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not signature:
        raise Refused(401, "unsigned: X-Slack-Request-Timestamp and X-Slack-Signature required")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Refused(400, "X-Slack-Request-Timestamp must be whole Unix seconds")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the body is not UTF-8") from None
    if not verifier.is_valid(text, timestamp, signature):
        raise Refused(401, "invalid signature, or signed more than five minutes ago")
    return text


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise Refused(400, f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise Refused(400, f"{what} must be a JSON object")
    return value


def _shaped(body: dict[str, Any], shape: type[_Shape], what: str) -> None:
    try:
        Context.model_validate(body)
        shape.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        path = _path(body, first["loc"])
        # A loc longer than the path names a member of a union (``team.str``): say what is
        # wrong in general rather than "should be a string" when an object would do too.
        message = first["msg"] if len(path) == len(first["loc"]) else "unexpected type"
        message = re.sub(r" or instance of \w+", "", message)  # our model names mean nothing
        message = message.removeprefix("Value error, ")
        where = ".".join(str(part) for part in path) or "(top level)"
        raise Refused(400, f"malformed {what}: {where}: {message}") from None


def _path(body: Any, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The part of a pydantic error location that exists in the body (or is missing from it
    last), without the union member tags pydantic adds (``team.str``, ``message.Context``)."""
    path: list[int | str] = []
    for i, part in enumerate(loc):
        if _has(body, part):
            path.append(part)
            body = body[part]
        elif i + 1 < len(loc) and _has(body, loc[i + 1]):
            continue  # a union member tag before a key of the object
        else:
            if isinstance(body, dict):
                path.append(part)  # a missing key: it is what is wrong
            break
    return tuple(path)


def _has(body: Any, part: int | str) -> bool:
    if isinstance(body, dict):
        return part in body
    return isinstance(body, list) and isinstance(part, int) and part < len(body)


def _kind(body: dict[str, Any], known: Mapping[str, type[_Shape]], what: str) -> type[_Shape]:
    kind = body.get("type")
    if isinstance(kind, str) and kind in known:
        return known[kind]
    shown = repr(kind)
    raise Refused(400, f"kpibot does not handle {what} of type {shown[:40]}")


def _events_body(text: str) -> dict[str, Any]:
    body = _json_object(text, "the body")
    _shaped(body, _kind(body, EVENTS, "Events API requests"), "event")
    return body


def _form_body(text: str) -> dict[str, Any]:
    form = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in form:
        body = _json_object(form["payload"], "payload")
        _shaped(body, _kind(body, INTERACTIVE, "interactive payloads"), "payload")
        return body
    if "ssl_check" in form:
        _shaped(form, SslCheck, "ssl_check")
    elif "command" in form:
        _shaped(form, SlashCommand, "slash command")
    else:
        raise Refused(400, "neither a slash command, an interactive payload nor an ssl_check")
    return form
