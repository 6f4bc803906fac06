"""A kpibot wired to a fake Slack: the demo company in a temporary SQLite store, the Bolt app
built from settings whose Web API base URL is the fake's, and helpers to sign requests."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.delivery.slack import SlackNotifier
from bot.delivery.surfaces import Dispatcher
from bot.demo import build_demo, write_demo_config
from bot.scheduling.runtime import default_surfaces
from bot.service import KpiService
from bot.settings import Settings, load_settings
from bot.slack_app import build_app
from bot.store.database import make_engine, migrate, session_factory, transaction
from tests.fakes.slack_api import TOKEN, FakeSlack

PARIS = ZoneInfo("Europe/Paris")
TODAY = date(2026, 11, 26)  # a Thursday
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=PARIS)
SECRET = "test-signing-secret-0123456789"

# Users of the test workspace. The rep is matched to the CRM by email through users.info.
ADMIN, MANAGER, REP, OTHER_REP, STRANGER = "UADMIN", "UMGRLYON", "UREP1", "UREP2", "USTRANGER"
REP_NAME, REP_EMAIL = "Antoine Lefèvre", "antoine.lefevre@atelier-lumiere.example"
OTHER_NAME, OTHER_EMAIL = "Camille Laurent", "camille.laurent@atelier-lumiere.example"

CHAT_CONFIG = """
slack:
  leadership_channel: CLEAD
  admin_channel: CADMIN
  team_channels:
    Lyon: CLYON
    Paris Grands Comptes: CPARIS
access:
  admins: [UADMIN]
  managers:
    UMGRLYON: Lyon
  unknown_users: company
alerts:
  repeat_interval: 1d
  for: 1                            # these tests follow one run at a time
  resolve_after: 1
  quiet_hours: {start: "20:00", end: "08:00"}
  business_days: mon-fri
subscriptions:
  - id: leadership
    channel: CLEAD
    time: "08:30"
    kpis: [revenue, pipeline]
"""


@dataclass
class World:
    fake: FakeSlack
    settings: Settings
    service: KpiService
    app: App
    path: Path

    def sessions(self):  # type: ignore[no-untyped-def]
        return session_factory(self.service.engine)

    def dispatcher(self) -> Dispatcher:
        """Straight to the fake Slack, rendered by the Slack surface (no outbox)."""
        client = WebClient(token=TOKEN, base_url=self.fake.url)
        surfaces = default_surfaces(self.settings, SlackNotifier(client))
        return Dispatcher(surfaces, surfaces)


_TEMPLATE: dict[str, Path] = {}


def _demo_files() -> Path:
    """The demo company's config and store, built once per test session (it takes seconds)
    and copied into each test's directory; removed when the session's process ends."""
    if "dir" not in _TEMPLATE:
        base = Path(tempfile.mkdtemp(prefix="kpibot-slack-demo-"))
        atexit.register(shutil.rmtree, base, True)
        write_demo_config(base / "kpibot.yaml", today=TODAY)
        settings = load_settings(base / "kpibot.yaml", {})
        engine = make_engine(settings.database_url)
        migrate(engine)
        with transaction(session_factory(engine)) as session:
            build_demo(session, TODAY)
        engine.dispose()
        _TEMPLATE["dir"] = base
    return _TEMPLATE["dir"]


def make_world(
    tmp_path: Path, fake: FakeSlack, extra: str = "", *, chat_config: str = CHAT_CONFIG
) -> World:
    path = tmp_path / "kpibot.yaml"
    template = _demo_files()
    shutil.copy(template / "kpibot.yaml", path)
    shutil.copy(template / "kpibot.db", tmp_path / "kpibot.db")
    with path.open("a", encoding="utf-8") as out:
        out.write(chat_config + extra)
    settings = load_settings(
        path,
        {
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.url,
        },
    )
    service = KpiService(settings)
    fake.users_by_email.update({REP_EMAIL: REP, OTHER_EMAIL: OTHER_REP})
    fake.members.update({ADMIN, MANAGER, STRANGER})
    app = build_app(settings, service, clock=lambda: NOW)
    return World(fake, settings, service, app, path)


def world_fixture(tmp_path: Path) -> Iterator[World]:
    with FakeSlack() as fake:
        world = make_world(tmp_path, fake)
        yield world
        world.service.engine.dispose()


def signed_headers(body: str, secret: str = SECRET, timestamp: int | None = None) -> dict[str, Any]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {
        "content-type": ["application/x-www-form-urlencoded"],
        "x-slack-signature": [signature],
        "x-slack-request-timestamp": [stamp],
    }


def command_body(fake: FakeSlack, text: str, user: str, channel: str = "CGENERAL") -> str:
    return urlencode(
        {
            "token": "legacy",
            "team_id": "T1",
            "team_domain": "atelier",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/kpi",
            "text": text,
            "response_url": fake.response_url(),
            "trigger_id": "1.2.3",
            "api_app_id": "A1",
        }
    )


def action_body(
    fake: FakeSlack, action_id: str, value: str, user: str, *, channel: str = "CGENERAL",
    ts: str = "1.0", selected: bool = False,
) -> str:  # fmt: skip
    action: dict[str, Any] = {"action_id": action_id, "block_id": "b", "type": "button"}
    if selected:
        action["type"] = "static_select"
        action["selected_option"] = {"value": value, "text": {"type": "plain_text", "text": "x"}}
    else:
        action["value"] = value
    payload = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": user},
        "api_app_id": "A1",
        "channel": {"id": channel},
        "message": {"ts": ts},
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "response_url": fake.response_url(),
        "trigger_id": "1.2.3",
        "actions": [action],
    }
    return urlencode({"payload": json.dumps(payload)})


def event_body(event: dict[str, Any]) -> str:
    return json.dumps(
        {
            "token": "legacy",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": "Ev1",
            "event_time": 1,
            "event": event,
        }
    )


def dispatch(world: World, body: str, **headers: Any) -> Any:
    all_headers = signed_headers(body)
    if body.startswith("{"):
        all_headers["content-type"] = ["application/json"]
    all_headers.update(headers)
    return world.app.dispatch(BoltRequest(body=body, headers=all_headers))


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    """Listeners run after ack() in Bolt's thread pool: wait until their effect shows."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the listener")
        time.sleep(0.01)
