"""The demo company: Atelier Lumière SAS, a French B2B lighting firm with six sales teams in five
regions, 18 months of CRM history ending ``today``, and a config file whose targets leave some
teams clearly ahead of plan and others clearly behind, so that ``kpibot demo`` has something to
say on any day.

Everything comes from one ``random.Random(seed)`` and is dated relative to ``today``: the same
(today, seed) always gives the same company. The rows go through ``bot.store.upsert`` like any
import (source ``demo``), so building the demo twice changes nothing.
"""

from __future__ import annotations

import math
import random
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import Enum
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from bot.demo_history import DealLife, open_stage, state_on, write_history
from bot.formatting import Formatter
from bot.rendering import environment
from bot.settings import Evaluation as EvaluationSettings
from bot.settings import Organisation
from bot.store.changes import pending, record_deletions
from bot.store.database import bump_data_version, make_engine, migrate, session_factory, transaction
from bot.store.facts_loader import load_facts
from bot.store.models import Base
from bot.store.upsert import ids_by_source_id, upsert
from metrics.facts import Facts
from metrics.kpis import KPIS, Context
from metrics.periods import Grain, Period, period_containing
from metrics.scopes import Level, Scope

SOURCE = "demo"
CURRENCY = "EUR"
FX_RATES: dict[str, Decimal] = {
    "GBP": Decimal("1.17"),
    "CHF": Decimal("1.06"),
    "USD": Decimal("0.92"),
}
NAME = "Atelier Lumière SAS"
TEMPLATE = "config/demo.yaml.j2"

ZONE = ZoneInfo("Europe/Paris")
# The organisation the demo's config file names, for reading --as-of before that file exists.
ORGANISATION = Organisation(name=NAME, locale="fr_FR", timezone=ZONE.key)
_DOMAIN = "atelier-lumiere.example"
_HISTORY_MONTHS = 18
# Chance that an active rep logs a new lead on a working day, before seasonality.
_LEAD_CHANCE = 0.9

Row = dict[str, Any]
_T = TypeVar("_T")


@dataclass(frozen=True)
class DemoSummary:
    """How many rows of each kind the demo company has."""

    teams: int
    reps: int
    accounts: int
    leads: int
    opportunities: int
    spend_rows: int
    surveys: int
    # Rows written or deleted (0 when the store already held this company): what a build did,
    # not what the company is, so summaries of the same company compare equal.
    changed: int = field(default=0, compare=False)

    def worded(self, fmt: Formatter) -> str:
        counts = {key: fmt.number(value, digits=0) for key, value in vars(self).items()}
        return fmt.t("demo.summary", **counts)


class _Pace(Enum):
    """Where a team's revenue target is set relative to what the data give it."""

    AHEAD = "ahead"
    STEADY = "steady"
    BEHIND = "behind"


@dataclass(frozen=True)
class _RepSpec:
    name: str
    hired_days_ago: int
    left_days_ago: int | None = None


@dataclass(frozen=True)
class _TeamSpec:
    key: str
    name: str
    region: str
    manager: str
    pace: _Pace
    deal_size: int  # median deal in EUR
    cycle_days: int  # median days from creation to decision
    win_rate: float
    conversion: float  # multiplier on each lead channel's conversion rate
    csat: float  # mean CSAT score, 1 to 5
    segments: tuple[tuple[str, float], ...]
    countries: tuple[tuple[str, float], ...]
    reps: tuple[_RepSpec, ...]
    # A customer under a framework contract that is renewed on each quarter's first business
    # day: it gives the teams meant to be ahead a booked deal early in every quarter.
    anchor_account: str | None = None


_GRANDS, _ETI, _PME = "Grands comptes", "ETI", "PME"

_TEAMS: tuple[_TeamSpec, ...] = (
    _TeamSpec(
        "paris-gc", "Paris Grands Comptes", "Île-de-France", "Claire Dubois", _Pace.AHEAD,
        deal_size=42_000, cycle_days=70, win_rate=0.40, conversion=1.0, csat=4.4,
        segments=((_GRANDS, 0.8), (_ETI, 0.2)), countries=(("France", 1.0),),
        reps=(
            _RepSpec("Antoine Lefèvre", 2300), _RepSpec("Camille Laurent", 1500),
            _RepSpec("Thomas Mercier", 900), _RepSpec("Inès Benali", 250),
            _RepSpec("Mathieu Rousseau", 1800, left_days_ago=270),
            _RepSpec("Élodie Fournier", 45),
        ),
        anchor_account="Crédit Hexagone SA",
    ),
    _TeamSpec(
        "paris-pme", "Paris PME", "Île-de-France", "Julien Moreau", _Pace.STEADY,
        deal_size=9_000, cycle_days=30, win_rate=0.34, conversion=1.05, csat=4.3,
        segments=((_PME, 0.85), (_ETI, 0.15)), countries=(("France", 1.0),),
        reps=(
            _RepSpec("Sarah Cohen", 1900), _RepSpec("Nicolas Petit", 1200),
            _RepSpec("Léa Garnier", 800), _RepSpec("Hugo Lambert", 600),
            _RepSpec("Manon Chevalier", 420),
            _RepSpec("Karim Haddad", 1400, left_days_ago=120),
        ),
    ),
    _TeamSpec(
        "lyon", "Lyon", "Auvergne-Rhône-Alpes", "Sophie Girard", _Pace.BEHIND,
        deal_size=16_000, cycle_days=45, win_rate=0.33, conversion=1.0, csat=3.6,
        segments=((_PME, 0.5), (_ETI, 0.4), (_GRANDS, 0.1)), countries=(("France", 1.0),),
        reps=(
            _RepSpec("Pierre Bonnet", 2000), _RepSpec("Chloé Roux", 1100),
            _RepSpec("Maxime Faure", 700), _RepSpec("Émilie Perrin", 500),
            _RepSpec("Théo Blanc", 25),
        ),
    ),
    _TeamSpec(
        "munich", "Munich", "DACH", "Katharina Weber", _Pace.AHEAD,
        deal_size=28_000, cycle_days=60, win_rate=0.41, conversion=1.0, csat=4.4,
        segments=((_ETI, 0.6), (_GRANDS, 0.3), (_PME, 0.1)),
        countries=(("Allemagne", 0.6), ("Suisse", 0.25), ("Autriche", 0.15)),
        reps=(
            _RepSpec("Lukas Schneider", 1700), _RepSpec("Anna Müller", 1300),
            _RepSpec("Felix Wagner", 950), _RepSpec("Sophie Becker", 640),
            _RepSpec("Jonas Hoffmann", 560),
        ),
        anchor_account="Alpenbahn Immobilien AG",
    ),
    _TeamSpec(
        "london", "London", "UK & Ireland", "James Whitfield", _Pace.BEHIND,
        deal_size=20_000, cycle_days=50, win_rate=0.18, conversion=0.9, csat=4.1,
        segments=((_ETI, 0.5), (_PME, 0.3), (_GRANDS, 0.2)),
        countries=(("Royaume-Uni", 0.8), ("Irlande", 0.2)),
        reps=(
            _RepSpec("Oliver Bennett", 1600), _RepSpec("Emily Clarke", 1000),
            _RepSpec("Harry Patel", 720), _RepSpec("Charlotte Hughes", 480),
            _RepSpec("George Foster", 1300, left_days_ago=60),
        ),
    ),
    _TeamSpec(
        "bruxelles", "Bruxelles", "Benelux", "Pieter Janssens", _Pace.STEADY,
        deal_size=14_000, cycle_days=45, win_rate=0.35, conversion=1.0, csat=4.2,
        segments=((_PME, 0.5), (_ETI, 0.5)),
        countries=(("Belgique", 0.6), ("Pays-Bas", 0.3), ("Luxembourg", 0.1)),
        reps=(
            _RepSpec("Lotte De Smet", 1400), _RepSpec("Thomas Peeters", 860),
            _RepSpec("Amélie Jacobs", 380),
        ),
    ),
)  # fmt: skip

# Country → (deal currency, language of company names).
_COUNTRIES: dict[str, tuple[str, str]] = {
    "France": ("EUR", "fr"),
    "Belgique": ("EUR", "fr"),
    "Luxembourg": ("EUR", "fr"),
    "Pays-Bas": ("EUR", "nl"),
    "Allemagne": ("EUR", "de"),
    "Autriche": ("EUR", "de"),
    "Suisse": ("CHF", "de"),
    "Royaume-Uni": ("GBP", "en"),
    "Irlande": ("EUR", "en"),
}

_SURNAMES: dict[str, tuple[str, ...]] = {
    "fr": (
        "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
        "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand",
        "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier", "Dupont",
        "Lambert", "Bonnet", "François", "Legrand", "Garnier", "Faure", "Rousseau", "Blanc",
        "Guérin", "Henry", "Roussel", "Perrin", "Morin", "Clément", "Gauthier", "Dumont",
        "Fontaine", "Chevalier", "Robin", "Masson", "Lemaire", "Barbier", "Brun", "Picard",
        "Renaud",
    ),
    "de": (
        "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
        "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf",
        "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann", "Lange",
        "Werner", "Krause", "Lehmann", "Köhler", "Huber", "Brunner",
    ),
    "en": (
        "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
        "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green",
        "Hall", "Wood", "Jackson", "Clarke", "Murphy", "Kelly", "O'Brien", "Byrne", "Walsh",
        "Hughes", "Edwards", "Turner", "Hill", "Moore",
    ),
    "nl": (
        "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser", "Smit",
        "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks",
        "van Leeuwen", "Dekker", "Brouwer", "de Wit",
    ),
}  # fmt: skip

# Company name patterns ({a}, {b}: surnames) and legal forms, per language.
_COMPANY_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "fr": (
        ("Groupe {a}", "Maison {a}", "Cabinet {a}", "Hôtels {a}", "Clinique {a}",
         "Laboratoires {a}", "Transports {a}", "{a} & Fils", "{a} & Associés", "{a}-{b}",
         "Ateliers {a}", "Imprimerie {a}", "Pharmacies {a}", "Immobilière {a}"),
        ("SA", "SAS", "SARL"),
    ),
    "de": (
        ("{a} Logistik", "{a} Bau", "{a} Technik", "{a} Kliniken", "{a} Hotels", "{a} Handel",
         "{a} Immobilien", "{a} & {b}", "{a} Versicherungen", "{a} Maschinenbau"),
        ("GmbH", "AG", "KG"),
    ),
    "en": (
        ("{a} Hotels", "{a} Logistics", "{a} Properties", "{a} Healthcare", "{a} Retail",
         "{a} & {b}", "{a} Engineering", "{a} Partners", "{a} Estates"),
        ("Ltd", "plc", "LLP"),
    ),
    "nl": (
        ("{a} Logistiek", "{a} Bouw", "{a} Zorg", "{a} Vastgoed", "{a} & {b}", "{a} Techniek"),
        ("B.V.", "N.V."),
    ),
}  # fmt: skip

_INDUSTRIES = (
    "Banque & assurance", "Hôtellerie", "Commerce de détail", "Santé", "Industrie",
    "Immobilier", "Enseignement", "Secteur public", "Logistique",
)  # fmt: skip
_PRODUCTS = (
    "Éclairage tertiaire", "Luminaires sur mesure", "Rénovation LED", "Pilotage connecté",
    "Contrat de maintenance",
)  # fmt: skip
# Lead channel → (share of leads, chance to convert).
_CHANNELS: dict[str, tuple[float, float]] = {
    "Site web": (0.28, 0.20),
    "LinkedIn": (0.18, 0.14),
    "Salon": (0.14, 0.26),
    "Google Ads": (0.15, 0.12),
    "Partenaire": (0.10, 0.32),
    "Recommandation": (0.07, 0.45),
    "Webinaire": (0.08, 0.18),
}
# Month → factor. Leads dry up in August and at Christmas; decisions cluster before the
# summer and the year end, when budgets must be spent.
_LEAD_SEASON = {1: 1.0, 2: 1.0, 3: 1.1, 4: 1.0, 5: 0.9, 6: 1.1, 7: 0.8, 8: 0.4, 9: 1.15,
                10: 1.1, 11: 1.05, 12: 0.75}  # fmt: skip
_WIN_SEASON = {1: 0.85, 2: 0.9, 3: 1.05, 4: 0.95, 5: 0.95, 6: 1.2, 7: 0.95, 8: 0.6, 9: 1.0,
               10: 1.05, 11: 1.15, 12: 1.35}  # fmt: skip
# Trade-show months weigh on the events budget; nobody exhibits in August.
_EVENT_SEASON = {3: 2.0, 6: 1.5, 7: 0.3, 8: 0.0, 9: 2.0, 11: 1.5, 12: 0.5}
# Monthly events budget per region, in EUR.
_EVENTS_BUDGET = {
    "Île-de-France": 7000,
    "Auvergne-Rhône-Alpes": 2500,
    "DACH": 4500,
    "UK & Ireland": 9000,
    "Benelux": 2000,
}
# Company-wide monthly budgets, in EUR. Spend is booked under the lead channels' names, so that
# a channel's CPA sets its spend against the customers its leads brought.
_COMPANY_BUDGET = {"Google Ads": 9000, "Webinaire": 2500}
_LINKEDIN_PER_REP = 350

# Written parents first; foreign keys hold source ids until written: (column, table).
_TABLES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("teams", ()),
    ("reps", (("team_id", "teams"),)),
    ("accounts", ()),
    ("leads", (("owner_id", "reps"), ("account_id", "accounts"))),
    ("opportunities", (("owner_id", "reps"), ("account_id", "accounts"))),
    ("spend", (("team_id", "teams"),)),
    ("surveys", (("account_id", "accounts"), ("rep_id", "reps"))),
)
_REFERENCED = {table for _, refs in _TABLES for _, table in refs}


# --- the calendar --------------------------------------------------------------------------


def _easter(year: int) -> date:
    """Easter Sunday (the anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday) // 451
    month, day = divmod(h + weekday - 7 * m + 114, 31)
    return date(year, month, day + 1)


def french_holidays(year: int) -> list[date]:
    """France's public holidays (jours fériés) in ``year``, in date order."""
    easter = _easter(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    moving = [easter + timedelta(days=n) for n in (1, 39, 50)]
    return sorted([date(year, month, day) for month, day in fixed] + moving)


def _evaluation(today: date) -> EvaluationSettings:
    """The demo's evaluation settings: written to the config and used to set the targets, so
    that the pacing the targets were set with is the pacing they are judged with."""
    holidays = french_holidays(today.year) + french_holidays(today.year + 1)
    return EvaluationSettings(
        tolerance=Decimal("0.05"),
        pace="business_days",
        holidays=tuple(holidays),
        min_sample=20,
        # Long enough that a quarter missed shows in the digests of the next quarter's first
        # two weeks.
        report_ended_for_days=10,
        default_probability=Decimal("0.5"),
    )


# --- generation ----------------------------------------------------------------------------


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _email(name: str) -> str:
    first, last = name.split(" ", 1)
    local = f"{first}.{last.replace(' ', '')}"
    return f"{_ascii(local).lower()}@{_DOMAIN}"


@dataclass(frozen=True)
class _Rep:
    key: str
    team: _TeamSpec
    active_from: date
    active_to: date | None

    def active_on(self, day: date) -> bool:
        return self.active_from <= day and (self.active_to is None or day <= self.active_to)


class _Generator:
    """Builds every row of the demo company, in a fixed order of random draws."""

    def __init__(self, today: date, seed: int) -> None:
        self.rng = random.Random(seed)
        self.today = today
        self.start = period_containing(Grain.MONTH, today).shift(-_HISTORY_MONTHS).start
        self.holidays = frozenset(
            day for year in range(self.start.year, today.year + 1) for day in french_holidays(year)
        )
        self.rows: dict[str, list[Row]] = {name: [] for name, _ in _TABLES}
        self.names: set[str] = set()
        self.team_reps: dict[str, list[_Rep]] = {}
        self.anchors: dict[str, tuple[str, str]] = {}
        # Each opportunity's drawn life, by source id, for its simulated history.
        self.lives: dict[str, DealLife] = {}

    def generate(self) -> dict[str, list[Row]]:
        self._teams_and_reps()
        self._leads()
        self._framework_renewals()
        self._spend()
        return self.rows

    def _pick(self, weighted: Sequence[tuple[_T, float]]) -> _T:
        return self.rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]

    def _teams_and_reps(self) -> None:
        for team in _TEAMS:
            self.rows["teams"].append(
                {"source": SOURCE, "source_id": team.key, "name": team.name,
                 "region": team.region, "manager": team.manager}
            )  # fmt: skip
            reps = []
            for spec in team.reps:
                email = _email(spec.name)
                left = spec.left_days_ago
                rep = _Rep(
                    key=email.split("@")[0],
                    team=team,
                    active_from=self.today - timedelta(days=spec.hired_days_ago),
                    active_to=None if left is None else self.today - timedelta(days=left),
                )
                reps.append(rep)
                # slack_user_id is left out on purpose: rebuilding the demo keeps the ids an
                # admin has linked.
                self.rows["reps"].append(
                    {"source": SOURCE, "source_id": rep.key, "name": spec.name, "email": email,
                     "team_id": team.key, "active_from": rep.active_from,
                     "active_to": rep.active_to}
                )  # fmt: skip
            self.team_reps[team.key] = reps
            if team.anchor_account is not None:
                country = team.countries[0][0]
                key = self._add_account(team.anchor_account, _GRANDS, "Banque & assurance", country)
                self.anchors[team.key] = (key, _COUNTRIES[country][0])

    def _add_account(self, name: str, segment: str, industry: str, country: str) -> str:
        key = f"A{len(self.rows['accounts']) + 1:05d}"
        self.names.add(name)
        self.rows["accounts"].append(
            {"source": SOURCE, "source_id": key, "name": name, "segment": segment,
             "industry": industry, "country": country}
        )  # fmt: skip
        return key

    def _company_name(self, language: str) -> str:
        patterns, forms = _COMPANY_NAMES[language]
        surnames = _SURNAMES[language]
        for _ in range(50):
            a, b = self.rng.sample(surnames, 2)
            name = f"{self.rng.choice(patterns).format(a=a, b=b)} {self.rng.choice(forms)}"
            if name not in self.names:
                return name
        # Account names identify customers in the facts, so they must stay unique.
        return f"{name} {len(self.names)}"  # pragma: no cover - 50 collisions in a row

    def _new_account(self, team: _TeamSpec) -> tuple[str, str]:
        """A new customer account for ``team``: its source id and its deal currency."""
        country = self._pick(team.countries)
        currency, language = _COUNTRIES[country]
        name = self._company_name(language)
        segment = self._pick(team.segments)
        key = self._add_account(name, segment, self.rng.choice(_INDUSTRIES), country)
        return key, currency

    def _owner(self, rep: _Rep, on: date) -> _Rep:
        """Who owns a record on ``on``: ``rep``, or a teammate once ``rep`` has left."""
        if rep.active_on(on):
            return rep
        mates = [r for r in self.team_reps[rep.team.key] if r.active_on(on)]
        return self.rng.choice(mates) if mates else rep

    def _leads(self) -> None:
        channels = [(name, share) for name, (share, _) in _CHANNELS.items()]
        day = self.start
        while day <= self.today:
            if day.weekday() < 5:
                chance = _LEAD_CHANCE * _LEAD_SEASON[day.month]
                for team in _TEAMS:
                    for rep in self.team_reps[team.key]:
                        if rep.active_on(day) and self.rng.random() < chance:
                            self._lead(team, rep, day, self._pick(channels))
            day += timedelta(days=1)

    def _lead(self, team: _TeamSpec, rep: _Rep, day: date, channel: str) -> None:
        converted: date | None = None
        account: str | None = None
        if self.rng.random() < _CHANNELS[channel][1] * team.conversion:
            on = day + timedelta(days=1 + int(self.rng.expovariate(1 / 3)))
            if on <= self.today:
                converted = on
                account, currency = self._new_account(team)
                self._deal(team, rep, account, currency, on, expansion=False)
        self.rows["leads"].append(
            {"source": SOURCE, "source_id": f"L{len(self.rows['leads']) + 1:05d}",
             "created_at": day, "channel": channel, "owner_id": rep.key,
             "converted_at": converted, "account_id": account}
        )  # fmt: skip

    def _deal(
        self,
        team: _TeamSpec,
        rep: _Rep,
        account: str,
        currency: str,
        created: date,
        *,
        expansion: bool,
    ) -> None:
        """One opportunity, whose fate (won or lost, when) is drawn at creation; ``today``
        only decides how much of that fate has happened yet."""
        rng = self.rng
        median = team.cycle_days * (0.6 if expansion else 1.0)
        cycle = max(7, round(rng.lognormvariate(math.log(median), 0.45)))
        planned = created + timedelta(days=cycle)
        if planned.month == 8 and rng.random() < 0.6:
            # Decisions wait for la rentrée.
            planned = date(planned.year, 9, rng.randint(1, 20))
        # Customers who bought once buy again more readily.
        base = min(0.9, 1.7 * team.win_rate) if expansion else team.win_rate
        chance = base * _WIN_SEASON[planned.month]
        won = rng.random() < chance
        # Lost deals die before their planned date; some deals of either fate slip.
        decided = planned
        if not won:
            decided = created + timedelta(days=max(3, round(cycle * rng.uniform(0.3, 0.9))))
        if rng.random() < 0.07:
            decided = max(decided, planned) + timedelta(days=rng.randint(20, 70))
        size = team.deal_size * rng.lognormvariate(0, 0.5) * (0.4 if expansion else 1.0)
        amount = _round_amount(Decimal(repr(size)) / FX_RATES.get(currency, Decimal(1)))
        product = rng.choice(_PRODUCTS)
        closed = decided <= self.today
        owner = self._owner(rep, min(decided, self.today))
        if closed:
            stage, probability = ("Gagné", 1.0) if won else ("Perdu", 0.0)
            category = "Closed" if won else "Omitted"
            close, last_activity = decided, decided
        else:
            stage, probability, category = open_stage(created, planned, self.today)
            close = planned
            # A deal whose date has passed has gone quiet: nobody updated it.
            quiet = rng.randint(14, 40) if planned < self.today else rng.randint(0, 10)
            last_activity = max(created, self.today - timedelta(days=quiet))
        account_name = self.rows["accounts"][int(account[1:]) - 1]["name"]
        source_id = f"O{len(self.rows['opportunities']) + 1:05d}"
        self.lives[source_id] = DealLife(created, planned, decided)
        self.rows["opportunities"].append(
            {"source": SOURCE, "source_id": source_id,
             "name": f"{account_name} — {product}", "account_id": account,
             "owner_id": owner.key, "product": product, "stage": stage, "is_closed": closed,
             "is_won": closed and won, "amount": amount, "currency": currency,
             "created_at": created, "close_date": close, "probability": probability,
             "forecast_category": category, "last_activity_at": last_activity,
             "updated_at": datetime.combine(last_activity, time(18), ZONE)}
        )  # fmt: skip
        if closed and won:
            self._after_win(team, owner, account, currency, decided, expansion=expansion)

    def _after_win(
        self, team: _TeamSpec, owner: _Rep, account: str, currency: str, won: date, *,
        expansion: bool,
    ) -> None:  # fmt: skip
        rng = self.rng
        nps_mean = 2 * team.csat - 0.4
        if rng.random() < 0.6:
            score = min(5, max(1, round(rng.gauss(team.csat, 0.8))))
            self._survey(won + timedelta(days=rng.randint(10, 40)), account, owner, "csat", score)
        if rng.random() < 0.4:
            score = min(10, max(0, round(rng.gauss(nps_mean, 1.6))))
            self._survey(won + timedelta(days=rng.randint(45, 120)), account, owner, "nps", score)
        if not expansion and rng.random() < 0.3:
            created = won + timedelta(days=rng.randint(45, 200))
            if created <= self.today:
                rep = self._owner(owner, created)
                self._deal(team, rep, account, currency, created, expansion=True)

    def _survey(self, day: date, account: str, rep: _Rep, kind: str, score: int) -> None:
        if day > self.today:
            return
        self.rows["surveys"].append(
            {"source": SOURCE, "source_id": f"V{len(self.rows['surveys']) + 1:05d}",
             "date": day, "account_id": account, "rep_id": rep.key, "kind": kind,
             "score": float(score)}
        )  # fmt: skip

    def _first_business_day(self, period: Period) -> date:
        day = period.start
        while day.weekday() >= 5 or day in self.holidays:
            day += timedelta(days=1)
        return day

    def _framework_renewals(self) -> None:
        quarter = period_containing(Grain.QUARTER, self.start)
        while quarter.start <= self.today:
            day = self._first_business_day(quarter)
            for team in _TEAMS:
                if team.key not in self.anchors or not self.start <= day <= self.today:
                    continue
                account, currency = self.anchors[team.key]
                senior = next(r for r in self.team_reps[team.key] if r.active_on(day))
                size = Decimal(repr(team.deal_size * 2 * self.rng.lognormvariate(0, 0.2)))
                amount = _round_amount(size / FX_RATES.get(currency, Decimal(1)))
                created = day - timedelta(days=45)
                source_id = f"F-{team.key}-{quarter.key}"
                self.lives[source_id] = DealLife(created, day, day)
                self.rows["opportunities"].append(
                    {"source": SOURCE, "source_id": source_id,
                     "name": f"{team.anchor_account} — contrat-cadre {quarter.key}",
                     "account_id": account, "owner_id": senior.key,
                     "product": "Contrat de maintenance", "stage": "Gagné", "is_closed": True,
                     "is_won": True, "amount": amount, "currency": currency,
                     "created_at": created, "close_date": day, "probability": 1.0,
                     "forecast_category": "Closed", "last_activity_at": day,
                     "updated_at": datetime.combine(day, time(18), ZONE)}
                )  # fmt: skip
            quarter = quarter.shift(1)

    def _spend(self) -> None:
        month = period_containing(Grain.MONTH, self.start)
        while month.start <= self.today:
            # One row per month, dated its first day as a monthly import would be, so that a
            # month compared to date (like for like) still has its spend; the running month's
            # row holds what has been spent so far.
            elapsed = (min(month.end, self.today) - month.start).days + 1
            share = elapsed / month.days
            events = _EVENT_SEASON.get(month.start.month, 1.0)
            for team in _TEAMS:
                budget = _LINKEDIN_PER_REP * len(team.reps)
                self._spend_row(month, "LinkedIn", budget * share, team=team)
            for region, budget in _EVENTS_BUDGET.items():
                self._spend_row(month, "Salon", budget * events * share, region=region)
            for channel, budget in _COMPANY_BUDGET.items():
                self._spend_row(month, channel, budget * share)
            month = month.shift(1)

    def _spend_row(
        self, month: Period, channel: str, budget: float, *,
        team: _TeamSpec | None = None, region: str | None = None,
    ) -> None:  # fmt: skip
        if budget <= 0:
            return
        local = team or next((t for t in _TEAMS if t.region == region), None)
        currency = "EUR" if local is None else _COUNTRIES[local.countries[0][0]][0]
        amount = Decimal(repr(budget * self.rng.uniform(0.85, 1.15))) / FX_RATES.get(
            currency, Decimal(1)
        )
        scope = team.key if team else _ascii(region or "company").lower().replace(" ", "-")
        self.rows["spend"].append(
            {"source": SOURCE,
             "source_id": f"S-{month.key}-{_ascii(channel).lower().replace(' ', '-')}-{scope}",
             "date": month.start, "channel": channel, "amount": amount.quantize(Decimal(1)),
             "currency": currency, "team_id": team.key if team else None, "region": region}
        )  # fmt: skip


def _round_amount(amount: Decimal) -> Decimal:
    """Deal amounts as salespeople quote them: to the hundred, at least 1 000."""
    return max(Decimal(1000), (amount / 100).quantize(Decimal(1)) * 100)


# --- writing -------------------------------------------------------------------------------


def build_demo(
    session: Session, today: date, seed: int = 7, *, stood_on: date | None = None
) -> DemoSummary:
    """Write the demo company as of ``today`` into a migrated store, in ``session``'s
    transaction. Demo rows that the same (today, seed) would not generate (left by a build on
    another day) are deleted. The data version is bumped once, and only if a row changed; then
    the opportunities' history is rewritten as their simulated lives (``bot.demo_history``).

    ``stood_on`` (no later than ``today``) writes the same company as its CRM showed it at the
    end of that day: deals at the stage, probability and close date they had then, leads not
    yet converted, spend booked so far. Written day after day, it replays the demo's history
    through the store, as a daily sync would have brought it."""
    tables, lives = _generated(today, seed)
    if stood_on is not None:
        tables = _as_it_stood(tables, lives, today, stood_on)
    ids: dict[str, dict[str, int]] = {}
    changed = 0
    deals: list[Row] = []
    for name, references in _TABLES:
        table = Base.metadata.tables[name]
        rows = [_resolve(row, references, ids) for row in tables[name]]
        changed += upsert(session, table, rows)
        if name in _REFERENCED:
            ids[name] = ids_by_source_id(session, table, SOURCE, (r["source_id"] for r in rows))
        if name == "opportunities":
            deals = rows
    # Children first, so that no stale row is still referenced when it goes.
    for name, _ in reversed(_TABLES):
        keep = {row["source_id"] for row in tables[name]}
        changed += _prune(session, Base.metadata.tables[name], keep)
    if changed:
        table = Base.metadata.tables["opportunities"]
        deal_ids = ids_by_source_id(session, table, SOURCE, (r["source_id"] for r in deals))
        write_history(session, SOURCE, deals, deal_ids, lives, stood_on or today, ZONE)
        # Their history was rewritten: a refresh reads their pushes again (bot.store.changes).
        session.execute(update(table).where(table.c.source == SOURCE).values(pending(table)))
        bump_data_version(session)
    return DemoSummary(
        teams=len(tables["teams"]),
        reps=len(tables["reps"]),
        accounts=len(tables["accounts"]),
        leads=len(tables["leads"]),
        opportunities=len(tables["opportunities"]),
        spend_rows=len(tables["spend"]),
        surveys=len(tables["surveys"]),
        changed=changed,
    )


@lru_cache(maxsize=1)
def _generated(today: date, seed: int) -> tuple[dict[str, list[Row]], dict[str, DealLife]]:
    """Every row of the demo company for (``today``, ``seed``) and its deals' lives, kept for
    the last pair asked: ``kpibot demo`` builds the company twice (once to set the targets),
    a replay once a day. Callers copy rows before changing them."""
    generator = _Generator(today, seed)
    return generator.generate(), generator.lives


def _as_it_stood(
    tables: dict[str, list[Row]], lives: dict[str, DealLife], today: date, on: date
) -> dict[str, list[Row]]:
    """The demo company generated for ``today`` as its CRM showed it at the end of ``on``."""
    if on > today:
        raise ValueError(f"the demo built for {today} does not know {on}")
    deals = []
    for row in tables["opportunities"]:
        life = lives[row["source_id"]]
        state = state_on(row, life, today, on)
        if state is not None:
            deals.append(_deal_on(row, state, life, on))
    return {
        "teams": tables["teams"],
        "reps": [
            {**r, "active_to": None} if r["active_to"] and r["active_to"] > on else r
            for r in tables["reps"]
        ],
        "accounts": tables["accounts"],
        "leads": [
            {**r, "converted_at": None, "account_id": None}
            if r["converted_at"] and r["converted_at"] > on
            else r
            for r in tables["leads"]
            if r["created_at"] <= on
        ],
        "opportunities": deals,
        "spend": [_spent_by(r, today, on) for r in tables["spend"] if r["date"] <= on],
        "surveys": [r for r in tables["surveys"] if r["date"] <= on],
    }


def _deal_on(row: Row, state: Row, life: DealLife, on: date) -> Row:
    status = state["status"]
    if status == "open":
        category = open_stage(life.created, life.planned, on)[2]
    else:
        category = "Closed" if status == "won" else "Omitted"
    last_activity = min(row["last_activity_at"], on)
    return {
        **row,
        **{k: v for k, v in state.items() if k != "status"},
        "is_closed": status != "open",
        "is_won": status == "won",
        "forecast_category": category,
        "last_activity_at": last_activity,
        "updated_at": datetime.combine(last_activity, time(18), ZONE),
    }


def _spent_by(row: Row, today: date, on: date) -> Row:
    """A month's spend row as it stood on ``on``: what had been spent by then (the running
    month's row holds the spend so far, as ``_spend`` writes it)."""
    month = period_containing(Grain.MONTH, row["date"])
    held = (min(month.end, today) - month.start).days + 1
    spent = (min(month.end, on) - month.start).days + 1
    if spent >= held:
        return row
    return {**row, "amount": (row["amount"] * spent / held).quantize(Decimal(1))}


def _resolve(
    row: Row, references: tuple[tuple[str, str], ...], ids: dict[str, dict[str, int]]
) -> Row:
    resolved = dict(row)
    for column, table in references:
        key = row[column]
        resolved[column] = None if key is None else ids[table][key]
    return resolved


def _prune(session: Session, table: Table, keep: set[str]) -> int:
    existing = session.scalars(select(table.c.source_id).where(table.c.source == SOURCE))
    stale = [key for key in existing if key not in keep]
    for start in range(0, len(stale), 500):
        chunk = stale[start : start + 500]
        record_deletions(session, table, ids_by_source_id(session, table, SOURCE, chunk).values())
        session.execute(delete(table).where(table.c.source == SOURCE, table.c.source_id.in_(chunk)))
    return len(stale)


# --- the config file -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Values:
    """One target's values, formatted for the config file (``480k``, ``32%``)."""

    company: str | None = None
    regions: dict[str, str] | None = None
    teams: dict[str, str] | None = None
    reps: dict[str, str] | None = None


def write_demo_config(
    path: Path, database_file: str = "kpibot.db", *, today: date, seed: int = 7
) -> None:
    """Write a commented ``kpibot.yaml`` for the demo company built with (``today``, ``seed``).

    Most targets are set from the data that build gives (it is made once in memory for that,
    which takes as long as ``build_demo``), so that the statuses are the intended ones: some
    teams ahead, some behind. ``database_file`` is relative to the config file. Refuses to
    overwrite an existing file (``FileExistsError``).
    """
    if path.exists():
        raise FileExistsError(f"{path} exists: the demo never overwrites a config file")
    evaluation = _evaluation(today)
    facts = _demo_facts(today, seed)
    planner = _Planner(facts, today, frozenset(evaluation.holidays))
    quarter = period_containing(Grain.QUARTER, today)
    text = (
        environment()
        .get_template(TEMPLATE)
        .render(
            name=NAME,
            currency=CURRENCY,
            today=today,
            seed=seed,
            database_file=database_file,
            evaluation=evaluation,
            fx_rates={currency: f"{rate:f}" for currency, rate in FX_RATES.items()},
            kpis=list(KPIS),
            ahead=[t.name for t in _TEAMS if t.pace is _Pace.AHEAD],
            behind=[t.name for t in _TEAMS if t.pace is _Pace.BEHIND],
            revenue=planner.revenue(),
            next_quarter=quarter.shift(1).key,
            next_quarter_company=planner.next_quarter(),
            new_pipeline=planner.new_pipeline(),
            win_rate=planner.win_rate(),
            conversion=planner.conversion(),
            cpa=planner.cpa(),
            nps=planner.nps(),
        )
    )
    with path.open("x", encoding="utf-8") as out:
        out.write(text + "\n")


def _demo_facts(today: date, seed: int) -> Facts:
    """The demo company's facts, from a throwaway in-memory store."""
    engine = make_engine("sqlite://")
    try:
        migrate(engine)
        with transaction(session_factory(engine)) as session:
            build_demo(session, today, seed)
        return load_facts(engine, CURRENCY, FX_RATES, 0.5)
    finally:
        engine.dispose()


def _significant(value: Decimal, digits: int, rounding: str) -> Decimal:
    """``value`` to ``digits`` significant digits (1 234 567 → 1 200 000 with 2)."""
    if value <= 0:
        return Decimal(0)
    exponent = value.adjusted() - digits + 1
    return value.scaleb(-exponent).quantize(Decimal(1), rounding=rounding).scaleb(exponent)


def _money(value: Decimal) -> str:
    """``2.4M``, ``480k``, ``950``: what a sales-ops person would type."""
    for unit, suffix in ((Decimal(10) ** 6, "M"), (Decimal(1000), "k")):
        if value >= unit:
            text = f"{value / unit:f}"
            return (text.rstrip("0").rstrip(".") if "." in text else text) + suffix
    return f"{value.quantize(Decimal(1)):f}"


def _percent(value: Decimal) -> str:
    return f"{(value * 100).quantize(Decimal(1)):f}%"


# The KPIs the planner reads need no target.
_NO_TARGETS = Context(target=lambda *_: None)


class _Planner:
    """Sets the demo's targets from its own facts: a team meant to be ahead gets a target
    comfortably below what it books and forecasts, one meant to be behind a target well above,
    whatever the day of the quarter."""

    def __init__(self, facts: Facts, today: date, holidays: frozenset[date]) -> None:
        self.facts = facts
        self.today = today
        self.quarter = period_containing(Grain.QUARTER, today)
        self.holidays = holidays
        self.regions = sorted({t.region for t in _TEAMS})

    def value(self, kpi: str, scope: Scope, period: Period) -> Decimal | None:
        return KPIS[kpi].compute(self.facts, scope, period, self.today, _NO_TARGETS).value

    def _each(
        self, rule: Callable[[Scope], str | None], levels: Iterable[Level] = (Level.TEAM,)
    ) -> _Values:
        found: dict[Level, dict[str, str]] = {}
        for level in levels:
            names = self.regions if level is Level.REGION else [t.name for t in _TEAMS]
            values = {name: rule(Scope(level, name)) for name in names}
            found[level] = {name: v for name, v in values.items() if v is not None}
        return _Values(
            company=rule(Scope.company()),
            regions=found.get(Level.REGION),
            teams=found.get(Level.TEAM),
        )

    @cached_property
    def team_targets(self) -> dict[str, Decimal]:
        previous = self.quarter.previous()
        fraction = self.quarter.elapsed_fraction(
            self.today, business_days=True, holidays=self.holidays
        )
        out = {}
        for team in _TEAMS:
            scope = Scope(Level.TEAM, team.name)
            last = self.value("revenue", scope, previous) or Decimal(0)
            booked = self.value("revenue", scope, self.quarter) or Decimal(0)
            forecast = self.value("forecast", scope, self.quarter) or Decimal(0)
            if team.pace is _Pace.AHEAD:
                # Below last quarter (achieved), the forecast and the run rate (on track).
                ceilings = [last, forecast]
                if fraction:
                    ceilings.append(booked / Decimal(repr(fraction)))
                out[team.name] = _significant(min(ceilings) * Decimal("0.85"), 2, ROUND_FLOOR)
            elif team.pace is _Pace.BEHIND:
                # Above last quarter (missed) and the forecast (at risk).
                target = max(last, forecast) * Decimal("1.25")
                out[team.name] = _significant(target, 2, ROUND_CEILING)
            else:
                # The average of the last four quarters: the team's usual level.
                year = [self.value("revenue", scope, previous.shift(-n)) for n in range(4)]
                usual = sum((v or Decimal(0) for v in year), Decimal(0)) / 4
                out[team.name] = _significant(usual, 2, ROUND_HALF_UP)
        return out

    def revenue(self) -> _Values:
        teams = self.team_targets
        regions: dict[str, Decimal] = {}
        for team in _TEAMS:
            regions[team.region] = regions.get(team.region, Decimal(0)) + teams[team.name]
        reps = {}
        for team in _TEAMS:
            if team.pace is _Pace.STEADY:
                continue
            # Each rep of the teams with a clear story carries an equal share, except new
            # hires, who are still ramping up: they carry a quarter of one (what "/kpi
            # montée en puissance" sets against the tenured reps' attainment).
            active = [
                r.name for r in team.reps
                if r.left_days_ago is None and r.hired_days_ago > 90
            ]  # fmt: skip
            share = _significant(teams[team.name] / len(active), 2, ROUND_CEILING)
            reps.update({name: _money(share) for name in active})
            ramping = _significant(share / 4, 2, ROUND_CEILING)
            reps.update({r.name: _money(ramping) for r in team.reps if r.hired_days_ago <= 90})
        return _Values(
            company=_money(sum(teams.values(), Decimal(0))),
            regions={name: _money(regions[name]) for name in self.regions},
            teams={name: _money(value) for name, value in teams.items()},
            reps=reps,
        )

    def next_quarter(self) -> str:
        """Next quarter's company plan, shaped by the season (a strong Q4, a weak summer)."""
        base = sum(self.team_targets.values(), Decimal(0))

        def season(period: Period) -> Decimal:
            months = [(period.start.month + i - 1) % 12 + 1 for i in range(3)]
            return Decimal(repr(sum(_WIN_SEASON[m] for m in months)))

        planned = base * season(self.quarter.shift(1)) / season(self.quarter)
        return _money(_significant(planned, 2, ROUND_CEILING))

    def new_pipeline(self) -> _Values:
        previous = self.quarter.previous()

        def rule(scope: Scope) -> str | None:
            last = self.value("new_pipeline", scope, previous)
            return None if not last else _money(_significant(last, 2, ROUND_FLOOR))

        return self._each(rule, (Level.REGION,))

    def trailing(self, kpi: str, scope: Scope) -> Decimal | None:
        """A ratio KPI over the last four whole quarters, each weighted by its sample: one
        quarter of a region is too few deals, and it would carry that quarter's season."""
        total, sample = Decimal(0), 0
        for n in range(1, 5):
            quarter = self.quarter.shift(-n)
            found = KPIS[kpi].compute(self.facts, scope, quarter, self.today, _NO_TARGETS)
            if found.value is not None and found.sample:
                total += found.value * found.sample
                sample += found.sample
        return total / sample if sample else None

    def win_rate(self) -> _Values:
        company = self.trailing("win_rate", Scope.company()) or Decimal(0)

        def rule(scope: Scope) -> str | None:
            rate = self.trailing("win_rate", scope)
            if rate is None:
                return None
            # London's win rate is the demo's weak spot: it is asked to win as often as the
            # rest of the company, and at least ten points more often than it does.
            if scope.name == "London":
                return _percent(max(company, rate + Decimal("0.10")))
            return _percent(rate - Decimal("0.04"))

        return self._each(rule)

    def conversion(self) -> _Values:
        def rule(scope: Scope) -> str | None:
            rate = self.trailing("conversion", scope)
            return None if rate is None else _percent(rate - Decimal("0.03"))

        return self._each(rule, (Level.REGION,))

    def cpa(self) -> _Values:
        def rule(scope: Scope) -> str | None:
            cost = self.trailing("cpa", scope)
            if cost is None:
                return None
            # UK events are dear for what they bring: that region stays over its target.
            factor = Decimal("0.7") if scope.name == "UK & Ireland" else Decimal("1.3")
            return _money(_significant(cost * factor, 2, ROUND_FLOOR))

        return self._each(rule, (Level.REGION,))

    def nps(self) -> str:
        score = self.trailing("nps", Scope.company()) or Decimal(0)
        return f"{(score / 5).quantize(Decimal(1), rounding=ROUND_FLOOR) * 5:f}"
