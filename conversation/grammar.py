"""The one request grammar of every surface: the text after ``/kpi``, of a direct message, of an
@mention or a thread follow-up, of ``kpibot ask``, read into a sub-command, in English or
French. Anything that is not a sub-command word is a question for the KPI parser
(``ca ce trimestre``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from metrics.periods import Grain
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


# A subscription's weekly waterfall option, as a user would write it at the end (or anywhere
# after the time): "with pipeline changes", "with the pipeline changes of the month",
# "avec mouvements du pipeline", "avec les mouvements du pipeline du trimestre".
_WITH_CHANGES = re.compile(
    r"(?i)(?:^|\s)(?:with|avec)\s+(?:the\s+|les\s+)?"
    r"(?:pipeline\s+(?:changes|movements)|mouvements\s+du\s+pipe(?:line)?|waterfall|cascade)"
    r"(?:\s+(?:of\s+the\s+|this\s+|du\s+|de\s+l['’]\s*|de\s+la\s+)?"
    r"(month|quarter|year|mois|trimestre|ann[ée]e))?(?=\s|$)"
)
_GRAIN_WORDS = {"month": Grain.MONTH, "mois": Grain.MONTH, "quarter": Grain.QUARTER,
                "trimestre": Grain.QUARTER, "year": Grain.YEAR, "annee": Grain.YEAR}  # fmt: skip


def with_pipeline_changes(text: str) -> tuple[str, Grain | None]:
    """A subscription's words without its waterfall option, and the grain of the period whose
    pipeline movements over the last seven days the digest is to carry (the quarter unless the
    option names another); None when the option is not there."""
    found = _WITH_CHANGES.search(text)
    if found is None:
        return text, None
    said = found.group(1)
    grain = Grain.QUARTER if said is None else _GRAIN_WORDS[normalise(said)]
    return f"{text[: found.start()]} {text[found.end() :]}".strip(), grain


def mentioned_user(text: str) -> str | None:
    """The user id of a Slack mention ``<@U123|name>`` or ``<@U123>``."""
    match = MENTION.fullmatch(text.strip())
    return match.group(1) if match else None
