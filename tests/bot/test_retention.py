"""Pruning after ``delivery.retention``: old sent and failed messages, alert states no longer
evaluated, their notification log entries, unreferenced alert messages and job claims go;
pending messages, alerts still evaluated and whatever is still referenced or recent stay. The
evaluation job prunes before it reads the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.cli import main
from bot.scheduling.jobs import evaluate
from bot.store.chat_models import AlertMessage, AlertStateRow, NotificationLogEntry
from bot.store.delivery_models import FAILED, PENDING, SENT, JobClaim, OutboxEntry
from bot.store.retention import Pruned, prune
from tests.bot.delivery_support import runtime_for, write_config
from tests.fakes.slack_api import FakeSlack

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=45)
RECENT = NOW - timedelta(days=2)


def _outbox(key: str, status: str, created: datetime) -> OutboxEntry:
    return OutboxEntry(
        key=key, kind="send", channel="C1", payload={"text": key}, status=status, attempts=1,
        created_at=created,
    )  # fmt: skip


def _message(key: str, sent: datetime) -> AlertMessage:
    return AlertMessage(
        idempotency_key=key, route="C1", channel="C1", ts="1.0", sent_at=sent, alerts=[]
    )


def _log(
    key: str, status: str, last: datetime, message: AlertMessage | None
) -> NotificationLogEntry:
    return NotificationLogEntry(
        alert_key=key, route="C1", status=status, first_notified_at=last - timedelta(days=1),
        last_notified_at=last, resolved_at=last if status == "resolved" else None,
        message_id=None if message is None else message.id,
    )  # fmt: skip


def _state(key: str, evaluated: datetime) -> AlertStateRow:
    return AlertStateRow(
        alert_key=key, firing="at_risk", alerting=True, streak=3,
        since=evaluated - timedelta(days=60), changes=[], evaluated_on=evaluated.date(),
    )  # fmt: skip


def _claim(job: str, fire: datetime, finished: bool) -> JobClaim:
    return JobClaim(
        job_id=job, fire_time=fire, owner="p", claimed_at=fire, heartbeat_at=fire,
        finished_at=fire + timedelta(minutes=1) if finished else None,
    )  # fmt: skip


def _fill(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.add_all(
            [
                _outbox("old-sent", SENT, OLD),
                _outbox("old-failed", FAILED, OLD),
                _outbox("old-pending", PENDING, OLD),  # the drain's, until give_up_after
                _outbox("recent-sent", SENT, RECENT),
                _claim("sync", OLD, finished=True),
                _claim("digest:s1", OLD, finished=False),  # a dead claimant's, long past grace
                _claim("sync", RECENT, finished=True),
                _state("win_rate|company||2026-Q3", OLD),  # its quarter ended long ago
                _state("nps|company||2026-Q4", RECENT),  # firing all along, still evaluated
            ]
        )
        old_unreferenced = _message("alerts:old-alone", OLD)
        old_referenced = _message("alerts:old-still-firing", OLD)
        recent = _message("alerts:recent", RECENT)
        session.add_all([old_unreferenced, old_referenced, recent])
        session.flush()
        session.add_all(
            [
                _log("revenue|team|Lyon|2026-Q3", "resolved", OLD, old_unreferenced),
                _log("win_rate|company||2026-Q3", "missed", OLD, old_unreferenced),
                # Notified long ago, repeated recently: the message may still be edited.
                _log("revenue|company||2026-Q4", "at_risk", RECENT, old_referenced),
                _log("cpa|company||2026-11", "at_risk", RECENT, recent),
                # Notified long ago and still firing: forgetting it would announce it as new.
                _log("nps|company||2026-Q4", "at_risk", OLD, None),
            ]
        )


def test_prune_deletes_what_is_older_than_the_retention_and_nothing_in_play(
    store: Engine,
) -> None:
    _fill(store)

    pruned = prune(store, NOW - timedelta(days=30))

    assert pruned == Pruned(outbox=2, alert_states=1, notifications=2, alert_messages=1, claims=2)
    with Session(store) as session:
        assert sorted(session.scalars(select(OutboxEntry.key))) == ["old-pending", "recent-sent"]
        assert sorted(session.scalars(select(NotificationLogEntry.alert_key))) == [
            "cpa|company||2026-11",
            "nps|company||2026-Q4",
            "revenue|company||2026-Q4",
        ]
        assert list(session.scalars(select(AlertStateRow.alert_key))) == ["nps|company||2026-Q4"]
        assert sorted(session.scalars(select(AlertMessage.idempotency_key))) == [
            "alerts:old-still-firing",
            "alerts:recent",
        ]
        assert session.scalar(select(JobClaim.fire_time)).replace(tzinfo=UTC) == RECENT
    assert prune(store, NOW - timedelta(days=30)).total == 0


def test_the_evaluation_job_prunes_before_it_reads_the_log(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        runtime = runtime_for(write_config(tmp_path, delivery={"retention": "30d"}), fake)
        _fill(runtime.engine)
        detail = evaluate(runtime, NOW)
    assert "8 lignes plus anciennes que delivery.retention supprimées" in detail
    with Session(runtime.engine) as session:
        assert len(session.scalars(select(OutboxEntry.key)).all()) == 2


@pytest.mark.parametrize(
    ("sections", "shorter_than"),
    [
        ({"delivery": {"retention": "12h"}}, "alerts.repeat_interval"),
        ({"delivery": {"retention": "2d", "give_up_after": "3d"}}, "delivery.give_up_after"),
        (
            {"delivery": {"retention": "3d"}, "scheduling": {"grace_time": "4d"}},
            "scheduling.grace_time",
        ),
    ],
)
def test_a_retention_shorter_than_what_it_must_remember_is_a_config_error(
    tmp_path: Path, sections: dict[str, dict[str, str]], shorter_than: str
) -> None:
    config = write_config(tmp_path, **sections)
    result = CliRunner().invoke(main, ["--config", str(config), "check-config"])
    assert result.exit_code == 2
    assert (  # the organisation of write_config is French
        f"delivery.retention: doit être au moins aussi longue que {shorter_than}, sinon des "
        "lignes encore utiles seraient supprimées"
    ) in result.output
