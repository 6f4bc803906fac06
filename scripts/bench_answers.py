"""Benchmark: import, time to ready, refresh after a sync, answer latency and memory at a size,
kpibot and DuckDB side by side on the same data in the same run.

    python scripts/bench_answers.py --size 1000000 [--json figures.json]

Generates ``--size`` opportunities and twice as many leads for 500 reps in 50 teams and 10
regions as CSV files. Each step runs in a process of its own, so that each peak memory
(VmHWM) is that step's:

- import: ``kpibot import csv``'s code into a fresh SQLite store, then the facts snapshot
  published (what ``kpibot import`` does after its commit), with the peak memory of the child
  process that reads the store for it (``bot.store.sqlite_columns``) beside the import's;
- serve: a new process until it can answer (it maps the snapshot and the indexes published
  with it, as ``kpibot serve`` does, and prepares the usual past moments in the background),
  then rounds of the question mix; then,
  while it keeps running, a sync changes 1,000 deals in another process and publishes its
  snapshot, which the serving process maps, indexes and swaps in in the background while it
  answers from the facts in hand. Its resident memory (VmRSS) is reported after the start,
  after the first round and after the swap, split into private memory (RssAnon: the heap,
  which no other process can share) and mapped files (RssFile: the snapshot, its indexes and
  the libraries, in the page cache once for every process of the machine); the peak of the
  private part is sampled every 10 ms. The spawned processes re-import this script:
  DuckDB and the importer are imported only in the steps that use them, so that the serving
  process holds only what a ``kpibot serve`` process would;
- with ``--deletions``, after the sync that deletes rows, the question mix in a new serving
  process again: its reads go through the indexes' dead entries (and, after ``--redated``,
  their tails);
- DuckDB (``pip install -e '.[bench]'``): the same CSV files loaded into DuckDB, and for every
  question the same figures kpibot's answer holds (the value, the previous period and the same
  period last year like for like, the five earlier periods of the trend, and the breakdown),
  as SQL over the same periods, the same number of rounds; the value of the period asked
  about is checked against kpibot's ("same figure").

A benchmark, not a test: the numbers depend on the machine and its load, both printed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, insert, select, update

from bot.service import KpiService
from bot.settings import load_settings
from bot.store.changes import pending
from bot.store.database import (
    bump_data_version,
    make_engine,
    migrate,
    session_factory,
    transaction,
)
from bot.store.models import Lead, Opportunity, Rep, Team
from bot.store.upsert import delete_sourced
from metrics.answers import TREND_PERIODS
from metrics.periods import like_for_like

QUESTIONS = (
    "revenue",
    "ca ce trimestre",
    "win rate by team",
    "revenue team T07 last quarter",
    "pipeline",
    "conversion ce mois",
    "forecast by region",
    "panier moyen",
    "cycle de vente trimestre dernier",
    "revenue rep Rep 0042 this year",
)
TODAY = date(2026, 11, 26)
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
CHANGED = 1_000  # deals a sync changes

CONFIG = """
organisation: {{name: Bench, locale: fr_FR, timezone: Europe/Paris, currency: EUR}}
database: {{url: "sqlite:///{db}"}}
targets:
  - kpi: revenue
    grain: quarter
    company: {company_target}
    teams: {{{team_targets}}}
  - kpi: win_rate
    grain: quarter
    company: 30%
import:
  csv:
    bench:
      reps: {{file: reps.csv, columns: {{name: name, team: team, region: region}}}}
      opportunities:
        file: opportunities.csv
        columns: {{id: id, owner: owner, stage: stage, amount: amount, created_at: created,
                   close_date: closed}}
        stages: {{Won: won, Lost: lost, Open: open}}
      leads:
        file: leads.csv
        columns: {{id: id, owner: owner, created_at: created, converted_at: converted}}
"""


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{python}, {os.cpu_count()} cores, {cpu}"


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def generate(folder: Path, size: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    reps = pd.DataFrame(
        {
            "name": [f"Rep {i:04d}" for i in range(500)],
            "team": [f"T{i // 10:02d}" for i in range(500)],
            "region": [f"R{i // 50:02d}" for i in range(500)],
        }
    )
    reps.to_csv(folder / "reps.csv", index=False)
    start = np.datetime64(TODAY - timedelta(days=730))
    created = start + rng.integers(0, 730, size).astype("timedelta64[D]")
    cycle = rng.integers(5, 120, size).astype("timedelta64[D]")
    closed = created + cycle
    today = np.datetime64(TODAY)
    is_open = closed > today
    stage = np.where(is_open, "Open", np.where(rng.random(size) < 0.35, "Won", "Lost"))
    opportunities = pd.DataFrame(
        {
            "id": np.char.add("O", np.arange(size).astype(str)),
            "owner": reps["name"].to_numpy()[rng.integers(0, 500, size)],
            "stage": stage,
            "amount": rng.integers(1_000, 200_000, size),
            "created": created.astype(str),
            "closed": closed.astype(str),
        }
    )
    opportunities.to_csv(folder / "opportunities.csv", index=False)
    leads_n = 2 * size
    lead_created = start + rng.integers(0, 730, leads_n).astype("timedelta64[D]")
    converted = lead_created + rng.integers(1, 30, leads_n).astype("timedelta64[D]")
    converted_text = np.where(
        (rng.random(leads_n) < 0.25) & (converted <= today), converted.astype(str), ""
    )
    leads = pd.DataFrame(
        {
            "id": np.char.add("L", np.arange(leads_n).astype(str)),
            "owner": reps["name"].to_numpy()[rng.integers(0, 500, leads_n)],
            "created": lead_created.astype(str),
            "converted": converted_text,
        }
    )
    leads.to_csv(folder / "leads.csv", index=False)
    per_team = size * 100_000 * 0.35 / 8 / 50  # roughly a quarter's won amount per team
    teams = ", ".join(f"T{t:02d}: {int(per_team * (0.8 + 0.01 * t))}" for t in range(50))
    (folder / "kpibot.yaml").write_text(
        CONFIG.format(
            db=folder / "bench.db", company_target=int(per_team * 50), team_targets=teams
        ),
        encoding="utf-8",
    )


def peak_memory_mb() -> float:
    """This process's peak resident memory. On Linux, VmHWM: ru_maxrss of a process started by
    fork and exec still carries the parent's peak from before the exec."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_mb() -> dict[str, float]:
    """This process's resident memory now: all of it (VmRSS), its private heap (RssAnon) and
    its mapped files (RssFile); empty where /proc is not there."""
    status = Path("/proc/self/status")
    if not status.exists():
        return {}
    fields = {"VmRSS:": "rss", "RssAnon:": "private", "RssFile:": "mapped_files"}
    return {
        fields[line.split()[0]]: int(line.split()[1]) / 1024
        for line in status.read_text().splitlines()
        if line.split() and line.split()[0] in fields
    }


class Peak:
    """The highest value of ``reading`` seen, sampled every 10 ms in a thread."""

    def __init__(self, reading: Callable[[], float]) -> None:
        self.peak = 0.0
        self._reading = reading
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._reading())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def private_mb() -> float:
    """This process's private memory (RssAnon)."""
    return memory_mb().get("private", 0.0)


def children_peak_mb() -> float:
    """The highest peak resident memory (VmHWM) among this process's running children (the
    facts' reader, ``bot.store.sqlite_columns``); 0 without /proc. ``RUSAGE_CHILDREN`` would
    report this process's own peak, which a child started by fork and exec carries; so would a
    child read between its fork and its exec, which is skipped (it still runs this program)."""
    peak = 0.0
    try:
        tasks = list(Path(f"/proc/{os.getpid()}/task").iterdir())
        ours = Path(f"/proc/{os.getpid()}/cmdline").read_bytes()
    except OSError:
        return peak
    for task in tasks:
        with contextlib.suppress(OSError):  # a thread or a child may have ended since
            for child in (task / "children").read_text().split():
                if Path(f"/proc/{child}/cmdline").read_bytes() == ours:
                    continue  # forked, not yet the reader: its peak is still this process's
                for line in Path(f"/proc/{child}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]


# ---------------------------------------------------------------------------------------------
# kpibot


def closed(engine: Engine) -> None:
    """Close the step's connections, as a ``kpibot`` command's exit does. The steps run in a
    pool's worker, which is terminated, not exited: its connections were never closed, so
    SQLite's write-ahead log stayed behind (as large as the import's whole transaction), and
    the serving process started next paid for reading all of it back (WAL recovery) in its
    first connection, which the benchmark counted as its schema check. A ``kpibot import`` or
    ``kpibot sync`` that exits checkpoints and removes it itself."""
    engine.dispose()


def import_step(folder: str) -> dict[str, Any]:
    from bot.importers.csv_import import import_csv  # not in the serving process

    settings = load_settings(Path(folder) / "kpibot.yaml", {})
    engine = make_engine(settings.database_url)
    migrate(engine)
    source = settings.config.imports.csv["bench"]
    began = time.perf_counter()
    with transaction(session_factory(engine)) as session:
        report = import_csv(session, "bench", source, Path(folder), "EUR")
    imported = time.perf_counter() - began
    assert not report.problems, report.problems[:3]
    began = time.perf_counter()
    children = Peak(children_peak_mb)
    KpiService(settings, engine).publish_facts()  # as `kpibot import` does
    published = time.perf_counter() - began
    closed(engine)
    return {
        "rows": sum(table.read for table in report.tables),
        "import_s": imported,
        "publish_s": published,
        "peak_rss_mb": peak_memory_mb(),
        "child_peak_rss_mb": children.stop(),
    }


def sync_step(
    folder: str, changed: int, reps: str | None = None, deleted: int = 0, redated: int = 0
) -> dict[str, Any]:
    """What a sync that changes ``changed`` deals does: write them (every amount, and the open
    ones won or pushed), bump the data version (the history recorded), publish the facts
    snapshot. ``reps``: "hired", a new rep joins the first
    team as well; "moved", the first rep of the first team moves to the second. ``deleted``:
    as many deals and leads, chosen at random, are gone from the CRM as well. ``redated``: as
    many of the deals closed first have their close date corrected to today (each moves
    across the whole close order)."""
    settings = load_settings(Path(folder) / "kpibot.yaml", {})
    engine = make_engine(settings.database_url)
    ids = [f"O{i}" for i in range(0, changed * 7, 7)]
    gone: dict[Any, list[str]] = {}  # by table (an ORM model's __table__ is typed FromClause)
    with engine.connect() as connection:
        for model in (Opportunity, Lead) if deleted else ():
            held = select(model.source_id).order_by(func.random()).limit(deleted)
            if model is Opportunity:  # neither gone already nor among the changed ones
                held = held.where(
                    Opportunity.deleted_at.is_(None), Opportunity.source_id.not_in(ids)
                )
            gone[model.__table__] = list(connection.scalars(held))
        first_closed = (
            select(Opportunity.source_id)
            .where(Opportunity.is_closed.is_(True), Opportunity.close_date < TODAY)
            .order_by(Opportunity.close_date)
            .limit(redated)
        )
        corrected = list(connection.scalars(first_closed)) if redated else []
    service = KpiService(settings, engine)  # the schema check, before the clock starts
    began = time.perf_counter()
    with transaction(session_factory(engine)) as session:
        removed = sum(delete_sourced(session, table, "bench", keys) for table, keys in gone.items())
        ours = (Opportunity.source == "bench", Opportunity.source_id.in_(ids))
        session.execute(
            update(Opportunity)
            .where(*ours)
            .values(amount=Opportunity.amount + 1, **pending(Opportunity.__table__))
        )
        if corrected:
            session.execute(
                update(Opportunity)
                .where(Opportunity.source_id.in_(corrected))
                .values(close_date=TODAY, **pending(Opportunity.__table__))
            )
        # As a CRM's day moves them: of the open deals among them, one in four won today and
        # the others' close dates pushed a month (a slip). Their places in the date orders
        # move, as the indexes' patch must follow (amounts alone would move none).
        still_open = Opportunity.is_closed.is_(False)
        session.execute(
            update(Opportunity)
            .where(*ours, still_open, Opportunity.source_id.in_(ids[::4]))
            .values(stage="Won", is_closed=True, is_won=True, close_date=TODAY)
        )
        session.execute(
            update(Opportunity)
            .where(*ours, still_open)
            .values(close_date=func.date(Opportunity.close_date, "+30 day"))
        )
        if reps is not None:
            first, second = session.scalars(select(Team.id).order_by(Team.id).limit(2)).all()
        if reps == "hired":
            hired = time.time_ns()
            session.execute(
                insert(Rep).values(source="bench", source_id=f"hired-{hired}",
                                   name=f"Rep hired {hired}", team_id=first)
            )  # fmt: skip
        elif reps == "moved":
            rep = select(Rep.id).where(Rep.team_id == first).order_by(Rep.id).limit(1)
            session.execute(
                update(Rep).where(Rep.id == rep.scalar_subquery()).values(team_id=second)
            )
        bumped = time.perf_counter()
        bump_data_version(session)  # the history recorded, the changed rows stamped
        history = time.perf_counter() - bumped
    written = time.perf_counter() - began
    # A new process, as `kpibot sync` is: it refreshes the newest snapshot by the changed rows.
    began = time.perf_counter()
    service.publish_facts()
    published = time.perf_counter() - began
    closed(engine)
    return {
        "write_s": written,
        "history_s": history,
        "publish_s": published,
        "deleted": removed,
        "peak_rss_mb": peak_memory_mb(),
    }


def cli_start() -> dict[str, float]:
    """What a ``kpibot serve`` process costs before its own work: the interpreter alone, and
    with the imports of ``kpibot``'s command line as its entry point makes them (``kpibot
    --help``, through ``bot.launch``; the serving process above imports this script's modules
    instead, DuckDB's among them)."""
    figures = {}
    runs = (
        ("interpreter_s", ["pass"]),
        ("interpreter_and_cli_imports_s", ["from bot.launch import main; main()", "--help"]),
    )
    for name, code in runs:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", *code], check=True, stdout=subprocess.DEVNULL)
        figures[name] = time.perf_counter() - began
    return figures


def answer_round(service: KpiService, latencies: dict[str, list[float]]) -> None:
    """Ask every question of the mix once, adding each answer's time (ms) to ``latencies``."""
    for question in QUESTIONS:
        t0 = time.perf_counter()
        service.ask(question, NOW)
        latencies[question].append((time.perf_counter() - t0) * 1000)


def serve_step(
    folder: str,
    started: float,
    repeats: int,
    results: multiprocessing.Queue[dict[str, Any]],
    synced: multiprocessing.Queue[bool],
) -> None:
    # From the parent's start() on: the interpreter and the imports (before this function
    # runs), then settings and the schema check, then the facts.
    modules = time.time() - started
    private = Peak(private_mb)
    settings = load_settings(Path(folder) / "kpibot.yaml", {})
    service = KpiService(settings)
    constructed = time.time() - started
    service.warm_facts()  # what `kpibot serve` does at its start
    facts = service.snapshot().facts
    # Only what is needed of them: holding the facts would keep them (and their mapped files)
    # alive through the swap, which a serving process does not.
    version, indexes_mapped = facts.version, bool(facts._ordered)
    del facts
    ready = time.time() - started
    service.wait_for_facts()  # the usual past moments, prepared in the background
    prepared = time.time() - started
    memory_start = memory_mb()
    latencies: dict[str, list[float]] = {q: [] for q in QUESTIONS}
    memory_first_round: dict[str, float] = {}
    for _ in range(repeats):
        answer_round(service, latencies)
        memory_first_round = memory_first_round or memory_mb()
    queries = {}
    for question in QUESTIONS:
        query = service.parse(question, NOW)
        value = service.answer(query, NOW).value.value
        period = query.period
        earlier = [like_for_like(period, TODAY, period.shift(-n)) for n in range(1, TREND_PERIODS)]
        if period.grain.value != "year":
            earlier.append(like_for_like(period, TODAY, period.same_period_last_year()))
        queries[question] = {
            "kpi": query.kpi,
            "scope": (query.scope.level.value, query.scope.name),
            "breakdown": None if query.breakdown is None else query.breakdown.value,
            "periods": [(p.start.isoformat(), p.end.isoformat()) for p in [period, *earlier]],
            "value": None if value is None else float(value),
        }
    results.put(
        {
            "ready_s": ready,
            "ready_parts_s": {
                "interpreter_and_imports": modules,
                "settings_and_schema_check": constructed - modules,
                "facts_mapped": ready - constructed,
            },
            "indexes_mapped": indexes_mapped,
            "past_prepared_s": prepared,
            "version": version,
            "latencies": latencies,
            "first_answer_ms": latencies[QUESTIONS[0]][0],
            "queries": queries,
            "memory_mb_after_start": memory_start,
            "memory_mb_after_first_round": memory_first_round,
            "peak_rss_mb": peak_memory_mb(),
            "peak_private_mb": private.peak,
        }
    )
    # A sync in another process publishes new facts: the next answer comes from the facts in
    # hand and starts their swap in the background; the answers after it read the new ones.
    synced.get()
    t0 = time.perf_counter()
    service.ask(QUESTIONS[0], NOW)
    during = time.perf_counter() - t0
    service.wait_for_facts()
    swap = time.perf_counter() - t0
    t0 = time.perf_counter()
    service.ask(QUESTIONS[0], NOW)
    first_after = time.perf_counter() - t0
    results.put(
        {
            "answer_during_swap_ms": during * 1000,
            "swap_ms": swap * 1000,
            "first_answer_after_ms": first_after * 1000,
            "new_version": service.snapshot().facts.version,
            "memory_mb_after_swap": memory_mb(),
            "peak_rss_mb_after_swap": peak_memory_mb(),
            "peak_private_mb_after_swap": private.stop(),
        }
    )


def answers_step(folder: str, repeats: int) -> dict[str, Any]:
    """Rounds of the question mix in a new serving process, on the facts published last: after
    the deletion sync, read through the indexes' dead entries (``metrics.index``)."""
    service = KpiService(load_settings(Path(folder) / "kpibot.yaml", {}))
    service.warm_facts()
    service.wait_for_facts()
    indexes = [service.snapshot().facts.adopted(table) for table in ("opportunities", "leads")]
    orders = [order for each in indexes if each for order in each.orders.values()]
    latencies: dict[str, list[float]] = {q: [] for q in QUESTIONS}
    for _ in range(repeats):
        answer_round(service, latencies)
    every = [x for xs in latencies.values() for x in xs]
    return {
        "dead_entries": sum(len(order.dead) for order in orders),
        "tail_entries": sum(order.tail for order in orders),
        "p95_ms": p95(every),
        "per_question_p95_ms": {q: p95(xs) for q, xs in latencies.items()},
    }


# ---------------------------------------------------------------------------------------------
# DuckDB: the same figures as SQL


def _kpi_sql(kpi: str, start: str, end: str) -> str:
    won = f"stage = 'Won' AND closed BETWEEN DATE '{start}' AND DATE '{end}'"
    closed = f"stage IN ('Won', 'Lost') AND closed BETWEEN DATE '{start}' AND DATE '{end}'"
    open_in = f"stage = 'Open' AND closed BETWEEN DATE '{start}' AND DATE '{end}'"
    rest = f"stage = 'Open' AND closed > DATE '{TODAY}' AND closed <= DATE '{end}'"
    judged = f"created BETWEEN DATE '{start}' AND LEAST(DATE '{end}', DATE '{TODAY}' - 30)"
    return {
        "revenue": f"SUM(amount) FILTER (WHERE {won})",
        "win_rate": f"COUNT(*) FILTER (WHERE {won}) / NULLIF(COUNT(*) FILTER (WHERE {closed}), 0)",
        "pipeline": f"SUM(amount) FILTER (WHERE {open_in})",
        "forecast": f"COALESCE(SUM(amount) FILTER (WHERE {won}), 0) "
        f"+ 0.5 * COALESCE(SUM(amount) FILTER (WHERE {rest}), 0)",
        "avg_deal": f"AVG(amount) FILTER (WHERE {won})",
        "sales_cycle": f"AVG(closed - created) FILTER (WHERE {won})",
        "conversion": f"COUNT(*) FILTER (WHERE {judged} AND converted <= DATE '{TODAY}') "
        f"/ NULLIF(COUNT(*) FILTER (WHERE {judged}), 0)",
    }[kpi]


def duckdb_sql(query: dict[str, Any]) -> list[str]:
    """The value over each period, and the breakdown over the current one."""
    table = "l" if query["kpi"] == "conversion" else "o"
    level, name = query["scope"]
    column = {"team": "team", "region": "region", "rep": "owner"}
    where = "TRUE" if level == "company" else f"{column[level]} = '{name}'"
    values = ", ".join(_kpi_sql(query["kpi"], s, e) for s, e in query["periods"])
    statements = [f"SELECT {values} FROM {table} WHERE {where}"]
    if query["breakdown"] is not None:
        by = column[query["breakdown"]]
        start, end = query["periods"][0]
        statements.append(
            f"SELECT {by}, {_kpi_sql(query['kpi'], start, end)} FROM {table} WHERE {where} "
            f"GROUP BY {by}"
        )
    return statements


def duckdb_step(
    folder: str, repeats: int, queries: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    try:
        import duckdb  # here only: not in the serving process
    except ImportError:  # the bench extra is not installed: kpibot's figures alone
        return None
    connection = duckdb.connect()
    path = Path(folder)
    began = time.perf_counter()
    connection.execute(
        f"CREATE TABLE r AS SELECT * FROM read_csv('{path / 'reps.csv'}');"
        f"CREATE TABLE o AS SELECT o.*, r.team, r.region "
        f"FROM read_csv('{path / 'opportunities.csv'}') o JOIN r ON o.owner = r.name;"
        f"CREATE TABLE l AS SELECT l.*, r.team, r.region "
        f"FROM read_csv('{path / 'leads.csv'}') l JOIN r ON l.owner = r.name;"
    )
    loaded = time.perf_counter() - began

    def scalar(sql: str) -> Any:
        row = connection.execute(sql).fetchone()
        assert row is not None, sql
        return row[0]

    rows = sum(scalar(f"SELECT COUNT(*) FROM {t}") for t in "rol")
    # The figure of the period asked about, to check that both computed the same thing.
    values = {q: scalar(duckdb_sql(query)[0]) for q, query in queries.items()}
    latencies: dict[str, list[float]] = {q: [] for q in queries}
    for _ in range(repeats):
        for question, query in queries.items():
            t0 = time.perf_counter()
            for statement in duckdb_sql(query):
                connection.execute(statement).fetchall()
            latencies[question].append((time.perf_counter() - t0) * 1000)
    return {
        "load_s": loaded,
        "rows": rows,
        "latencies": latencies,
        "values": {q: None if v is None else float(v) for q, v in values.items()},
        "peak_rss_mb": peak_memory_mb(),
    }


def same_figure(ours: float | None, theirs: float | None) -> bool:
    """kpibot's value against DuckDB's: money rounded to the cent, ratios in percent."""
    if ours is None or theirs is None:
        return ours is theirs
    # A rate may be a fraction on one side and a percentage on the other.
    return any(math.isclose(ours, theirs * scale, rel_tol=1e-6, abs_tol=0.01) for scale in (1, 100))


# ---------------------------------------------------------------------------------------------


def in_process(target: Callable[..., Any], *args: Any) -> Any:
    """Run ``target`` in a fresh process (spawned: its peak memory is its own), its imports
    frozen as ``kpibot``'s are (``as_command``)."""
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(1) as pool:
        return pool.apply(as_command, (target, *args))


def as_command(target: Callable[..., Any], *args: Any) -> Any:
    """``target`` run as the ``kpibot`` command runs its work: with the objects the imports
    made frozen (``bot.launch``), left out of the collector's passes. Without it, each full
    collection in a step walks the 120,000 objects of the imports: 50 ms in a sync's publish
    that ``kpibot sync`` does not spend."""
    gc.freeze()
    return target(*args)


def positive(text: str) -> int:
    """``--size`` and ``--repeats``: a whole number above zero."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number above zero, e.g. 100000")
    return number


def deal_counts(text: str) -> list[int]:
    """``--sync-sizes``: numbers of deals separated by commas."""
    try:
        counts = [int(k) for k in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give positive numbers of deals separated by commas, e.g. 100,1000,10000"
        )
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=positive, default=100_000, help="number of opportunities")
    parser.add_argument("--repeats", type=positive, default=20, help="rounds of the question mix")
    parser.add_argument("--keep", type=Path, help="folder to keep the data in")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--sync-sizes",
        type=deal_counts,
        default=[],
        help="after the run, syncs of these numbers of changed deals (e.g. 100,10000,100000),"
        " each in a new process as `kpibot sync`, to show how a sync's publish grows with them",
    )
    parser.add_argument(
        "--deletions",
        action="store_true",
        help="after the run, a sync of 100 changed deals with 100 deals and 100 leads gone from"
        " the CRM, in a new process as `kpibot sync`, its publish timed",
    )
    parser.add_argument(
        "--redated",
        action="store_true",
        help="after the run, syncs of 10 then 100 of the deals closed first with their close"
        " dates corrected to today (each moves across the close order), each in a new process"
        " as `kpibot sync`, each publish timed",
    )
    parser.add_argument(
        "--rep-changes",
        action="store_true",
        help="after the run, a sync of 100 deals with a rep hired, then one moving a rep to"
        " another team, each in a new process as `kpibot sync`, each publish timed",
    )
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args, args.keep)
        return
    # The data of a run at 1M (1.4 GB: the CSV files, the store, its snapshots) goes with it.
    folder = Path(tempfile.mkdtemp(prefix="kpibot-bench-"))
    try:
        run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, folder: Path) -> None:
    """The benchmark, its data in ``folder``."""
    figures: dict[str, Any] = {
        "machine": machine(),
        "load_average_start": load_average(),
        "size": args.size,
        "repeats": args.repeats,
    }
    print(f"machine: {figures['machine']}; load average {figures['load_average_start']}")
    print(f"size: {args.size:,} opportunities, {2 * args.size:,} leads, 500 reps, 50 teams")
    t0 = time.perf_counter()
    generate(folder, args.size)
    print(f"generated CSV in {time.perf_counter() - t0:.1f} s ({folder})")

    imported = in_process(import_step, str(folder))
    rate = imported["rows"] / imported["import_s"]
    # What `kpibot import` takes before it returns: the import, then the snapshot published.
    whole = imported["rows"] / (imported["import_s"] + imported["publish_s"])
    figures["import"] = {**imported, "rows_per_s": rate, "with_publish_rows_per_s": whole}
    print(
        f"import: {imported['rows']:,} rows in {imported['import_s']:.1f} s = {rate:,.0f} rows/s;"
        f" snapshot published in {imported['publish_s']:.1f} s ({whole:,.0f} rows/s for both);"
        f" peak memory {imported['peak_rss_mb']:.0f} MB, and"
        f" {imported['child_peak_rss_mb']:.0f} MB in the child process reading the facts"
    )

    spawn = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[dict[str, Any]] = spawn.Queue()
    synced: multiprocessing.Queue[bool] = spawn.Queue()
    server = spawn.Process(
        target=as_command,
        args=(serve_step, str(folder), time.time(), args.repeats, results, synced),
    )
    server.start()
    served = results.get()
    sync = in_process(sync_step, str(folder), CHANGED)
    synced.put(True)
    swapped = results.get()
    server.join()
    figures["serve"] = {k: v for k, v in served.items() if k not in ("latencies", "queries")}
    figures["sync"] = {**sync, **swapped, "changed": CHANGED}
    parts = served["ready_parts_s"]
    print(
        f"serving process ready in {served['ready_s']:.2f} s: interpreter and imports"
        f" {parts['interpreter_and_imports']:.2f} s, settings and schema check"
        f" {parts['settings_and_schema_check']:.2f} s, facts mapped"
        f" {parts['facts_mapped']:.2f} s"
        + (" with their indexes" if served["indexes_mapped"] else " (no indexes published)")
        + f"; usual past moments prepared in the background by {served['past_prepared_s']:.2f}"
        f" s; first answer {served['first_answer_ms']:.0f} ms"
    )
    start = cli_start()
    figures["serve"]["cli_start_s"] = start
    print(
        f"a kpibot serve process: interpreter {start['interpreter_s']:.2f} s, with kpibot's CLI"
        f" imports {start['interpreter_and_cli_imports_s']:.2f} s (then settings, schema check"
        " and facts mapped as above)"
    )
    print(
        f"sync of {CHANGED:,} changed deals: store written in {sync['write_s']:.2f} s (history"
        f" recorded and rows stamped in {sync['history_s'] * 1000:.0f} ms), facts refreshed by"
        f" the changed rows and published in {sync['publish_s']:.2f} s (in the sync's process,"
        f" peak RSS {sync['peak_rss_mb']:.0f} MB); the"
        f" serving process answered from the facts in hand in"
        f" {swapped['answer_during_swap_ms']:.0f} ms while it mapped and swapped in the"
        f" new ones within {swapped['swap_ms']:.0f} ms; first answer after the swap"
        f" {swapped['first_answer_after_ms']:.0f} ms"
    )

    duck = in_process(duckdb_step, str(folder), args.repeats, served["queries"])
    if duck is not None:
        print(f"DuckDB: CSV loaded in {duck['load_s']:.2f} s ({duck['rows']:,} rows)")
    print(f"\n{'question':<36} {'kpibot p95':>11} {'DuckDB p95':>11} {'ratio':>6}  same figure")
    table = {}
    for question in QUESTIONS:
        ours = p95(served["latencies"][question])
        theirs = p95(duck["latencies"][question]) if duck else None
        ratio = ours / theirs if theirs else None
        value = served["queries"][question]["value"]
        agreed = same_figure(value, duck["values"][question]) if duck else None
        table[question] = {
            "kpibot_p95_ms": ours, "duckdb_p95_ms": theirs, "ratio": ratio,
            "kpibot_value": value, "duckdb_value": duck["values"][question] if duck else None,
            "same_figure": agreed,
        }  # fmt: skip
        print(
            f"{question:<36} {ours:>8.1f} ms"
            + (f" {theirs:>8.1f} ms {ratio:>6.2f}  {'yes' if agreed else 'NO'}" if duck else "")
        )
    every = [x for xs in served["latencies"].values() for x in xs]
    figures["answers"] = {
        "per_question": table,
        "p50_ms": statistics.median(every),
        "p95_ms": p95(every),
        "max_ms": max(every),
    }
    print(
        f"all answers: p50 {statistics.median(every):.1f} ms, p95 {p95(every):.1f} ms,"
        f" max {max(every):.1f} ms"
    )
    moments = (
        ("after the start", served["memory_mb_after_start"]),
        ("after the first round", served["memory_mb_after_first_round"]),
        ("after the swap", swapped["memory_mb_after_swap"]),
    )
    for moment, memory in moments:
        if memory:
            print(
                f"serving process {moment}: resident {memory['rss']:.0f} MB = private"
                f" {memory['private']:.0f} MB + mapped files {memory['mapped_files']:.0f} MB"
            )
    print(
        f"peak memory: serving {served['peak_rss_mb']:.0f} MB resident, private"
        f" {served['peak_private_mb']:.0f} MB ({swapped['peak_rss_mb_after_swap']:.0f} MB and"
        f" {swapped['peak_private_mb_after_swap']:.0f} MB through the swap),"
        f" import {imported['peak_rss_mb']:.0f} MB"
        + (f", DuckDB {duck['peak_rss_mb']:.0f} MB" if duck else "")
    )
    if args.sync_sizes:
        figures["syncs"] = []
        for changed in args.sync_sizes:
            step = in_process(sync_step, str(folder), changed)
            figures["syncs"].append({**step, "changed": changed})
            print(
                f"sync of {changed:,} changed deals: store written in {step['write_s']:.2f} s,"
                f" published in {step['publish_s']:.2f} s (peak RSS {step['peak_rss_mb']:.0f} MB)"
            )
    if args.redated:
        figures["redated"] = []
        for count in (10, 100):
            step = in_process(sync_step, str(folder), 0, None, 0, count)
            figures["redated"].append({**step, "redated": count})
            print(
                f"sync of {count} deals closed first, re-dated to today: store written in"
                f" {step['write_s']:.2f} s, published in {step['publish_s']:.2f} s (peak RSS"
                f" {step['peak_rss_mb']:.0f} MB)"
            )
    if args.rep_changes:
        figures["rep_changes"] = {}
        for reps, changed, what in (("hired", 100, "100 changed deals and a rep hired"),
                                    ("moved", 0, "a rep moving to another team")):  # fmt: skip
            step = in_process(sync_step, str(folder), changed, reps)
            figures["rep_changes"][reps] = step
            print(
                f"sync of {what}: store written in {step['write_s']:.2f} s, published in"
                f" {step['publish_s']:.2f} s (peak RSS {step['peak_rss_mb']:.0f} MB)"
            )
    if args.deletions:
        step = in_process(sync_step, str(folder), 100, None, 100)
        figures["deletions"] = step
        print(
            f"sync of 100 changed deals, 100 deals and 100 leads gone ({step['deleted']} rows"
            f" deleted): store written in {step['write_s']:.2f} s, published in"
            f" {step['publish_s']:.2f} s (peak RSS {step['peak_rss_mb']:.0f} MB)"
        )
        after = in_process(answers_step, str(folder), args.repeats)
        figures["deletions"]["answers"] = after
        slowest = max(after["per_question_p95_ms"].items(), key=lambda item: item[1])
        print(
            f"answers after it, in a new serving process ({after['dead_entries']} dead entries"
            f" and {after['tail_entries']} in tails in the date orders): p95"
            f" {after['p95_ms']:.1f} ms (before the syncs: {p95(every):.1f} ms); slowest"
            f" {slowest[0]!r}, p95 {slowest[1]:.1f} ms"
        )
    if duck is not None:
        figures["duckdb"] = {k: v for k, v in duck.items() if k != "latencies"}
    figures["load_average_end"] = load_average()
    print(f"load average at the end: {figures['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
