"""The sync service with an in-memory connector: a record repeated with other values is
rejected with both positions, a failure in ``objects()`` is recorded against the source, and a
re-run of the same records changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bot.cli import progress_printer
from bot.sources.connector import Budget, Record, SourceError, SourceObject
from tests.bot.sources.crm_support import by_name, make_store

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


class Memory:
    """A connector over lists of records (no HTTP): what the service does with them."""

    def __init__(self, deals: list[dict[str, object]], broken: bool = False) -> None:
        self.deals = deals
        self.broken = broken
        self.calls = 0

    def objects(self) -> list[SourceObject]:
        if self.broken:
            raise SourceError("the CRM is down")
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
    assert report.error == "the CRM is down" and report.objects == []
    assert store.rows("SELECT object, last_error FROM sync_state") == [
        ("(source)", "the CRM is down")
    ]


def test_progress_is_one_line_rewritten_on_a_terminal_and_plain_lines_in_a_log(capsys):
    terminal = progress_printer(terminal=True)
    terminal("deals", 1000, False)
    terminal("deals", 1500, True)
    assert capsys.readouterr().err == "\r  deals: 1000 fetched\r  deals: 1500 fetched, done\n"
    log = progress_printer(terminal=False)
    log("deals", 1000, False)
    log("deals", 1500, True)
    assert capsys.readouterr().err == "  deals: 1000 fetched\n  deals: 1500 fetched, done\n"
