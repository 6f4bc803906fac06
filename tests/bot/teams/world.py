"""A kpibot Teams bot wired to a fake Bot Framework (``tests.fakes.bot_framework``): the demo
company in a temporary SQLite store, settings whose Microsoft endpoints are the fake's, the
``/api/messages`` route served by uvicorn on port 0, and builders of the activities Teams
sends (as documented: a message in a 1:1 chat or a channel @mention, an ``adaptiveCard/action``
invoke, an installation)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.http_app import build_server
from bot.service import KpiService
from bot.settings import Settings, load_settings
from bot.store.database import session_factory
from bot.teams.app import teams_route
from tests.bot.http_support import Server, post
from tests.bot.slack_world import NOW, OTHER_EMAIL, REP_EMAIL, _demo_files
from tests.fakes.bot_framework import APP_ID, APP_SECRET, TENANT_ID, FakeBotFramework, Member

BOT_ID = f"28:{APP_ID}"
# Teams users: (Teams id, Entra object id, name, email). The admin is listed in ``access`` by
# Entra object id, the manager by email; the rep is found in the CRM by email.
ADMIN = Member("29:admin", "aad-0000-admin", "Alice Admin", "alice.admin@atelier-lumiere.example")
MANAGER = Member(
    "29:manager", "aad-0000-manager", "Marc Lyon", "marc.manager@atelier-lumiere.example"
)
REP = Member("29:rep", "aad-0000-rep", "Antoine Lefèvre", REP_EMAIL)
OTHER_REP = Member("29:other", "aad-0000-other", "Camille Laurent", OTHER_EMAIL)
STRANGER = Member("29:stranger", "aad-0000-stranger", "Sam Stranger", "sam@elsewhere.example")
PERSONAL = "a:1personal-chat-with-the-rep"
LYON_TEAM_ID = "19:lyon-general@thread.tacv2"
LYON_CHANNEL = LYON_TEAM_ID  # a team's General channel has the team's id
LEADERSHIP_TEAM_ID = "19:leadership-general@thread.tacv2"

TEAMS_CONFIG = """
teams:
  leadership_channel: Direction commerciale
  team_channels:
    Lyon: Équipe Lyon
access:
  admins: [aad-0000-admin]
  managers:
    marc.manager@atelier-lumiere.example: Lyon
  unknown_users: company
"""


@dataclass
class TeamsWorld:
    fake: FakeBotFramework
    settings: Settings
    service: KpiService
    base: str  # the kpibot server's URL

    def sessions(self):  # type: ignore[no-untyped-def]
        return session_factory(self.service.engine)

    def post(self, activity: dict[str, Any], token: str | None = "valid") -> tuple[int, Any]:
        """POST an activity to /api/messages with a valid token (or ``token`` as given)."""
        headers = {"Content-Type": "application/json"}
        if token == "valid":
            token = self.fake.token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        status, body = post(self.base + "/api/messages", json.dumps(activity).encode(), headers)
        return status, json.loads(body) if body else None


def environment(fake: FakeBotFramework, **overrides: str) -> dict[str, str]:
    return {
        "TEAMS_CLIENT_ID": APP_ID,
        "TEAMS_CLIENT_SECRET": APP_SECRET,
        "TEAMS_TENANT_ID": TENANT_ID,
        "TEAMS_LOGIN_URL": fake.url,
        "TEAMS_OPENID_METADATA_URL": fake.metadata_url,
        **overrides,
    }


@contextmanager
def teams_world(
    tmp_path: Path, *, locale: str = "fr_FR", extra: str = "", **env: str
) -> Iterator[TeamsWorld]:
    with FakeBotFramework() as fake:
        for member in (ADMIN, MANAGER, REP, OTHER_REP, STRANGER):
            fake.add_member(member)
        path = tmp_path / "kpibot.yaml"
        template = _demo_files()
        config = (template / "kpibot.yaml").read_text(encoding="utf-8")
        path.write_text(
            config.replace("locale: fr_FR", f"locale: {locale}") + TEAMS_CONFIG + extra,
            encoding="utf-8",
        )
        shutil.copy(template / "kpibot.db", tmp_path / "kpibot.db")
        settings = load_settings(path, environment(fake, **env))
        service = KpiService(settings)
        route = teams_route(settings, service, clock=lambda: NOW)
        assert route is not None
        with Server(build_server([route])) as base:
            yield TeamsWorld(fake, settings, service, base)
        service.engine.dispose()


def _account(member: Member) -> dict[str, Any]:
    return {"id": member.id, "name": member.name, "aadObjectId": member.aad_object_id}


def _base(fake: FakeBotFramework, conversation: dict[str, Any], member: Member) -> dict[str, Any]:
    return {
        "id": "1700000000001",
        "timestamp": "2026-11-26T09:00:00.000Z",
        "serviceUrl": fake.service_url,
        "channelId": "msteams",
        "from": _account(member),
        "conversation": {"tenantId": TENANT_ID, **conversation},
        "recipient": {"id": BOT_ID, "name": "kpibot"},
        "locale": "fr-FR",
    }


def personal_message(fake: FakeBotFramework, text: str, member: Member = REP) -> dict[str, Any]:
    """A message in the 1:1 chat between ``member`` and kpibot."""
    activity = _base(fake, {"id": PERSONAL, "conversationType": "personal"}, member)
    activity.update(
        type="message",
        text=text,
        textFormat="plain",
        channelData={"tenant": {"id": TENANT_ID}},
    )
    return activity


def channel_mention(
    fake: FakeBotFramework, text: str, member: Member, *, team: str = "Équipe Lyon",
    team_id: str = LYON_TEAM_ID,
) -> dict[str, Any]:  # fmt: skip
    """``@kpibot <text>`` in a team's General channel: Teams puts the mention in the text as
    ``<at>kpibot</at>`` and describes it in ``entities``."""
    conversation = {
        "id": f"{team_id};messageid=1700000000001",
        "conversationType": "channel",
        "isGroup": True,
    }
    activity = _base(fake, conversation, member)
    mention = "<at>kpibot</at>"
    activity.update(
        type="message",
        text=f"{mention} {text}",
        textFormat="plain",
        entities=[{
            "type": "mention", "text": mention,
            "mentioned": {"id": BOT_ID, "name": "kpibot"},
        }],
        channelData={
            "teamsChannelId": team_id,
            "teamsTeamId": team_id,
            "channel": {"id": team_id},
            "team": {"id": team_id, "name": team},
            "tenant": {"id": TENANT_ID},
        },
    )  # fmt: skip
    return activity


def installation(
    fake: FakeBotFramework, member: Member, *, team: str, team_id: str, action: str = "add"
) -> dict[str, Any]:
    """kpibot added to (or removed from) a team by ``member``."""
    conversation = {"id": team_id, "conversationType": "channel", "isGroup": True}
    activity = _base(fake, conversation, member)
    activity.update(
        type="installationUpdate",
        action=action,
        channelData={
            "settings": {"selectedChannel": {"id": team_id}},
            "channel": {"id": team_id},
            "team": {"id": team_id, "name": team},
            "tenant": {"id": TENANT_ID},
            "source": {"name": "message"},
        },
    )
    return activity


def card_action(
    fake: FakeBotFramework, member: Member, verb: str, data: dict[str, Any], *,
    conversation_id: str, reply_to: str,
) -> dict[str, Any]:  # fmt: skip
    """An ``Action.Execute`` on a card kpibot posted (activity ``reply_to``)."""
    activity = _base(fake, {"id": conversation_id, "conversationType": "channel"}, member)
    activity.update(
        type="invoke",
        name="adaptiveCard/action",
        replyToId=reply_to,
        value={
            "action": {"type": "Action.Execute", "verb": verb, "data": data},
            "trigger": "manual",
        },
        channelData={"tenant": {"id": TENANT_ID}},
    )
    return activity


def card_text(card: Any) -> str:
    """Every text a card shows (text blocks, facts' titles and values), one a line."""
    if isinstance(card, dict):
        own = [card[k] for k in ("title", "text", "value") if isinstance(card.get(k), str)]
        return "\n".join(own + [t for v in card.values() if (t := card_text(v))])
    if isinstance(card, list):
        return "\n".join(t for item in card if (t := card_text(item)))
    return ""
