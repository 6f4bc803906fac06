"""The canonical facts as DataFrames, and the few selections every KPI is built from.

The shell (``bot.store``) loads these once per data version; KPIs only select from them. Column
contract (dates are ``datetime64`` at midnight in the organisation's time zone, money is int64
minor units of the base currency, ``rep``/``team``/``region`` are categorical names):

- ``opportunities``: id, rep, team, region, account, status ('open'|'won'|'lost'), amount,
  created, close, probability (0..1)
- ``leads``: id, rep, team, region, created, converted (NaT while unconverted)
- ``spend``: date, team, region (NaN for company-wide spend), amount
- ``surveys``: date, rep, team, region, kind ('csat'|'nps'), score
- ``reps``: name, email, team, region, active_from, active_to (NaT while employed)
- ``teams``: name, region, manager
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

import pandas as pd

from metrics.periods import Period
from metrics.scopes import Level, Scope

OPPORTUNITY_COLUMNS = (
    "id", "rep", "team", "region", "account", "status", "amount", "created", "close", "probability"
)  # fmt: skip
LEAD_COLUMNS = ("id", "rep", "team", "region", "created", "converted")
SPEND_COLUMNS = ("date", "team", "region", "amount")
SURVEY_COLUMNS = ("date", "rep", "team", "region", "kind", "score")
REP_COLUMNS = ("name", "email", "team", "region", "active_from", "active_to")
TEAM_COLUMNS = ("name", "region", "manager")


def empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def ts(d: date) -> pd.Timestamp:
    return pd.Timestamp(d.year, d.month, d.day)


def in_period(column: pd.Series, period: Period) -> pd.Series:
    return (column >= ts(period.start)) & (column <= ts(period.end))


def on_or_before(column: pd.Series, as_of: date) -> pd.Series:
    return column <= ts(as_of)


@dataclass
class Facts:
    """Everything the KPIs read, for one data version."""

    opportunities: pd.DataFrame
    leads: pd.DataFrame
    spend: pd.DataFrame
    surveys: pd.DataFrame
    reps: pd.DataFrame
    teams: pd.DataFrame
    currency: str = "EUR"
    minor_digits: int = 2
    version: int = 0
    _scoped: dict[tuple[str, Scope], pd.DataFrame] = field(default_factory=dict, repr=False)

    def select(self, table: str, scope: Scope) -> pd.DataFrame:
        """Rows of ``table`` in ``scope``; cached because breakdowns ask for the same slices."""
        key = (table, scope)
        if key not in self._scoped:
            frame: pd.DataFrame = getattr(self, table)
            column = scope.column
            self._scoped[key] = frame if column is None else frame[frame[column] == scope.name]
        return self._scoped[key]

    @cached_property
    def first_wins(self) -> pd.DataFrame:
        """Each account's first won deal (the deal that made it a customer): account, close,
        rep, team, region."""
        won = self.opportunities[
            (self.opportunities["status"] == "won") & self.opportunities["account"].notna()
        ]
        if won.empty:
            return won[["account", "close", "rep", "team", "region"]]
        first = won.sort_values("close", kind="stable").drop_duplicates("account")
        return first[["account", "close", "rep", "team", "region"]]

    def names(self, level: Level) -> list[str]:
        """Known names at ``level``, for parsing questions and breakdowns."""
        if level is Level.TEAM:
            return sorted(str(n) for n in self.teams["name"].dropna().unique())
        if level is Level.REGION:
            return sorted(str(n) for n in self.teams["region"].dropna().unique())
        if level is Level.REP:
            return sorted(str(n) for n in self.reps["name"].dropna().unique())
        return []

    def children(self, scope: Scope, level: Level) -> list[Scope]:
        """Scopes at ``level`` inside ``scope`` (teams of a region, reps of a team...)."""
        if level is Level.REP:
            reps = self.reps
            if scope.column is not None:
                reps = reps[reps[scope.column] == scope.name]
            return [Scope(Level.REP, str(n)) for n in sorted(reps["name"].dropna().unique())]
        teams = self.teams
        if scope.level is Level.REGION:
            teams = teams[teams["region"] == scope.name]
        elif scope.level is not Level.COMPANY:
            return []
        column = "name" if level is Level.TEAM else "region"
        return [Scope(level, str(n)) for n in sorted(teams[column].dropna().unique())]
