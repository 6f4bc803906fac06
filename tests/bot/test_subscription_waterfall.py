"""A weekly waterfall asked for from chat (`/kpi subscribe … with pipeline changes`, `/kpi
abonner … avec mouvements du pipeline`), through the real app against the fake Slack: the
option is read in both languages, stored, confirmed in the organisation's words, and the digest
it makes carries the waterfall, with its chart shared in the digest's thread."""

from __future__ import annotations

import pytest

from bot.digests import post_digest
from bot.formatting import Formatter
from bot.subscriptions import load_subscriptions
from conversation.grammar import with_pipeline_changes
from metrics.periods import Grain
from tests.bot.slack_world import ADMIN, NOW, World, world_fixture
from tests.bot.test_slack_app import all_text, ask

world = pytest.fixture(world_fixture)
NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("words", "rest", "grain"),
    [
        ("#s 08:30 mon with pipeline changes", "#s 08:30 mon", Grain.QUARTER),
        ("#s 08:30 with the pipeline changes of the month", "#s 08:30", Grain.MONTH),
        ("#s 08:30 with pipeline changes this year mon", "#s 08:30  mon", Grain.YEAR),
        ("#s 08:30 lun avec mouvements du pipeline", "#s 08:30 lun", Grain.QUARTER),
        ("#s 08:30 équipe Lyon avec les mouvements du pipe du mois", "#s 08:30 équipe Lyon",
         Grain.MONTH),
        ("#s 08:30 AVEC MOUVEMENTS DU PIPELINE DE L'ANNÉE", "#s 08:30", Grain.YEAR),
        ("#s 08:30 team Lyon", "#s 08:30 team Lyon", None),  # no option
        ("#s 08:30 team Withers", "#s 08:30 team Withers", None),  # "with" inside a name
    ],
)  # fmt: skip
def test_the_option_is_read_in_both_languages(words: str, rest: str, grain: Grain | None) -> None:
    assert with_pipeline_changes(words) == (rest, grain)


@pytest.mark.parametrize(
    ("text", "grain", "said"),
    [
        ("abonner <#CNEW|ventes> 08:30 lun avec mouvements du pipeline", Grain.QUARTER,
         "<#CNEW> recevra le résumé quotidien à 08:30 (Europe/Paris), lun., avec les mouvements"
         " du pipeline du trimestre sur les sept derniers jours."),
        ("subscribe <#CNEW|ventes> 08:30 mon with pipeline changes of the month", Grain.MONTH,
         "avec les mouvements du pipeline du mois sur les sept derniers jours."),
    ],
)  # fmt: skip
def test_a_chat_subscription_carries_the_waterfall_and_its_chart(
    world: World, text: str, grain: Grain, said: str
) -> None:
    reply = all_text(ask(world, text, ADMIN))
    assert said in reply, reply

    with world.sessions()() as session:
        subscriptions = load_subscriptions(world.settings, session)
    [chat] = [s for s in subscriptions if s.id == "chat-1"]
    assert (chat.channel, chat.days, chat.waterfall) == ("CNEW", (0,), grain)

    fmt = Formatter.for_organisation(world.settings.organisation)
    delivered = post_digest(world.service, world.dispatcher(), chat, NOW, fmt)
    [digest] = [m for m in world.fake.messages["CNEW"] if m.ts == delivered.ts]
    # The digest names the movements, in French (the demo's history: deals moved this week).
    assert "mouvements depuis le" in digest.text + str(digest.blocks)
    shared = {
        upload.filename: (message, upload) for message, upload in world.fake.shared_files("CNEW")
    }
    message, upload = shared[f"digest-chat-1-{NOW.date().isoformat()}-waterfall.png"]
    assert upload.data is not None and upload.data.startswith(b"\x89PNG")
    assert message.thread_ts == delivered.ts
    [file] = message.files or []
    assert "Pipeline" in file["title"] and upload.alt_txt == fmt.t(
        "chart.waterfall_alt", title=file["title"]
    )


def test_a_subscription_without_the_option_shares_no_waterfall(world: World) -> None:
    ask(world, "subscribe <#CNEW|ventes> 08:30 mon", ADMIN)
    with world.sessions()() as session:
        [chat] = [s for s in load_subscriptions(world.settings, session) if s.id == "chat-1"]
    assert chat.waterfall is None

    fmt = Formatter.for_organisation(world.settings.organisation)
    post_digest(world.service, world.dispatcher(), chat, NOW, fmt)
    names = [upload.filename for _, upload in world.fake.shared_files("CNEW")]
    assert not any(name.endswith("-waterfall.png") for name in names), names


def test_the_usage_names_the_option(world: World) -> None:
    reply = all_text(ask(world, "abonner <#CNEW|ventes>", ADMIN))
    assert "[avec mouvements du pipeline [du mois|du trimestre|de l'année]]" in reply
