"""Who sees what: the roles of the config's ``access`` section applied to Slack users.

- admin (leadership, sales-ops): every number and the admin commands;
- manager: every aggregate (company, regions, teams), and the reps of their own teams;
- rep: every aggregate and their own numbers, no other rep's;
- anyone else: company figures, or nothing (``access.unknown_users``).

Aggregates are open to every known user because a sales team compares teams openly; an
individual's numbers are what people expect to stay between them and their manager.

A Slack user is matched by user id or by email (from ``users.info``) against the config, then
by email against the CRM's reps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from bot.settings import Access
from metrics.scopes import Level, Scope


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    REP = "rep"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Viewer:
    """A Slack user as kpibot sees them."""

    user_id: str
    role: Role
    rep: str | None = None  # the CRM rep this user is, if any
    teams: frozenset[str] = frozenset()  # the teams they manage
    # rep name → team, to decide whether a manager may see a rep
    team_of: Mapping[str, str | None] = field(default_factory=dict, repr=False, compare=False)
    sees_company: bool = True  # unknown users, per access.unknown_users

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may_see(self, scope: Scope) -> bool:
        if self.is_admin:
            return True
        if self.role is Role.UNKNOWN:
            return self.sees_company and scope.level is Level.COMPANY
        if scope.level is not Level.REP:
            return True
        if scope.name == self.rep:
            return True
        return self.role is Role.MANAGER and self.team_of.get(scope.name) in self.teams

    @property
    def home_scope(self) -> Scope:
        """The scope of this user's own dashboard: their team, themselves, or the company."""
        if self.role is Role.MANAGER and len(self.teams) == 1:
            return Scope(Level.TEAM, next(iter(self.teams)))
        if self.role is Role.REP and self.rep is not None:
            return Scope(Level.REP, self.rep)
        return Scope.company()


def _find(keys: Mapping[str, object], user_id: str, email: str | None) -> object | None:
    folded = {k.casefold(): v for k, v in keys.items()}
    if user_id.casefold() in folded:
        return folded[user_id.casefold()]
    if email and email.casefold() in folded:
        return folded[email.casefold()]
    return None


def viewer_for(
    access: Access,
    user_id: str,
    email: str | None,
    reps_by_email: Mapping[str, str],
    team_of: Mapping[str, str | None],
) -> Viewer:
    """The ``Viewer`` for a Slack user. ``reps_by_email`` maps lower-case CRM emails to rep
    names; ``team_of`` maps rep names to their team."""
    rep = _find(access.reps, user_id, email)
    if rep is None and email:
        rep = reps_by_email.get(email.casefold())
    rep_name = None if rep is None else str(rep)
    admins = {a.casefold() for a in access.admins}
    if user_id.casefold() in admins or (email and email.casefold() in admins):
        return Viewer(user_id, Role.ADMIN, rep_name, team_of=team_of)
    teams = _find(access.managers, user_id, email)
    if teams:
        assert isinstance(teams, tuple)
        return Viewer(user_id, Role.MANAGER, rep_name, frozenset(teams), team_of=team_of)
    if rep_name is not None:
        return Viewer(user_id, Role.REP, rep_name, team_of=team_of)
    return Viewer(
        user_id, Role.UNKNOWN, team_of=team_of, sees_company=access.unknown_users == "company"
    )
