"""`kpibot status` on a real store: next runs, outbox backlog, failed deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.delivery.errors import PermanentDeliveryError
from bot.delivery.notifier import Message
from tests.bot.delivery_support import environment, runtime_for, subscriptions, write_config
from tests.fakes.slack_api import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


def test_status_shows_next_runs_backlog_and_failed_deliveries(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path, subscriptions=subscriptions(2))
    runtime = runtime_for(config, fake)
    fake.unknown_channels.add("CGONE")
    with pytest.raises(PermanentDeliveryError):
        runtime.notifier.send(Message("CGONE", "hello", "test:gone"))
    runtime.notifier.outbox.reserve("send", Message("C1", "later", "test:pending"))

    result = CliRunner().invoke(
        main,
        ["--config", str(config), "status", "--as-of", "2026-12-01T08:00:00+01:00"],
        env=environment(fake),
    )

    assert result.exit_code == 0, result.output
    out = result.output
    assert "Last sync:         never" in out
    assert "2026-12-01 08:30 CET   digest:s000" in out
    assert "2026-12-01 09:00 CET   evaluate" in out
    assert "Outbox:            1 pending" in out and "1 failed" in out
    assert "CGONE" in out and "channel_not_found" in out and "reported to admin" in out
    assert "Active alerts:     none" in out and "Silences:          none" in out


def test_run_due_command_prints_one_line_per_job(fake: FakeSlack, tmp_path: Path) -> None:
    config = write_config(tmp_path, subscriptions=subscriptions(1))
    args = ["--config", str(config), "run-due", "--at", "2026-12-01T08:30:00+01:00"]
    first = CliRunner().invoke(main, args, env=environment(fake))
    again = CliRunner().invoke(main, args, env=environment(fake))
    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[0].startswith("ok      sync")
    assert "ok      digest:s000" in first.output
    assert {line.split()[0] for line in again.output.splitlines()} == {"taken"}
    assert len(fake.posts("C000")) == 1
