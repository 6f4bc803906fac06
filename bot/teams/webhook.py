"""Teams through a Workflows webhook (the flow "Send webhook alerts to a channel"), for installs
without a bot: each message is one POST of an Adaptive Card 1.4 to the flow's URL.

- **Body**: ``{"type": "message", "attachments": [{"contentType":
  "application/vnd.microsoft.card.adaptive", "content": <card>}]}``, at most
  ``MAX_PAYLOAD_BYTES`` (Teams' 28 KB, pictures included; ``bot.teams.cards.fit_card`` keeps
  cards under it and shrinks a chart to fit, and a body still over it is refused here, never
  sent).
- **Answers**: 202 (or 200) is accepted; the flow runs afterwards and its run id, when the
  answer carries one, is kept as the message's id. A webhook post has no id Teams could be
  asked about, cannot be edited and has no thread: ``update`` leaves the card as posted (the
  resolution is said by the reply), ``reply`` posts a new card.
- **Failures**, raised as ``WebhookError`` with what the outbox should do
  (``bot.delivery.retry.CallFailure``): 429 waits for ``Retry-After`` and posts again; a
  connection that could not be opened posts again after a backoff; 5xx, 408 and a connection
  lost after the request was written are *ambiguous* (the flow may have run); any other 4xx
  (400 bad body, 401/403 bad signature, 404 flow deleted or off, 413 too large: ``REFUSALS``)
  is permanent, recorded and reported to the admin channel like Slack's ``channel_not_found``.
- **At least once**: after an ambiguous failure the outbox posts again, since there is nothing
  to look the first post up by. A lost alert is worse than a second copy of it in the channel,
  and ambiguous failures (the flow timing out after it took the request) are rare.

The URL carries its own credential (``sig=``): it comes from the environment only, is never
logged (httpx's request log line is stripped of its query below) and never appears in an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from bot.delivery.notifier import Delivered, Message
from bot.delivery.retry import CallFailure, FailureKind, SurfaceCallError
from bot.teams.pictures import with_file

WEBHOOK = "webhook"  # the surface's prefix in destinations: webhook:<name>
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_PAYLOAD_BYTES = 28 * 1024
# Where Workflows (Logic Apps) put the id of the run a request started.
RUN_ID_HEADER = "x-ms-workflow-run-id"


class WebhookError(SurfaceCallError):
    """A post that did not land for sure; ``failure`` says what the outbox should do. The text
    names the webhook, never its URL."""

    def __init__(self, name: str, failure: CallFailure) -> None:
        super().__init__(failure)
        self.name = name
        self.args = (f"Teams webhook {name!r}: {failure.kind.value}: {failure.code}",)


def envelope(card: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "attachments": [{"contentType": CONTENT_TYPE, "content": card}]}


def encode(card: dict[str, Any]) -> bytes:
    return json.dumps(envelope(card), ensure_ascii=False, separators=(",", ":")).encode()


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


# Refusals with a name of their own, and their advice to sales-ops in the catalogs
# ("advice.webhook_…", bot.wording.ADVISED); any other 4xx is "http_<status>".
REFUSALS = {
    400: "webhook_bad_request",
    401: "webhook_unauthorized",
    403: "webhook_unauthorized",
    404: "webhook_not_found",
    413: "webhook_too_large",
}


def failure_of(response: httpx.Response) -> CallFailure:
    status = response.status_code
    if status == 429:
        wait = retry_after(response.headers.get("Retry-After"))
        return CallFailure(FailureKind.RATE_LIMITED, "ratelimited", wait)
    if status >= 500 or status == 408:
        return CallFailure(FailureKind.AMBIGUOUS, f"http_{status}")
    return CallFailure(FailureKind.PERMANENT, REFUSALS.get(status, f"http_{status}"))


class WebhookNotifier:
    """The ``Notifier`` of ``webhook:<name>`` destinations. ``urls``: name → URL, from the
    environment (``bot.settings``). ``transport`` is the test seam (httpx's)."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._urls = dict(urls)
        # No retries here: the outbox owns them (bot.delivery.retry), and no redirects: a
        # redirected POST would lose its body or resend it somewhere unknown.
        self._client = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def send(self, message: Message) -> Delivered:
        name = message.channel
        url = self._urls.get(name)
        if url is None:
            raise WebhookError(name, CallFailure(FailureKind.PERMANENT, "webhook_not_configured"))
        if not isinstance(message.body, dict):
            raise TypeError(f"{message.idempotency_key}: a webhook message's body is a card")
        data = encode(with_file(message.body, message.file))
        if len(data) > MAX_PAYLOAD_BYTES:
            raise WebhookError(name, CallFailure(FailureKind.PERMANENT, "webhook_too_large"))
        try:
            response = self._client.post(
                url, content=data, headers={"Content-Type": "application/json"}
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            # Nothing reached the flow: posting again cannot make a second copy.
            failure = CallFailure(FailureKind.RATE_LIMITED, "connection_error")
            raise WebhookError(name, failure) from None  # httpx's error holds the URL
        except httpx.TransportError:
            # Written, then lost (a read timeout, a dropped connection): it may have run.
            failure = CallFailure(FailureKind.AMBIGUOUS, "connection_lost")
            raise WebhookError(name, failure) from None
        if response.status_code in (200, 202):
            return Delivered(message.destination, response.headers.get(RUN_ID_HEADER, ""))
        raise WebhookError(name, failure_of(response))

    def update(self, delivered: Delivered, message: Message) -> Delivered:
        """A webhook post cannot be edited: it stays as posted (see the module's docstring)."""
        return delivered

    def reply(self, delivered: Delivered, message: Message) -> Delivered:
        """No threads either: a reply is a post of its own."""
        return self.send(message)


class _QueryRedactor(logging.Filter):
    """httpx logs every request's URL at INFO; a webhook's query is its credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.copy_with(query=None) if isinstance(arg, httpx.URL) and arg.query else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_QueryRedactor())
