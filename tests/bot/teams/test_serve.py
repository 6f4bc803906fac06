"""``kpibot serve`` with Teams, as operators start it (real processes): Slack in HTTP mode and
Teams on one server; Teams alone on ``PORT``; a half-configured Teams stops with the missing
variable's name."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.http_app import EVENTS_PATH
from tests.bot.delivery_support import kpibot
from tests.bot.http_support import post, sign
from tests.bot.slack_world import ADMIN, SECRET, command_body, make_world, wait_for
from tests.bot.teams.world import REP, environment, personal_message
from tests.bot.test_serve import _started, stop
from tests.fakes.bot_framework import FakeBotFramework
from tests.fakes.slack_api import TOKEN, FakeSlack


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[tuple[FakeSlack, FakeBotFramework, Path]]:
    with FakeSlack() as slack, FakeBotFramework() as teams:
        teams.add_member(REP)
        world = make_world(tmp_path, slack)
        world.service.engine.dispose()
        yield slack, teams, world.path


def ask_teams(base: str, teams: FakeBotFramework, token: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(personal_message(teams, "ca ce trimestre", REP)).encode()
    return post(base + "/api/messages", body, headers)[0]


def test_slack_and_teams_are_served_by_one_process(fakes) -> None:  # type: ignore[no-untyped-def]
    slack, teams, config = fakes
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.url}
    args = ("serve", "--http", "--host", "127.0.0.1", "--port", "0")
    process = kpibot(config, *args, env={**env, **environment(teams), "SLACK_APP_TOKEN": ""})
    try:
        base = _started(process)
        body = command_body(slack, "revenue", ADMIN).encode()
        request = urllib.request.Request(base + EVENTS_PATH, data=body, headers=sign(body))
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        assert ask_teams(base, teams, None) == 401
        assert ask_teams(base, teams, teams.token()) == 200
        wait_for(lambda: slack.responses and teams.posted(), timeout=60)
    finally:
        err = stop(process)
    assert "Chiffre d'affaires" in slack.responses[0]["text"]
    (answer,) = teams.posted()
    assert "Chiffre d'affaires" in json.dumps(answer.json(), ensure_ascii=False)
    assert "Traceback" not in err
    assert "test-teams-client-secret" not in err  # the secret is never logged


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_teams_alone_on_port(fakes) -> None:  # type: ignore[no-untyped-def]
    _, teams, config = fakes
    port = _free_port()
    no_slack = {"SLACK_BOT_TOKEN": "", "SLACK_SIGNING_SECRET": "", "SLACK_APP_TOKEN": ""}
    env = {**no_slack, **environment(teams), "PORT": str(port)}
    process = kpibot(config, "serve", "--host", "127.0.0.1", env=env)
    try:
        base = _started(process)
        assert base == f"http://127.0.0.1:{port}"
        assert ask_teams(base, teams, teams.token()) == 200
        with urllib.request.urlopen(base + "/healthz", timeout=30) as response:
            assert response.read() == b"ok"
    finally:
        stop(process)
    assert len(teams.posted()) == 1


def test_a_client_id_without_its_secret_is_refused_by_name(fakes) -> None:  # type: ignore[no-untyped-def]
    _, teams, config = fakes
    env = {**environment(teams), "TEAMS_CLIENT_SECRET": "", "SLACK_BOT_TOKEN": ""}
    process = kpibot(config, "serve", env=env)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 2
    assert "TEAMS_CLIENT_SECRET is not set" in err
    assert "Traceback" not in err
