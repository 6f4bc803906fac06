"""The Workflows webhook notifier against the fake flow (tests.fakes.teams_webhook): the body
Teams documents, what each answer means for the outbox, and the URL kept out of logs and
errors."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bot.delivery.notifier import Delivered, Message
from bot.delivery.retry import CallFailure, FailureKind
from bot.teams.cards import CardRenderer, CardVersion
from bot.teams.webhook import (
    MAX_PAYLOAD_BYTES,
    WebhookError,
    WebhookNotifier,
    encode,
    retry_after,
)
from conversation.views import AlertList, Reply
from tests.bot.test_rendering import alerts, formatter
from tests.fakes.http_fake import Fault
from tests.fakes.teams_webhook import FLOW_PATH, SIGNATURE, WorkflowsWebhook


@pytest.fixture
def flow() -> Iterator[WorkflowsWebhook]:
    with WorkflowsWebhook() as fake:
        yield fake


def card(locale: str = "en_US", version: CardVersion = CardVersion.WEBHOOK) -> dict[str, Any]:
    return CardRenderer(formatter(locale), version).render(Reply(AlertList(alerts()))).card


def message(body: Any, channel: str = "sales", key: str = "alerts:sales:1") -> Message:
    return Message(channel=channel, text="3 alerts", idempotency_key=key, surface="webhook",
                   body=body)  # fmt: skip


def notifier(flow: WorkflowsWebhook, timeout: float = 5.0) -> WebhookNotifier:
    return WebhookNotifier({"sales": flow.webhook_url}, timeout=timeout)


def failure(flow: WorkflowsWebhook, *faults: Fault, body: Any = None) -> WebhookError:
    flow.fail(*faults)
    with pytest.raises(WebhookError) as raised:
        notifier(flow, timeout=0.5).send(message(card() if body is None else body))
    return raised.value


@pytest.mark.parametrize("locale", ["fr_FR", "en_US"])
def test_a_card_is_posted_in_the_documented_body(flow: WorkflowsWebhook, locale: str) -> None:
    posted = card(locale)

    delivered = notifier(flow).send(message(posted))

    assert delivered == Delivered("webhook:sales", "08584000000000000001CU00")
    [request] = flow.requests
    assert request.method == "POST" and request.path == FLOW_PATH
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                         "content": posted}],
    }  # fmt: skip
    assert flow.cards == [posted]


def test_a_rate_limit_says_how_long_to_wait(flow: WorkflowsWebhook) -> None:
    error = failure(flow, Fault(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "7"}))
    assert (error.failure.kind, error.failure.code) == (FailureKind.RATE_LIMITED, "ratelimited")
    assert error.failure.retry_after == 7.0
    assert flow.cards == []


def test_retry_after_may_be_an_http_date() -> None:
    now = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert retry_after("Tue, 01 Dec 2026 08:30:12 GMT", now) == 12.0
    assert retry_after("Tue, 01 Dec 2026 08:29:00 GMT", now) == 0.0
    assert retry_after("soon", now) is None
    assert retry_after(None, now) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_ambiguous(flow: WorkflowsWebhook, status: int) -> None:
    error = failure(flow, Fault(status))
    assert (error.failure.kind, error.failure.code) == (FailureKind.AMBIGUOUS, f"http_{status}")


def test_a_timeout_after_the_request_was_written_is_ambiguous(flow: WorkflowsWebhook) -> None:
    error = failure(flow, Fault(202, b"", delay=1.5))
    assert (error.failure.kind, error.failure.code) == (FailureKind.AMBIGUOUS, "connection_lost")
    assert len(flow.requests) == 1  # the flow got it: it may well have posted the card


def test_a_flow_that_cannot_be_reached_is_posted_again_safely() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    url = f"http://127.0.0.1:{port}{FLOW_PATH}?sig={SIGNATURE}"
    with pytest.raises(WebhookError) as raised:
        WebhookNotifier({"sales": url}, timeout=1).send(message(card()))
    assert raised.value.failure.kind is FailureKind.RATE_LIMITED  # nothing happened: send again
    assert raised.value.failure.code == "connection_error"


@pytest.mark.parametrize(
    ("url_change", "code"),
    [
        (lambda url: url.replace(SIGNATURE, "forged"), "webhook_unauthorized"),
        (lambda url: url.replace("/workflows/", "/workflows/deleted-"), "webhook_not_found"),
    ],
)
def test_a_wrong_or_deleted_flow_is_permanent(
    flow: WorkflowsWebhook, url_change: Any, code: str
) -> None:
    sender = WebhookNotifier({"sales": url_change(flow.webhook_url)}, timeout=5)
    with pytest.raises(WebhookError) as raised:
        sender.send(message(card()))
    assert (raised.value.failure.kind, raised.value.failure.code) == (FailureKind.PERMANENT, code)


def test_a_card_the_flow_refuses_is_permanent(flow: WorkflowsWebhook) -> None:
    # A bot card (1.5, with Action.Execute) is not what a flow takes.
    error = failure(flow, body=card(version=CardVersion.BOT))
    assert error.failure == CallFailure(FailureKind.PERMANENT, "webhook_bad_request")
    assert flow.cards == []


def test_a_body_over_28_kb_is_refused_here_and_by_the_flow(flow: WorkflowsWebhook) -> None:
    huge = {**card(), "body": [{"type": "TextBlock", "text": "x" * MAX_PAYLOAD_BYTES}]}
    with pytest.raises(WebhookError) as raised:
        notifier(flow).send(message(huge))
    assert raised.value.failure.code == "webhook_too_large" and flow.requests == []
    # The fake answers what Teams answers to a body that big.
    response = httpx.post(flow.webhook_url, content=encode(huge))
    assert response.status_code == 413


def test_an_unknown_webhook_name_is_permanent(flow: WorkflowsWebhook) -> None:
    with pytest.raises(WebhookError) as raised:
        notifier(flow).send(message(card(), channel="nobody"))
    assert raised.value.failure.kind is FailureKind.PERMANENT
    assert raised.value.failure.code == "webhook_not_configured"


def test_a_post_cannot_be_edited_and_a_reply_is_a_post(flow: WorkflowsWebhook) -> None:
    sender = notifier(flow)
    first = sender.send(message(card()))

    assert sender.update(first, message(card("fr_FR"))) == first
    sender.reply(first, message(card("fr_FR"), key="alerts:sales:1:resolved"))

    assert flow.cards == [card(), card("fr_FR")]


def test_the_url_and_its_signature_stay_out_of_logs_and_errors(
    flow: WorkflowsWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sender = notifier(flow, timeout=3)
    sender.send(message(card()))
    flow.fail(Fault(202, b"", delay=4))
    with pytest.raises(WebhookError) as raised:
        sender.send(message(card()))

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert FLOW_PATH in logged  # httpx did log the request, without its query
    assert SIGNATURE not in logged
    assert SIGNATURE not in str(raised.value) and raised.value.__cause__ is None
    assert "'sales'" in str(raised.value)


def test_the_body_is_compact_json() -> None:
    body = encode({"type": "AdaptiveCard", "version": "1.4", "body": []})
    assert json.loads(body)["attachments"][0]["content"]["version"] == "1.4"
    assert b": " not in body and b", " not in body
