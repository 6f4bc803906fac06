"""Benchmark: the size of the opportunity history and the cost of keeping and reading it.

    python scripts/bench_history.py --size 1000000 --days 7 --syncs-per-day 4

Writes ``--size`` open opportunities (500 reps in 50 teams) into a fresh SQLite store (the seed
by plain inserts, to get to 1M quickly), then runs ``--days`` days of ``--syncs-per-day``
syncs in which ``--change-rate`` of the deals (1 % a day by default) change between them: an
amount, a close date pushed, or a deal won or lost. Each sync writes its changed rows through
the one upsert and records the history through ``bump_data_version``, at its simulated moment;
the timeline ends now. One more sync changes nothing and must add nothing.

Reported: the history's rows and bytes (the file compacted, so indexes included), bytes per
change and the stated size of a year at 1M deals (1 % a day: the size grows with changes,
not with syncs, so the year is the seed plus 365 days of changes at the measured bytes per
change); the time a sync spends recording history; and the latency of the "pipeline changes
since last week" answer through ``KpiService.changes`` (facts in hand): cold (the past moment
read from the history inside the request), after a sync with the moment prepared in the
background (as a serving process does), and warm; with what the kept past moments take.
A benchmark, not a test: numbers depend on the machine and its load, printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from sqlalchemy import func, insert, select, text

from bot.service import KpiService
from bot.settings import load_settings
from bot.store.database import bump_data_version, make_engine, migrate, session_factory, transaction
from bot.store.facts_loader import PastStates, load_deal_states
from bot.store.history import first_recorded
from bot.store.models import Base, OpportunityHistory
from bot.store.upsert import ids_by_source_id, upsert
from metrics.scopes import Scope
from metrics.waterfall import waterfall

SOURCE = "bench"
QUESTION = "pipeline changes this quarter since last week"


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
        "close_date": date.today() - timedelta(days=60 - int(rng.integers(0, 150))),
        "probability": 0.3,
    }  # fmt: skip


def seed(factory, size: int, rng: np.random.Generator, at: datetime) -> list[dict[str, object]]:
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
        for first in range(0, size, 100_000):
            session.execute(insert(tables["opportunities"]), deals[first : first + 100_000])
        bump_data_version(session, at)
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


def percentiles(seconds: list[float]) -> str:
    ms = sorted(x * 1e3 for x in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms ({len(ms)} runs)"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def service_for(folder: Path, engine) -> KpiService:
    config = Path(folder) / "kpibot.yaml"
    config.write_text("organisation:\n  name: Bench\n  currency: EUR\n  timezone: UTC\n")
    return KpiService(load_settings(config, {"DATABASE_URL": "sqlite://"}), engine)


def sync(factory, deals, rng, count: int, at: datetime) -> float:
    """Change ``count`` deals and record them at ``at``; the seconds recording took."""
    chosen = rng.choice(len(deals), size=count, replace=False) if count else []
    with transaction(factory) as session:
        rows = [change(deals[i], rng) for i in chosen]
        for i, row in zip(chosen, rows, strict=True):
            deals[i] = row
        if rows:
            upsert(session, Base.metadata.tables["opportunities"], rows)
        started = time.perf_counter()
        bump_data_version(session, at)
        return time.perf_counter() - started


def history_rows(engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(OpportunityHistory)) or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=20_000, help="number of opportunities")
    parser.add_argument("--days", type=int, default=7, help="days of syncs to simulate")
    parser.add_argument("--syncs-per-day", type=int, default=96, help="96: every 15 minutes")
    parser.add_argument("--change-rate", type=float, default=0.01, help="deals changed a day")
    parser.add_argument("--runs", type=int, default=30, help="answers timed per case")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print(f"machine: {machine()}")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    now = datetime.now(UTC).replace(microsecond=0)
    step = timedelta(days=1) / args.syncs_per_day
    syncs = args.days * args.syncs_per_day
    first = now - step * (syncs + 1)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.db"
        engine = make_engine(f"sqlite:///{db}")
        migrate(engine)
        factory = session_factory(engine)
        started = time.perf_counter()
        deals = seed(factory, args.size, rng, first)
        print(f"seeded {args.size} deals and their first history in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        seeded_bytes = compacted_size(engine, db)
        seeded_rows = history_rows(engine)
        per_sync = args.size * args.change_rate / args.syncs_per_day
        record_times = []
        carry = 0.0
        moment = first
        for _ in range(syncs):
            moment += step
            carry += per_sync
            count, carry = int(carry), carry - int(carry)
            record_times.append(sync(factory, deals, rng, count, moment))
        total_bytes = compacted_size(engine, db)
        rows_now = history_rows(engine)
        sync(factory, deals, rng, 0, moment + step / 2)  # nothing changed
        unchanged_adds = history_rows(engine) - rows_now
        changes = rows_now - seeded_rows
        per_change = (total_bytes - seeded_bytes) / max(changes, 1)
        print(f"{args.size} deals, {syncs} syncs over {args.days} days, {changes} changes; "
              f"a sync with nothing changed added {unchanged_adds} rows")  # fmt: skip
        print(f"history rows: {seeded_rows} at the first import, {rows_now} now")
        print(f"store: {seeded_bytes / 1e6:.1f} MB after seeding, {total_bytes / 1e6:.1f} MB now"
              f" ({per_change:.0f} bytes per change, indexes included)")  # fmt: skip
        print(
            f"recording history per sync: median {statistics.median(record_times) * 1e3:.1f} ms,"
            f" max {max(record_times) * 1e3:.1f} ms"
        )
        year_changes = 1_000_000 * 0.01 * 365
        seed_at_1m = seeded_bytes * 1_000_000 / args.size
        print(
            f"stated size, 1M deals, 1 %/day for a year of syncs (any cadence): "
            f"{year_changes / 1e6:.2f}M changes x {per_change:.0f} B = "
            f"{year_changes * per_change / 1e9:.2f} GB of history beyond the first import, "
            f"{(seed_at_1m + year_changes * per_change) / 1e9:.2f} GB with the store's deals "
            f"(first import scaled from {seeded_bytes / 1e6:.0f} MB at {args.size})"
        )

        service = service_for(Path(folder), engine)
        started = time.perf_counter()
        service.snapshot()
        print(f"facts loaded in {time.perf_counter() - started:.1f} s")
        service._cache.wait()  # the background preparation of the usual moments
        query = service.parse(QUESTION, now)
        cache = service._cache

        def answer() -> float:
            started = time.perf_counter()
            service.changes(query, now)
            return time.perf_counter() - started

        cold = []
        for _ in range(max(3, args.runs // 6)):
            cache.past = PastStates(engine, "EUR", {}, 0.5)  # nothing kept: read in the request
            service._moved = {}  # nor the moved deals of the question
            cold.append(answer())
        print(f"waterfall answer, cold (the past moment read in the request): {percentiles(cold)}")
        warm = [answer() for _ in range(args.runs)]
        print(f"waterfall answer, warm: {percentiles(warm)}")
        kept = cache.past.nbytes
        after_sync = []
        for i in range(3):  # each rebuilds the whole facts (refresh9's work makes it ∝ changes)
            sync(factory, deals, rng, max(1, round(per_sync)), now + step * (i + 1) / 10)
            service.snapshot()  # the new facts built, as the sync job does before answers
            cache.wait()
            service.snapshot()  # prepares the usual moments in the background
            cache.wait()
            after_sync.append(answer())
        print(f"waterfall answer after a sync, moment prepared in the background: "
              f"{percentiles(after_sync)}")  # fmt: skip
        changes_now = service.changes(query, now)
        whole = changes_now.waterfall
        moved = sum(s.amount for s in whole.steps)
        print(
            f"kept past moment: {kept / 1e6:.1f} MB for {len(cache.past.kept())} moment(s); "
            f"start {whole.start / 100:.0f} + movements {moved / 100:.0f} = end "
            f"{whole.end / 100:.0f}: {'exact' if whole.start + moved == whole.end else 'WRONG'}"
        )
        # The same waterfall from two whole states read from the history alone: the reference.
        since = datetime.combine(query.since, datetime.min.time(), tzinfo=UTC)
        with engine.connect() as connection:
            since = max(since, first_recorded(connection) or since)  # as the answer counts
        started = time.perf_counter()
        reference = waterfall(
            load_deal_states(engine, since, "EUR", {}),
            load_deal_states(engine, now + timedelta(days=1), "EUR", {}),
            query.period,
            Scope.company(),
        )
        same = [(s.movement, s.amount, s.count) for s in reference.steps] == [
            (s.movement, s.amount, s.count) for s in whole.steps
        ] and (reference.start, reference.end) == (whole.start, whole.end)
        print(f"reference (both states read whole from the history): "
              f"{time.perf_counter() - started:.1f} s; every movement equal: {same}")  # fmt: skip
        print(f"peak RSS {rss_mb():.0f} MB; load average at end: "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
        engine.dispose()


if __name__ == "__main__":
    main()
