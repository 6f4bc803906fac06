"""End to end through Workflows webhooks: the demo company's scheduled digest and its alerts
routed to ``webhook:`` destinations, through the runtime's outbox, to a fake flow that first
answers 429 — in French and in English."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from bot.alerting import run_alerts
from bot.scheduling.runner import Runner
from bot.scheduling.runtime import Runtime, build_runtime
from bot.service import KpiService
from bot.settings import load_settings
from bot.teams.webhook import MAX_PAYLOAD_BYTES
from tests.bot.slack_world import NOW, PARIS, _demo_files
from tests.bot.teams.card_schema import schema_problems
from tests.bot.teams.test_cards import texts
from tests.fakes.http_fake import Fault
from tests.fakes.teams_webhook import WorkflowsWebhook

ROUTES = """
teams:
  webhooks:
    leadership: {url_env: TEAMS_WEBHOOK_LEADERSHIP}
    lyon: {url_env: TEAMS_WEBHOOK_LYON}
slack:
  leadership_channel: webhook:leadership
  admin_channel: webhook:leadership
  team_channels: {Lyon: webhook:lyon}
visibility:
  rep_figures: team
alerts:
  for: 1
  quiet_hours: {start: "20:00", end: "08:00"}
subscriptions:
  - id: leadership
    channel: webhook:leadership
    time: "08:30"
    kpis: [revenue, pipeline, win_rate]
"""
RATE_LIMITED = Fault(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "2"})


@dataclass
class Company:
    runtime: Runtime
    service: KpiService
    leadership: WorkflowsWebhook
    lyon: WorkflowsWebhook
    waits: list[float]


@pytest.fixture(params=["fr_FR", "en_US"])
def company(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Company]:
    demo = _demo_files()
    config = (demo / "kpibot.yaml").read_text(encoding="utf-8")
    config = config.replace("locale: fr_FR", f"locale: {request.param}") + ROUTES
    (tmp_path / "kpibot.yaml").write_text(config, encoding="utf-8")
    shutil.copy(demo / "kpibot.db", tmp_path / "kpibot.db")
    with WorkflowsWebhook() as leadership, WorkflowsWebhook() as lyon:
        env = {
            "TEAMS_WEBHOOK_LEADERSHIP": leadership.webhook_url,
            "TEAMS_WEBHOOK_LYON": lyon.webhook_url,
        }
        settings = load_settings(tmp_path / "kpibot.yaml", env)
        waits: list[float] = []
        runtime = build_runtime(settings, sleep=waits.append)
        service = KpiService(settings, runtime.engine)
        yield Company(runtime, service, leadership, lyon, waits)
        runtime.engine.dispose()


def test_the_scheduled_digest_reaches_the_channel_after_a_rate_limit(company: Company) -> None:
    company.leadership.fail(RATE_LIMITED)
    at = datetime(2026, 11, 26, 8, 30, tzinfo=PARIS)

    outcomes = {o.job_id: o.outcome for o in Runner(company.runtime).run_due(at)}

    assert outcomes["digest:leadership"] == "ok"
    # the digest, then its chart: a card whose picture fits in the flow's 28 KB
    [card, chart] = company.leadership.cards
    assert len(company.leadership.requests) == 3  # 429, then 202 twice
    assert max(len(r.body) for r in company.leadership.requests) <= MAX_PAYLOAD_BYTES
    [image] = [item for item in chart["body"] if item["type"] == "Image"]
    assert image["url"].startswith("data:image/png;base64,") and image["altText"]
    assert schema_problems(chart, "1.4") == []
    assert any(2 <= w <= 2.5 for w in company.waits)  # Retry-After, and jitter up to 0.5 s
    assert schema_problems(card, "1.4") == [] and "actions" not in card
    shown = "\n".join(texts(card))
    french = company.service.settings.organisation.locale == "fr_FR"
    assert ("Chiffre d'affaires" if french else "Revenue") in shown
    assert "Atelier Lumière SAS" in shown
    # Run again at the same instant: the job is taken, nothing is posted twice.
    Runner(company.runtime).run_due(at)
    assert len(company.leadership.cards) == 2


def test_alerts_reach_their_team_and_leadership_channels(company: Company) -> None:
    company.lyon.fail(RATE_LIMITED)

    run = run_alerts(company.service, company.runtime.dispatcher, NOW)

    assert run.held_until is None
    assert company.lyon.cards and company.leadership.cards
    french = company.service.settings.organisation.locale == "fr_FR"
    for card in [*company.lyon.cards, *company.leadership.cards]:
        assert schema_problems(card, "1.4") == [] and "actions" not in card
    lyon = "\n".join(texts(company.lyon.cards[0]))
    assert ("Équipe Lyon" if french else "Team Lyon") in lyon
    assert len(company.lyon.requests) == len(company.lyon.cards) + 1  # the 429 once
    # The same evaluation again announces nothing new.
    before = len(company.lyon.cards) + len(company.leadership.cards)
    run_alerts(company.service, company.runtime.dispatcher, NOW)
    assert len(company.lyon.cards) + len(company.leadership.cards) == before
