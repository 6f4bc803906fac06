"""Schema migrations as a release step: `kpibot migrate` brings the database to this release,
also when several processes run it at once on PostgreSQL; the serving processes (`serve`,
`clock`, `run-due`) check the schema and say what to run instead of migrating concurrently;
SQLite, owned by one process, is still migrated on the fly."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session

from bot.cli import main
from bot.service import KpiService
from bot.settings import load_settings
from bot.store import database
from bot.store.database import (
    SchemaNotCurrent,
    VersionStamp,
    bump_data_version,
    ensure_schema,
    head_revision,
    migrate,
    version_stamp,
)
from bot.store.models import Base
from bot.store.teams_models import TeamsConversation  # noqa: F401 - its table in Base
from tests.bot.delivery_support import (
    environment,
    finish,
    kpibot,
    postgres_url,  # noqa: F401 - fixture
    write_config,
)
from tests.conftest import postgres_engine
from tests.fakes.slack_api import FakeSlack

HEAD = head_revision()
AT = "2026-12-01T08:30:00+01:00"


def test_the_procfile_migrates_as_its_release_step() -> None:
    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text().splitlines()
    assert procfile[0] == "release: kpibot migrate"
    assert {line.split(":")[0] for line in procfile} == {"release", "web", "clock"}


def test_migrate_on_sqlite_reports_what_it_did_and_is_idempotent(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    runner = CliRunner()

    first = runner.invoke(main, ["--config", str(config), "migrate"], catch_exceptions=False)
    second = runner.invoke(main, ["--config", str(config), "migrate"], catch_exceptions=False)

    database = f"sqlite:///{tmp_path / 'kpibot.db'}"
    assert first.exit_code == 0 and second.exit_code == 0
    # The organisation of write_config is French.
    assert first.output == f"{database}\u00a0: schéma créé à la révision {HEAD}\n"
    assert second.output == f"{database}\u00a0: schéma déjà à la révision {HEAD}, rien à faire\n"


def test_an_upgrade_that_fails_half_way_leaves_sqlite_as_it_was(tmp_path: Path) -> None:
    """The whole upgrade is one transaction: a statement failing in the last migration takes
    the eleven before it back too (sqlite3 ran DDL outside any transaction), and migrating
    again then succeeds."""
    engine = database.make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")

    def fail(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "DROP INDEX" in statement and "ix_leads_created_at" in statement:
            raise RuntimeError("disk full")

    event.listen(engine, "before_cursor_execute", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        migrate(engine)
    event.remove(engine, "before_cursor_execute", fail)

    assert inspect(engine).get_table_names() == []
    assert migrate(engine) == (None, HEAD)
    assert "ix_leads_created_at" not in {i["name"] for i in inspect(engine).get_indexes("leads")}


def test_the_head_a_process_checks_without_alembic_is_alembics_head() -> None:
    """A new revision must name itself in ``bot.store.database.HEAD`` too."""
    assert database.HEAD == HEAD


def test_the_migrated_schema_has_the_models_tables_columns_and_indexes(store: Engine) -> None:
    """The migrations and the models agree, on each database: an index the models drop (the
    facts' date indexes, which no query reads) is dropped by a migration too, and the reverse."""
    inspector = inspect(store)
    for table in Base.metadata.sorted_tables:
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        assert columns == {column.name for column in table.columns}, table.name
        indexes = {
            (index["name"], tuple(index["column_names"]), bool(index["unique"]))
            for index in inspector.get_indexes(table.name)
            if not index.get("duplicates_constraint")  # PostgreSQL's unique constraints
        }
        expected = {
            (index.name, tuple(column.name for column in index.columns), bool(index.unique))
            for index in table.indexes
        }
        assert indexes == expected, table.name


def test_a_process_whose_store_is_current_does_not_import_alembic(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    KpiService(load_settings(config, {}))  # migrates the new store
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from bot.service import KpiService\n"
        "from bot.settings import load_settings\n"
        f"KpiService(load_settings(Path({str(config)!r}), {{}}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout == "[]\n"


def test_sqlite_is_migrated_on_the_fly_by_any_command(tmp_path: Path) -> None:
    """The embedded default has one process: it needs no release step."""
    settings = load_settings(write_config(tmp_path), {})
    service = KpiService(settings)
    with service.engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == HEAD


@pytest.fixture
def pg() -> Iterator[Engine]:
    yield from postgres_engine()


def _set_revision(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


@pytest.mark.postgres
def test_a_postgres_schema_behind_or_ahead_is_refused_with_what_to_do(pg: Engine) -> None:
    with pytest.raises(SchemaNotCurrent) as empty:
        ensure_schema(pg)
    assert str(empty.value) == (
        f"the database schema is empty (never migrated), this kpibot needs revision {HEAD}: "
        "run `kpibot migrate` first (the Procfile's release step)"
    )
    assert inspect(pg).get_table_names() == []  # checked, not migrated

    assert migrate(pg) == (None, HEAD)
    ensure_schema(pg)  # current: nothing to say

    _set_revision(pg, "0003")
    with pytest.raises(SchemaNotCurrent, match="is at revision 0003, this kpibot needs"):
        ensure_schema(pg)

    _set_revision(pg, "0099")
    with pytest.raises(SchemaNotCurrent) as newer:
        ensure_schema(pg)
    assert str(newer.value) == (
        f"the database schema is at revision 0099, newer than this kpibot knows (its latest is "
        f"{HEAD}): upgrade kpibot to the release that migrated it"
    )


@pytest.mark.postgres
def test_three_migrations_at_once_on_an_empty_postgres_all_succeed(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
) -> None:
    config = write_config(tmp_path)
    env = {"DATABASE_URL": postgres_url}
    processes = [kpibot(config, "migrate", env=env) for _ in range(3)]
    outputs = sorted(finish(p).split(": ", 1)[1] for p in processes)

    assert outputs == [
        f"schéma créé à la révision {HEAD}\n",
        f"schéma déjà à la révision {HEAD}, rien à faire\n",
        f"schéma déjà à la révision {HEAD}, rien à faire\n",
    ]
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
            assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_serving_processes_started_together_on_an_unmigrated_postgres_say_to_migrate(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
) -> None:
    config = write_config(tmp_path)
    with FakeSlack() as fake:
        env = environment(fake, postgres_url)
        processes = [
            kpibot(config, "run-due", "--at", AT, env=env),
            kpibot(config, "run-due", "--at", AT, env=env),
            kpibot(config, "clock", env=env),
        ]
        results = [(p.communicate(timeout=120), p.returncode) for p in processes]

        for (out, err), code in results:
            assert code == 2, err
            assert out == ""
            assert err == (  # the organisation is French
                "kpibot: le schéma de la base est vide (jamais migré), ce kpibot a besoin de la "
                f"révision {HEAD}\u00a0: lancez d'abord `kpibot migrate` (l'étape release du "
                "Procfile)\n"
            )
        assert fake.posts() == []

        # The release step, then the same processes run.
        finish(kpibot(config, "migrate", env=env))
        ran = finish(kpibot(config, "run-due", "--at", AT, env=env))
        assert ran.split()[:2] == ["fait", "sync"]  # the organisation is French


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = database.make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
        yield engine
        engine.dispose()
    else:
        yield from postgres_engine()


def test_the_upgrade_gives_the_data_version_in_hand_a_token(unmigrated: Engine) -> None:
    """A store at 0012 holding data: its version is stamped, so its next snapshot is named."""
    from alembic import command

    config = database._alembic_config()
    with unmigrated.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0012")
        connection.execute(text("INSERT INTO data_version (id, version) VALUES (1, 7)"))
    migrate(unmigrated)
    with Session(unmigrated) as session:
        stamp = version_stamp(session)
        assert stamp.version == 7 and re.fullmatch("[0-9a-f]{32}", stamp.token)
        bump_data_version(session)
        bumped = version_stamp(session)
        assert bumped.version == 8 and bumped.token not in ("", stamp.token)


def test_a_new_store_has_no_token_before_its_first_version(unmigrated: Engine) -> None:
    migrate(unmigrated)
    with Session(unmigrated) as session:
        assert version_stamp(session) == VersionStamp(0, "")
