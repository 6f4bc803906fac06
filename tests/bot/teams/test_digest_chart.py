"""The digest's chart on Teams. Through the bot: a card in the digest's thread whose Image is the
PNG as a data URI (Teams' documented way for a picture a bot draws itself), valid against the
1.5 schema, its bytes stored once beside the outbox row. Through a Workflows webhook: the same
card shrunk under the 28 KB the flow takes (the fake flow refuses more and checks the 1.4
schema), or no chart at all when even the smallest would not fit."""

from __future__ import annotations

import base64
import io
import logging
import random
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from bot.charts import digest_chart
from bot.delivery.console import ConsoleNotifier
from bot.delivery.failures import FailureLog
from bot.delivery.notifier import Delivered
from bot.delivery.outbox import Outbox, OutboxNotifier
from bot.delivery.surfaces import Dispatcher, Notification, PictureLeftOut, Surface, Surfaces
from bot.digests import post_digest, post_digest_chart
from bot.formatting import Formatter
from bot.scheduling.runtime import build_runtime
from bot.settings import DeliveryPolicy
from bot.store.database import ensure_schema, make_engine
from bot.store.delivery_models import MessageFile, OutboxEntry
from bot.subscriptions import load_subscriptions
from bot.teams.cards import CardNotifications, CardVersion
from bot.teams.pictures import FILE_URL
from bot.teams.webhook import MAX_PAYLOAD_BYTES, WebhookNotifier
from conversation.views import Chart
from metrics.pace import PacePath
from metrics.periods import Grain, period_containing
from metrics.scopes import Level, Scope
from tests.bot.slack_world import NOW
from tests.bot.teams.card_schema import schema_problems
from tests.bot.teams.world import (
    ADMIN,
    LEADERSHIP_TEAM_ID,
    TeamsWorld,
    installation,
    teams_world,
)
from tests.bot.test_rendering import digest, formatter
from tests.fakes.bot_framework import ADAPTIVE_CARD
from tests.fakes.teams_webhook import WorkflowsWebhook

Q4 = period_containing(Grain.QUARTER, NOW.date())
DIGEST = """
subscriptions:
  - id: leadership-teams
    channel: "teams:Direction commerciale"
    time: "08:30"
    kpis: [revenue, pipeline]
"""


def pace_paths_of_six_teams() -> list[PacePath]:
    """Six teams a third of the way through Q4 2026, each with a target: two rows of three."""
    days = tuple(Q4.start + timedelta(days=n) for n in range(Q4.days))
    return [
        PacePath(
            Scope(Level.TEAM, f"Équipe {n}"),
            Q4,
            days,
            tuple(Decimal(n * 900 * d) for d in range(30)),
            tuple(Decimal(n * 1000 * d) for d in range(Q4.days)),
            Decimal(n * 1000 * Q4.days),
        )
        for n in range(1, 7)
    ]


def png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as image:
        return image.size


def image_of(card: dict) -> dict:  # type: ignore[type-arg]
    (image,) = [item for item in card["body"] if item["type"] == "Image"]
    return image


@pytest.fixture(params=["fr_FR", "en_US"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TeamsWorld]:
    with teams_world(tmp_path, locale=request.param, extra=DIGEST) as world:
        yield world


def test_the_bot_posts_the_chart_in_the_digests_thread_as_a_card_picture(
    world: TeamsWorld,
) -> None:
    status, _ = world.post(installation(world.fake, ADMIN, team="Direction commerciale",
                                        team_id=LEADERSHIP_TEAM_ID))  # fmt: skip
    assert status == 200
    world.fake.requests.clear()
    runtime = build_runtime(world.settings, engine=world.service.engine, sleep=lambda _: None)
    with world.sessions()() as session:
        (subscription,) = load_subscriptions(world.settings, session)
    fmt = Formatter.for_organisation(world.settings.organisation)

    delivered = post_digest(world.service, runtime.dispatcher, subscription, NOW, fmt)

    _, chart_post = world.fake.posted()
    # the reply goes into the digest's thread: "<channel>;messageid=<the digest's id>"
    assert chart_post.path.startswith(
        f"/v3/conversations/{LEADERSHIP_TEAM_ID};messageid={delivered.ts}/activities"
    )
    (attachment,) = chart_post.json()["attachments"]
    assert attachment["contentType"] == ADAPTIVE_CARD
    card = attachment["content"]
    assert schema_problems(card, "1.5") == []
    heading = card["body"][0]["text"]
    assert (
        heading == {"fr": "Chiffre d'affaires · T4 2026", "en": "Revenue · Q4 2026"}[fmt.language]
    )
    image = image_of(card)
    assert image["altText"] == fmt.t("chart.alt", title=heading)
    prefix = "data:image/png;base64,"
    assert image["url"].startswith(prefix)
    png = base64.b64decode(image["url"][len(prefix) :])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # stored once: the outbox row keeps the card with its placeholder, the bytes beside it
    with world.sessions()() as session:
        chart_key = "digest:leadership-teams:2026-11-26:chart"
        entry = session.get(OutboxEntry, chart_key)
        assert entry is not None and entry.status == "sent"
        assert image_of(entry.payload["body"])["url"] == FILE_URL
        assert session.scalars(select(MessageFile.content)).all() == [png]


@pytest.mark.parametrize("locale", ["fr_FR", "en_US"])
def test_a_webhook_gets_the_chart_shrunk_under_its_limit(tmp_path: Path, locale: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
    ensure_schema(engine)
    fmt = formatter(locale)
    paths = pace_paths_of_six_teams()
    chart = digest_chart(paths, fmt)
    assert len(chart.png) > MAX_PAYLOAD_BYTES  # as drawn, it would not fit
    with WorkflowsWebhook() as sales:
        webhooks = WebhookNotifier({"sales": sales.webhook_url}, timeout=5.0)
        surfaces = Surfaces(
            {"webhook": Surface(CardNotifications(fmt, CardVersion.WEBHOOK), webhooks)}
        )
        outbox = OutboxNotifier(
            surfaces=surfaces,
            outbox=Outbox(engine, "me", lambda: NOW, timedelta(seconds=30)),
            policy=DeliveryPolicy(max_retries=0),
            failures=FailureLog(engine, lambda: NOW),
        )
        dispatcher = Dispatcher(surfaces, outbox)
        digest_note = Notification("webhook:sales", digest(locale), "digest:lead:2026-11-26")
        delivered = dispatcher.send(digest_note)

        posted = post_digest_chart(dispatcher, digest_note, delivered, chart)

        webhooks.close()
        assert posted is not None
        # the flow took it (it answers 413 over 28 KB, 400 to a card off the 1.4 schema)
        assert [len(r.body) <= MAX_PAYLOAD_BYTES for r in sales.requests] == [True, True]
        _, card = sales.cards
        png = base64.b64decode(image_of(card)["url"].removeprefix("data:image/png;base64,"))
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < len(chart.png)
        # fewer colours were enough here: as wide as drawn (shrink_png's own tests go further)
        assert png_size(png) == png_size(chart.png)


def test_a_picture_too_large_for_a_webhook_is_left_out_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Noise does not compress: at MIN_WIDTH it is still far over the flow's 28 KB.
    rng = random.Random(13)
    noise = Image.frombytes(
        "RGB", (800, 800), bytes(rng.getrandbits(8) for _ in range(800 * 800 * 3))
    )
    out = io.BytesIO()
    noise.save(out, format="PNG")
    chart = Chart("Revenue · Q4 2026", "noise", out.getvalue())
    renderer = CardNotifications(formatter("en_US"), CardVersion.WEBHOOK)
    with pytest.raises(PictureLeftOut) as left_out:
        renderer.render(chart)
    assert left_out.value.reason == "webhook_payload_limit"
    # post_digest_chart posts nothing and says why in the log
    printed = io.StringIO()
    surfaces = Surfaces({"webhook": Surface(renderer, ConsoleNotifier(printed))})
    note = Notification("webhook:sales", digest("en_US"), "digest:lead:2026-11-26")
    with caplog.at_level(logging.INFO, logger="bot.digests"):
        posted = post_digest_chart(
            Dispatcher(surfaces, surfaces), note, Delivered("webhook:sales", ""), chart
        )
    assert posted is None and printed.getvalue() == ""
    assert "digest:lead:2026-11-26:chart left out of webhook:sales: webhook_payload_limit" in (
        caplog.text
    )
