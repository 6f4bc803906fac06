"""Surface-neutral delivery: destinations name their surface, each surface renders the same view
its own way, the outbox stores what was rendered (a take-over re-sends exactly that), and a
surface's own notifier sorts its failures for the outbox."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.chat_rendering import alert_snapshot
from bot.delivery.errors import PermanentDeliveryError
from bot.delivery.failures import FailureLog
from bot.delivery.notifier import Delivered, parse_destination
from bot.delivery.outbox import Outbox, OutboxNotifier, Reservation
from bot.delivery.retry import CallFailure, FailureKind
from bot.delivery.surfaces import Dispatcher, Notification, Rendered, Surface, Surfaces
from bot.rendering import validate_blocks
from bot.settings import DeliveryPolicy
from bot.slack_render import SlackNotificationRenderer
from bot.store.database import ensure_schema, make_engine
from bot.store.delivery_models import OutboxEntry
from bot.text_render import TextNotificationRenderer
from conversation.authorization import Action, alert_actions
from conversation.views import AlertGroup, AlertNote, Notice, Outbound
from tests.bot.delivery_support import RecordingNotifier
from tests.bot.test_rendering import alerts, formatter

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("destination", "surface", "address"),
    [
        ("C0LYON", "slack", "C0LYON"),  # a bare id: Slack, as every route written before
        ("U0REP", "slack", "U0REP"),
        ("slack:C0LYON", "slack", "C0LYON"),
        ("teams:sales-lyon", "teams", "sales-lyon"),
        ("webhook:leadership", "webhook", "leadership"),
        ("console:ops", "console", "ops"),
    ],
)
def test_a_destination_names_its_surface(destination: str, surface: str, address: str) -> None:
    assert parse_destination(destination) == (surface, address)


@dataclass
class CardRenderer:
    """A stand-in for another surface's renderer: the view's kind as a JSON card."""

    version: str = "1"

    def render(self, view: Outbound) -> Rendered:
        card = {"type": "AdaptiveCard", "version": self.version, "kind": type(view).__name__}
        return Rendered(f"{type(view).__name__} v{self.version}", card)


@dataclass
class World:
    surfaces: Surfaces
    notifier: OutboxNotifier
    teams: RecordingNotifier
    console: RecordingNotifier
    failures: FailureLog

    @property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.surfaces, self.notifier)


def make_world(tmp_path: Path, renderer: CardRenderer | None = None, now: datetime = NOW) -> World:
    engine = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
    ensure_schema(engine)
    fmt = formatter("fr_FR")
    teams, console = RecordingNotifier(), RecordingNotifier()
    surfaces = Surfaces(
        {
            "teams": Surface(renderer or CardRenderer(), teams),
            "console": Surface(TextNotificationRenderer(fmt), console),
        }
    )
    failures = FailureLog(engine, lambda: now)
    notifier = OutboxNotifier(
        surfaces=surfaces,
        outbox=Outbox(engine, "me", lambda: now, timedelta(seconds=30)),
        policy=DeliveryPolicy(max_retries=2, backoff_base=0.001, backoff_cap=0.001),
        failures=failures,
        admin_channel="console:ops",
        sleep=lambda _: None,
    )
    return World(surfaces, notifier, teams, console, failures)


def notice(key: str, destination: str = "teams:sales") -> Notification:
    return Notification(destination, Notice("sync.unavailable"), key, {"kind": "test"})


def test_each_destination_is_rendered_and_sent_by_its_own_surface(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    delivered = world.dispatcher.send(notice("test:1"))

    [sent] = world.teams.sent
    assert (sent.surface, sent.channel, sent.destination) == ("teams", "sales", "teams:sales")
    assert sent.body == {"type": "AdaptiveCard", "version": "1", "kind": "Notice"}
    assert delivered == Delivered("teams:sales", "activity-1")
    # A reply to it goes to the same surface: the delivered channel is a destination.
    world.dispatcher.reply(delivered, notice("test:1:reply", delivered.channel))
    assert [m.idempotency_key for m in world.teams.sent] == ["test:1", "test:1:reply"]
    assert world.console.sent == []


def test_the_outbox_stores_the_rendered_message_and_a_take_over_sends_exactly_that(
    tmp_path: Path,
) -> None:
    crashed = make_world(tmp_path)
    reserved = crashed.surfaces.render(notice("test:1"))
    # The dead process reserved the message (rendered by version 1 of the card), then died.
    assert crashed.notifier.outbox.reserve("send", reserved).state is Reservation.NEW
    with Session(crashed.notifier.outbox.engine) as session:
        entry = session.scalars(select(OutboxEntry)).one()
        assert entry.channel == "teams:sales"
        assert entry.payload["body"] == {"type": "AdaptiveCard", "version": "1", "kind": "Notice"}

    # Restarted with newer templates: the drain sends what was reserved, not a new rendering.
    restarted = make_world(tmp_path, CardRenderer(version="2"), NOW + timedelta(minutes=1))
    assert restarted.notifier.drain().delivered == 1
    [sent] = restarted.teams.sent
    assert sent == reserved
    assert sent.text == "Notice v1"


def test_a_surface_sorts_its_own_failures_for_the_outbox(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.teams.failures = [
        CallFailure(FailureKind.RATE_LIMITED, "ratelimited", 0.0),
        CallFailure(FailureKind.PERMANENT, "conversation_not_found"),
    ]
    with pytest.raises(PermanentDeliveryError) as refused:
        world.dispatcher.send(notice("test:1"))
    assert (refused.value.channel, refused.value.code) == ("teams:sales", "conversation_not_found")
    [failure] = world.failures.open_failures()
    assert (failure.channel, failure.error) == ("teams:sales", "conversation_not_found")
    # The admin notice went to the admin destination (the console), in the organisation's words.
    [told] = world.console.sent
    assert "teams:sales" in told.text and "conversation_not_found" in told.text
    assert "kpibot ne peut pas écrire dans" in told.text


def test_a_destination_on_a_surface_not_set_up_is_refused_for_good(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    with pytest.raises(PermanentDeliveryError) as refused:
        world.dispatcher.send(notice("test:1", "webhook:leadership"))
    assert (refused.value.channel, refused.value.code) == ("webhook:leadership", "unknown_surface")
    assert world.teams.sent == [] and world.console.sent == []


def _group(actions: tuple[Action, ...]) -> AlertGroup:
    fmt = formatter("fr_FR")
    at_risk = alerts()[0]
    snapshot = alert_snapshot(at_risk, fmt, "revenue|team:Lyon|2026-Q4")
    note = AlertNote(Action.ACKNOWLEDGE, "U0MGR", NOW)
    return AlertGroup("alerts:C0LYON:abc", (snapshot,), (note,), actions, ("1d", "3d", "1w"))


def test_an_alert_message_is_the_same_view_on_every_surface() -> None:
    fmt = formatter("fr_FR")
    group = _group(alert_actions(firing=True))
    slack = SlackNotificationRenderer(fmt).render(group)
    text = TextNotificationRenderer(fmt).render(group)

    validate_blocks(slack.body)
    shown = json.dumps(slack.body, ensure_ascii=False)
    # The same alert on both: its KPI, scope (escaped on Slack only), status and who took it.
    assert "Chiffre d'affaires" in shown and "Chiffre d'affaires" in text.text
    assert "Zoé Martin &amp; Co" in shown and "&lt;!channel&gt;" in shown
    assert "<@U0MGR>" in shown and "U0MGR" in text.text and "<@" not in text.text
    assert text.body is None
    # The actions the view offers are Slack's buttons: acknowledge, and snooze for 1d/3d/1w.
    [actions] = [b for b in slack.body if b["type"] == "actions"]
    ack, snooze = actions["elements"]
    assert (ack["action_id"], ack["value"]) == ("kpi.ack", "alerts:C0LYON:abc")
    assert [o["value"] for o in snooze["options"]] == [
        "alerts:C0LYON:abc|1d",
        "alerts:C0LYON:abc|3d",
        "alerts:C0LYON:abc|1w",
    ]


def test_an_alert_message_offers_only_the_actions_of_its_view() -> None:
    fmt = formatter("en_US")
    nothing = SlackNotificationRenderer(fmt).render(_group(())).body
    assert [b for b in nothing if b["type"] == "actions"] == []
    only_snooze = SlackNotificationRenderer(fmt).render(_group((Action.SNOOZE,))).body
    [actions] = [b for b in only_snooze if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == ["kpi.snooze"]
    assert alert_actions(firing=False) == ()


def test_a_snapshot_stored_before_surfaces_is_drawn_from_its_slack_block() -> None:
    fmt = formatter("en_US")
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": "stored"}}
    old = {"key": "k", "status": "at_risk", "title": "t", "text": "old line", "block": block,
           "resolved_at": None}  # fmt: skip
    group = AlertGroup("alerts:C1:old", (old,), (), alert_actions(firing=True), ("1d",))
    slack = SlackNotificationRenderer(fmt).render(group)
    assert block in slack.body
    assert "old line" in slack.text
