"""Sharing a file the way Slack documents it (``files_upload_v2``: files.getUploadURLExternal,
the upload URL, files.completeUploadExternal), against the fake Slack driven by the real
``WebClient``: what the fake records is what Slack would have received. Then the digest's chart:
shared in the digest's thread through the outbox, once, even when an answer is lost."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.charts import digest_chart
from bot.delivery.notifier import Delivered, Message
from bot.delivery.outbox import Reservation, message_of
from bot.digests import post_digest
from bot.formatting import Formatter
from bot.scheduling.runtime import Runtime
from bot.slack_render import SlackNotificationRenderer
from bot.store.database import make_engine, migrate
from bot.store.delivery_models import MessageFile, OutboxEntry
from bot.store.retention import prune
from bot.subscriptions import load_subscriptions
from metrics.pace import PacePath
from metrics.periods import Grain, period_containing
from metrics.scopes import Level, Scope
from tests.bot.delivery_support import (
    postgres_url,  # noqa: F401 - fixture
    runtime_for,
    write_config,
)
from tests.bot.slack_world import NOW, World, world_fixture
from tests.fakes.slack_api import TOKEN, FakeSlack, Fault

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
Q4 = period_containing(Grain.QUARTER, NOW.date())


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=fake.url)


def test_upload_v2_shares_the_bytes_in_a_thread(fake: FakeSlack) -> None:
    web = client(fake)
    parent = web.chat_postMessage(channel="C1", text="digest")["ts"]
    done = web.files_upload_v2(
        channel="C1", thread_ts=parent, content=PNG, filename="chart.png", title="Q4",
        alt_txt="revenue against pace",
    )  # fmt: skip
    assert done["file"]["name"] == "chart.png" and done["file"]["title"] == "Q4"
    # the three documented steps, in order, the upload itself without a token
    asked, uploaded, completed = [c for c in fake.calls if c.method != "chat.postMessage"]
    assert (asked.method, uploaded.method, completed.method) == (
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal",
    )  # fmt: skip
    assert asked.body["length"] == str(len(PNG)) and asked.body["alt_txt"] == "revenue against pace"
    assert "authorization" not in uploaded.headers
    assert (completed.body["channel_id"], completed.body["thread_ts"]) == ("C1", parent)
    assert json.loads(completed.body["files"]) == [{"id": done["file"]["id"], "title": "Q4"}]
    [(message, upload)] = fake.shared_files("C1")
    assert upload.data == PNG and message.thread_ts == parent
    # the file message is listed in the thread with its file, as conversations.replies does
    replies = web.conversations_replies(channel="C1", ts=parent)["messages"]
    assert [m.get("files", [{}])[0].get("name") for m in replies] == [None, "chart.png"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"filename": "chart.png", "length": 0}, "missing_argument"),
        ({"length": 10}, "missing_argument"),
        ({"filename": "c.png", "length": 10, "alt_txt": "x" * 1001}, "alt_txt_too_large"),
    ],
)
def test_upload_url_refuses_what_slack_refuses(fake: FakeSlack, body: dict, error: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        client(fake).api_call("files.getUploadURLExternal", params=body)
    assert raised.value.response["error"] == error


def test_completing_a_file_whose_bytes_never_arrived_or_twice_is_file_not_found(
    fake: FakeSlack,
) -> None:
    web = client(fake)
    announced = web.files_getUploadURLExternal(filename="c.png", length=3)
    files = [{"id": announced["file_id"], "title": "c"}]
    with pytest.raises(SlackApiError, match="file_not_found"):
        web.files_completeUploadExternal(files=files, channel_id="C1")
    web.files_upload_v2(channel="C1", content=PNG, filename="d.png", title="d")
    [(_, shared)] = fake.shared_files("C1")
    with pytest.raises(SlackApiError, match="file_not_found"):
        web.files_completeUploadExternal(files=[{"id": shared.id, "title": "d"}], channel_id="C1")
    assert len(fake.shared_files("C1")) == 1


def test_sharing_into_a_missing_channel_or_thread_fails_and_shares_nothing(
    fake: FakeSlack,
) -> None:
    web = client(fake)
    fake.unknown_channels.add("CGONE")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        web.files_upload_v2(channel="CGONE", content=PNG, filename="c.png")
    with pytest.raises(SlackApiError, match="invalid_thread_ts"):
        web.files_upload_v2(channel="C1", thread_ts="1.000001", content=PNG, filename="c.png")
    assert fake.shared_files("C1") == [] and fake.shared_files("CGONE") == []


def test_upload_steps_take_scripted_faults_like_every_method(fake: FakeSlack) -> None:
    fake.fail("files.completeUploadExternal", Fault.api_error("not_in_channel"))
    with pytest.raises(SlackApiError, match="not_in_channel"):
        client(fake).files_upload_v2(channel="C1", content=PNG, filename="c.png")
    assert fake.shared_files("C1") == []


# --- the digest's chart -----------------------------------------------------------------------

world = pytest.fixture(world_fixture)
DIGEST_KEY = "digest:leadership:2026-11-26"


def test_the_digest_shares_its_chart_in_its_thread(world: World) -> None:
    with world.sessions()() as session:
        [subscription] = load_subscriptions(world.settings, session)
    fmt = Formatter.for_organisation(world.settings.organisation)
    delivered = post_digest(world.service, world.dispatcher(), subscription, NOW, fmt)
    [(message, upload)] = world.fake.shared_files("CLEAD")
    # a PNG, in the digest's thread, named after its key; titled and described in French
    assert upload.data is not None and upload.data.startswith(b"\x89PNG")
    assert message.thread_ts == delivered.ts
    assert upload.filename == "digest-leadership-2026-11-26-chart.png"
    title = f"Chiffre d'affaires · {fmt.period(Q4)}"
    assert message.files == [{"id": upload.id, "name": upload.filename, "title": title}]
    assert upload.alt_txt == fmt.t("chart.alt", title=title)


def chart(fmt: Formatter, channel: str) -> Message:
    """The chart as the Slack surface renders it for the outbox (what post_digest_chart sends)."""
    path = PacePath(
        Scope(Level.TEAM, "Lyon"), Q4, tuple(Q4.start + timedelta(days=n) for n in range(Q4.days)),
        (Decimal(0), Decimal(1000)), tuple(Decimal(n * 10) for n in range(Q4.days)),
        Decimal(920),
    )  # fmt: skip
    rendered = SlackNotificationRenderer(fmt).render(digest_chart([path], fmt))
    return Message(channel, rendered.text, f"{DIGEST_KEY}:chart", body=rendered.body,
                   file=rendered.file)  # fmt: skip


def test_a_chart_whose_answer_was_lost_is_found_not_shared_twice(
    fake: FakeSlack, tmp_path: Path
) -> None:
    runtime = runtime_for(write_config(tmp_path), fake)
    fmt = Formatter("fr_FR", "EUR", ZoneInfo("Europe/Paris"))
    parent = runtime.notifier.send(Message("C1", "digest", DIGEST_KEY))
    # shared, but the answer never comes back: the outbox looks in the thread, by file name
    fake.fail("files.completeUploadExternal", Fault.lost_answer())
    first = runtime.notifier.reply(parent, chart(fmt, "C1"))
    assert len(fake.shared_files("C1")) == 1
    # the job runs again (a retry, a second clock): the outbox knows it was sent
    again = runtime.notifier.reply(parent, chart(fmt, "C1"))
    assert again == first and len(fake.shared_files("C1")) == 1
    [(message, _)] = fake.shared_files("C1")
    assert first == Delivered("C1", message.ts)


def test_a_chart_refused_by_the_upload_url_is_shared_on_the_next_attempt(
    fake: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_for(write_config(tmp_path), fake)
    fmt = Formatter("en_US", "EUR", ZoneInfo("Europe/Paris"))
    parent = runtime.notifier.send(Message("C1", "digest", DIGEST_KEY))
    received = fake._receive_upload
    refused = iter([500])
    monkeypatch.setattr(fake, "_receive_upload", lambda i, d: next(refused, None) or received(i, d))
    runtime.notifier.reply(parent, chart(fmt, "C1"))
    # one refused upload, then announced again and shared once
    assert [c.method for c in fake.calls].count("files.getUploadURLExternal") == 2
    assert len(fake.shared_files("C1")) == 1


# --- where the chart's bytes are kept ----------------------------------------------------------

CHART_KEY = f"{DIGEST_KEY}:chart"


def stored(engine: Engine) -> tuple[list[OutboxEntry], list[tuple[str, bytes]]]:
    with Session(engine) as session:
        entries = list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.key)))
        files = [(f.key, f.content) for f in session.scalars(select(MessageFile))]
        return entries, files


def test_the_chart_is_stored_once_beside_its_message_and_pruned_with_it(
    fake: FakeSlack, tmp_path: Path
) -> None:
    stored_once_and_pruned(runtime_for(write_config(tmp_path), fake), fake)


def test_on_postgresql_too(fake: FakeSlack, tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    engine = make_engine(postgres_url)
    migrate(engine)  # the release step
    engine.dispose()
    runtime = runtime_for(write_config(tmp_path), fake, postgres_url)
    try:
        stored_once_and_pruned(runtime, fake)
    finally:
        runtime.engine.dispose()


def stored_once_and_pruned(runtime: Runtime, fake: FakeSlack) -> None:
    fmt = Formatter("fr_FR", "EUR", ZoneInfo("Europe/Paris"))
    parent = runtime.notifier.send(Message("C1", "digest", DIGEST_KEY))
    message = chart(fmt, "C1")

    runtime.notifier.reply(parent, message)

    entries, files = stored(runtime.engine)
    (entry,) = [e for e in entries if e.key == CHART_KEY]
    # the row says what the file is; its bytes are in message_files, once, not in the JSON
    title = f"Chiffre d'affaires · {fmt.period(Q4)}"
    alt = fmt.t("chart.alt", title=title)
    assert entry.payload["body"] == {"file": {"title": title, "alt_txt": alt}}
    assert files == [(CHART_KEY, message.file)]
    [(_, upload)] = fake.shared_files("C1")
    assert upload.data == message.file
    # the retention forgets the message and its file together
    pruned = prune(runtime.engine, datetime.now(UTC) + timedelta(days=1))
    assert pruned.outbox == 2 and stored(runtime.engine) == ([], [])


def test_a_chart_reserved_by_a_crashed_process_is_shared_once_from_the_store(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    crashed = runtime_for(config, fake)
    fmt = Formatter("en_US", "EUR", ZoneInfo("Europe/Paris"))
    parent = crashed.notifier.send(Message("C1", "digest", DIGEST_KEY))
    message = chart(fmt, "C1")
    # The dead process reserved the chart, shared it, and died before marking it sent.
    assert crashed.notifier.outbox.reserve("reply", message, parent.ts).state is Reservation.NEW
    crashed.notifier.surfaces.reply(parent, message)

    restarted = runtime_for(config, fake)
    restarted.notifier.outbox.lease = restarted.notifier.outbox.lease * 0
    drained = restarted.notifier.drain()

    # found in the thread by its file name: not shared a second time
    assert drained.delivered == 1 and len(fake.shared_files("C1")) == 1
    entries, _ = stored(restarted.engine)
    assert {e.key: e.status for e in entries} == {DIGEST_KEY: "sent", CHART_KEY: "sent"}


def test_a_chart_reserved_but_never_shared_is_shared_by_the_drain_with_the_stored_bytes(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    crashed = runtime_for(config, fake)
    fmt = Formatter("en_US", "EUR", ZoneInfo("Europe/Paris"))
    parent = crashed.notifier.send(Message("C1", "digest", DIGEST_KEY))
    message = chart(fmt, "C1")
    assert crashed.notifier.outbox.reserve("reply", message, parent.ts).state is Reservation.NEW

    restarted = runtime_for(config, fake)
    restarted.notifier.outbox.lease = restarted.notifier.outbox.lease * 0
    assert restarted.notifier.drain().delivered == 1

    [(shared, upload)] = fake.shared_files("C1")
    assert upload.data == message.file and shared.thread_ts == parent.ts
    assert upload.filename == "digest-leadership-2026-11-26-chart.png"


def test_a_chart_reserved_before_message_files_is_read_from_its_payload() -> None:
    """Rows reserved before migration 0010 kept the PNG base64 in the payload."""
    png = b"\x89PNG\r\n\x1a\n" + b"old"
    file = {"title": "Q4", "alt_txt": "revenue", "png": base64.b64encode(png).decode()}
    entry = OutboxEntry(
        key=CHART_KEY, kind="reply", channel="C1",
        payload={"text": "Q4", "body": {"file": file}, "metadata": {}},
    )  # fmt: skip

    message = message_of(entry)

    assert message.file == png and message.body == {"file": {"title": "Q4", "alt_txt": "revenue"}}
