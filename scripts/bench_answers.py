"""Benchmark: import speed, answer latency and memory at a given size.

    python scripts/bench_answers.py --size 1000000

Generates ``--size`` opportunities and twice as many leads for 500 reps in 50 teams and 10
regions as CSV files, imports them with ``kpibot import csv``'s code into a fresh SQLite store,
then, in a separate process (so its peak memory is the serving process's own), loads the facts
once and answers a mix of questions repeatedly, reporting latency percentiles. The same
"revenue by team this quarter" is also computed with a plain pandas script and, if installed,
with DuckDB on the same CSV, for comparison. A benchmark, not a test: numbers depend on the
machine, which is printed with them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

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
ZONE = ZoneInfo("Europe/Paris")

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


def run_import(folder: Path) -> tuple[int, float]:
    from bot.importers.csv_import import import_csv
    from bot.settings import load_settings
    from bot.store.database import make_engine, migrate, session_factory, transaction

    settings = load_settings(folder / "kpibot.yaml", {})
    engine = make_engine(settings.database_url)
    migrate(engine)
    source = settings.config.imports.csv["bench"]
    began = time.perf_counter()
    with transaction(session_factory(engine)) as session:
        report = import_csv(session, "bench", source, folder, "EUR")
    elapsed = time.perf_counter() - began
    assert not report.problems, report.problems[:3]
    rows = sum(table.read for table in report.tables)
    return rows, elapsed


def peak_memory_mb() -> float:
    """This process's peak resident memory. On Linux, VmHWM: ru_maxrss of a process started by
    fork and exec still carries the parent's peak from before the exec (here, the import's)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve(folder: str, repeats: int, queue: multiprocessing.Queue[dict[str, object]]) -> None:
    from bot.service import KpiService
    from bot.settings import load_settings

    settings = load_settings(Path(folder) / "kpibot.yaml", {})
    service = KpiService(settings)
    now = datetime(2026, 11, 26, 9, 0, tzinfo=ZONE)
    began = time.perf_counter()
    service.snapshot()
    load = time.perf_counter() - began
    latencies: dict[str, list[float]] = {q: [] for q in QUESTIONS}
    for _ in range(repeats):
        for question in QUESTIONS:
            t0 = time.perf_counter()
            service.ask(question, now)
            latencies[question].append((time.perf_counter() - t0) * 1000)
    every = sorted(x for xs in latencies.values() for x in xs)
    first = [xs[0] for xs in latencies.values()]
    queue.put(
        {
            "load_s": load,
            "p50": statistics.median(every),
            "p95": every[int(0.95 * (len(every) - 1))],
            "p99": every[int(0.99 * (len(every) - 1))],
            "max": every[-1],
            "first_max": max(first),
            "per_question_p95": {
                q: sorted(xs)[int(0.95 * (len(xs) - 1))] for q, xs in latencies.items()
            },
            "peak_rss_mb": peak_memory_mb(),
        }
    )


def baselines(folder: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    opps = pd.read_csv(folder / "opportunities.csv", parse_dates=["closed"])
    reps = pd.read_csv(folder / "reps.csv")
    loaded = time.perf_counter()
    merged = opps.merge(reps, left_on="owner", right_on="name")
    won = merged[
        (merged["stage"] == "Won")
        & (merged["closed"] >= "2026-10-01")
        & (merged["closed"] <= "2026-11-26")
    ]
    won.groupby("team")["amount"].sum()
    out["pandas: read CSV (s)"] = loaded - t0
    out["pandas: revenue by team (ms)"] = (time.perf_counter() - loaded) * 1000
    try:
        import duckdb
    except ImportError:
        return out
    connection = duckdb.connect()
    connection.execute(
        f"CREATE TABLE o AS SELECT * FROM read_csv_auto('{folder / 'opportunities.csv'}')"
    )
    connection.execute(f"CREATE TABLE r AS SELECT * FROM read_csv_auto('{folder / 'reps.csv'}')")
    t1 = time.perf_counter()
    connection.execute(
        "SELECT r.team, SUM(o.amount) FROM o JOIN r ON o.owner = r.name WHERE o.stage = 'Won' "
        "AND o.closed BETWEEN DATE '2026-10-01' AND DATE '2026-11-26' GROUP BY r.team"
    ).fetchall()
    out["duckdb: revenue by team (ms)"] = (time.perf_counter() - t1) * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="number of opportunities")
    parser.add_argument("--repeats", type=int, default=20, help="rounds of the question mix")
    parser.add_argument("--keep", type=Path, help="folder to keep the data in")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="kpibot-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"size: {args.size:,} opportunities, {2 * args.size:,} leads, 500 reps, 50 teams")
    t0 = time.perf_counter()
    generate(folder, args.size)
    print(f"generated CSV in {time.perf_counter() - t0:.1f} s ({folder})")
    rows, elapsed = run_import(folder)
    print(f"import: {rows:,} rows in {elapsed:.1f} s = {rows / elapsed:,.0f} rows/s")
    # A fresh process: its peak memory is the serving process's own, not the import's.
    spawn = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[dict[str, object]] = spawn.Queue()
    child = spawn.Process(target=serve, args=(str(folder), args.repeats, queue))
    child.start()
    result = queue.get()
    child.join()
    print(f"facts loaded once in {result['load_s']:.1f} s")
    print(
        "answers ({} questions × {}): p50 {:.1f} ms, p95 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms,"
        " slowest first answer {:.1f} ms".format(
            len(QUESTIONS), args.repeats, result["p50"], result["p95"], result["p99"],
            result["max"], result["first_max"],
        )
    )  # fmt: skip
    for question, p95 in result["per_question_p95"].items():  # type: ignore[attr-defined]
        print(f"  p95 {p95:7.1f} ms  {question}")
    print(f"serving process peak memory: {result['peak_rss_mb']:.0f} MB")
    for name, value in baselines(folder).items():
        print(f"{name}: {value:.2f}")


if __name__ == "__main__":
    main()
