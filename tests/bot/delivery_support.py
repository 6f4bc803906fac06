"""Helpers for the scheduling and delivery tests: a config file per test, settings pointing at
a FakeSlack, a runtime whose retries wait milliseconds, a recording notifier for another
surface, a PostgreSQL schema per test for the multi-process tests, and `kpibot` as a real
subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from sqlalchemy import create_engine, text

from bot.delivery.notifier import Delivered, Message
from bot.delivery.retry import CallFailure, SurfaceCallError
from bot.scheduling.runtime import Runtime, build_runtime
from bot.settings import Settings, load_settings
from tests.fakes.slack_api import TOKEN, FakeSlack

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "CADMIN"
FAST_DELIVERY = {"backoff_base": 0.01, "backoff_cap": 0.05, "max_retries": 6}


@dataclass
class RecordingNotifier:
    """A stand-in for another surface's notifier (Teams): records what it sends, and fails
    the first ``failures`` sends as told."""

    failures: list[CallFailure] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> Delivered:
        if self.failures:
            raise SurfaceCallError(self.failures.pop(0))
        self.sent.append(message)
        return Delivered(message.destination, f"activity-{len(self.sent)}")

    def update(self, delivered: Delivered, message: Message) -> Delivered:
        self.sent.append(message)
        return delivered

    def reply(self, delivered: Delivered, message: Message) -> Delivered:
        self.sent.append(message)
        return Delivered(delivered.channel, f"reply-{len(self.sent)}")


def write_config(directory: Path, **sections: Any) -> Path:
    """A config file with fast retries and an admin channel; ``sections`` override."""
    config: dict[str, Any] = {
        "organisation": {"name": "Acme", "timezone": "Europe/Paris", "locale": "fr_FR"},
        "database": {"url": f"sqlite:///{directory / 'kpibot.db'}"},
        "slack": {"admin_channel": ADMIN},
        "delivery": FAST_DELIVERY,
        "scheduling": {"claim_lease": 1},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = directory / "kpibot.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def subscriptions(count: int, time: str = "08:30", **extra: Any) -> list[dict[str, Any]]:
    return [
        {"id": f"s{i:03d}", "channel": f"C{i:03d}", "time": time, "days": "mon-sun", **extra}
        for i in range(count)
    ]


def environment(fake: FakeSlack, database_url: str | None = None) -> dict[str, str]:
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": fake.url}
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def settings_for(config: Path, fake: FakeSlack, database_url: str | None = None) -> Settings:
    return load_settings(config, environment(fake, database_url))


def runtime_for(config: Path, fake: FakeSlack, database_url: str | None = None) -> Runtime:
    return build_runtime(settings_for(config, fake, database_url))


def digests_per_channel(fake: FakeSlack) -> dict[str, int]:
    out: dict[str, int] = {}
    for post in fake.posts():
        key = ((post.metadata or {}).get("event_payload") or {}).get("idempotency_key", "")
        if key.startswith("digest:"):
            out[post.channel] = out.get(post.channel, 0) + 1
    return out


def keys_posted(fake: FakeSlack) -> list[str]:
    return [
        str(((p.metadata or {}).get("event_payload") or {}).get("idempotency_key"))
        for p in fake.posts()
    ]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database URL whose connections use a fresh schema (dropped afterwards), so that
    several test runs share one PostgreSQL server without seeing each other."""
    base = os.environ.get("KPIBOT_TEST_DATABASE_URL")
    if not base:
        pytest.skip("KPIBOT_TEST_DATABASE_URL is not set: no PostgreSQL to test against")
    schema = f"k4_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# What the installed ``kpibot`` script runs (pyproject.toml's [project.scripts]).
ENTRY_POINT = "from bot.launch import main; main()"


def kpibot(config: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``kpibot --config CONFIG ARGS…`` as a real process (the installed entry point's code)."""
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY_POINT, "--config", str(config), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    """Wait for a ``kpibot`` process; it must succeed. Returns its output."""
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out
