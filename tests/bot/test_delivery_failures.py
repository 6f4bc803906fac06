"""Permanent errors: recorded, reported once per episode to the admin channel, shown in the
failure log, and never in the way of the other deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.delivery.errors import PermanentDeliveryError
from bot.delivery.notifier import Message
from bot.scheduling.runner import Runner
from tests.bot.delivery_support import (
    ADMIN,
    digests_per_channel,
    runtime_for,
    subscriptions,
    write_config,
)
from tests.fakes.slack_api import FakeSlack, Fault

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


def admin_posts(fake: FakeSlack) -> list[str]:
    return [p.text for p in fake.posts(ADMIN)]


def test_permanent_errors_are_recorded_and_reported_once(fake: FakeSlack, tmp_path: Path) -> None:
    runtime = runtime_for(write_config(tmp_path), fake)
    fake.unknown_channels.add("CGONE")
    fake.archived.add("CARCH")
    notifier = runtime.notifier

    for i in range(3):
        with pytest.raises(PermanentDeliveryError) as raised:
            notifier.send(Message("CGONE", "hello", f"gone:{i}"))
        assert raised.value.code == "channel_not_found"
        notifier.send(Message("COK", "hello", f"ok:{i}"))  # the others are not held up
    with pytest.raises(PermanentDeliveryError):
        notifier.send(Message("CARCH", "hello", "archived:1"))
    fake.fail("chat.postMessage", Fault.api_error("not_in_channel"))
    with pytest.raises(PermanentDeliveryError):
        notifier.send(Message("CNOTIN", "hello", "notin:1"))

    assert len(fake.posts("COK")) == 3
    notices = admin_posts(fake)
    assert len(notices) == 3  # one per (channel, error), not one per message
    assert any("CGONE" in n and "channel_not_found" in n for n in notices)
    assert any("CARCH" in n and "is_archived" in n for n in notices)
    assert any("CNOTIN" in n and "invite" in n for n in notices)
    failures = {(f.channel, f.error): f for f in notifier.failures.open_failures()}
    assert failures[("CGONE", "channel_not_found")].count == 3
    assert all(f.reported for f in failures.values())
    # A refused message is not retried: sending it again raises at once, without a call.
    calls = len(fake.calls)
    with pytest.raises(PermanentDeliveryError):
        notifier.send(Message("CGONE", "hello", "gone:0"))
    assert len(fake.calls) == calls


def test_a_fixed_channel_resolves_the_failure_and_a_new_episode_is_reported_again(
    fake: FakeSlack, tmp_path: Path
) -> None:
    notifier = runtime_for(write_config(tmp_path), fake).notifier
    fake.archived.add("CX")
    with pytest.raises(PermanentDeliveryError):
        notifier.send(Message("CX", "hello", "x:1"))
    fake.archived.clear()
    notifier.send(Message("CX", "hello", "x:2"))
    assert notifier.failures.open_failures() == []
    fake.archived.add("CX")
    with pytest.raises(PermanentDeliveryError):
        notifier.send(Message("CX", "hello", "x:3"))
    assert len(admin_posts(fake)) == 2
    assert notifier.failures.open_failures()[0].episode == 2


def test_invalid_auth_is_recorded_without_looping_on_the_admin_notice(
    fake: FakeSlack, tmp_path: Path
) -> None:
    from bot.scheduling.runtime import build_runtime
    from bot.settings import load_settings

    config = write_config(tmp_path)
    settings = load_settings(config, {"SLACK_BOT_TOKEN": "xoxb-revoked", "SLACK_API_URL": fake.url})
    notifier = build_runtime(settings).notifier
    with pytest.raises(PermanentDeliveryError):
        notifier.send(Message("C1", "hello", "auth:1"))
    errors = {(f.channel, f.error) for f in notifier.failures.open_failures()}
    assert errors == {("C1", "invalid_auth"), (ADMIN, "invalid_auth")}
    assert len(fake.calls_to("chat.postMessage")) == 2  # the message and one notice attempt


def test_a_bad_channel_does_not_stop_the_digest_fan_out(fake: FakeSlack, tmp_path: Path) -> None:
    subs = subscriptions(6)
    config = write_config(tmp_path, subscriptions=subs)
    runtime = runtime_for(config, fake)
    fake.unknown_channels.add("C002")
    fake.archived.add("C004")

    outcomes = Runner(runtime).run_due(datetime(2026, 12, 1, 8, 30, tzinfo=PARIS))

    by_job = {o.job_id: o.outcome for o in outcomes}
    assert by_job["digest:s002"] == "failed" and by_job["digest:s004"] == "failed"
    assert digests_per_channel(fake) == {"C000": 1, "C001": 1, "C003": 1, "C005": 1}
    assert len(admin_posts(fake)) == 2
