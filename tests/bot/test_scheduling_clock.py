"""The clock process: a clock restarted within the grace time still posts the digest that fell
due while it was down, once — the persistent APScheduler job store keeps the missed run, the
claim keeps it single; a second clock on the same database adds nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.scheduling.clock import STORE, Clock
from tests.bot.delivery_support import digests_per_channel, runtime_for, write_config
from tests.fakes.slack_api import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_a_restart_within_the_grace_time_posts_the_missed_digest_once(
    fake: FakeSlack, tmp_path: Path
) -> None:
    missed = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=0, microsecond=0)
    config = write_config(
        tmp_path,
        organisation={"timezone": "UTC"},
        subscriptions=[
            {"id": "d", "channel": "C1", "time": f"{missed:%H:%M}", "timezone": "UTC",
             "days": "mon-sun"}
        ],
        scheduling={"grace_time": "30m", "sync_cron": "0 0 1 1 *", "evaluation_cron": "0 0 1 1 *"},
    )  # fmt: skip
    # The first clock ran yesterday and stored the digest's next run: today, 10 minutes ago.
    first = Clock(runtime_for(config, fake))
    first.scheduler.start(paused=True)
    first.refresh()
    first.scheduler.modify_job("digest:d", jobstore=STORE, next_run_time=missed)
    first.scheduler.shutdown(wait=False)

    clocks = [Clock(runtime_for(config, fake)) for _ in range(2)]
    for clock in clocks:
        clock.start()
    try:
        wait_for(lambda: digests_per_channel(fake).get("C1") == 1)
        time.sleep(0.3)  # let the second clock's recovery pass run too
        next_run = clocks[0].next_runs()["digest:d"]
        assert next_run is not None and next_run > datetime.now(UTC)
    finally:
        for clock in clocks:
            clock.shutdown()
    assert digests_per_channel(fake) == {"C1": 1}
