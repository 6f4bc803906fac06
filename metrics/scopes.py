"""Scopes: who a number is about (the company, a region, a team or a rep) and the hierarchy
used to break an answer down by the next level."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    COMPANY = "company"
    REGION = "region"
    TEAM = "team"
    REP = "rep"


@dataclass(frozen=True, order=True)
class Scope:
    level: Level
    name: str = ""

    @classmethod
    def company(cls) -> Scope:
        return cls(Level.COMPANY, "")

    @property
    def column(self) -> str | None:
        """The fact column that selects this scope; None for the whole company."""
        return None if self.level is Level.COMPANY else self.level.value


# Default drill-down: the design breaks company answers down by team (regions are optional in
# many CRMs), a region by its teams and a team by its reps.
DEFAULT_BREAKDOWN: dict[Level, Level | None] = {
    Level.COMPANY: Level.TEAM,
    Level.REGION: Level.TEAM,
    Level.TEAM: Level.REP,
    Level.REP: None,
}

_DEPTH = {Level.COMPANY: 0, Level.REGION: 1, Level.TEAM: 2, Level.REP: 3}


def is_finer(child: Level, parent: Level) -> bool:
    return _DEPTH[child] > _DEPTH[parent]
