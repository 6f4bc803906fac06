"""Teams webhooks in the config: named under ``teams.webhooks`` with the variable holding
their URL, routed to as ``webhook:<name>``; ``kpibot check-config`` names what is missing, and
the URL stays out of the settings' repr."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.cli import main
from bot.settings import load_settings

WEBHOOKS = "teams: {webhooks: {leadership: {url_env: TEAMS_WEBHOOK_LEADERSHIP}}}\n"
URL = "https://example.invalid/workflows/1/triggers/manual/paths/invoke?sig=s3cr3t"


def check_config(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Result:
    config = tmp_path / "kpibot.yaml"
    config.write_text(f"database: {{url: 'sqlite:///{tmp_path}/k.db'}}\n{text}", encoding="utf-8")
    return CliRunner(env=env or {}).invoke(
        main, ["--config", str(config), "check-config"], catch_exceptions=False
    )


@pytest.mark.parametrize(
    ("routes", "problem"),
    [
        ("slack: {leadership_channel: 'webhook:lead'}",
         "slack.leadership_channel: no webhook 'lead' under teams.webhooks (declared: leadership)"),
        ("slack: {team_channels: {Lyon: 'webhook:lyon'}}",
         "slack.team_channels.Lyon: no webhook 'lyon' under teams.webhooks"),
        ("subscriptions: [{channel: 'webhook:ops', time: '08:30'}]",
         "subscriptions.0.channel: no webhook 'ops' under teams.webhooks"),
        ("teams: {webhooks: {x: {url_env: lower_case}}}",
         "teams.webhooks.x.url_env: expected a value matching ^[A-Z][A-Z0-9_]*$, got 'lower_case'"),
    ],
)  # fmt: skip
def test_a_route_to_a_webhook_nobody_declared_is_a_config_mistake(
    tmp_path: Path, routes: str, problem: str
) -> None:
    text = routes if routes.startswith("teams") else WEBHOOKS + routes
    result = check_config(tmp_path, text, {"TEAMS_WEBHOOK_LEADERSHIP": URL})

    assert result.exit_code == 2
    assert any(line.removeprefix("  - ").startswith(problem) for line in result.output.splitlines())


def test_check_config_names_a_webhook_whose_variable_is_not_set(tmp_path: Path) -> None:
    result = check_config(tmp_path, WEBHOOKS + "slack: {leadership_channel: 'webhook:leadership'}")

    assert result.exit_code == 2
    assert (
        "teams.webhooks without a URL in the environment: leadership (TEAMS_WEBHOOK_LEADERSHIP)"
        in (result.output)
    )


def test_a_webhook_url_comes_from_its_variable_and_is_never_shown(tmp_path: Path) -> None:
    config = tmp_path / "kpibot.yaml"
    config.write_text(WEBHOOKS, encoding="utf-8")

    settings = load_settings(config, {"TEAMS_WEBHOOK_LEADERSHIP": URL})

    assert settings.secrets.teams_webhooks == {"leadership": URL}
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings)
    assert settings.unset_webhook_variables() == []
    assert check_config(tmp_path, WEBHOOKS, {"TEAMS_WEBHOOK_LEADERSHIP": URL}).exit_code == 0
