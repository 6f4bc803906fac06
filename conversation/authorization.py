"""Who may do what, in one function: ``authorize(audience, action, scope)``.

The audience is a person (a ``Viewer``, from the config's ``access`` section) or a channel
(everyone in it reads what is posted there). The decision says whether the action is allowed
and, through ``Decision.shows``, which parts of an answer survive: breakdown rows, the
"furthest behind" lists inside alerts, names offered as suggestions.

Roles:

- admin (leadership, sales-ops): every number, every action;
- manager: every aggregate (company, regions, teams) and the reps of their own teams;
- rep: every aggregate and their own numbers, no other rep's;
- anyone else: company figures only, or nothing (``access.unknown_users``).

Aggregates are open to every known user because a sales team compares teams openly; an
individual's numbers stay between them and their manager. In a channel, rep figures follow
``visibility.rep_figures``: ``private`` (none), ``team`` (a team's reps in its own channel) or
``company`` (all).

Acting on alerts (acknowledge, snooze) is for admins, the manager of the alert's team (or of
the rep's team) and the rep whose own alert it is. Subscriptions, targets and sync are for
admins only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from metrics.answers import Answer
from metrics.evaluation import Evaluation
from metrics.ramp import RampUp, RepGroup
from metrics.scopes import Level, Scope
from metrics.waterfall import PipelineChanges


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    REP = "rep"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Viewer:
    """A chat user as kpibot sees them."""

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

    @property
    def own_scopes(self) -> tuple[Scope, ...]:
        """The scopes that are this user's own, to show before the rest: the teams they
        manage (by name), then themselves as a rep."""
        teams = tuple(Scope(Level.TEAM, t) for t in sorted(self.teams, key=str.casefold))
        return teams + ((Scope(Level.REP, self.rep),) if self.rep is not None else ())

    @property
    def home_scope(self) -> Scope:
        """The scope of this user's own dashboard: their team, themselves, or the company."""
        if self.role is Role.MANAGER and len(self.teams) == 1:
            return Scope(Level.TEAM, next(iter(self.teams)))
        if self.role is Role.REP and self.rep is not None:
            return Scope(Level.REP, self.rep)
        return Scope.company()


class RepFigures(StrEnum):
    """``visibility.rep_figures``: which rep figures a channel message may carry."""

    PRIVATE = "private"  # none: the channel learns how many reps are behind
    TEAM = "team"  # a team's own reps, in that team's channel
    COMPANY = "company"  # every rep, in every channel


@dataclass(frozen=True)
class Channel:
    """A channel as an audience; ``team`` is the team whose channel it is, if any."""

    channel_id: str
    rep_figures: RepFigures = RepFigures.PRIVATE
    team: str | None = None
    team_of: Mapping[str, str | None] = field(default_factory=dict, repr=False, compare=False)


Audience = Viewer | Channel


class Action(StrEnum):
    ASK = "ask"  # a question: one KPI, one scope
    OVERVIEW = "overview"  # /kpi team X, /kpi rep X, the leaderboard
    TARGETS = "targets"  # the list of targets
    ALERTS = "alerts"  # the list of firing alerts, an alert message, a digest's alerts
    HOME = "home"  # App Home
    SHARE = "share"  # re-post an answer in a channel
    ACKNOWLEDGE = "acknowledge"
    SNOOZE = "snooze"
    SUBSCRIBE = "subscribe"
    TARGET = "target"  # set a target
    SYNC = "sync"


READS = frozenset(
    {Action.ASK, Action.OVERVIEW, Action.TARGETS, Action.ALERTS, Action.HOME, Action.SHARE}
)
ADMIN_ONLY = frozenset({Action.SUBSCRIBE, Action.TARGET, Action.SYNC})


class Refusal(StrEnum):
    """Why an action was refused; the shell words it in the user's language."""

    UNKNOWN_USER = "unknown_user"  # unknown_users: nothing
    SCOPE = "scope"  # the scope is not one the viewer may see
    ADMIN_ONLY = "admin_only"
    NOT_YOURS = "not_yours"  # acknowledge or snooze an alert that is not theirs to manage
    CHANNEL = "channel"  # a channel audience acts on nothing
    OTHER_MESSAGE = "other_message"  # a button replayed on a message it does not belong to


class IdentityUnavailable(Exception):
    """The chat platform could not say who a user is; ``error`` is its error code. The user
    is told so, rather than being treated as someone kpibot does not know."""

    def __init__(self, user_id: str, error: str) -> None:
        super().__init__(f"could not identify {user_id}: {error}")
        self.user_id = user_id
        self.error = error


@dataclass(frozen=True)
class Decision:
    """Whether ``action`` is allowed, and which parts of its result the audience may see."""

    allowed: bool
    refusal: Refusal | None
    _sees: Callable[[Scope], bool] = field(repr=False, compare=False)

    @property
    def refusal_reason(self) -> Refusal:
        """Why it was refused (only for a refused decision)."""
        if self.refusal is None:
            raise ValueError("the action was allowed")
        return self.refusal

    def shows(self, scope: Scope) -> bool:
        """Whether a part about ``scope`` (a breakdown row, a contributor, a name) survives."""
        return self.allowed and self._sees(scope)


def sees(audience: Audience, scope: Scope) -> bool:
    """Whether figures about ``scope`` may reach ``audience``."""
    if isinstance(audience, Channel):
        if scope.level is not Level.REP:
            return True
        match audience.rep_figures:
            case RepFigures.COMPANY:
                return True
            case RepFigures.TEAM:
                team = audience.team_of.get(scope.name)
                return audience.team is not None and team == audience.team
            case RepFigures.PRIVATE:
                return False
    viewer = audience
    if viewer.is_admin:
        return True
    if viewer.role is Role.UNKNOWN:
        return viewer.sees_company and scope.level is Level.COMPANY
    if scope.level is not Level.REP:
        return True
    if scope.name == viewer.rep:
        return True
    return viewer.role is Role.MANAGER and viewer.team_of.get(scope.name) in viewer.teams


def manages(viewer: Viewer, scope: Scope | None) -> bool:
    """Whether ``viewer`` may act on alerts about ``scope`` (None: every scope)."""
    if viewer.is_admin:
        return True
    if scope is None or scope.level in (Level.COMPANY, Level.REGION):
        return False
    if scope.level is Level.TEAM:
        return viewer.role is Role.MANAGER and scope.name in viewer.teams
    if viewer.role is Role.MANAGER and viewer.team_of.get(scope.name) in viewer.teams:
        return True
    return viewer.role in (Role.REP, Role.MANAGER) and scope.name == viewer.rep


def _refused(refusal: Refusal) -> Decision:
    return Decision(False, refusal, lambda _: False)


def authorize(
    audience: Audience, action: Action, scope: Scope | None = None, *, into: Channel | None = None
) -> Decision:
    """The decision for ``audience`` doing ``action`` about ``scope`` (None: no one scope,
    such as the list of alerts). ``into`` is the channel a shared answer goes to: the parts
    shown are those both the sharer and that channel may see."""
    if isinstance(audience, Channel):
        if action not in READS:
            return _refused(Refusal.CHANNEL)
        if scope is not None and not sees(audience, scope):
            return _refused(Refusal.SCOPE)
        return Decision(True, None, lambda s: sees(audience, s))
    viewer = audience
    if viewer.role is Role.UNKNOWN and not viewer.sees_company:
        return _refused(Refusal.UNKNOWN_USER)
    if action in ADMIN_ONLY:
        return (
            Decision(True, None, lambda _: True)
            if viewer.is_admin
            else _refused(Refusal.ADMIN_ONLY)
        )
    if action in (Action.ACKNOWLEDGE, Action.SNOOZE):
        if not manages(viewer, scope):
            return _refused(Refusal.NOT_YOURS)
        return Decision(True, None, lambda s: sees(viewer, s))
    if scope is not None and not sees(viewer, scope):
        return _refused(Refusal.SCOPE)
    if action is Action.SHARE and into is not None:
        channel = into
        if scope is not None and not sees(channel, scope):
            return _refused(Refusal.SCOPE)
        return Decision(True, None, lambda s: sees(viewer, s) and sees(channel, s))
    return Decision(True, None, lambda s: sees(viewer, s))


def alert_actions(firing: bool) -> tuple[Action, ...]:
    """What a reader may do on an alert message: acknowledge or snooze it while any of its
    alerts still fires. Whether the one who acts may is decided when they act: ``authorize``
    with that action for the scope of every alert still firing in it."""
    return (Action.ACKNOWLEDGE, Action.SNOOZE) if firing else ()


# --- the parts of an answer that survive ---------------------------------------------------------


def visible_evaluation(evaluation: Evaluation, decision: Decision) -> Evaluation:
    """``evaluation`` with only the contributors ("furthest behind") the audience may see. When
    some are left out, ``withheld`` counts every child scope behind that the audience is not
    named — beyond the few listed too — so that a message says how many reps are behind."""
    kept = tuple(c for c in evaluation.contributors if decision.shows(c.scope))
    if len(kept) == len(evaluation.contributors):
        return evaluation
    behind = max(evaluation.behind, len(evaluation.contributors) + evaluation.withheld)
    return dataclasses.replace(evaluation, contributors=kept, withheld=behind - len(kept))


def visible_evaluations(
    evaluations: Iterable[Evaluation], decision: Decision
) -> tuple[Evaluation, ...]:
    """The evaluations about scopes the audience may see, each with its visible contributors."""
    return tuple(visible_evaluation(e, decision) for e in evaluations if decision.shows(e.scope))


def visible_answer(answer: Answer, decision: Decision) -> Answer:
    """``answer`` with only the breakdown rows, the deals of the reps and the new reps the
    audience may see."""
    rows = tuple(r for r in answer.breakdown if decision.shows(r.scope))
    deals = tuple(d for d in answer.deals if decision.shows(Scope(Level.REP, d.rep)))
    evaluation = answer.evaluation
    if evaluation is not None:
        evaluation = visible_evaluation(evaluation, decision)
    ramp = None if answer.ramp is None else visible_ramp(answer.ramp, decision)
    return dataclasses.replace(
        answer, breakdown=rows, evaluation=evaluation, deals=deals, ramp=ramp
    )


# A group of reps smaller than this is one or two people's figure: shown only to an audience
# that may see each of them.
GROUP_MIN_REPS = 3


def _visible_group(group: RepGroup | None, decision: Decision) -> RepGroup | None:
    if group is None or len(group.reps) >= GROUP_MIN_REPS:
        return group
    seen = all(decision.shows(Scope(Level.REP, name)) for name in group.reps)
    return group if seen else None


def visible_ramp(ramp: RampUp, decision: Decision) -> RampUp:
    """``ramp`` with only the new reps the audience may see, and a group's attainment only
    when it is an aggregate (``GROUP_MIN_REPS`` reps or more) or the audience may see each of
    its reps."""
    return dataclasses.replace(
        ramp,
        new=_visible_group(ramp.new, decision),
        tenured=_visible_group(ramp.tenured, decision),
        new_reps=tuple(r for r in ramp.new_reps if decision.shows(Scope(Level.REP, r.name))),
    )


def named_reps(decision: Decision) -> Callable[[str], bool]:
    """Whether a rep's deals may be named to the audience (the waterfall's largest deals)."""
    return lambda rep: decision.shows(Scope(Level.REP, rep))


def visible_changes(changes: PipelineChanges, decision: Decision) -> PipelineChanges:
    """``changes`` with only the breakdown rows the audience may see."""
    rows = tuple(w for w in changes.breakdown if decision.shows(w.scope))
    return dataclasses.replace(changes, breakdown=rows)


# A "did you mean" or "known teams" list names a handful at most.
NAMES_SHOWN = 5


def visible_names(names: Iterable[str], level: Level, decision: Decision) -> tuple[str, ...]:
    """The first ``NAMES_SHOWN`` of ``names`` (scopes of ``level``) the audience may see."""
    shown = [n for n in names if decision.shows(Scope(level, n))]
    return tuple(shown[:NAMES_SHOWN])
