"""``POST /api/messages``: the Bot Framework's JWT checked for real against a local OpenID
metadata document and its keys (tokens signed by a test RSA key), and what the route does with
bodies that are too large, not JSON or not activities."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.http_app import MAX_BODY_BYTES
from tests.bot.http_support import post, raw_exchange
from tests.bot.teams.world import REP, TeamsWorld, personal_message, teams_world
from tests.fakes.bot_framework import other_key


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    with teams_world(tmp_path) as world:
        yield world


def _answers(world: TeamsWorld) -> int:
    return len(world.fake.posted())


def test_a_valid_token_is_accepted_and_the_question_answered(world: TeamsWorld) -> None:
    status, _ = world.post(personal_message(world.fake, "aide"))
    assert status == 200
    assert _answers(world) == 1
    # The keys were found through the OpenID metadata's jwks_uri.
    paths = [r.path for r in world.fake.requests if r.method == "GET"]
    assert paths[:2] == ["/v1/.well-known/openidconfiguration", "/v1/.well-known/keys"]


@pytest.mark.parametrize(
    ("case", "token"),
    [
        # (what is wrong, how the token is made)
        ("signed by a key the Bot Framework does not publish", lambda f: f.token(key=other_key())),
        ("meant for another bot", lambda f: f.token(audience="another-app-id")),
        ("from another issuer", lambda f: f.token(issuer="https://evil.example")),
        (
            "expired an hour ago (beyond the 5-minute clock skew)",
            lambda f: f.token(expires_in=-3600),
        ),
        ("for another service URL", lambda f: f.token(service_url="https://evil.example/")),
        ("not a JWT at all", lambda f: "not-a-jwt"),
        ("missing", lambda f: None),
    ],
)
def test_requests_without_a_valid_token_are_refused_with_401(
    world: TeamsWorld, case: str, token: object
) -> None:
    status, body = world.post(personal_message(world.fake, "aide"), token=token(world.fake))  # type: ignore[operator]
    assert status == 401, case
    assert "error" in body
    assert _answers(world) == 0, "nothing answered"


def test_a_basic_or_malformed_authorization_header_is_401(world: TeamsWorld) -> None:
    body = json.dumps(personal_message(world.fake, "aide")).encode()
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "bearer " + world.fake.token()):
        status, _ = post(world.base + "/api/messages", body, {"Authorization": header})
        assert status == 401, header
    assert _answers(world) == 0


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "the body is not JSON"),
        (b"\xff\xfe", "the body is not JSON"),
        (b"[1, 2]", "expected an activity"),
        (b'{"type": 3}', "expected an activity"),
        # Signed, but no sender, recipient nor conversation.
        (b'{"type": "message", "text": "aide", "serviceUrl": "SERVICE"}', "not a valid activity"),
    ],
)
def test_malformed_bodies_are_400_never_500(world: TeamsWorld, body: bytes, why: str) -> None:
    headers = {"Authorization": f"Bearer {world.fake.token()}"}
    body = body.replace(b"SERVICE", world.fake.service_url.encode())
    status, answer = post(world.base + "/api/messages", body, headers)
    assert status == 400
    assert why in json.loads(answer)["error"]


def test_activities_kpibot_does_not_handle_are_acknowledged(world: TeamsWorld) -> None:
    typing = {**personal_message(world.fake, ""), "type": "typing"}
    status, _ = world.post(typing)
    assert status == 200
    assert _answers(world) == 0


def test_a_declared_200_mb_body_is_refused_without_asking_for_it(world: TeamsWorld) -> None:
    # Like curl with a large body: the client waits for "100 Continue" before sending it.
    head = (
        "POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {world.fake.token()}\r\nExpect: 100-continue\r\n"
        f"Content-Length: {200 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer, _ = raw_exchange(world.base, head, ())
    status_line, *headers = answer.partition(b"\r\n\r\n")[0].split(b"\r\n")
    # No "100 Continue" first: the body was never asked for; and the server hangs up.
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"connection: close" in [h.lower() for h in headers]
    assert MAX_BODY_BYTES == 1024 * 1024


def test_unauthenticated_development_mode_accepts_requests_without_a_token(
    tmp_path: Path,
) -> None:
    with teams_world(tmp_path, KPIBOT_TEAMS_UNAUTHENTICATED="dev") as world:
        status, _ = world.post(personal_message(world.fake, "aide", REP), token=None)
        assert status == 200
        assert len(world.fake.posted()) == 1
