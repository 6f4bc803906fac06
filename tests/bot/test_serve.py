"""``kpibot serve`` as operators start it: Socket Mode with the bot and app tokens alone, HTTP
mode with the bot token and signing secret alone (real processes against the fake Slack Web
API and a fake Socket Mode endpoint); a missing, mis-typed, wrong or revoked credential is a
message naming the variable and exit code 2; ``.env`` in the working directory is read
without overriding the process environment; and a huge body does not grow the serving
process."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from click.testing import CliRunner, Result

from bot.cli import main
from bot.http_app import EVENTS_PATH, MAX_BODY_BYTES
from bot.settings import Secrets, process_environment
from bot.slack_tokens import TokenProblem, required
from tests.bot.delivery_support import ROOT, kpibot
from tests.bot.http_support import raw_exchange, request_head, sign
from tests.bot.slack_world import ADMIN, SECRET, command_body, make_world, wait_for
from tests.fakes.slack_api import APP_TOKEN, TOKEN, FakeSlack
from tests.fakes.socket_mode import FakeSocketMode


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


@pytest.fixture
def config(tmp_path: Path, fake: FakeSlack) -> Path:
    """The demo company's config and store, with the chat settings of the Slack tests."""
    world = make_world(tmp_path, fake)
    world.service.engine.dispose()
    return world.path


def stop(process: subprocess.Popen[str]) -> str:
    """Terminate a server we started; its stderr."""
    process.terminate()
    return process.communicate(timeout=30)[1]


def test_socket_mode_serves_with_the_bot_and_app_tokens_alone(fake, config):
    with FakeSocketMode() as socket_mode:
        fake.socket_url = socket_mode.url
        # No SLACK_SIGNING_SECRET: Socket Mode requests are not signed.
        env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": APP_TOKEN, "SLACK_API_URL": fake.url}
        process = kpibot(config, "serve", env={**env, "SLACK_SIGNING_SECRET": ""})
        try:
            socket_mode.wait_connected(timeout=60)
            command = dict(parse_qsl(command_body(fake, "revenue", ADMIN)))
            envelope = socket_mode.send("slash_commands", command)
            socket_mode.wait_ack(envelope, timeout=30)
            wait_for(lambda: fake.responses, timeout=60)
        finally:
            err = stop(process)
    assert "Chiffre d'affaires" in fake.responses[0]["text"]
    opened = fake.calls_to("apps.connections.open")
    assert [call.headers["authorization"] for call in opened] == [f"Bearer {APP_TOKEN}"] * len(
        opened
    )
    assert "Traceback" not in err


def _started(process: subprocess.Popen[str]) -> str:
    """The base URL uvicorn prints once it listens (``--port 0``: a free port)."""
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        match = re.search(r"Uvicorn running on (http://\S+)", line)
        if match:
            return match.group(1)
        if not line and process.poll() is not None:
            break
    raise AssertionError("uvicorn did not start:\n" + "".join(seen))


def peak_memory(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


def test_http_mode_serves_and_does_not_buffer_a_200_mb_body(fake, config):
    # No SLACK_APP_TOKEN: HTTP mode does not use it.
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.url}
    args = ("serve", "--http", "--host", "127.0.0.1", "--port", "0")
    process = kpibot(config, *args, env={**env, "SLACK_APP_TOKEN": ""})
    try:
        base = _started(process)
        before = peak_memory(process.pid)
        head = request_head({"Content-Type": "application/x-www-form-urlencoded",
                      "Transfer-Encoding": "chunked"})  # fmt: skip
        chunk = 1024 * 1024
        framed = b"%x\r\n" % chunk + b"x" * chunk + b"\r\n"
        raw, sent = raw_exchange(base, head, (framed for _ in range(200)))
        after = peak_memory(process.pid)
        body = command_body(fake, "revenue", ADMIN).encode()
        request = urllib.request.Request(base + EVENTS_PATH, data=body, headers=sign(body))
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        wait_for(lambda: fake.responses, timeout=60)
    finally:
        err = stop(process)
    assert raw.startswith(b"HTTP/1.1 413 ")
    # The client was stopped after about the limit (plus what socket buffers hold) of the
    # 200 MB it offered, and the server's peak memory barely moved.
    assert sent < 32 * MAX_BODY_BYTES
    assert after - before < 16 * MAX_BODY_BYTES, (before, after)
    assert "Chiffre d'affaires" in fake.responses[0]["text"]
    refused = [line for line in err.splitlines() if "refused a request" in line]
    assert len(refused) == 1, err
    assert refused[0].endswith(
        f"INFO bot.http_app: refused a request to /slack/events: 413 body larger than "
        f"{MAX_BODY_BYTES} bytes"
    )
    assert "Traceback" not in err


# -- credentials that cannot work ------------------------------------------------------------


def serve(config: Path, *args: str, **env: str | None) -> Result:
    """``kpibot serve`` in this process; it must stop before serving."""
    return CliRunner().invoke(main, ["--config", str(config), "serve", *args], env=env)


# The demo company's config: a French organisation, told in French.
BOT = "le Bot User OAuth Token (xoxb-…) de la page OAuth & Permissions"
APP = "un App-Level Token (xapp-…) avec la portée connections:write, de la page Basic Information"
SIGNING = "le Signing Secret de la page Basic Information → App Credentials"
SOCKET_MODE = "le Socket Mode (par défaut\u00a0; --http pour le mode HTTP)"
UNKNOWN = (
    "a été refusé (invalid_auth)\u00a0: Slack ne le connaît pas\u00a0: mal recopié, révoqué ou "
    "d'une autre application\u00a0; mettez-y"
)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            (),
            {"SLACK_BOT_TOKEN": "", "SLACK_APP_TOKEN": APP_TOKEN},
            f"SLACK_BOT_TOKEN n'est pas défini\u00a0: {SOCKET_MODE} en a besoin. Mettez-y {BOT}",
        ),
        (
            (),
            {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": ""},
            f"SLACK_APP_TOKEN n'est pas défini\u00a0: {SOCKET_MODE} en a besoin. Mettez-y {APP}",
        ),
        (
            ("--http",),
            {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": ""},
            "SLACK_SIGNING_SECRET n'est pas défini\u00a0: le mode HTTP en a besoin. Mettez-y "
            f"{SIGNING}",
        ),
        # The bot token pasted as the app token, and the reverse.
        (
            (),
            {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": TOKEN},
            f"SLACK_APP_TOKEN contient un jeton de bot\u00a0; mettez-y {APP}",
        ),
        (
            (),
            {"SLACK_BOT_TOKEN": APP_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN},
            f"SLACK_BOT_TOKEN contient un jeton d'application (app-level)\u00a0; mettez-y {BOT}",
        ),
        (
            (),
            {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": "secret-typed-by-hand"},
            f"SLACK_APP_TOKEN contient autre chose qu'un jeton Slack\u00a0; mettez-y {APP}",
        ),
        # Well-formed, but Slack does not know them (revoked, or from another app).
        (
            (),
            {"SLACK_BOT_TOKEN": "xoxb-revoked-1", "SLACK_APP_TOKEN": APP_TOKEN},
            f"SLACK_BOT_TOKEN {UNKNOWN} {BOT}",
        ),
        (
            (),
            {"SLACK_BOT_TOKEN": TOKEN, "SLACK_APP_TOKEN": "xapp-1-revoked"},
            f"SLACK_APP_TOKEN {UNKNOWN} {APP}",
        ),
        (
            ("--http",),
            {"SLACK_BOT_TOKEN": "xoxb-revoked-1", "SLACK_SIGNING_SECRET": SECRET},
            f"SLACK_BOT_TOKEN {UNKNOWN} {BOT}",
        ),
    ],
    ids=[
        "no bot token",
        "socket mode without app token",
        "http mode without signing secret",
        "bot token as app token",
        "app token as bot token",
        "app token not a token",
        "unknown bot token",
        "unknown app token",
        "unknown bot token, http mode",
    ],
)
def test_credentials_that_cannot_work_are_a_message_naming_the_variable(
    fake, config, tmp_path, monkeypatch, args, env, message
):
    monkeypatch.chdir(tmp_path)
    result = serve(config, *args, SLACK_API_URL=fake.url, **env)
    assert (result.exit_code, result.stderr) == (2, f"kpibot: {message}\n")
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for value in env.values():
        if value:
            assert value not in result.stderr  # the secret itself is never echoed


@pytest.mark.parametrize(
    ("secrets", "http_mode", "english"),
    [
        (Secrets(slack_app_token=APP_TOKEN), False,
         "SLACK_BOT_TOKEN is not set: Socket Mode (the default; --http for HTTP mode) needs the "
         "Bot User OAuth Token (xoxb-…) from OAuth & Permissions"),
        (Secrets(slack_bot_token=TOKEN), True,
         "SLACK_SIGNING_SECRET is not set: HTTP mode needs the Signing Secret from Basic "
         "Information → App Credentials"),
        (Secrets(slack_bot_token=TOKEN, slack_app_token="xoxp-1"), False,
         "SLACK_APP_TOKEN holds a user token; it needs an App-Level Token (xapp-…) with "
         "connections:write, from Basic Information"),
    ],
)  # fmt: skip
def test_a_credential_problem_is_english_for_the_log(
    secrets: Secrets, http_mode: bool, english: str
) -> None:
    # What an English organisation reads, and what a log line says whatever the language.
    with pytest.raises(TokenProblem) as problem:
        required(secrets, http_mode=http_mode)
    assert str(problem.value) == english


# -- .env -----------------------------------------------------------------------------------


def test_the_process_environment_wins_over_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("A=from file\nB=from file\n# a comment\nC='quoted value'\nEMPTY=\n")
    assert process_environment({"A": "from process", "EMPTY": ""}, dotenv) == {
        "A": "from process",
        "B": "from file",
        "C": "quoted value",
        "EMPTY": "",
    }
    assert process_environment({"A": "x"}, tmp_path / "absent") == {"A": "x"}


def test_following_the_readme_copy_env_example_to_env_works(fake, config, tmp_path, monkeypatch):
    """``cp .env.example .env``, fill in the tokens, run ``kpibot serve``: the variables come
    from the file, except those the process sets."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / ".env.example", ".env")
    # As copied, nothing is filled in yet: the message says what to put there.
    result = serve(config, SLACK_API_URL=fake.url, SLACK_BOT_TOKEN=None, SLACK_APP_TOKEN=None)
    assert result.stderr == (
        f"kpibot: SLACK_BOT_TOKEN n'est pas défini\u00a0: {SOCKET_MODE} en a besoin. "
        f"Mettez-y {BOT}\n"
    )

    filled = Path(".env").read_text(encoding="utf-8")
    filled = filled.replace("SLACK_BOT_TOKEN=\n", f"SLACK_BOT_TOKEN={TOKEN}\n")
    filled = filled.replace("SLACK_APP_TOKEN=\n", "SLACK_APP_TOKEN=xapp-1-from-dotenv\n")
    filled = filled.replace("KPIBOT_CONFIG=kpibot.yaml", f"KPIBOT_CONFIG={config}")
    Path(".env").write_text(filled, encoding="utf-8")
    # The bot token and the config come from .env; the app token there is refused by Slack,
    # which shows it was the one sent.
    result = CliRunner().invoke(
        main, ["serve"], env={"SLACK_API_URL": fake.url, "SLACK_BOT_TOKEN": None,
                              "SLACK_APP_TOKEN": None, "KPIBOT_CONFIG": None},
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith(f"kpibot: SLACK_APP_TOKEN {UNKNOWN} {APP}")
    opened = fake.calls_to("apps.connections.open")[-1]
    assert opened.headers["authorization"] == "Bearer xapp-1-from-dotenv"
    assert fake.calls_to("auth.test")[-1].headers["authorization"] == f"Bearer {TOKEN}"

    # A variable set in the process wins over the file.
    result = serve(config, SLACK_API_URL=fake.url, SLACK_BOT_TOKEN=None, SLACK_APP_TOKEN=TOKEN)
    assert (
        result.stderr == f"kpibot: SLACK_APP_TOKEN contient un jeton de bot\u00a0; mettez-y {APP}\n"
    )


def test_an_unreadable_dotenv_is_a_message(fake, config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path(".env").write_bytes(b"SLACK_BOT_TOKEN=\xff\xfe\n")
    result = serve(config, SLACK_API_URL=fake.url)
    assert result.exit_code == 2
    assert result.stderr.startswith("kpibot: invalid configuration .env:\n  - cannot be read")
    assert "Traceback" not in result.stderr
