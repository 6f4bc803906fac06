"""Sources in the config: each kind's keys validated with their path, credentials read from the
environment only (under the source's prefix) and never shown, sync_source a name or a list."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.scheduling.sync import configured_source
from bot.settings import ConfigError, load_settings

CONFIG = """
sources:
  eu:
    kind: hubspot
    env_prefix: HUBSPOT_EU
  crm:
    kind: salesforce
    domain: test
  legacy:
    kind: csv
    base_dir: exports
scheduling:
  sync_source: [crm, eu]
"""


def test_credentials_come_from_the_environment_under_each_prefix(tmp_path: Path) -> None:
    path = tmp_path / "kpibot.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    env = {
        "HUBSPOT_EU_TOKEN": "pat-eu-secret",
        "HUBSPOT_TOKEN": "pat-not-this-one",
        "SALESFORCE_USERNAME": "ops@example.test",
        "SALESFORCE_PASSWORD": "hunter2",
        "SALESFORCE_SECURITY_TOKEN": "",
    }
    settings = load_settings(path, env)
    assert settings.secrets.sources == {
        "eu": {"token": "pat-eu-secret"},
        "crm": {"username": "ops@example.test", "password": "hunter2"},
        "legacy": {},
    }
    assert "hunter2" not in repr(settings) and "pat-eu-secret" not in repr(settings)
    assert settings.config.scheduling.sync_sources == ("crm", "eu")
    assert configured_source(settings)[0] == "crm+eu"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("sources: {x: {kind: zoho}}", "sources.x.kind: expected one of salesforce, hubspot"),
        ("sources: {x: {kind: hubspot, page_size: 500}}", "sources.x.hubspot.page_size"),
        ("sources: {x: {kind: pipedrive, token: abc}}", "sources.x.pipedrive.token: unknown key"),
        (
            "sources: {dw: {kind: sql, leads: {query: 'SELECT 1', columns: {id: a, size: b}}}}",
            "sources.dw.leads.columns.size: unknown field for leads; expected one of id, "
            "created_at, owner, converted_at, channel, account",
        ),
        (
            "sources: {dw: {kind: sql, leads: {query: 'SELECT 1', columns: {id: a}}}}",
            "sources.dw.leads.columns: created_at must be mapped onto a column",
        ),
        (
            "sources: {dw: {kind: sql, opportunities: {query: 'SELECT 1', columns: {id: a, "
            "stage: s, close_date: c}}}}",
            "sources.dw.opportunities.stages: map each stage of the export onto open, won or lost",
        ),
    ],
)
def test_mistakes_name_their_key(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "kpibot.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path, {})
    assert problem in str(raised.value)


def test_an_unknown_sync_source_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "kpibot.yaml"
    path.write_text("scheduling: {sync_source: [nowhere]}", encoding="utf-8")
    # Refused when the config is read, before any job is built.
    with pytest.raises(ConfigError) as raised:
        load_settings(path, {})
    assert [str(problem) for problem in raised.value.problems] == [
        "scheduling.sync_source.0: no source named 'nowhere': none is declared under sources "
        "or import.csv"
    ]


_LOADED = """
import sys
import subprocess
import sys
from pathlib import Path
from bot.settings import load_settings
from bot.sources.registry import connector_for
settings = load_settings(Path(sys.argv[1]), {"DW_URL": "postgresql://kpibot@127.0.0.1/dw"})
connector_for("dw", settings.config.sources["dw"], settings)
clients = ("simple_salesforce", "hubspot", "httpx", "bot.sources.salesforce",
           "bot.sources.hubspot", "bot.sources.pipedrive", "bot.sources.sql")
print(" ".join(name for name in clients if name in sys.modules))
"""


def test_a_sync_loads_the_connector_of_its_own_kind_only(tmp_path: Path) -> None:
    """Building a SQL source's connector (in a new process, as `kpibot sync` does) loads
    none of the CRM clients, which took 0.4-0.6 s of every such sync."""
    path = tmp_path / "kpibot.yaml"
    path.write_text(
        "sources: {dw: {kind: sql, env_prefix: DW, leads: {query: 'SELECT 1',"
        " columns: {id: a, created_at: b}}}}",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, str(path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["bot.sources.sql"]
