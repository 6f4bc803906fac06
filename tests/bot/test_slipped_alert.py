"""An alert on slipped amount, configured like any KPI target: the history's pushes make the
figure, the config's target judges it (lower is better), and the evaluation fires."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.service import KpiService
from bot.settings import load_settings
from metrics.evaluation import Status
from metrics.scopes import Scope
from tests.bot.test_comparisons_history import _service

NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cap", "status"),
    [
        ("100", Status.AT_RISK),  # d2's 500 € pushed on 20 November is above the cap
        ("1k", Status.ON_TRACK),
    ],
)
def test_a_target_on_slipped_amount_raises_an_alert(
    store: Engine, tmp_path: Path, cap: str, status: Status
) -> None:
    imported = _service(
        store, tmp_path, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)
    )
    config = tmp_path / "alerts.yaml"
    config.write_text(
        "organisation:\n  name: Test\n  currency: EUR\n  timezone: Europe/Paris\n"
        f"targets:\n  - {{kpi: slipped, grain: quarter, company: {cap}}}\n"
    )
    service = KpiService(load_settings(config, {"DATABASE_URL": "sqlite://"}), imported.engine)

    [found] = [e for e in service.check(NOW) if e.kpi == "slipped"]

    assert (found.scope, found.period.key) == (Scope.company(), "2026-Q4")
    assert found.actual.value == Decimal("500.00")
    assert found.status is status
    assert found.status.is_alert is (status is Status.AT_RISK)
