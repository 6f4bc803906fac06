"""Questions in English or French ("revenue team EMEA last quarter", "ca ce trimestre",
"win rate by team 2026-Q3") parsed into a ``Query``: a KPI, a scope, a period and an optional
breakdown level; "pipeline changes since last week" (``mouvements du pipeline depuis lundi``)
also sets the day the changes are counted from. Anything not understood raises ``QueryError``
with close matches."""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from metrics.kpis import KPIS
from metrics.periods import Grain, Period, PeriodParseError, extract_period, period_containing
from metrics.scopes import DEFAULT_BREAKDOWN, Level, Scope, is_finer


@dataclass(frozen=True)
class Query:
    kpi: str
    scope: Scope
    period: Period
    breakdown: Level | None
    # Set for "pipeline changes since …": the day (from its start, in the organisation's time
    # zone) from which the pipeline's movements are counted.
    since: date | None = None
    # "conversion par source", "cpa par canal": broken down by lead source instead of by scope.
    by_channel: bool = False


@dataclass(frozen=True)
class Directory:
    """The names a question may mention."""

    regions: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    reps: tuple[str, ...] = ()

    def names(self, level: Level) -> tuple[str, ...]:
        return {Level.REGION: self.regions, Level.TEAM: self.teams, Level.REP: self.reps}.get(
            level, ()
        )


class QueryError(ValueError):
    """A question not understood. ``code`` and ``params`` say what, for the shell to word in
    the user's language; ``message`` is the English wording (logs, tests). For an unknown
    scope, ``level`` is set and ``suggestions`` are names of that level: the shell shows only
    those the asker may see."""

    def __init__(
        self,
        code: str,
        message: str,
        suggestions: tuple[str, ...] = (),
        *,
        level: Level | None = None,
        **params: str,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.suggestions = suggestions
        self.level = level
        self.params = params


def normalise(text: str) -> str:
    """Lower case, no accents, apostrophes and dashes as in the alias table, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = plain.replace("’", "'").replace("_", " ").replace("-", " ")
    plain = re.sub(r"[?!.,;:]+", " ", plain)
    return " ".join(plain.split())


def _aliases() -> dict[str, str]:
    table: dict[str, str] = {}
    for kpi in KPIS.values():
        for alias in (kpi.id, *kpi.aliases):
            table[normalise(alias)] = kpi.id
    return table


ALIASES = _aliases()

_LEVEL_WORDS: dict[str, Level] = {
    "team": Level.TEAM, "teams": Level.TEAM, "equipe": Level.TEAM, "equipes": Level.TEAM,
    "manager": Level.TEAM, "managers": Level.TEAM,
    "region": Level.REGION, "regions": Level.REGION, "office": Level.REGION,
    "offices": Level.REGION, "regional office": Level.REGION, "regional offices": Level.REGION,
    "bureau": Level.REGION, "bureaux": Level.REGION,
    "rep": Level.REP, "reps": Level.REP, "commercial": Level.REP, "commerciaux": Level.REP,
    "agent": Level.REP, "agents": Level.REP, "vendeur": Level.REP, "vendeurs": Level.REP,
    "seller": Level.REP, "sellers": Level.REP,
}  # fmt: skip
_LEVEL_ALTERNATION = "|".join(sorted((re.escape(w) for w in _LEVEL_WORDS), key=len, reverse=True))
_BREAKDOWN = re.compile(rf"\b(?:by|per|par)\s+(?:l'|la |le |les )?({_LEVEL_ALTERNATION})\b")
_BY_CHANNEL = re.compile(
    r"\b(?:by|per|par)\s+(?:l'|la |le |les )?(?:lead )?"
    r"(?:sources?|canal|canaux|channels?|origines?|canal d'acquisition|marketing source)\b"
)
_STOPWORDS = frozenset(
    (
        "a an and the for in of on is what's whats what show me our my to at "
        "de du des la le les l d pour en sur quel quelle est et mon ma notre nos au aux"
    ).split()
)


@dataclass
class _Text:
    """The question being consumed: each recognised part is cut out of ``rest``."""

    rest: str

    def cut(self, match: re.Match[str]) -> None:
        self.rest = " ".join((self.rest[: match.start()] + " " + self.rest[match.end() :]).split())


_LEVEL_ORDER = (Level.REP, Level.TEAM, Level.REGION)


@functools.lru_cache(maxsize=16)
def _known_names(directory: Directory) -> tuple[tuple[str, Level, str], ...]:
    """(normalised name, level, name), longest first and reps before teams before regions, so
    that "Paris Grands Comptes" wins over "Paris". Cached: a directory lives for a data
    version, and questions are asked many times."""
    entries = [
        (normalise(name), level, name) for level in _LEVEL_ORDER for name in directory.names(level)
    ]
    return tuple(sorted(entries, key=lambda e: (-len(e[0]), _LEVEL_ORDER.index(e[1]))))


def _find_scope(text: _Text, directory: Directory) -> Scope:
    # Cheap test first: most names are absent from a question.
    present = [entry for entry in _known_names(directory) if entry[0] in text.rest]
    named = {n: rf"(?<!\w){re.escape(n)}(?!\w)" for n, _, _ in present}
    # "region EMEA" says which EMEA is meant when a team and a region share the name.
    for normalised, level, name in present:
        words = "|".join(re.escape(w) for w, lv in _LEVEL_WORDS.items() if lv is level)
        match = re.search(rf"\b(?:{words})\s+{named[normalised]}", text.rest)
        if match:
            text.cut(match)
            return Scope(level, name)
    for normalised, level, name in present:
        match = re.search(named[normalised], text.rest)
        if match:
            text.cut(match)
            return Scope(level, name)
    # "team X" where X is unknown: say so rather than answering for the whole company.
    match = re.search(rf"\b({_LEVEL_ALTERNATION})\s+(\S+(?:\s\S+)?)", text.rest)
    if match and not _mentions_kpi(match.group(2)):
        level = _LEVEL_WORDS[match.group(1)]
        known = directory.names(level)
        close = difflib.get_close_matches(match.group(2), [normalise(n) for n in known], n=3)
        suggestions = tuple(n for n in known if normalise(n) in close)
        raise QueryError(
            "unknown_scope",
            f"I don't know the {level.value} “{match.group(2)}”.",
            suggestions,
            level=level,
            name=match.group(2),
        )
    return Scope.company()


def _mentions_kpi(text: str) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(a)}(?!\w)", text) for a in ALIASES)


# Longest alias first ("pipeline coverage" before "pipeline"), compiled once.
_KPI_PATTERNS = [
    (re.compile(rf"(?<![\w']){re.escape(alias)}(?![\w'])"), kpi)
    for alias, kpi in sorted(ALIASES.items(), key=lambda item: len(item[0]), reverse=True)
]


def _find_kpi(text: _Text) -> str | None:
    for pattern, kpi in _KPI_PATTERNS:
        match = pattern.search(text.rest)
        if match:
            text.cut(match)
            return kpi
    return None


# A suggestion this much less alike than the best is left out: "winrat" means win_rate, not
# also key_win_rate (through "key win rate").
_SUGGESTION_MARGIN = 0.15


def suggest(word: str) -> tuple[str, ...]:
    """KPI ids close to ``word`` (through any alias), best first."""
    wanted = normalise(word)
    close = difflib.get_close_matches(wanted, list(ALIASES), n=5, cutoff=0.6)
    alike = [difflib.SequenceMatcher(None, wanted, alias).ratio() for alias in close]
    close = [a for a, r in zip(close, alike, strict=True) if r >= alike[0] - _SUGGESTION_MARGIN]
    ids: list[str] = []
    for alias in close:
        if ALIASES[alias] not in ids:
            ids.append(ALIASES[alias])
    return tuple(ids)


# Read on the question as asked (the period after it needs its dashes), so case-insensitive
# and with or without accents.
_CHANGES = re.compile(
    r"(?i)\b(?:changes?|movements?|moves|mouvements?|waterfall|cascade|[eé]volution)\b"
)
_WEEKDAYS = {
    name: number
    for number, names in enumerate(
        ("monday lundi", "tuesday mardi", "wednesday mercredi", "thursday jeudi",
         "friday vendredi", "saturday samedi", "sunday dimanche")
    )
    for name in names.split()
}  # fmt: skip
_DAYS_AGO = {"yesterday": 1, "hier": 1, "last week": 7, "semaine derniere": 7}
_SINCE_WORD = re.compile(r"(?i)\b(?:since|depuis)\b")
_SINCE = re.compile(
    r"(?i)\b(?:since|depuis)\s+(?:le\s+|la\s+|l[’'])?"
    r"(last\s+week|semaine\s+derni[eè]re|yesterday|hier|"
    rf"{'|'.join(_WEEKDAYS)}|(\d+)\s+(?:days?|jours?)"
    r"|(\d{4})-(\d{1,2})-(\d{1,2}))(?!\w)"
)
_DEFAULT_SINCE_DAYS = 7
_SINCE_HELP = (
    "“since last week”, “since yesterday”, “since Monday”, “since 2026-11-23” or "
    "“since 10 days” (“depuis la semaine dernière”, “depuis hier”, “depuis lundi”)"
)


def _since_day(match: re.Match[str], today: date) -> date:
    """The day a "since …" names, at or before ``today``."""
    said, days, year, month, day = match.groups()
    words = normalise(said)
    if words in _DAYS_AGO:
        return today - timedelta(days=_DAYS_AGO[words])
    if words in _WEEKDAYS:
        # The last such day before today: on a Monday, "since Monday" is a week.
        return today - timedelta(days=(today.weekday() - _WEEKDAYS[words] - 1) % 7 + 1)
    if days is not None:
        return today - timedelta(days=int(days))
    try:
        named = date(int(year), int(month), int(day))
    except ValueError:
        text = f"{year}-{month}-{day}"
        message = f"“{text}” is not a date: say {_SINCE_HELP}."
        raise QueryError("since.not_a_date", message, text=text) from None
    if named > today:
        message = f"{named.isoformat()} is in the future: say {_SINCE_HELP}."
        raise QueryError("since.future", message, text=named.isoformat())
    return named


def _find_since(text: _Text, today: date) -> date | None:
    """The day of "changes since …", cut out of ``text``; None when the question is not about
    changes. "changes" alone counts from a week ago."""
    since = _SINCE.search(text.rest)
    word = _SINCE_WORD.search(text.rest)
    if since is None and word is not None:
        after = text.rest[word.end() :].strip()
        message = f"I don't understand “since {after}”: say {_SINCE_HELP}."
        raise QueryError("since.unknown", message, text=after)
    changes = _CHANGES.search(text.rest)
    if since is None and changes is None:
        return None
    day = today - timedelta(days=_DEFAULT_SINCE_DAYS)
    if since is not None:
        day = _since_day(since, today)
        text.cut(since)
    changes = _CHANGES.search(text.rest)
    if changes is not None:
        text.cut(changes)
    return day


def parse_query(
    question: str,
    today: date,
    directory: Directory,
    *,
    fiscal_start_month: int = 1,
    default_grain: Grain = Grain.QUARTER,
    grains: Mapping[str, Grain] | None = None,
) -> Query:
    """Parse ``question``. Without a period, the KPI is read over its grain in ``grains``
    (e.g. the grain of its company target), else over ``default_grain``, containing ``today``."""
    # "since last week" names a day, not the period: read it before the period is.
    asked = _Text(question)
    since = _find_since(asked, today)
    try:
        period, rest = extract_period(asked.rest, today, fiscal_start_month)
    except PeriodParseError as error:
        code = "period.range" if error.out_of_range else "period"
        raise QueryError(code, str(error), text=error.text) from None
    text = _Text(normalise(rest))
    breakdown: Level | None = None
    sourced = _BY_CHANNEL.search(text.rest)
    if sourced:
        text.cut(sourced)
    match = _BREAKDOWN.search(text.rest)
    if match:
        breakdown = _LEVEL_WORDS[match.group(1)]
        text.cut(match)
    scope = _find_scope(text, directory)
    kpi = _find_kpi(text)
    leftover = [w for w in text.rest.split() if w not in _STOPWORDS]
    if kpi is None:
        guess = " ".join(leftover) or question.strip()
        suggestions = tuple(s for w in [guess, *leftover] for s in suggest(w))
        unique = tuple(dict.fromkeys(suggestions))
        raise QueryError("unknown_kpi", f"I don't know the KPI “{guess}”.", unique, text=guess)
    if leftover:
        rest = " ".join(leftover)
        raise QueryError(
            "not_understood",
            f"I understood {kpi}, but not “{rest}”.",
            tuple(dict.fromkeys(s for w in leftover for s in suggest(w))),
            kpi=kpi,
            text=rest,
        )
    if since is not None and kpi != "pipeline":
        raise QueryError(
            "since.not_pipeline",
            f"Changes since a day are kept for the pipeline, not {kpi}: "
            "try “pipeline changes since last week”.",
            kpi=kpi,
        )
    if sourced and not KPIS[kpi].by_channel:
        known = ", ".join(k.id for k in KPIS.values() if k.by_channel)
        raise QueryError(
            "by_channel.unsupported",
            f"{kpi} is not broken down by lead source; these are: {known}.",
            kpi=kpi,
            known=known,
        )
    if breakdown is None or not is_finer(breakdown, scope.level):
        breakdown = DEFAULT_BREAKDOWN[scope.level]
    if period is None:
        grain = (grains or {}).get(kpi, default_grain)
        period = period_containing(grain, today, fiscal_start_month)
    return Query(kpi, scope, period, breakdown, since, by_channel=sourced is not None)
