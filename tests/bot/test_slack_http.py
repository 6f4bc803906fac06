"""HTTP mode over a real socket: uvicorn on 127.0.0.1, port 0, in a thread, serving the real
app. Slack's documented signature example with the clock pinned, bad signatures (401, no work
done), a /kpi answer, and /healthz."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from slack_sdk.signature import Clock

from bot.http_app import EVENTS_PATH, build_asgi
from bot.slack_app import build_app
from tests.bot.slack_world import ADMIN, NOW, World, command_body, make_world, signed_headers
from tests.fakes.slack_api import FakeSlack

# Slack's documented example (https://docs.slack.dev/authentication/verifying-requests-from-slack/).
# The body's token is the docs' xyzz0WbapA4vBCDEFasx0q6G: with any other token the documented
# signature does not match (the copy of the body had a token from another example).
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = 1531420618
DOC_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    "channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    "command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F"
    "T1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
    "803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


class PinnedClock(Clock):
    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at


class Server:
    def __init__(self, asgi) -> None:  # type: ignore[no-untyped-def]
        config = uvicorn.Config(asgi, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def post(url: str, body: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def flat(headers: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in headers.items()}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[World, str]]:
    with FakeSlack() as fake:
        world = make_world(tmp_path, fake)
        with Server(build_asgi(world.app)) as base:
            yield world, base
        world.service.engine.dispose()


def test_healthz_and_a_kpi_answer_over_http(running):
    world, base = running
    with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
        assert response.read() == b"ok"
    body = command_body(world.fake, "revenue", ADMIN)
    assert post(base + EVENTS_PATH, body, flat(signed_headers(body))) == 200
    deadline = time.monotonic() + 10
    while not world.fake.responses:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert "Chiffre d'affaires" in world.fake.responses[0]["text"]


@pytest.mark.parametrize(
    ("make_headers", "mutate"),
    [
        (lambda body: {}, lambda body: body),
        (lambda body: flat(signed_headers(body)), lambda body: body.replace("revenue", "cpa")),
        (lambda body: flat(signed_headers(body, timestamp=int(time.time()) - 301)), lambda b: b),
    ],
    ids=["unsigned", "tampered", "stale"],
)
def test_bad_signatures_get_401_and_no_work(running, make_headers, mutate):
    world, base = running
    body = command_body(world.fake, "revenue", ADMIN)
    headers = make_headers(body)
    calls = len(world.fake.calls)
    assert post(base + EVENTS_PATH, mutate(body), headers) == 401
    time.sleep(0.05)
    assert world.fake.calls[calls:] == []


def _documented_app(tmp_path: Path, fake: FakeSlack, clock_at: float):  # type: ignore[no-untyped-def]
    world = make_world(tmp_path, fake)
    settings = world.settings.model_copy(
        update={"secrets": world.settings.secrets.model_copy(
            update={"slack_signing_secret": DOC_SECRET}
        )}
    )  # fmt: skip
    return world, build_app(
        settings, world.service, clock=lambda: NOW, verification_clock=PinnedClock(clock_at)
    )


@pytest.mark.parametrize(
    ("clock_at", "signature", "expected"),
    [
        # Slack's example verifies; no listener for /webhook-collect, so Bolt answers 404.
        (DOC_TIMESTAMP, DOC_SIGNATURE, 404),
        # Four minutes later it still verifies.
        (DOC_TIMESTAMP + 240, DOC_SIGNATURE, 404),
        # More than five minutes later: a replay, refused.
        (DOC_TIMESTAMP + 301, DOC_SIGNATURE, 401),
        # One hex digit changed: refused.
        (DOC_TIMESTAMP, DOC_SIGNATURE[:-1] + "0", 401),
    ],
)
def test_slacks_documented_signature_example(tmp_path, clock_at, signature, expected):
    with FakeSlack() as fake:
        world, app = _documented_app(tmp_path, fake, clock_at)
        with Server(build_asgi(app)) as base:
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": str(DOC_TIMESTAMP),
                "X-Slack-Signature": signature,
            }
            calls = len(fake.calls)
            assert post(base + EVENTS_PATH, DOC_BODY, headers) == expected
            assert fake.calls[calls:] == []
        world.service.engine.dispose()
