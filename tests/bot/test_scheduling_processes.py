"""Real processes: a `kpibot run-due` killed with SIGKILL in the middle of a digest fan-out and
started again leaves every channel with its digest exactly once; three `kpibot run-due`
processes on one PostgreSQL database post each digest once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot.delivery_support import (
    digests_per_channel,
    environment,
    finish,
    kpibot,
    postgres_url,  # noqa: F401 - fixture
    subscriptions,
    write_config,
)
from tests.fakes.slack_api import FakeSlack, Fault

AT = "2026-12-01T08:30:00+01:00"
CHANNELS = 24
QUIET = {"sync_cron": "0 0 1 1 *", "evaluation_cron": "0 0 1 1 *", "claim_lease": 1}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


def test_sigkill_mid_fan_out_then_restart_posts_every_digest_once(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        organisation={"locale": "en_US"},  # the operator's words asserted below are English
        subscriptions=subscriptions(CHANNELS),
        scheduling={**QUIET, "workers": 4},
    )
    held = fake.hold_after(CHANNELS // 3)  # the next post lands, its answer never comes back
    first = kpibot(config, "run-due", "--at", AT, env=environment(fake))
    assert held.wait(60), first.stderr.read() if first.poll() is not None else "no hold"
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)  # reaps it and closes its pipes
    fake.release()
    posted_before = sum(digests_per_channel(fake).values())
    assert 0 < posted_before < CHANNELS
    # What the operator sees: the dead process's unfinished jobs, and when they are free.
    status = finish(kpibot(config, "status", env=environment(fake)))
    unfinished = status[status.index("Unfinished jobs:") :].splitlines()[1:]
    assert unfinished and unfinished[0].startswith("  digest:s")
    assert "another process may take it over" in unfinished[1]

    time.sleep(1.2)  # the dead process's claims and outbox entries outlive their lease
    second = kpibot(config, "run-due", "--at", AT, env=environment(fake))
    out = finish(second)

    assert digests_per_channel(fake) == {f"C{i:03d}": 1 for i in range(CHANNELS)}
    assert "error" not in out
    # The restart looked up the messages the dead process may have posted before re-sending.
    assert fake.calls_to("conversations.history")
    # A third run at the same instant has nothing left to do.
    third = finish(kpibot(config, "run-due", "--at", AT, env=environment(fake)))
    assert set(line.split()[0] for line in third.splitlines()) == {"taken"}
    assert sum(digests_per_channel(fake).values()) == CHANNELS


@pytest.mark.postgres
def test_three_processes_on_one_postgres_post_each_digest_once(
    fake: FakeSlack,
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
) -> None:
    # A lease long enough that a live claimant starved of CPU on a busy machine is not taken
    # for dead (which would run its job a second time, legitimately, and fail the count below).
    config = write_config(
        tmp_path,
        subscriptions=subscriptions(CHANNELS),
        scheduling={**QUIET, "workers": 3, "claim_lease": 10},
    )
    # Faults on the way, so that the processes overlap for longer and retries are exercised.
    fake.fail("chat.postMessage", Fault.server_error(), Fault.lost_answer(), Fault.dropped())
    env = environment(fake, postgres_url)
    finish(kpibot(config, "migrate", env=env))  # the release step (test_schema_release.py)
    processes = [kpibot(config, "run-due", "--at", AT, env=env) for _ in range(3)]
    outputs = [finish(p) for p in processes]

    assert digests_per_channel(fake) == {f"C{i:03d}": 1 for i in range(CHANNELS)}
    ran = [
        line.split()[1] for out in outputs for line in out.splitlines() if line.startswith("fait")
    ]
    assert sorted(ran) == sorted(f"digest:s{i:03d}" for i in range(CHANNELS))  # each once
