"""What to do when a chat API call fails: retry it, check whether it landed, or give up.

Every call is retried by exactly one layer, with one backoff policy (``DeliveryPolicy``):

- a message sent through the outbox (``bot.delivery.outbox``, over ``delivery_client``, which
  has no retry handler) is retried by the outbox, after ``classify`` sorted the failure: a 429
  waits for its ``Retry-After`` and sends again (Slack did nothing); a server error or dropped
  connection is ambiguous (the message may have been posted before the connection dropped),
  so the outbox backs off and looks the message up by its idempotency key before sending
  again; a permanent error is recorded and reported. ``max_retries`` bounds the attempts.
- every other call (the Bolt app's, and reads such as ``users.lookupByEmail``) goes through
  ``slack_client``, whose slack_sdk retry handlers come from ``slack_retry_handlers``: a 429 is
  retried for every method, server errors and dropped connections only for read methods.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum
from http.client import HTTPException, RemoteDisconnected
from typing import Any
from urllib.error import URLError

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryIntervalCalculator,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

from bot.settings import DeliveryPolicy

# Methods with side effects: an ambiguous failure is resolved by the outbox, never by resending.
WRITE_METHODS = frozenset({"chat.postMessage", "chat.postEphemeral", "chat.update"})

# Slack errors that retrying cannot fix: the destination or the installation is wrong.
# Reported to sales-ops once; anything else ``ok: false`` is also permanent but is a bug of ours.
DESTINATION_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "user_not_found",
        "cannot_dm_bot",
    }
)
# ``ok: false`` codes that Slack documents as temporary.
_TRANSIENT_CODES = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class Backoff(RetryIntervalCalculator):
    """Exponential backoff with "equal jitter", capped: attempt n waits between half and all of
    ``min(cap, base * 2**n)``. slack_sdk's ``RandomJitter`` adds up to one whole second, which
    is too coarse for sub-second bases (and for tests), hence this calculator."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self._random = rng or random.Random()

    def calculate_sleep_duration(self, current_attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2.0**current_attempt)
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    @classmethod
    def of(cls, policy: DeliveryPolicy) -> Backoff:
        return cls(policy.backoff_base, policy.backoff_cap)


def _method(request: Any) -> str:
    return str(request.url).rsplit("/", 1)[-1].split("?", 1)[0]


class ReadConnectionErrorRetryHandler(ConnectionErrorRetryHandler):
    """Retries dropped connections, but only for methods without side effects."""

    def _can_retry(
        self, *, state: Any, request: Any, response: Any = None, error: Any = None
    ) -> bool:
        if _method(request) in WRITE_METHODS:
            return False
        return bool(
            super()._can_retry(state=state, request=request, response=response, error=error)
        )


class ReadServerErrorRetryHandler(ServerErrorRetryHandler):
    """Retries 5xx answers, but only for methods without side effects."""

    def _can_retry(
        self, *, state: Any, request: Any, response: Any = None, error: Any = None
    ) -> bool:
        if _method(request) in WRITE_METHODS:
            return False
        return response is not None and response.status_code >= 500


def slack_retry_handlers(policy: DeliveryPolicy) -> list[RetryHandler]:
    """The ``retry_handlers`` for ``WebClient``. slack_sdk counts attempts across handlers, so
    ``max_retries`` bounds the total. Its default handler retries dropped connections for every
    method, writes included; passing this list replaces it."""
    backoff = Backoff.of(policy)
    return [
        RateLimitErrorRetryHandler(max_retry_count=policy.max_retries),
        ReadServerErrorRetryHandler(
            max_retry_count=policy.max_retries, interval_calculator=backoff
        ),
        ReadConnectionErrorRetryHandler(
            max_retry_count=policy.max_retries,
            interval_calculator=backoff,
            error_types=[URLError, ConnectionResetError, RemoteDisconnected, TimeoutError],
        ),
    ]


class FailureKind(Enum):
    RATE_LIMITED = "rate_limited"  # nothing happened; wait Retry-After and send again
    AMBIGUOUS = "ambiguous"  # may or may not have landed; look before sending again
    PERMANENT = "permanent"  # retrying will not help


@dataclass(frozen=True)
class CallFailure:
    kind: FailureKind
    code: str  # Slack's error code, or "connection_error" / "http_<status>"
    retry_after: float | None = None

    @property
    def is_destination_error(self) -> bool:
        return self.code in DESTINATION_ERRORS


class SurfaceCallError(Exception):
    """A failed call of a surface other than Slack, already sorted by its notifier (a Teams
    notifier knows what its API's answers mean: 429 with Retry-After, 5xx, 403...)."""

    def __init__(self, failure: CallFailure) -> None:
        super().__init__(f"{failure.kind.value}: {failure.code}")
        self.failure = failure


# The exceptions a chat API call raises that ``classify`` understands; catch exactly these.
CALL_ERRORS: tuple[type[BaseException], ...] = (
    SlackApiError,
    SurfaceCallError,
    OSError,
    HTTPException,
)


def classify(error: BaseException) -> CallFailure:
    """Sort a failed call (one of ``CALL_ERRORS``) into what the outbox should do next."""
    if isinstance(error, SurfaceCallError):
        return error.failure
    if isinstance(error, SlackApiError):
        response = error.response
        status = int(getattr(response, "status_code", 200) or 200)
        data = getattr(response, "data", None)
        code = str(data.get("error", "")) if isinstance(data, dict) else ""
        if status == 429 or code == "ratelimited":
            headers = getattr(response, "headers", {}) or {}
            raw = headers.get("Retry-After") or headers.get("retry-after") or "1"
            if isinstance(raw, list):
                raw = raw[0]
            return CallFailure(FailureKind.RATE_LIMITED, "ratelimited", float(raw))
        if status >= 500 or code in _TRANSIENT_CODES:
            return CallFailure(FailureKind.AMBIGUOUS, code or f"http_{status}")
        return CallFailure(FailureKind.PERMANENT, code or f"http_{status}")
    if isinstance(error, OSError | HTTPException):
        return CallFailure(FailureKind.AMBIGUOUS, "connection_error")
    raise TypeError(f"not a chat API error: {error!r}")
