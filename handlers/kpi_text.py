"""The text after ``/kpi`` read into a sub-command, in English or French. Pure: anything that is
not a sub-command word is a question for the KPI parser (``/kpi ca ce trimestre``)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from handlers.ports import KpiDesk, Reply


class Kind(StrEnum):
    HELP = "help"
    ASK = "ask"
    TEAM = "team"
    REP = "rep"
    LEADERBOARD = "leaderboard"
    TARGETS = "targets"
    ALERTS = "alerts"
    SNOOZE = "snooze"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    TARGET = "target"
    SYNC = "sync"


WORDS: dict[str, Kind] = {
    "": Kind.HELP, "help": Kind.HELP, "aide": Kind.HELP, "?": Kind.HELP,
    "team": Kind.TEAM, "equipe": Kind.TEAM,
    "rep": Kind.REP, "commercial": Kind.REP, "vendeur": Kind.REP,
    "leaderboard": Kind.LEADERBOARD, "classement": Kind.LEADERBOARD, "top": Kind.LEADERBOARD,
    "targets": Kind.TARGETS, "objectifs": Kind.TARGETS, "cibles": Kind.TARGETS,
    "alerts": Kind.ALERTS, "alertes": Kind.ALERTS,
    "snooze": Kind.SNOOZE, "sourdine": Kind.SNOOZE, "silence": Kind.SNOOZE,
    "subscribe": Kind.SUBSCRIBE, "abonner": Kind.SUBSCRIBE, "abonnement": Kind.SUBSCRIBE,
    "unsubscribe": Kind.UNSUBSCRIBE, "desabonner": Kind.UNSUBSCRIBE,
    # Singular: setting one target ("/kpi target revenue team Lyon 2026-Q4 800k").
    "target": Kind.TARGET, "objectif": Kind.TARGET, "cible": Kind.TARGET,
    "sync": Kind.SYNC, "synchro": Kind.SYNC, "synchroniser": Kind.SYNC,
}  # fmt: skip

# Sub-commands that show data, and so can be shared in the channel.
SHAREABLE = frozenset({Kind.ASK, Kind.TEAM, Kind.REP, Kind.LEADERBOARD, Kind.TARGETS, Kind.ALERTS})


@dataclass(frozen=True)
class KpiCommand:
    kind: Kind
    argument: str  # the rest of the text (the whole text for a question)


def _plain(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def parse_command(text: str) -> KpiCommand:
    stripped = " ".join(text.split())
    first, _, rest = stripped.partition(" ")
    kind = WORDS.get(_plain(first))
    if kind is None:
        return KpiCommand(Kind.ASK, stripped)
    if kind is Kind.TEAM and not rest:
        return KpiCommand(Kind.HELP, "")
    return KpiCommand(kind, rest)


MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def mentioned_user(text: str) -> str | None:
    """The user id of a Slack mention ``<@U123|name>`` or ``<@U123>``."""
    match = MENTION.fullmatch(text.strip())
    return match.group(1) if match else None


def run(
    desk: KpiDesk, user_id: str, command: KpiCommand, now: datetime, *, into: str | None = None
) -> Reply:
    """The desk's answer to ``command`` on behalf of ``user_id`` (for channel ``into``, when
    shared)."""
    arg = command.argument
    match command.kind:
        case Kind.HELP:
            return desk.help(user_id, now)
        case Kind.ASK:
            return desk.ask(user_id, arg, now, into=into)
        case Kind.TEAM:
            return desk.team(user_id, arg, now, into=into)
        case Kind.REP:
            return desk.rep(user_id, arg, now, into=into)
        case Kind.LEADERBOARD:
            return desk.leaderboard(user_id, now, into=into)
        case Kind.TARGETS:
            return desk.targets(user_id, now, into=into)
        case Kind.ALERTS:
            return desk.alerts(user_id, now, into=into)
        case Kind.SNOOZE:
            return desk.snooze(user_id, arg, now)
        case Kind.SUBSCRIBE:
            return desk.subscribe(user_id, arg, now)
        case Kind.UNSUBSCRIBE:
            return desk.unsubscribe(user_id, arg, now)
        case Kind.TARGET:
            return desk.set_target(user_id, arg, now)
        case Kind.SYNC:
            return desk.sync(user_id, now)
