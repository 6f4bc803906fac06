"""When jobs fire: a 08:30 Europe/Paris digest fires at 08:30 local, once a day, on both sides
of the daylight-saving changes (fall back 2026-10-25, spring forward 2027-03-28); weekdays and
holidays are respected; run-due runs what is due at an instant, once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from bot.scheduling.plan import digest_trigger
from bot.scheduling.runner import Runner
from bot.scheduling.triggers import WorkdayTrigger, fire_times, latest_fire_time
from tests.bot.delivery_support import keys_posted, runtime_for, write_config
from tests.fakes.slack_api import FakeSlack

PARIS = ZoneInfo("Europe/Paris")


class Sub(NamedTuple):
    id: str
    channel: str
    time: time
    timezone: str
    days: tuple[int, ...]


EVERY_DAY = (0, 1, 2, 3, 4, 5, 6)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "expected_utc"),
    [
        # Fall back on Sunday 2026-10-25: 08:30 is 06:30Z in summer time, 07:30Z after.
        (
            datetime(2026, 10, 23, tzinfo=PARIS),
            [utc(2026, 10, 23, 6, 30), utc(2026, 10, 24, 6, 30), utc(2026, 10, 25, 7, 30),
             utc(2026, 10, 26, 7, 30)],
        ),
        # Spring forward on Sunday 2027-03-28: 07:30Z in winter time, 06:30Z after.
        (
            datetime(2027, 3, 26, tzinfo=PARIS),
            [utc(2027, 3, 26, 7, 30), utc(2027, 3, 27, 7, 30), utc(2027, 3, 28, 6, 30),
             utc(2027, 3, 29, 6, 30)],
        ),
    ],
)  # fmt: skip
def test_a_0830_paris_digest_fires_at_0830_local_once_a_day_across_dst(
    start: datetime, expected_utc: list[datetime]
) -> None:
    trigger = digest_trigger(Sub("s", "C1", time(8, 30), "Europe/Paris", EVERY_DAY), ())
    fired = list(fire_times(trigger, start, start + timedelta(days=4)))
    assert [f.astimezone(UTC) for f in fired] == expected_utc
    assert {f.astimezone(PARIS).time() for f in fired} == {time(8, 30)}


def test_a_wall_time_repeated_when_clocks_go_back_fires_once() -> None:
    trigger = digest_trigger(Sub("s", "C1", time(2, 30), "Europe/Paris", EVERY_DAY), ())
    start = datetime(2026, 10, 24, 12, tzinfo=PARIS)
    fired = list(fire_times(trigger, start, start + timedelta(days=2)))
    # 02:30 happens twice on 2026-10-25 (00:30Z and 01:30Z): only the first one fires.
    assert [f.astimezone(UTC) for f in fired] == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]


def test_a_wall_time_skipped_when_clocks_go_forward_fires_once_after_the_gap() -> None:
    trigger = digest_trigger(Sub("s", "C1", time(2, 30), "Europe/Paris", EVERY_DAY), ())
    start = datetime(2027, 3, 27, 12, tzinfo=PARIS)
    fired = list(fire_times(trigger, start, start + timedelta(days=2)))
    # 02:30 does not exist on 2027-03-28; it runs once, at 03:30 CEST (01:30Z).
    assert [f.astimezone(UTC) for f in fired] == [utc(2027, 3, 28, 1, 30), utc(2027, 3, 29, 0, 30)]


def test_weekdays_and_holidays_are_skipped() -> None:
    christmas = date(2026, 12, 25)  # a Friday
    trigger = digest_trigger(
        Sub("s", "C1", time(8, 30), "Europe/Paris", (0, 1, 2, 3, 4)), [christmas]
    )
    start = datetime(2026, 12, 21, tzinfo=PARIS)
    days = [f.date() for f in fire_times(trigger, start, start + timedelta(days=15))]
    assert days == [
        date(2026, 12, 21), date(2026, 12, 22), date(2026, 12, 23), date(2026, 12, 24),
        date(2026, 12, 28), date(2026, 12, 29), date(2026, 12, 30), date(2026, 12, 31),
        date(2027, 1, 1), date(2027, 1, 4),
    ]  # fmt: skip


def test_latest_fire_time_is_within_the_grace_time() -> None:
    trigger = WorkdayTrigger(CronTrigger(hour=8, minute=30, timezone=PARIS))
    at = datetime(2026, 12, 1, 8, 40, tzinfo=PARIS)
    assert latest_fire_time(trigger, at, timedelta(minutes=15)) == utc(2026, 12, 1, 7, 30)
    assert latest_fire_time(trigger, at, timedelta(minutes=5)) is None
    exactly = datetime(2026, 12, 1, 8, 30, tzinfo=PARIS)
    assert latest_fire_time(trigger, exactly, timedelta(0)) == utc(2026, 12, 1, 7, 30)


def test_the_trigger_survives_pickling_as_the_job_store_does_it() -> None:
    import pickle

    trigger = digest_trigger(
        Sub("s", "C1", time(8, 30), "Europe/Paris", (0, 1)), [date(2027, 1, 1)]
    )
    copy = pickle.loads(pickle.dumps(trigger))
    assert repr(copy) == repr(trigger)
    now = datetime(2026, 12, 31, tzinfo=PARIS)
    assert copy.get_next_fire_time(None, now) == trigger.get_next_fire_time(None, now)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (date(2026, 10, 24), date(2026, 10, 26)),  # fall back
        (date(2027, 3, 27), date(2027, 3, 29)),  # spring forward
    ],
)
def test_run_due_posts_the_digest_at_0830_local_on_each_side_of_the_change(
    fake: FakeSlack, tmp_path: Path, before: date, after: date
) -> None:
    config = write_config(
        tmp_path,
        subscriptions=[{"id": "paris", "channel": "C1", "time": "08:30", "days": "mon-sun"}],
        scheduling={"grace_time": "10m", "sync_cron": "0 0 1 1 *", "evaluation_cron": "0 0 1 1 *"},
    )
    runner = Runner(runtime_for(config, fake))
    for day in (before, after):
        local = datetime.combine(day, time(8, 30), PARIS)
        offset = local.utcoffset()
        assert offset is not None
        # One hour off in UTC (the other side's offset) is not 08:30 local: nothing is due.
        other_side = timedelta(hours=1) if offset == timedelta(hours=2) else -timedelta(hours=1)
        assert runner.run_due(local + other_side) == [] or offset == timedelta(hours=1)
        outcomes = runner.run_due(local.astimezone(UTC))
        assert [(o.job_id, o.outcome) for o in outcomes] == [("digest:paris", "ok")]
        assert runner.run_due(local.astimezone(UTC))[0].outcome == "taken"  # once
    assert keys_posted(fake) == [f"digest:paris:{before}", f"digest:paris:{after}"]
