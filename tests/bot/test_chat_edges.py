"""Chat input at the calendar's and the amounts' edges gets help, never a traceback or the
"oops" apology (issue 10, "Input that breaks answers today")."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from bot.store.chat_models import ChatTarget
from bot.store.database import bump_data_version, transaction
from bot.store.models import Team
from tests.bot.slack_world import ADMIN, MANAGER, world_fixture
from tests.bot.test_slack_app import all_text, ask

world = pytest.fixture(world_fixture)
OOPS = "Désolé, un problème est survenu"


@pytest.mark.parametrize(
    ("text", "user", "problem"),
    [
        (
            "revenue 0001-01",
            MANAGER,
            "«\u00a00001-01\u00a0» n'est pas une période valide\u00a0: kpibot ne connaît que les "
            "dates du 1900-01-01 au 2199-12-31.",
        ),
        (
            "ca équipe Lyon 9999-12",
            MANAGER,
            "«\u00a09999-12\u00a0» n'est pas une période valide\u00a0: kpibot ne connaît que les "
            "dates du 1900-01-01 au 2199-12-31.",
        ),
        (
            "snooze 99999999999d",
            MANAGER,
            "Une mise en sourdine dure au plus 3650\u00a0jours («\u00a099999999999d\u00a0»). "
            "Usage\u00a0: `/kpi sourdine",
        ),
        (
            "snooze revenue team Lyon 3651d",
            MANAGER,
            "Une mise en sourdine dure au plus 3650\u00a0jours "
            "(«\u00a0revenue team Lyon 3651d\u00a0»)",
        ),
        (
            "snooze revenue team Lyon deux jours",
            MANAGER,
            "Je n'ai pas compris «\u00a0revenue team Lyon deux jours\u00a0». Usage\u00a0: "
            "`/kpi sourdine",
        ),
        (
            "target revenue company 2026-Q4 1000000000000000000000000000000",
            ADMIN,
            "1000000000000000000000000000000 dépasse le plus grand montant que kpibot conserve "
            "exactement (moins de 10\u00a0000\u00a0000\u00a0000\u00a0000)",
        ),
        (
            "target revenue team Lyon 2026-Q4 100000000000000000",
            ADMIN,
            "100000000000000000 dépasse le plus grand montant que kpibot conserve exactement "
            "(moins de 10\u00a0000\u00a0000\u00a0000\u00a0000)",
        ),
        (
            "target revenue team Lyon 2026-Q4 10000000M",
            ADMIN,
            "10000000M dépasse le plus grand montant que kpibot conserve exactement "
            "(moins de 10\u00a0000\u00a0000\u00a0000\u00a0000)",
        ),
    ],
)
def test_edge_input_gets_the_reason_and_help(world, text, user, problem):
    reply = all_text(ask(world, text, user))
    assert problem in reply
    assert OOPS not in reply and "Traceback" not in reply
    with world.sessions()() as session:
        assert session.query(ChatTarget).count() == 0


def test_did_you_mean_suggestions_are_escaped(world):
    with transaction(world.sessions()) as session:
        session.execute(update(Team).where(Team.name == "Lyon").values(name="*Lyon* <!here>"))
        bump_data_version(session)

    reply = all_text(ask(world, "revenue team Lyon here", ADMIN))

    assert "<!here>" not in reply and "*Lyon*" not in reply
    assert "`\u2217Lyon\u2217 &lt;!here&gt;`" in reply
