"""Workflows webhooks behind the outbox, against the fake flow: a 429 waits for its
Retry-After, a 5xx backs off, a timeout after the flow took the card posts it again (at least
once), a card the flow refuses is recorded and reported to the admin channel once, and a sent
key is never posted again."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from bot.delivery.failures import FailureLog
from bot.delivery.outbox import Outbox, OutboxNotifier
from bot.delivery.surfaces import Dispatcher, Notification, Surface, Surfaces
from bot.settings import DeliveryPolicy
from bot.store.database import ensure_schema, make_engine
from bot.teams.cards import CardNotifications, CardVersion
from bot.teams.webhook import WebhookNotifier
from conversation.views import Notice
from tests.bot.teams.test_cards import texts
from tests.bot.test_rendering import digest, formatter
from tests.fakes.http_fake import Fault
from tests.fakes.teams_webhook import WorkflowsWebhook

NOW = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)
TIMEOUT = 3.0
RATE_LIMITED = Fault(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "3"})


@dataclass
class World:
    dispatcher: Dispatcher
    outbox: OutboxNotifier
    sales: WorkflowsWebhook
    ops: WorkflowsWebhook
    locale: str
    waits: list[float] = field(default_factory=list)


@pytest.fixture(params=["fr_FR", "en_US"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    engine = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
    ensure_schema(engine)
    with WorkflowsWebhook() as sales, WorkflowsWebhook() as ops:
        urls = {"sales": sales.webhook_url, "ops": ops.webhook_url}
        # The fake validates every card against the schema: seconds under a loaded machine.
        webhooks = WebhookNotifier(urls, timeout=TIMEOUT)
        renderer = CardNotifications(formatter(request.param), CardVersion.WEBHOOK)
        surfaces = Surfaces({"webhook": Surface(renderer, webhooks)})
        waits: list[float] = []
        outbox = OutboxNotifier(
            surfaces=surfaces,
            outbox=Outbox(engine, "me", lambda: NOW, timedelta(seconds=30)),
            policy=DeliveryPolicy(max_retries=3, backoff_base=0.01, backoff_cap=0.02),
            failures=FailureLog(engine, lambda: NOW),
            admin_channel="webhook:ops",
            sleep=waits.append,
        )
        yield World(Dispatcher(surfaces, outbox), outbox, sales, ops, request.param, waits)
        webhooks.close()


def digest_to(world: World, key: str = "digest:leadership:2026-12-01") -> Notification:
    return Notification("webhook:sales", digest(world.locale), key, {"kind": "digest"})


def test_a_rate_limited_digest_waits_for_retry_after_then_lands_once(world: World) -> None:
    world.sales.fail(RATE_LIMITED)

    delivered = world.dispatcher.send(digest_to(world))

    assert delivered.channel == "webhook:sales" and delivered.ts.startswith("08584")
    assert len(world.sales.requests) == 2 and len(world.sales.cards) == 1
    assert len(world.waits) == 1 and 3 <= world.waits[0] < 3.1  # Retry-After, a little jitter
    # Sent is sent: the same key again posts nothing.
    assert world.dispatcher.send(digest_to(world)) == delivered
    assert len(world.sales.requests) == 2


def test_server_errors_back_off_and_the_card_lands(world: World) -> None:
    world.sales.fail(Fault(502), Fault(503))

    world.dispatcher.send(digest_to(world))

    assert len(world.sales.cards) == 1 and len(world.waits) == 2
    assert all(w <= 0.02 for w in world.waits)  # backoff, not a Retry-After


def test_a_timeout_after_the_flow_took_the_card_posts_it_again(world: World) -> None:
    """At least once: the first request reached the flow (it would have posted the card), the
    answer never came; with no id to look the post up by, the outbox posts again."""
    world.sales.fail(Fault(202, b"", delay=TIMEOUT + 1))

    world.dispatcher.send(digest_to(world))

    assert len(world.sales.requests) == 2
    assert world.sales.requests[0].body == world.sales.requests[1].body


def test_retries_run_out_and_the_card_stays_pending(world: World) -> None:
    world.sales.fail(*[Fault(500)] * 4)

    with pytest.raises(TransientDeliveryError):
        world.dispatcher.send(digest_to(world))

    assert len(world.sales.requests) == 4 and world.sales.cards == []  # 1 + max_retries
    drained = world.outbox.drain()  # the clock's recovery pass, later
    assert drained.delivered == 1 and len(world.sales.cards) == 1


def test_a_refused_card_is_recorded_and_reported_once_in_the_admin_channel(world: World) -> None:
    world.sales.fail(Fault(404, {"error": {"code": "WorkflowNotFound"}}), Fault(404))

    for day in ("01", "02"):
        with pytest.raises(PermanentDeliveryError) as raised:
            world.dispatcher.send(digest_to(world, f"digest:leadership:2026-12-{day}"))
        assert raised.value.code == "webhook_not_found"

    assert len(world.sales.requests) == 2  # never retried
    [notice] = world.ops.cards  # one notice for the episode, as a card
    shown = "\n".join(texts(notice))
    advice = {"fr_FR": "le flux n'existe plus", "en_US": "the flow is gone"}[world.locale]
    assert "webhook:sales" in shown and "webhook_not_found" in shown and advice in shown
    assert "digest:leadership:2026-12-01" in shown
    [failure] = world.outbox.failures.open_failures()
    assert (failure.channel, failure.error, failure.count) == (
        "webhook:sales",
        "webhook_not_found",
        2,
    )


def test_a_webhook_nobody_configured_is_permanent(world: World) -> None:
    notice = Notification("webhook:nobody", Notice("sync.unavailable"), "n:1", {})
    with pytest.raises(PermanentDeliveryError) as raised:
        world.dispatcher.send(notice)
    assert raised.value.code == "webhook_not_configured"


def test_a_resolution_is_a_new_card_and_the_first_stays_as_posted(world: World) -> None:
    first = world.dispatcher.send(digest_to(world))
    world.dispatcher.update(first, digest_to(world))
    world.dispatcher.reply(
        first, Notification("webhook:sales", Notice("sync.unavailable"), "n:resolved", {})
    )
    assert len(world.sales.cards) == 2
