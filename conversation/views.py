"""What the conversation core answers, as plain data: every surface renders these its own way
(Slack Block Kit, Teams cards, terminal text). Values are the metrics core's own (``Answer``,
``Evaluation``, ``Period``, ``Scope``); nothing is formatted or worded here. Names and other
CRM text in them are raw: a surface escapes them for its markup.

Confirmations, refusals and problems carry a ``code`` and parameters; the shell words them in
the organisation's language (``bot.words``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from conversation.authorization import Action, Refusal
from metrics.alerts import Silence
from metrics.answers import Answer
from metrics.evaluation import Evaluation
from metrics.periods import Period
from metrics.scopes import Scope
from metrics.waterfall import PipelineChanges


@dataclass(frozen=True)
class Phrase:
    """A message inside a message: a catalog id and its parameters, worded by the surface like
    the message around it (why a subscription's time was refused, inside the usage line)."""

    code: str
    params: Mapping[str, Param] = field(default_factory=dict)


# A parameter of a notice or a problem: formatted by the surface according to its type.
Param = str | int | datetime | Scope | Period | Decimal | tuple[str, ...] | tuple[int, ...] | Phrase


@dataclass(frozen=True)
class Digest:
    """A summary of one scope: the answers chosen for it, then its firing alerts."""

    title: str  # e.g. "Daily digest", already in the organisation's language
    as_of: date
    scope: Scope
    answers: tuple[Answer, ...]
    alerts: tuple[Evaluation, ...]
    organisation: str
    # Alerts of this scope already posted in the digest's channel today, left out of
    # ``alerts``: the digest gives their count and where to see them.
    posted: int = 0
    # Keys (``str(AlertKey)``) of alerts that keep starting and stopping: shown as unstable.
    unstable: frozenset[str] = frozenset()
    # The pipeline's movements over the last week, when the subscription asks for them.
    changes: PipelineChanges | None = None


@dataclass(frozen=True)
class AnswerView:
    """One KPI for one scope and period. ``request`` is what a "Share" button replays."""

    answer: Answer
    request: str


@dataclass(frozen=True)
class ChangesView:
    """The pipeline's movements since a day (``pipeline changes since last week``)."""

    changes: PipelineChanges
    request: str


@dataclass(frozen=True)
class Overview:
    """A scope's digest on demand (``team Lyon``, ``rep @someone``)."""

    digest: Digest
    request: str


@dataclass(frozen=True)
class AlertList:
    alerts: tuple[Evaluation, ...]
    request: str = "alerts"


@dataclass(frozen=True)
class ChatTarget:
    """A target set from chat and in force, with who set it."""

    kpi: str
    scope: Scope
    period: Period
    value: Decimal
    set_by: str  # a chat user id
    set_at: datetime | None


@dataclass(frozen=True)
class TargetList:
    evaluations: tuple[Evaluation, ...]
    chat_targets: tuple[ChatTarget, ...]
    request: str = "targets"
    kpi: str | None = None  # one KPI's targets, all shown (``/kpi targets revenue``)
    # The viewer's own scopes (their teams, themselves): listed first in each KPI, so that
    # "… and N more" never hides them.
    own: tuple[Scope, ...] = ()


@dataclass(frozen=True)
class SilenceList:
    silences: tuple[Silence, ...]


@dataclass(frozen=True)
class Notice:
    """A confirmation or a short piece of news: ``snoozed``, ``subscribed``, ``target.set``,
    ``target.removed``, ``sync.done``, ``sync.unavailable``, ``not_found.rep``..."""

    code: str
    params: Mapping[str, Param] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """A request not understood: the parser's or a sub-command's error code and parameters,
    with the names the asker may see offered instead (already filtered and capped)."""

    code: str
    params: Mapping[str, Param] = field(default_factory=dict)
    suggestions: tuple[str, ...] = ()
    known: tuple[str, ...] = ()


@dataclass(frozen=True)
class Help:
    problem: Problem | None = None


@dataclass(frozen=True)
class Refused:
    """A refusal, for the asker's eyes only. ``what`` is the scope or the command refused."""

    reason: Refusal
    what: Scope | str = ""


@dataclass(frozen=True)
class WhoAreYou:
    """The chat platform could not say who the user is (``error`` is its error code)."""

    error: str


@dataclass(frozen=True)
class Home:
    """A user's own dashboard."""

    content: Overview | Refused | WhoAreYou


View = (
    AnswerView
    | ChangesView
    | Overview
    | AlertList
    | TargetList
    | SilenceList
    | Notice
    | Help
    | Refused
    | WhoAreYou
    | Home
)

# Views that show data and so may be shared in a channel (computed again for the sharer).
SHAREABLE = (AnswerView, ChangesView, Overview, AlertList, TargetList)


@dataclass(frozen=True)
class AlertNote:
    """Someone took an alert message in hand: acknowledged it (``at``: when) or snoozed it
    (``at``: until when)."""

    action: Action  # ACKNOWLEDGE or SNOOZE
    user: str  # a chat user id
    at: datetime


@dataclass(frozen=True)
class AlertGroup:
    """One alert message: every new or changed alert of one run for one destination.

    ``alerts`` are the snapshots stored with the message (``bot.chat_rendering.alert_snapshot``:
    the alert's key, status, figures already formatted in the organisation's words with CRM
    text raw, and ``resolved_at`` once resolved), so that the message can be drawn again
    unchanged when it is acknowledged, snoozed or resolved. ``actions`` are what a reader may
    do on it (``conversation.authorization.alert_actions``); whoever acts is authorized then."""

    key: str  # the message's idempotency key: what its actions act on
    alerts: tuple[Mapping[str, Any], ...]
    notes: tuple[AlertNote, ...] = ()
    actions: tuple[Action, ...] = ()
    snooze_for: tuple[str, ...] = ()  # the durations offered by the snooze action ("1d"…)


@dataclass(frozen=True)
class AlertsResolved:
    """The reply under an alert message whose alerts resolved: today's figures of each."""

    evaluations: tuple[Evaluation, ...]


# What the scheduled jobs send (``bot.delivery.surfaces.Notification``): each surface renders it.
@dataclass(frozen=True)
class Chart:
    """A picture that follows a message in its thread (the digest's revenue against its pace
    line): the PNG the shell drew, its title, and what it shows for screen readers."""

    title: str
    alt: str
    png: bytes


Outbound = AlertGroup | AlertsResolved | Digest | Notice | Chart


@dataclass(frozen=True)
class Reply:
    """A view as the core hands it to a surface. ``setup_hint`` is set while the config has no
    ``access`` section: the user id to put under ``access.admins`` to become an admin."""

    view: View
    setup_hint: str | None = None

    @property
    def refused(self) -> bool:
        return isinstance(self.view, Refused | WhoAreYou)
