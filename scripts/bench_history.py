"""Benchmark: the size of the opportunity history and the cost of keeping and reading it.

    python scripts/bench_history.py --size 20000 --days 7 --syncs-per-day 96

Writes ``--size`` open opportunities (500 reps in 50 teams) into a fresh SQLite store, then
runs ``--days`` days of ``--syncs-per-day`` syncs (every 15 minutes by default) in which
``--change-rate`` of the deals (1 % a day by default) change between them: an amount, a close
date pushed, or a deal won or lost. Each sync writes its changed rows through the one upsert
and records the history through ``bump_data_version``, at its simulated moment. Reported: the
history's rows and bytes, the time a sync spends recording history, and the latency of a
"pipeline changes since last week" waterfall (rebuilding both states from the history, then
the pure computation alone), and what the answers' reads of the past cost: a past state read
from the history the first time, then reused after further syncs (``PastStates``). A year at
1M deals is extrapolated from the per-change size.
A benchmark, not a test: numbers depend on the machine, which is printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text

from bot.store.database import bump_data_version, make_engine, migrate, session_factory, transaction
from bot.store.facts_loader import PastStates, current_owners, load_deal_states
from bot.store.models import Base, OpportunityHistory
from bot.store.upsert import ids_by_source_id, upsert
from metrics.periods import Grain, period_containing
from metrics.scopes import Scope
from metrics.waterfall import waterfall

SOURCE = "bench"
START = datetime(2026, 11, 1, tzinfo=UTC)
QUARTER = period_containing(Grain.QUARTER, date(2026, 11, 26))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"CPython {platform.python_version()}, {os.cpu_count()} cores, {cpu!r}"


def _deal(i: int, rng: np.random.Generator, reps: dict[str, int]) -> dict[str, object]:
    return {
        "source": SOURCE, "source_id": f"O{i:07d}", "name": f"Deal {i}",
        "owner_id": reps[f"R{rng.integers(500):03d}"], "stage": "Proposal",
        "is_closed": False, "is_won": False, "amount": Decimal(int(rng.integers(1, 500)) * 100),
        "currency": "EUR", "created_at": date(2026, 9, 1),
        "close_date": date(2026, 10, 1) + timedelta(days=int(rng.integers(0, 150))),
        "probability": 0.3,
    }  # fmt: skip


def seed(factory, size: int, rng: np.random.Generator) -> list[dict[str, object]]:
    tables = Base.metadata.tables
    with transaction(factory) as session:
        teams = [
            {
                "source": SOURCE,
                "source_id": f"T{t:02d}",
                "name": f"T{t:02d}",
                "region": f"G{t % 10}",
            }
            for t in range(50)
        ]
        upsert(session, tables["teams"], teams)
        team_ids = ids_by_source_id(
            session, tables["teams"], SOURCE, [t["source_id"] for t in teams]
        )
        reps = [
            {"source": SOURCE, "source_id": f"R{r:03d}", "name": f"Rep {r:04d}",
             "team_id": team_ids[f"T{r % 50:02d}"]}
            for r in range(500)
        ]  # fmt: skip
        upsert(session, tables["reps"], reps)
        rep_ids = ids_by_source_id(session, tables["reps"], SOURCE, [r["source_id"] for r in reps])
        deals = [_deal(i, rng, rep_ids) for i in range(size)]
        upsert(session, tables["opportunities"], deals)
        bump_data_version(session, START)
    return deals


def compacted_size(engine, db: Path) -> int:
    """The database file's size once the write-ahead log is folded in and free pages dropped."""
    with engine.connect() as connection:
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        connection.execute(text("VACUUM"))
    return db.stat().st_size


def change(deal: dict[str, object], rng: np.random.Generator) -> dict[str, object]:
    changed = dict(deal)
    kind = rng.integers(4)
    if kind == 0:
        changed["amount"] = Decimal(int(rng.integers(1, 500)) * 100)
    elif kind == 1:
        changed["close_date"] = deal["close_date"] + timedelta(days=int(rng.integers(7, 60)))
    else:
        changed.update(stage="Won" if kind == 2 else "Lost", is_closed=True, is_won=kind == 2)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20_000, help="number of opportunities")
    parser.add_argument("--days", type=int, default=7, help="days of syncs to simulate")
    parser.add_argument("--syncs-per-day", type=int, default=96, help="96: every 15 minutes")
    parser.add_argument("--change-rate", type=float, default=0.01, help="deals changed a day")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.db"
        engine = make_engine(f"sqlite:///{db}")
        migrate(engine)
        factory = session_factory(engine)
        deals = seed(factory, args.size, rng)
        seeded_bytes = compacted_size(engine, db)
        with engine.connect() as connection:
            seeded_rows = connection.scalar(select(func.count()).select_from(OpportunityHistory))
        per_sync = args.size * args.change_rate / args.syncs_per_day
        record_times = []
        carry = 0.0
        step = timedelta(days=1) / args.syncs_per_day
        moment = START
        for _ in range(args.days * args.syncs_per_day):
            moment += step
            carry += per_sync
            count, carry = int(carry), carry - int(carry)
            chosen = rng.choice(len(deals), size=count, replace=False) if count else []
            with transaction(factory) as session:
                rows = [change(deals[i], rng) for i in chosen]
                for i, row in zip(chosen, rows, strict=True):
                    deals[i] = row
                upsert(session, Base.metadata.tables["opportunities"], rows)
                started = time.perf_counter()
                bump_data_version(session, moment)
                record_times.append(time.perf_counter() - started)
        total_bytes = compacted_size(engine, db)
        with engine.connect() as connection:
            rows_now = connection.scalar(select(func.count()).select_from(OpportunityHistory))
        syncs = len(record_times)
        changes = rows_now - seeded_rows
        per_change = (total_bytes - seeded_bytes) / max(changes, 1)
        per_row = total_bytes / rows_now
        print(f"{args.size} deals, {syncs} syncs over {args.days} days, {changes} changes")
        print(f"history rows: {seeded_rows} at the first import, {rows_now} now")
        print(f"store: {seeded_bytes / 1e6:.1f} MB after seeding, {total_bytes / 1e6:.1f} MB now"
              f" ({per_change:.0f} bytes per change, {per_row:.0f} bytes per history row with"
              " the opportunities)")  # fmt: skip
        print(
            f"recording history per sync: median {statistics.median(record_times) * 1e3:.1f} ms,"
            f" max {max(record_times) * 1e3:.1f} ms"
        )
        year_rows = 1_000_000 + 1_000_000 * 0.01 * 365
        print(
            f"extrapolated, 1M deals, 1 %/day for a year: {year_rows / 1e6:.2f}M history rows, "
            f"~{(year_rows - 1_000_000) * per_change / 1e9:.2f} GB of history beyond the first "
            "import (changes only: an unchanged sync adds nothing)"
        )
        since = moment - timedelta(days=min(7, args.days))
        started = time.perf_counter()
        start_state = load_deal_states(engine, since, "EUR", {})
        end_state = load_deal_states(engine, moment, "EUR", {})
        loaded = time.perf_counter() - started
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            result = waterfall(start_state, end_state, QUARTER, Scope.company())
            timings.append(time.perf_counter() - started)
        print(f"waterfall since {since:%Y-%m-%d}: both states rebuilt from the history in "
              f"{loaded * 1e3:.0f} ms (once per data version), computation p50 "
              f"{statistics.median(timings) * 1e3:.1f} ms, max {max(timings) * 1e3:.1f} ms; "
              f"start {result.start / 100:.0f}, end {result.end / 100:.0f}")  # fmt: skip
        past = PastStates(engine, "EUR", {}, 0.3)
        owners = current_owners(engine)
        started = time.perf_counter()
        past.deals(since, owners)
        first_read = time.perf_counter() - started
        reuse = []
        for _ in range(20):
            started = time.perf_counter()
            past.deals(since, owners)
            reuse.append(time.perf_counter() - started)
        day_end = moment - timedelta(days=1)
        started = time.perf_counter()
        past.opportunities(day_end, owners)
        stood = time.perf_counter() - started
        print(f"past states: the waterfall's start read once in {first_read * 1e3:.0f} ms, then "
              f"{statistics.median(reuse) * 1e3:.1f} ms p50 after any sync (the kept columns); "
              f"a comparison's day as it stood read in {stood * 1e3:.0f} ms the first "
              "time")  # fmt: skip
        engine.dispose()


if __name__ == "__main__":
    main()
