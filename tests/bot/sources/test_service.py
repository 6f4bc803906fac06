"""The sync service with an in-memory connector: a record repeated with other values is
rejected with both positions, a failure in ``objects()`` is recorded against the source, and a
re-run of the same records changes nothing."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bot.sources.connector import Budget, Record, SourceError, SourceObject
from bot.sources.progress import SyncProgress
from tests.bot.journal_support import journal_of, journal_while_writing
from tests.bot.sources.crm_support import by_name, make_store

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


class Memory:
    """A connector over lists of records (no HTTP): what the service does with them."""

    def __init__(self, deals: list[dict[str, object]], broken: bool = False) -> None:
        self.deals = deals
        self.broken = broken
        self.calls = 0
        self.totals = {"deals": len(deals)}

    def objects(self) -> list[SourceObject]:
        if self.broken:
            raise SourceError("source.no_answer", crm="Memory", where="memory", error="down")
        return [
            SourceObject("people", "reps", ("id", "name")),
            SourceObject("deals", "opportunities", ("id", "owner", "stage", "amount",
                                                    "close_date"), {"Won": "won"}),
        ]  # fmt: skip

    def changed(self, obj: SourceObject, since: datetime | None) -> Iterator[Record]:
        self.calls += 1
        rows = [{"id": "u1", "name": "Ann"}] if obj.table == "reps" else self.deals
        return iter([Record(row, T0) for row in rows])

    def deleted(self, obj: SourceObject, since: datetime) -> Iterator[str]:
        return iter(())

    def budget(self) -> Budget | None:
        return None

    def close(self) -> None:
        pass


def test_a_repeated_id_with_other_values_is_rejected_and_a_rerun_changes_nothing(tmp_path: Path):
    store = make_store(tmp_path)
    deals: list[dict[str, object]] = [
        {"id": "d1", "owner": "u1", "stage": "Won", "amount": 100, "close_date": "2026-11-03"},
        {"id": "d1", "owner": "u1", "stage": "Won", "amount": 100, "close_date": "2026-11-03"},
        {"id": "d1", "owner": "u1", "stage": "Won", "amount": 999, "close_date": "2026-11-03"},
    ]
    report = store.sync("mem", "memory", Memory(deals))
    deals_report = by_name(report)["deals"]
    assert (deals_report.fetched, deals_report.inserted) == (3, 1)
    assert [(r.record, r.reason) for r in deals_report.rejected] == [
        ("d1", "id 'd1' is already on record 1 with other values")
    ]
    again = store.sync("mem", "memory", Memory(deals))
    assert again.changed == 0 and again.data_version is None
    assert store.rows("SELECT amount FROM opportunities") == [(100,)]


def test_a_connector_that_fails_before_any_object_is_recorded(tmp_path: Path):
    store = make_store(tmp_path)
    report = store.sync("mem", "memory", Memory([], broken=True))
    assert str(report.error) == "Memory (memory) did not answer: down" and report.objects == []
    assert store.rows("SELECT object, last_error FROM sync_state") == [
        ("(source)", "Memory (memory) did not answer: down")
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_with_the_crm_total_on_a_terminal_and_plain_lines_in_a_log():
    terminal = Terminal()
    progress = SyncProgress(terminal)
    progress("deals", 1000, 4000, False)
    progress("deals", 4000, 4000, True)
    progress("leads", 1000, None, False)  # no total: a count rewritten in place
    progress("leads", 1500, None, True)
    shown = re.sub(r"\x1b\[\?25[lh]", "", terminal.getvalue())  # the cursor hidden, shown
    bars = [part.rstrip() for part in shown.split("\r") if "deals" in part]
    assert bars[-2:] == [
        "  deals  [#########---------------------------]  1000/4000   25%",
        "  deals  [####################################]  4000/4000  100%",
    ]
    assert shown.endswith("\r  leads: 1000 fetched\r  leads: 1500 fetched, done\n")

    log = io.StringIO()
    progress = SyncProgress(log)
    progress("deals", 1000, 4000, False)
    progress("deals", 4000, 4000, True)
    progress("leads", 1500, None, True)
    assert log.getvalue() == (
        "  deals: 1000 of 4000 fetched\n  deals: 4000 of 4000 fetched, done\n"
        "  leads: 1500 fetched, done\n"
    )


def test_a_first_sync_is_written_through_a_rollback_journal_and_a_later_one_through_wal(
    tmp_path: Path,
):
    store = make_store(tmp_path)
    modes = journal_while_writing(store.engine, "opportunities")
    deal = {"id": "d1", "owner": "u1", "stage": "Won", "amount": 100, "close_date": "2026-11-03"}
    store.sync("mem", "memory", Memory([deal]))
    assert modes == ["delete"] and journal_of(tmp_path / "kpibot.db") == "wal"
    store.sync("mem", "memory", Memory([{**deal, "amount": 200}]))
    assert modes == ["delete", "wal"] and journal_of(tmp_path / "kpibot.db") == "wal"
    assert store.rows("SELECT amount FROM opportunities") == [(200,)]
