"""`kpibot status` on a real store: next runs, outbox backlog, failed deliveries, in the
organisation's language (English here unless a test says French)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.alerting import add_silence
from bot.cli import main
from bot.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from bot.delivery.notifier import Message
from bot.scheduling.claims import Claims
from bot.scheduling.runtime import build_runtime
from bot.scheduling.sync import SUCCEEDED, SyncRuns
from bot.store.database import session_factory, transaction
from bot.store.sync_models import SyncState
from metrics.scopes import Level, Scope
from tests.bot.delivery_support import (
    environment,
    keys_posted,
    runtime_for,
    settings_for,
    subscriptions,
    write_config,
)
from tests.fakes.slack_api import FakeSlack, Fault

ENGLISH = {"locale": "en_US"}
# Words that give an English line away in the French status (outside ids, channels and times).
ENGLISH_WORDS = re.compile(
    r"\b(status|sync|last|never|next|runs?|pending|failed|sent|none|since|until|reported|"
    r"digest|row|rows|changed|error|stale|alerts?|jobs?|claimed|running|by)\b",
    re.IGNORECASE,
)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


def test_status_shows_next_runs_backlog_and_failed_deliveries(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path, organisation=ENGLISH, subscriptions=subscriptions(2))
    runtime = runtime_for(config, fake)
    fake.unknown_channels.add("CGONE")
    with pytest.raises(PermanentDeliveryError):
        runtime.notifier.send(Message("CGONE", "hello", "test:gone"))
    runtime.notifier.outbox.reserve("send", Message("C1", "later", "test:pending"))

    result = CliRunner().invoke(
        main,
        ["--config", str(config), "status", "--as-of", "2026-12-01T08:00:00+01:00"],
        env=environment(fake),
    )

    assert result.exit_code == 0, result.output
    out = result.output
    assert "Last sync:         never" in out
    assert "2026-12-01 08:30 CET   digest:s000" in out
    assert "2026-12-01 09:00 CET   evaluate" in out
    assert "Outbox:            1 pending" in out and "1 failed" in out
    assert "CGONE" in out and "channel_not_found" in out and "reported to admin" in out
    assert "Active alerts:     none" in out and "Silences:          none" in out


def test_run_due_command_prints_one_line_per_job(fake: FakeSlack, tmp_path: Path) -> None:
    config = write_config(tmp_path, organisation=ENGLISH, subscriptions=subscriptions(1))
    args = ["--config", str(config), "run-due", "--at", "2026-12-01T08:30:00+01:00"]
    first = CliRunner().invoke(main, args, env=environment(fake))
    again = CliRunner().invoke(main, args, env=environment(fake))
    assert first.exit_code == 0, first.output
    lines = [line.split(maxsplit=2)[:2] for line in first.output.splitlines()]
    assert lines[0] == ["ok", "sync"] and ["ok", "digest:s000"] in lines
    assert {line.split()[0] for line in again.output.splitlines()} == {"taken"}
    assert len(fake.posts("C000")) == 1


def test_status_after_a_crash_says_which_jobs_are_unfinished_and_when_they_are_free(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        organisation=ENGLISH,
        subscriptions=subscriptions(4),
        scheduling={"claim_lease": "2m"},
    )
    settings = settings_for(config, fake)
    fire = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)  # 08:30 in Paris

    def claims(owner: str, minutes: int) -> Claims:
        at = fire + timedelta(minutes=minutes)
        return build_runtime(settings, owner=owner, wall_clock=lambda: at).claims

    assert claims("host-a:41:dead01", 1).claim("digest:s000", fire)  # then killed
    assert claims("host-b:42:live02", 9).claim("digest:s001", fire)  # still beating
    failing = claims("host-c:43:err003", 2)
    assert failing.claim("digest:s002", fire)
    failing.release("digest:s002", fire, "RuntimeError('CRM export unreadable')")
    done = claims("host-d:44:done04", 3)
    assert done.claim("digest:s003", fire)
    done.finish("digest:s003", fire, "ok")

    args = ["--config", str(config), "status", "--as-of", "2026-12-01T08:40:00+01:00"]
    result = CliRunner().invoke(main, args, env=environment(fake))

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = lines.index("Unfinished jobs:")
    assert lines[start + 1 : start + 7] == [
        "  digest:s000 for 2026-12-01 08:30 CET, claimed by host-a:41:dead01",
        "    claimant silent since 2026-12-01 08:31 CET, presumed dead: another process may "
        "take it over since 2026-12-01 08:33 CET",
        "  digest:s001 for 2026-12-01 08:30 CET, claimed by host-b:42:live02",
        "    running (heartbeat 2026-12-01 08:39 CET); if it stops, another process may take "
        "it over from 2026-12-01 08:41 CET",
        "  digest:s002 for 2026-12-01 08:30 CET, claimed by host-c:43:err003",
        "    gave up after an error (RuntimeError('CRM export unreadable')): another process "
        "may run it again now",
    ]
    assert "digest:s003 for" not in result.output  # finished

    as_json = CliRunner().invoke(main, [*args, "--json"], env=environment(fake))
    unfinished = json.loads(as_json.output)["unfinished"]
    assert [(u["job_id"], u["takeover_at"]) for u in unfinished[:2]] == [
        ("digest:s000", "2026-12-01 07:33:00+00:00"),
        ("digest:s001", "2026-12-01 07:41:00+00:00"),
    ]


def test_run_due_first_flushes_what_a_failed_delivery_left_pending(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path, organisation=ENGLISH, delivery={"max_retries": 1})
    runtime = runtime_for(config, fake)
    runtime.notifier.sleep = lambda _: None
    fake.fail("chat.postMessage", Fault.rate_limited(1), Fault.rate_limited(1))
    with pytest.raises(TransientDeliveryError):  # retries ran out: left pending
        runtime.notifier.send(Message("C1", "during the outage", "test:outage"))
    assert keys_posted(fake) == []

    args = ["--config", str(config), "run-due", "--at", "2026-12-01T08:30:00+01:00"]
    first = CliRunner().invoke(main, args, env=environment(fake))
    again = CliRunner().invoke(main, args, env=environment(fake))

    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[0].split(maxsplit=2) == [
        "flushed",
        "outbox",
        "1 pending message: 1 delivered, 0 still pending, 0 given up",
    ]
    assert keys_posted(fake) == ["test:outage"]
    assert "flushed" not in again.output


def test_status_of_a_french_organisation_is_in_french_stale_data_first(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path, subscriptions=subscriptions(1))  # organisation in fr_FR
    runtime = runtime_for(config, fake)
    runs = SyncRuns(runtime.engine)
    synced = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    runs.finish(runs.start("crm", synced), SUCCEEDED, synced, rows=3)
    failed = synced + timedelta(hours=20)
    runs.finish(runs.start("crm", failed), "failed", failed, detail="HTTP 503 from the CRM")
    fake.unknown_channels.add("CGONE")
    with pytest.raises(PermanentDeliveryError):
        runtime.notifier.send(Message("CGONE", "hello", "test:gone"))
    with transaction(session_factory(runtime.engine)) as session:
        until = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
        add_silence(
            session, None, until, "U1", synced, kpi="revenue", scope=Scope(Level.TEAM, "Lyon")
        )
        # A HubSpot source: its deals, and when their deletions were last checked (a row of
        # sync_state that is not an object).
        session.add(
            SyncState(source="hs", object="deals", synced_at=failed, high_water_mark=synced)
        )
        session.add(SyncState(source="hs", object="deals:deleted", synced_at=synced))

    args = ["--config", str(config), "status", "--as-of", "2026-12-01T08:00:00+01:00"]
    result = CliRunner().invoke(main, args, env=environment(fake))

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:7] == [
        "État de kpibot au 2026-12-01 08:00 CET",
        "",
        "DONNÉES PÉRIMÉES depuis le 2026-11-30 10:00 CET\u00a0: les alertes KPI sont retenues",
        "",
        "Dernier succès\u00a0:   2026-11-30 10:00 CET",
        "Dernière synchro\u00a0: 2026-12-01 06:00 CET crm\u00a0: échouée",
        "                   erreur\u00a0: HTTP 503 from the CRM",
    ]
    assert any(
        line.startswith("  2026-12-01 08:30 CET   digest:s000")
        and line.endswith("résumé dans C000 à 08:30 Europe/Paris")
        for line in lines
    )
    assert (
        "File d'envoi\u00a0:     en attente\u00a0: 0, en échec\u00a0: 1, envoyés\u00a0: 1" in lines
    )
    assert any(line.startswith("  CGONE ") and "signalé aux admins" in line for line in lines)
    assert "  Chiffre d'affaires Équipe Lyon jusqu'à 2026-12-03 10:00 CET (par U1)" in lines
    assert "Alertes actives\u00a0:  aucun" in lines
    source = lines.index("Source hs\u00a0:")
    assert lines[source + 1 : source + 3] == [
        "  deals              synchronisé 2026-12-01 06:00 CET, repère 2026-11-30 10:00 CET",
        "  deals              dernière vérification des suppressions 2026-11-30 10:00 CET",
    ]
    # Job ids, channel errors and the CRM's own error text are not words to translate.
    ids = r"\S*[:_][\w:.-]*| (sync|evaluate) |HTTP 503 from the CRM"
    words = " ".join(re.sub(ids, " ", line) for line in lines)
    assert not ENGLISH_WORDS.findall(words), result.output


def test_run_due_of_a_french_organisation_says_what_each_job_did_in_french(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path, subscriptions=subscriptions(1))  # organisation in fr_FR
    args = ["--config", str(config), "run-due", "--at", "2026-12-01T09:00:00+01:00"]
    first = CliRunner().invoke(main, args, env=environment(fake))
    again = CliRunner().invoke(main, args, env=environment(fake))

    assert first.exit_code == 0, first.output
    by_job = {line.split()[1]: line for line in first.output.splitlines()}
    assert by_job["sync"].startswith("fait      sync")
    assert by_job["sync"].endswith("synchro none\u00a0: 0 ligne modifiée")
    assert by_job["evaluate"].endswith("0 message d'alerte · 0 résolution")
    assert by_job["digest:s000"].startswith("fait      digest:s000")
    assert all(line.startswith("déjà pris ") for line in again.output.splitlines())
