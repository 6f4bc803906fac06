"""One question language, one answer: `kpibot ask`, `/kpi`, a direct message and an @mention
give the same answer to the same viewer, for sub-commands, English and French phrasings of the
same request, problems and refusals (issue 7, "One question language everywhere").

The Slack surfaces must post the same blocks (but for `/kpi`'s Share button) and the same
fallback text; the terminal must print that text without Slack's markup. The test workspace
shows rep figures in every channel (`visibility.rep_figures: company`), so that a mention,
which the whole channel reads, is not narrower than what its asker may see."""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.rendering import validate_blocks
from tests.bot.slack_world import (
    ADMIN,
    NOW,
    OTHER_NAME,
    REP,
    World,
    command_body,
    dispatch,
    event_body,
    make_world,
    wait_for,
)
from tests.fakes.slack_api import BOT_USER, FakeSlack

COMPANY_FIGURES = "visibility:\n  rep_figures: company\n"
_ts = itertools.count(1)

Answer = tuple[str, str]  # the fallback text, the blocks as JSON


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with FakeSlack() as fake:
        built = make_world(tmp_path_factory.mktemp("parity"), fake, COMPANY_FIGURES)
        yield built
        built.service.engine.dispose()


def _answer(text: str, blocks: Any) -> Answer:
    if isinstance(blocks, str):  # form-encoded calls carry their blocks as a JSON string
        blocks = json.loads(blocks)
    validate_blocks(blocks)
    kept = [b for b in blocks if b.get("block_id") != "kpi.share"]
    return text, json.dumps(kept, ensure_ascii=False)


def by_command(world: World, text: str, user: str) -> Answer:
    before = len(world.fake.responses)
    assert dispatch(world, command_body(world.fake, text, user)).status == 200
    wait_for(lambda: len(world.fake.responses) > before)
    reply = world.fake.responses[before]
    assert reply["response_type"] == "ephemeral"
    return _answer(reply["text"], reply["blocks"])


def _bot_posts(world: World, channel: str, thread: str | None = None) -> list[Any]:
    return [p for p in world.fake.posts(channel) if p.user == BOT_USER and p.thread_ts == thread]


def by_direct_message(world: World, text: str, user: str) -> Answer:
    channel = f"D{user}"
    before = len(_bot_posts(world, channel))
    event = {"type": "message", "channel_type": "im", "channel": channel, "user": user,
             "text": text, "ts": f"{next(_ts)}.000001"}  # fmt: skip
    assert dispatch(world, event_body(event)).status == 200
    wait_for(lambda: len(_bot_posts(world, channel)) > before)
    posted = _bot_posts(world, channel)[before]
    return _answer(posted.text, posted.blocks)


def by_mention(world: World, text: str, user: str) -> Answer:
    said = f"<@{BOT_USER}> {text}"
    ts = world.fake.user_says("CGENERAL", user, said)
    ephemerals = len(world.fake.ephemerals)
    event = {"type": "app_mention", "channel": "CGENERAL", "user": user, "text": said, "ts": ts}
    assert dispatch(world, event_body(event)).status == 200
    in_thread = lambda: _bot_posts(world, "CGENERAL", ts)  # noqa: E731
    wait_for(lambda: bool(in_thread()) or len(world.fake.ephemerals) > ephemerals)
    if in_thread():
        [posted] = in_thread()
        return _answer(posted.text, posted.blocks)
    refusal = world.fake.ephemerals[ephemerals]
    assert refusal["user"] == user and refusal["thread_ts"] == ts
    return _answer(refusal["text"], refusal["blocks"])


def by_cli(world: World, text: str) -> str:
    """``kpibot ask`` on the same config and store; its operator is an admin."""
    args = ["--config", str(world.path), "ask", "--as-of", NOW.isoformat(), text]
    result = CliRunner().invoke(main, args)
    return result.output.strip()


def plain(slack_text: str) -> str:
    """Slack's fallback text without its markup: the terminal's words."""
    return html.unescape(slack_text).replace("*", "").strip()


# Each row: phrasings of one request (English and French where both exist), who asks, whether
# the terminal (an admin) can ask it too, and something the answer must say.
ROWS = [
    (("revenue", "ca"), ADMIN, True, "Chiffre d'affaires"),
    (("revenue team Lyon last quarter", "ca équipe Lyon trimestre dernier"), ADMIN, True,
     "Équipe Lyon"),
    (("pipeline by rep", "pipe par commercial"), ADMIN, True, OTHER_NAME),
    (("leaderboard", "classement"), ADMIN, True, OTHER_NAME),
    (("team Lyon", "équipe Lyon"), ADMIN, True, "Équipe Lyon"),
    (("alerts", "alertes"), ADMIN, True, "alerte"),
    (("targets", "objectifs"), ADMIN, True, "Objectifs"),
    (("help", "aide"), ADMIN, True, "/kpi classement"),
    (("revenu",), ADMIN, False, "revenue"),  # not understood: help, with "did you mean"
    (("revenue rep Camille Laurent", "ca commercial Camille Laurent"), REP, False, "Désolé"),
    (("team Paris Grands Comptes", "équipe Paris Grands Comptes"), REP, False,
     "Paris Grands Comptes"),
]  # fmt: skip


@pytest.mark.parametrize(("phrasings", "user", "cli", "says"), ROWS, ids=lambda v: str(v)[:40])
def test_every_surface_gives_the_same_answer(
    world: World, phrasings: tuple[str, ...], user: str, cli: bool, says: str
) -> None:
    answers = {
        (surface.__name__, phrasing): surface(world, phrasing, user)
        for phrasing in phrasings
        for surface in (by_command, by_direct_message, by_mention)
    }
    first = next(iter(answers.values()))
    for where, answer in answers.items():
        assert answer == first, f"{where} differs from {next(iter(answers))}"
    text, blocks = first
    assert says in blocks
    if cli:
        for phrasing in phrasings:
            assert by_cli(world, phrasing) == plain(text)
