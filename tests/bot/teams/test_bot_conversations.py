"""End to end over HTTP: a signed Teams activity in → the conversation core → an Adaptive Card
posted back through the (fake) Bot Connector, in French and in English; who the Teams user is
(Entra object id or email in ``access``, the CRM's email for reps); installations remembered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from bot.formatting import Formatter
from bot.store.teams_models import TeamsConversation
from tests.bot.teams.world import (
    ADMIN,
    BOT_ID,
    LYON_TEAM_ID,
    MANAGER,
    PERSONAL,
    REP,
    STRANGER,
    TeamsWorld,
    card_text,
    channel_mention,
    installation,
    personal_message,
    teams_world,
)
from tests.fakes.bot_framework import ADAPTIVE_CARD, TENANT_ID, Member


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    with teams_world(tmp_path) as world:
        yield world


def answer(world: TeamsWorld) -> tuple[dict[str, Any], str]:
    """The one activity kpibot posted: its JSON, and the text of its card."""
    posted = world.fake.posted()
    assert len(posted) == 1, [p.json() for p in posted]
    activity = posted[0].json()
    assert activity["type"] == "message"
    (attachment,) = activity["attachments"]
    assert attachment["contentType"] == ADAPTIVE_CARD
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.5"
    return activity, card_text(card)


def test_a_rep_asks_in_french_in_a_personal_chat(world: TeamsWorld) -> None:
    status, _ = world.post(personal_message(world.fake, "ca ce trimestre", REP))
    assert status == 200
    activity, text = answer(world)
    assert world.fake.posted()[0].path == f"/v3/conversations/{PERSONAL}/activities"
    assert "replyToId" not in activity  # a 1:1 chat has no threads
    assert "Chiffre d'affaires" in text
    assert "€" in text
    # The bot's token came from the client-credentials grant; the rep's email from Teams.
    token = next(r for r in world.fake.requests if r.path.endswith("/oauth2/v2.0/token"))
    assert token.path == f"/{TENANT_ID}/oauth2/v2.0/token"
    lookups = [r.path for r in world.fake.requests if "/members/" in r.path]
    assert lookups == [f"/v3/conversations/{PERSONAL}/members/{REP.id}"]


def test_the_email_lookup_is_cached(world: TeamsWorld) -> None:
    world.post(personal_message(world.fake, "aide", REP))
    world.post(personal_message(world.fake, "aide", REP))
    assert len(world.fake.posted()) == 2
    assert len([r for r in world.fake.requests if "/members/" in r.path]) == 1


def test_help_is_answered_in_the_organisations_language(world: TeamsWorld) -> None:
    world.post(personal_message(world.fake, "aide", REP))
    _, text = answer(world)
    assert "kpi" in text.lower()
    assert "trimestre" in text  # French examples


def test_an_english_organisation_gets_english_answers(tmp_path: Path) -> None:
    with teams_world(tmp_path, locale="en_US") as world:
        status, _ = world.post(personal_message(world.fake, "kpi conversion", REP))
        assert status == 200
        _, text = answer(world)
    assert text.startswith("Lead conversion · Company · Q4 2026")
    assert "18.2%" in text  # en_US: no space before the percent sign


def test_a_channel_mention_is_answered_in_its_thread_for_the_channel(world: TeamsWorld) -> None:
    mention = channel_mention(world.fake, "revenue team Lyon last quarter", MANAGER)
    status, _ = world.post(mention)
    assert status == 200
    activity, text = answer(world)
    conversation = mention["conversation"]["id"]
    assert world.fake.posted()[0].path == f"/v3/conversations/{conversation}/activities"
    assert activity["replyToId"] == mention["id"]
    assert "Lyon" in text
    assert "<at>" not in text and "kpibot" not in text.split("\n")[0]
    # The channel was remembered under its team's name, as the config's routes call it.
    with world.sessions()() as session:
        names = session.scalars(select(TeamsConversation.name)).all()
    assert names == ["Équipe Lyon"]


def test_admins_are_named_by_entra_object_id_managers_by_email(world: TeamsWorld) -> None:
    world.post(personal_message(world.fake, "revenue by rep", ADMIN))
    _, admin_text = answer(world)
    world.fake.requests.clear()
    world.post(personal_message(world.fake, "revenue by rep", STRANGER))
    _, stranger_text = answer(world)
    assert "Antoine Lefèvre" in admin_text
    assert "Antoine Lefèvre" not in stranger_text


def test_a_user_teams_cannot_describe_is_told_so(world: TeamsWorld) -> None:
    ghost = Member("29:ghost", "aad-ghost", "Ghost", "ghost@atelier-lumiere.example")
    world.post(personal_message(world.fake, "ca ce trimestre", ghost))  # not in the roster
    _, text = answer(world)
    assert "Chiffre d'affaires" not in text


def test_installation_in_a_team_is_remembered_and_uninstallation_forgotten(
    world: TeamsWorld,
) -> None:
    status, _ = world.post(
        installation(world.fake, ADMIN, team="Direction commerciale", team_id=LYON_TEAM_ID)
    )
    assert status == 200
    with world.sessions()() as session:
        row = session.get(TeamsConversation, LYON_TEAM_ID)
        assert row is not None
        assert (row.name, row.kind, row.service_url, row.tenant_id, row.bot_id) == (
            "Direction commerciale", "channel", world.fake.service_url, TENANT_ID, BOT_ID,
        )  # fmt: skip
        assert row.installed_by == ADMIN.aad_object_id
    world.post(
        installation(
            world.fake, ADMIN, team="Direction commerciale", team_id=LYON_TEAM_ID, action="remove"
        )
    )
    with world.sessions()() as session:
        assert session.get(TeamsConversation, LYON_TEAM_ID) is None
    assert world.fake.posted() == []  # installing says nothing


def test_a_failing_listener_apologises_and_logs_the_trace(
    world: TeamsWorld, caplog: pytest.LogCaptureFixture
) -> None:
    with world.service.engine.begin() as connection:
        connection.execute(text("DROP TABLE teams_conversations"))  # the store is broken
    status, _ = world.post(personal_message(world.fake, "ca ce trimestre", REP))
    assert status == 200
    _, said = answer(world)
    assert said == Formatter.for_organisation(world.settings.organisation).t("oops")
    assert "Traceback" not in said
    assert "error handling a Teams message activity" in caplog.text
