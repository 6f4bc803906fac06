"""``/kpi targets`` as a view: grouped by KPI, the viewer's own scopes first (the teams they
manage, themselves), then by scope (company, regions, teams, reps), each target with its
period, where it stands and where it comes from (the config, or chat: who set it and when),
so that the list fits one screen. A KPI with more targets than
``ROWS_PER_KPI`` says how many more and how to see them all (``/kpi targets revenue``).

The list holds only what the viewer may see: ``bot.core`` builds ``TargetList`` from the
evaluations and chat-set targets that ``conversation.authorization`` lets through."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bot.chat_rendering import Blocks, render_blocks
from bot.formatting import Formatter
from bot.rendering import render_text_template, status_words, value_words
from conversation.views import ChatTarget, TargetList
from metrics.evaluation import Evaluation, Status
from metrics.kpis import KPIS
from metrics.periods import Period
from metrics.scopes import Level, Scope

ROWS_PER_KPI = 5
_DEPTH = {Level.COMPANY: 0, Level.REGION: 1, Level.TEAM: 2, Level.REP: 3}


@dataclass(frozen=True)
class TargetRowView:
    emoji: str
    scope: str  # raw: "Équipe Lyon"
    period: str  # "T4 2026"
    target: str
    actual: str | None  # None for a chat-set target of a period not running now
    status: str | None
    set_by: str | None  # the chat user id who set it; None: from the config file
    set_at: str  # when it was set from chat ("26 nov. 2026, 14:02"); "" from the config


@dataclass(frozen=True)
class TargetGroupView:
    kpi: str  # "Chiffre d'affaires"
    rows: tuple[TargetRowView, ...]
    more: str | None  # "… and 5 more: `/kpi targets revenue`" (the list of one KPI)


@dataclass(frozen=True)
class TargetsView:
    """Context of ``targets.*.j2``."""

    title: str
    legend: str  # where the targets come from: the config, unless a row says who set it
    groups: tuple[TargetGroupView, ...]
    none: str | None  # said when there is no target the viewer may see


@dataclass(frozen=True)
class _Entry:
    kpi: str
    scope: Scope
    period: Period
    evaluation: Evaluation | None
    chat: ChatTarget | None

    @property
    def order(self) -> tuple[int, str, object]:
        return (_DEPTH[self.scope.level], self.scope.name.casefold(), self.period.start)


def _entries(view: TargetList) -> Iterator[_Entry]:
    chat = {(t.kpi, t.scope, t.period): t for t in view.chat_targets}
    for e in view.evaluations:
        yield _Entry(e.kpi, e.scope, e.period, e, chat.pop((e.kpi, e.scope, e.period), None))
    # Set from chat for a period that is not evaluated now (next quarter's target).
    for (kpi, scope, period), target in chat.items():
        yield _Entry(kpi, scope, period, None, target)


def _row(entry: _Entry, fmt: Formatter) -> TargetRowView:
    kpi = KPIS[entry.kpi]
    set_by, set_at = None, ""
    if entry.chat is not None:
        set_by = entry.chat.set_by
        set_at = fmt.datetime(entry.chat.set_at) if entry.chat.set_at else ""
    scope = fmt.scope(entry.scope)
    period = fmt.period(entry.period)
    e = entry.evaluation
    if e is None:
        assert entry.chat is not None
        target = fmt.value(kpi, entry.chat.value)
        emoji = fmt.emoji(Status.NO_DATA)
        return TargetRowView(emoji, scope, period, target, None, None, set_by, set_at)
    # Worded as in answers: "too early to judge", "no new customer" rather than "no data".
    emoji, status = status_words(fmt, e.status, e.target, e.actual, e.why)
    actual = value_words(fmt, kpi, e.actual)
    target = fmt.value(kpi, e.target)
    return TargetRowView(emoji, scope, period, target, actual, status, set_by, set_at)


def targets_view(view: TargetList, fmt: Formatter, *, rows: int = ROWS_PER_KPI) -> TargetsView:
    """``view`` grouped by KPI (in the order of the KPI table), then the viewer's own scopes
    (in ``view.own``'s order), then scope level and name. With ``view.kpi`` set, that KPI's
    targets all."""
    by_kpi: dict[str, list[_Entry]] = {}
    for entry in _entries(view):
        by_kpi.setdefault(entry.kpi, []).append(entry)
    own = {(s.level, s.name.casefold()): rank for rank, s in enumerate(view.own)}

    def order(entry: _Entry) -> tuple[int, tuple[int, str, object]]:
        mine = own.get((entry.scope.level, entry.scope.name.casefold()), len(own))
        return mine, entry.order

    groups = []
    for kpi in KPIS:
        entries = sorted(by_kpi.get(kpi, []), key=order)
        if not entries:
            continue
        # "… and 1 more" would take the line the one more target needs.
        shown = entries if view.kpi is not None or len(entries) <= rows + 1 else entries[:rows]
        hidden = len(entries) - len(shown)
        more = fmt.tn("targets.more", hidden, kpi=kpi) if hidden else None
        groups.append(
            TargetGroupView(fmt.kpi_label(KPIS[kpi]), tuple(_row(e, fmt) for e in shown), more)
        )
    return TargetsView(
        title=fmt.t("targets.title"),
        legend=fmt.t("targets.legend"),
        groups=tuple(groups),
        none=None if groups else fmt.t("targets.none"),
    )


def render_targets_text(view: TargetList, fmt: Formatter) -> str:
    return render_text_template("text/targets.txt.j2", targets_view(view, fmt), fmt)


def render_targets_blocks(view: TargetList, fmt: Formatter) -> Blocks:
    return render_blocks("slack/targets.json.j2", fmt, view=targets_view(view, fmt))
