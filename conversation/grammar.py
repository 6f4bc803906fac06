"""The one request grammar of every surface: the text after ``/kpi``, of a direct message, of an
@mention or a thread follow-up, of ``kpibot ask``, read into a sub-command, in English or
French. Anything that is not a sub-command word is a question for the KPI parser
(``ca ce trimestre``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from metrics.query import normalise


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
class Request:
    kind: Kind
    argument: str  # the rest of the text (the whole text for a question)

    @property
    def text(self) -> str:
        """The request as typed again: what a "Share" button carries."""
        if self.kind is Kind.ASK:
            return self.argument
        return f"{self.kind.value} {self.argument}".strip()


MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def parse_request(text: str) -> Request:
    """``text`` as a request. A leading @mention of the bot (``<@U0BOT> revenue``) is left
    out, so that a mention reads like the slash command."""
    stripped = " ".join(text.split())
    leading = MENTION.match(stripped)
    if leading is not None:
        stripped = stripped[leading.end() :].strip()
    first, _, rest = stripped.partition(" ")
    kind = WORDS.get(normalise(first))
    if kind is None:
        return Request(Kind.ASK, stripped)
    if kind is Kind.TEAM and not rest:
        return Request(Kind.HELP, "")
    return Request(kind, rest)


def mentioned_user(text: str) -> str | None:
    """The user id of a Slack mention ``<@U123|name>`` or ``<@U123>``."""
    match = MENTION.fullmatch(text.strip())
    return match.group(1) if match else None
