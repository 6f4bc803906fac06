"""Stale CRM data: alerts held and ONE notice to the admin channel while the last successful
sync is too old; the notice is resolved (edited, answered in its thread) when a sync succeeds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from bot.formatting import Formatter
from bot.scheduling.plan import EVALUATE, SYNC
from bot.scheduling.runner import Runner
from bot.scheduling.runtime import build_runtime
from bot.status import collect_status, render_status
from tests.bot.delivery_support import ADMIN, settings_for, write_config
from tests.fakes.slack_api import FakeSlack

PARIS = ZoneInfo("Europe/Paris")
MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=PARIS)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


class Source:
    """A CRM that can be made to fail."""

    def __init__(self) -> None:
        self.failing = False

    def __call__(self, session: Session) -> int:
        if self.failing:
            raise OSError("CRM export not found")
        return 3


# The last successful sync at 09:00 Paris, stale from 11:00, fresh again at 14:00: as each
# organisation reads them (the notice, the edited notice, the reply in its thread).
IN_FRENCH = (
    "⏳ Les données du CRM sont périmées depuis le 30 nov. 2026, 11:00 (Europe/Paris)\u00a0: la "
    "dernière synchronisation réussie date du 30 nov. 2026, 09:00. Les alertes KPI sont "
    "suspendues jusqu'à la prochaine synchronisation réussie\u00a0; `kpibot status` indique la "
    "dernière synchronisation et son erreur.",
    "✅ Résolu\u00a0: les données du CRM étaient périmées du 30 nov. 2026, 11:00 au 30 nov. "
    "2026, 14:00 (Europe/Paris)\u00a0; la synchronisation réussie précédente datait du 30 nov. "
    "2026, 09:00.",
    "✅ Les données du CRM sont à jour\u00a0: synchronisation réussie le 30 nov. 2026, 14:00 "
    "(Europe/Paris). Elles étaient périmées depuis le 30 nov. 2026, 11:00, après la "
    "synchronisation réussie du 30 nov. 2026, 09:00. Les alertes KPI reprennent.",
)
IN_ENGLISH = (
    "⏳ CRM data is stale since Nov 30, 2026, 5:00\u202fAM (America/New_York): the last "
    "successful sync was on Nov 30, 2026, 3:00\u202fAM. KPI alerts are held until a sync "
    "succeeds; `kpibot status` shows the last sync and its error.",
    "✅ Resolved: CRM data was stale from Nov 30, 2026, 5:00\u202fAM to Nov 30, 2026, "
    "8:00\u202fAM (America/New_York); the last successful sync before that was on Nov 30, "
    "2026, 3:00\u202fAM.",
    "✅ CRM data is fresh again: a sync succeeded on Nov 30, 2026, 8:00\u202fAM "
    "(America/New_York). It had been stale since Nov 30, 2026, 5:00\u202fAM, after the last "
    "successful sync on Nov 30, 2026, 3:00\u202fAM. KPI alerts resume.",
)


# What the job summaries and `kpibot status` say, in the organisation's language.
SUMMARIES_FR = {
    "synced": "synchro crm\u00a0: 3 lignes modifiées",
    "failed": "synchro crm échouée\u00a0: ",
    "held": "alertes retenues\u00a0: données périmées depuis le 30 nov. 2026, 09:00",
    "stale": "DONNÉES PÉRIMÉES depuis le 2026-11-30 09:00 CET\u00a0: les alertes KPI sont retenues",
    "resolved": "synchro crm\u00a0: 3 lignes modifiées · avis de données périmées levé",
}
SUMMARIES_EN = {
    "synced": "sync crm: 3 rows changed",
    "failed": "sync crm failed: ",
    "held": "alerts held: data stale since Nov 30, 2026, 3:00\u202fAM",
    "stale": "DATA IS STALE since 2026-11-30 03:00 EST: KPI alerts are held",
    "resolved": "sync crm: 3 rows changed · stale-data notice resolved",
}


@pytest.mark.parametrize(
    ("organisation", "texts", "summaries"),
    [
        ({"locale": "fr_FR", "timezone": "Europe/Paris"}, IN_FRENCH, SUMMARIES_FR),
        ({"locale": "en_US", "timezone": "America/New_York"}, IN_ENGLISH, SUMMARIES_EN),
    ],
    ids=["fr", "en"],
)
def test_stale_data_holds_alerts_notifies_once_and_resolves(
    fake: FakeSlack,
    tmp_path: Path,
    organisation: dict[str, str],
    texts: tuple[str, str, str],
    summaries: dict[str, str],
) -> None:
    config = write_config(
        tmp_path,
        organisation=organisation,
        scheduling={"stale_after": "2h", "sync_cron": "0 * * * *", "evaluation_cron": "0 * * * *"},
    )
    settings = settings_for(config, fake)
    source = Source()
    runtime = build_runtime(settings, sync_source=("crm", source))
    runner = Runner(runtime)
    plan = [job for job in runtime.plan() if job.kind in (SYNC, EVALUATE)]

    def hour(n: int) -> dict[str, str]:
        outcomes = runner.run_due(MONDAY + timedelta(hours=n), plan)
        return {o.job_id: o.detail for o in outcomes}

    assert hour(0)["sync"] == summaries["synced"]
    source.failing = True
    assert hour(1)["sync"].startswith(summaries["failed"])
    two = hour(2)
    assert two["sync"].startswith(summaries["failed"])
    assert summaries["held"] not in two["evaluate"]  # 2 h old is not older than stale_after
    assert summaries["held"] in hour(3)["evaluate"]
    assert summaries["held"] in hour(4)["evaluate"]
    notices = fake.posts(ADMIN)
    assert len(notices) == 1 and notices[0].text == texts[0]

    fmt = Formatter.for_organisation(settings.organisation)
    status = render_status(
        collect_status(settings, runtime.engine, plan, MONDAY + timedelta(hours=4)), fmt
    )
    assert summaries["stale"] in status.splitlines()
    assert "CRM export not found" in status

    source.failing = False
    five = hour(5)
    assert five["sync"] == summaries["resolved"]
    assert summaries["held"] not in five["evaluate"]  # the sync runs before the evaluation
    notice = fake.posts(ADMIN)[0]
    assert notice.text == texts[1]  # edited in place
    replies = [p for p in fake.posts(ADMIN) if p.thread_ts == notice.ts]
    assert [reply.text for reply in replies] == [texts[2]]
    assert "held" not in hour(6)["evaluate"]
    assert len([p for p in fake.posts(ADMIN) if p.thread_ts is None]) == 1
