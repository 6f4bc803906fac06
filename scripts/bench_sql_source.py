"""Benchmark: a full sync of the SQL source from PostgreSQL at a size, read as Arrow columns
(the default for a full read) and row by row (the DB-API path), into fresh SQLite stores.

    python scripts/bench_sql_source.py --size 1000000 --url postgresql://postgres@127.0.0.1/test

Generates ``--size`` opportunities and twice as many leads (``bench_answers.generate``), loads
them into tables of a new schema of that PostgreSQL database with ``COPY``, then runs
``kpibot sync`` on a SQL source reading them, once each way, each in a process of its own
whose peak memory (VmHWM) is sampled: its whole run, the snapshot published after it
included, as an operator sees it; the publish is also timed apart, so that the sync itself
(process start to commit) can be told, and within it the sync in process (from the source's
sync being called to its commit), which is what ``bench_answers.py``'s CSV import step times.
The two stores are then compared row for row. The schema is dropped at the end.

A benchmark, not a test: the numbers depend on the machine and its load, both printed.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from bench_answers import Peak, children_peak_mb, generate, load_average, machine

CONFIG = """
organisation: {{name: Bench, locale: fr_FR, timezone: Europe/Paris, currency: EUR}}
database: {{url: "sqlite:///{store}"}}
sources:
  warehouse:
    kind: sql
    env_prefix: WAREHOUSE
    reps:
      query: "SELECT * FROM {schema}.reps"
      columns: {{name: name, team: team, region: region}}
    opportunities:
      query: "SELECT * FROM {schema}.deals"
      columns: {{id: id, owner: owner, stage: stage, amount: amount, created_at: created,
                close_date: closed}}
      stages: {{Won: won, Lost: lost, Open: open}}
    leads:
      query: "SELECT * FROM {schema}.leads"
      columns: {{id: id, owner: owner, created_at: created, converted_at: converted}}
scheduling: {{sync_source: warehouse}}
"""

TABLES = {
    "reps": ("reps.csv", "name text, team text, region text"),
    "deals": (
        "opportunities.csv",
        "id text, owner text, stage text, amount numeric, created date, closed date",
    ),
    "leads": ("leads.csv", "id text, owner text, created date, converted date"),
}

# The publish after the sync, timed apart (on standard error), and the moment the source's
# sync begins (once Python has started and kpibot is imported and configured), so that the
# sync itself (read, checked, written, committed) is told both from the process's start and
# as bench_answers.py's CSV import step times it (in process, from the import's call).
TIMED = """
import sys, time
import bot.sources.registry
from bot.service import KpiService
_publish = KpiService.publish_facts
def publish_facts(self):
    began = time.perf_counter()
    print(f"kpibot-bench publishing {began:.3f}", file=sys.stderr)
    _publish(self)
    print(f"kpibot-bench published {time.perf_counter() - began:.3f}", file=sys.stderr)
KpiService.publish_facts = publish_facts
_sync_source = bot.sources.registry.sync_source
def sync_source(*args, **kwargs):
    print(f"kpibot-bench syncing {time.perf_counter():.3f}", file=sys.stderr)
    return _sync_source(*args, **kwargs)
bot.sources.registry.sync_source = sync_source
"""
# The row-by-row read, forced: what every full read was before the columnar one.
ROW_BY_ROW = (
    TIMED
    + """
from unittest import mock
from bot.cli import main
from bot.sources.sql import SqlConnector
with mock.patch.object(SqlConnector, "cell_batches", return_value=None):
    main(sys.argv[1:])
"""
)
AS_ARROW = TIMED + "from bot.cli import main\nmain(sys.argv[1:])\n"


def load(url: str, schema: str, folder: Path) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        for table, (file, columns) in TABLES.items():
            connection.execute(f"CREATE TABLE {schema}.{table} ({columns})")
            with (
                connection.cursor().copy(
                    f"COPY {schema}.{table} FROM STDIN (FORMAT csv, HEADER)"
                ) as copy,
                (folder / file).open("rb") as source,
            ):
                while block := source.read(1 << 20):
                    copy.write(block)


def sync(folder: Path, schema: str, url: str, way: str, code: str) -> dict[str, float]:
    store = folder / f"{way}.db"
    config = folder / f"{way}.yaml"
    config.write_text(CONFIG.format(store=store, schema=schema), encoding="utf-8")
    environment = {"WAREHOUSE_URL": url, "PATH": ""}
    cli = [sys.executable, "-c", AS_ARROW, "--config", str(config)]
    subprocess.run([*cli, "migrate"], check=True, env=environment, stdout=subprocess.DEVNULL)
    peak = Peak(children_peak_mb)
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, "--config", str(config), "sync"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,  # its progress, and a failure's message
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"kpibot sync ({way}) failed:\n{done.stderr}")
    seconds = time.perf_counter() - began
    marks = {
        line.split()[1]: float(line.split()[-1])
        for line in done.stderr.splitlines()
        if line.startswith("kpibot-bench ")
    }
    published = marks.get("published", 0.0)  # nothing changed, none published
    in_process = marks["publishing"] - marks["syncing"] if published else float("nan")
    return {
        "seconds": seconds,
        "published_s": published,
        "in_process_s": in_process,
        "peak_rss_mb": peak.stop(),
    }


def same_rows(first: Path, second: Path) -> bool:
    """Whether the two stores hold the same facts, every column but the row ids."""
    with sqlite3.connect(first) as connection:
        connection.execute(f"ATTACH '{second}' AS other")
        for table in ("opportunities", "leads", "reps", "teams", "opportunity_history"):
            info = connection.execute(f"PRAGMA table_info({table})").fetchall()
            columns = ", ".join(
                name
                for _, name, *_ in info
                if name not in ("id", "changed_in", "valid_from", "valid_to")
            )
            for a, b in (("main", "other"), ("other", "main")):
                differing = connection.execute(
                    f"SELECT count(*) FROM (SELECT {columns} FROM {a}.{table} "
                    f"EXCEPT SELECT {columns} FROM {b}.{table})"
                ).fetchone()
                if differing is None or differing[0]:
                    return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="number of opportunities")
    parser.add_argument("--url", required=True, help="a PostgreSQL URL (libpq form)")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {load_average()}")
    rows = args.size * 3 + 500
    print(f"size: {args.size:,} opportunities, {2 * args.size:,} leads, 500 reps ({rows:,} rows)")
    folder = Path(tempfile.mkdtemp(prefix="kpibot-bench-sql-"))
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        generate(folder, args.size)
        began = time.perf_counter()
        load(args.url, schema, folder)
        print(f"loaded into PostgreSQL ({schema}) in {time.perf_counter() - began:.1f} s")
        url = args.url.replace("postgresql://", "postgresql+psycopg://", 1)
        runs = {}
        for way, code in (("as_arrow", AS_ARROW), ("row_by_row", ROW_BY_ROW)):
            runs[way] = run = sync(folder, schema, url, way, code)
            synced = run["seconds"] - run["published_s"]
            print(
                f"kpibot sync, read {way.replace('_', ' ')}: {run['seconds']:.1f} s ="
                f" {rows / run['seconds']:,.0f} rows/s end to end, of which the snapshot"
                f" published in {run['published_s']:.1f} s; the sync itself (process start to"
                f" commit) {synced:.1f} s = {rows / synced:,.0f} rows/s, of which the sync"
                f" in process (from its call to commit, as bench_answers.py times the CSV"
                f" import) {run['in_process_s']:.1f} s = {rows / run['in_process_s']:,.0f}"
                f" rows/s; peak memory {run['peak_rss_mb']:.0f} MB"
            )
        same = same_rows(folder / "as_arrow.db", folder / "row_by_row.db")
        speedup = runs["row_by_row"]["seconds"] / runs["as_arrow"]["seconds"]
        print(f"as Arrow {speedup:.1f}x faster; the same rows in both stores: {same}")
        print(f"load average at the end: {load_average()}")
    finally:
        with psycopg.connect(args.url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
