"""Message rendering: answers, digests and alerts as Slack Block Kit payloads and as text.

The layout lives in Jinja templates (``templates/slack/*.json.j2`` and
``templates/text/*.txt.j2``, installed as the package ``bot.templates`` and loaded through it);
this module owns everything else:

* the template contexts, documented frozen dataclasses (``AnswerView``, ``DigestView``,
  ``AlertsView``...) in which every number, date and word is already formatted for the
  organisation's locale by a ``Formatter``. Fields marked *raw* hold CRM text (team, rep, account
  names): Slack templates must pass them through ``|mrkdwn``;
* how much is shown: long breakdowns and alert lists are cut here, with an "… and N more" line,
  never silently in a template;
* Slack's limits, enforced after rendering (``fit_blocks``) and then checked, along with the
  Block Kit schema, by ``validate_blocks`` before anything leaves this module.

The text renderings are for the terminal (``kpibot demo``, the console notifier). They are not
escaped: before using one as a Slack ``text`` fallback, pass it through ``mrkdwn_escape``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from bot.crm_text import one_line
from bot.formatting import Formatter
from conversation.authorization import (
    Decision,
    visible_answer,
    visible_evaluations,
)
from conversation.views import Digest
from metrics.alerts import Alert, LogEntry
from metrics.answers import Answer, BreakdownRow, Comparison
from metrics.evaluation import Evaluation, Status, Why
from metrics.kpis import KPIS, Kpi, KpiValue, Unit
from metrics.periods import Grain
from metrics.ramp import RampUp, RepGroup
from metrics.scopes import Scope
from metrics.sources import SourceRow
from metrics.waterfall import PipelineChanges

__all__ = [
    "AlertView",
    "AlertsView",
    "AnswerView",
    "BlockLimitError",
    "ChangeRowView",
    "ChangesView",
    "ComparisonView",
    "ContributorView",
    "DealView",
    "Digest",
    "DigestEntryView",
    "DigestView",
    "LineView",
    "MovementView",
    "RowView",
    "SectionView",
    "alert_view",
    "alerts_view",
    "answer_view",
    "changes_view",
    "digest_view",
    "display_width",
    "environment",
    "fit_blocks",
    "mrkdwn_escape",
    "render_alerts_blocks",
    "render_alerts_text",
    "render_answer_blocks",
    "render_answer_text",
    "render_changes_blocks",
    "render_changes_text",
    "render_digest_blocks",
    "render_digest_text",
    "validate_blocks",
    "visible_digest",
]

TEMPLATES = "bot.templates"  # the package holding the templates (see setup.py)

# What a chat message can usefully show; the rest becomes "… and N more". Chosen so that even
# the longest message stays far below Slack's 50 blocks.
BREAKDOWN_ROWS = 15
SLIPPED_DEALS_SHOWN = 5
ALERTS_SHOWN = 20
DIGEST_ANSWERS = 20
DIGEST_ALERTS = 10
# A CRM name longer than this is cut with "…": it keeps one row on one line and every section
# within Slack's size limits.
NAME_CHARS = 80

# Slack's limits (https://docs.slack.dev/reference/block-kit/blocks).
MAX_BLOCKS = 50
MAX_HEADER_CHARS = 150
MAX_SECTION_CHARS = 3000
MAX_FIELDS = 10
MAX_FIELD_CHARS = 2000
MAX_CONTEXT_ELEMENTS = 10

Blocks = list[dict[str, Any]]


# --- the digest ----------------------------------------------------------------------------------


def visible_digest(digest: Digest, decision: Decision) -> Digest:
    """``digest`` as its audience may read it: breakdowns, alerts and their "furthest behind"
    lists cut to what ``decision`` shows."""
    return dataclasses.replace(
        digest,
        answers=tuple(visible_answer(a, decision) for a in digest.answers),
        alerts=visible_evaluations(digest.alerts, decision),
    )


# --- template contexts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonView:
    """One comparison with another period: ``vs T3 2025  +4,0 %  (1 187 000 €)``."""

    label: str  # "vs T3 2025"
    value: str  # the other period's value, "no data" (also before the data starts), or
    # "too early to compare" (a rate on its first days)
    change: str | None  # "+4,0 %"; "+2,1 pts" for percentages, "+0,4×" for multiples, "+0,3"
    # for scores; None without both values


@dataclass(frozen=True)
class RowView:
    """One scope of a breakdown."""

    name: str  # raw: the scope's CRM name, cut to NAME_CHARS
    value: str
    target: str  # "—" without a target
    emoji: str
    status: str  # "atteint", "pas d'objectif" without a target, "trop tôt pour juger"...


@dataclass(frozen=True)
class SlippedDealView:
    """One slipped deal: ``Acme — Lampes · Camille Laurent  45 000 €  repoussée 2 fois…``."""

    name: str  # raw: the deal's CRM name, cut to NAME_CHARS
    rep: str  # raw
    amount: str
    pushes: str  # "pushed 2 times, by 38 days in all"


@dataclass(frozen=True)
class LineView:
    """One line of a section: ``Nouveaux (6 premiers mois) · 2 commerciaux  42,5 % …``."""

    name: str  # raw: may hold a rep's CRM name
    value: str


@dataclass(frozen=True)
class SectionView:
    """A titled list of lines under an answer (ramp-up: new against tenured reps, then each new
    rep's first win)."""

    title: str
    lines: tuple[LineView, ...]
    more: str | None = None  # "… et 3 autres" when lines were left out


@dataclass(frozen=True)
class AnswerView:
    """Context of ``answer.*.j2``: one KPI for one scope and period."""

    title: str  # raw: "Chiffre d'affaires · Équipe EMEA · T3 2026"
    kpi: str  # "Chiffre d'affaires"
    scope: str  # raw: "Équipe EMEA", "Company" or a rep's name
    period: str  # "T3 2026"
    value: str  # "1 234 567 €", "no data", or why there is none ("period ended")
    target: str | None  # None without a target
    # "82,3 %" (value ÷ target); for lower-is-better KPIs "79 % better than target"
    attainment: str | None
    expected: str | None  # target × pace while a paced KPI's period runs
    forecast: str | None  # projected value at period end, for paced KPIs
    status: str  # "à risque", or "pas d'objectif" without a target
    emoji: str
    why: str | None  # what the status rests on: "behind pace by 21 722 €"
    notes: tuple[str, ...]  # what the value measured: the conversion cohort, unattributed spend
    comparisons: tuple[ComparisonView, ...]  # previous period, then last year (not for a year)
    trend: str | None  # a sparkline of the last periods, oldest first: "▁▃▅▄▆█"
    like_for_like: str | None  # the note shown while the period runs; None once it has ended
    # Set when an earlier figure of a level (pipeline, forecast) predates the history: it was
    # rebuilt from today's records, and this says so.
    rebuilt: str | None
    # "Par équipe", or "Par source" (a row per lead source, the status column saying what the
    # figure counts); None without a breakdown
    breakdown_title: str | None
    breakdown: tuple[RowView, ...]  # at most BREAKDOWN_ROWS rows, best first
    more: str | None  # "… et 185 autres" when rows were left out
    as_of: str  # "Au 26 nov. 2026"
    # The deals behind a slipped figure, largest first (only reps the asker may see).
    deals_title: str | None = None
    deals: tuple[SlippedDealView, ...] = ()
    deals_more: str | None = None
    # The breakdown is by lead source: no row has a target, and each row's status says what
    # its figure counts.
    by_channel: bool = False
    sections: tuple[SectionView, ...] = ()


@dataclass(frozen=True)
class ContributorView:
    """A child scope that explains an alert's gap."""

    name: str  # raw
    actual: str
    gap: str  # signed, negative when behind: "-120 000 €", "-2,1 pts"


@dataclass(frozen=True)
class AlertView:
    """One at-risk or missed evaluation."""

    emoji: str
    status: str  # "à risque" / "manqué"
    kpi: str
    scope: str  # raw
    period: str
    actual: str
    target: str
    expected: str | None  # expected to date while a paced KPI's period runs
    gap: str  # to the expected value when there is one, else to the target; negative = behind
    forecast: str | None
    why: str | None  # "forecast 272 072 € below target 350 000 €"; set for every alert
    # on a reminder, what changed since the last notification: "Since 19 Nov: gap -20 € → -35 €"
    since: str | None
    contributors: tuple[ContributorView, ...]
    # "2 reps behind are not named here": contributors this audience may not see
    withheld: str | None = None


@dataclass(frozen=True)
class AlertsView:
    """Context of ``alerts.*.j2`` (and the alert part of the digest)."""

    title: str  # "3 alertes", or "Aucune alerte"
    alerts: tuple[AlertView, ...]  # missed first, then at risk
    more: str | None  # "… et 4 autres : /kpi alertes" when alerts were left out
    # "2 alertes déjà publiées aujourd'hui dans ce canal : /kpi alertes" (digests only)
    posted: str | None = None


@dataclass(frozen=True)
class DigestEntryView:
    """One KPI in a digest."""

    heading: str  # raw: "Chiffre d'affaires · T4 2026", with the scope when not the digest's
    answer: AnswerView  # without breakdown rows


@dataclass(frozen=True)
class DigestView:
    """Context of ``digest.*.j2``."""

    title: str  # raw
    organisation: str  # raw
    date: str  # "jeudi 26 novembre 2026"
    scope: str  # raw
    entries: tuple[DigestEntryView, ...]  # at most DIGEST_ANSWERS
    more: str | None
    alerts: AlertsView  # at most DIGEST_ALERTS
    # Once for the digest: an earlier pipeline or forecast figure was rebuilt from today's
    # records (the history starts later).
    rebuilt: str | None = None
    # The pipeline's movements over the last week, when the subscription asks for them.
    changes: ChangesView | None = None


@dataclass(frozen=True)
class DealView:
    name: str  # raw: the deal's CRM name, cut to NAME_CHARS
    rep: str  # raw
    amount: str  # signed


@dataclass(frozen=True)
class MovementView:
    """One line of the waterfall: ``+ Créées  +120 000 €  3 affaires``."""

    label: str
    amount: str  # signed
    count: str  # "3 affaires"
    n: int  # the count as a number: Slack leaves empty movements out
    deals: tuple[DealView, ...]  # the largest the viewer may see


@dataclass(frozen=True)
class ChangeRowView:
    """One child scope of a waterfall: start, net change, now."""

    name: str  # raw
    start: str
    change: str  # signed
    end: str


@dataclass(frozen=True)
class ChangesView:
    """Context of ``changes.*.j2``: the pipeline's movements since a day."""

    title: str  # raw: "Pipeline · Entreprise · T4 2026 — mouvements depuis le 24 nov. 2026"
    start_label: str  # "Pipeline au 24 nov. 2026"
    start: str
    movements: tuple[MovementView, ...]  # every movement, in waterfall order
    end_label: str
    end: str
    note: str | None  # when the history starts after the day asked for
    breakdown_title: str | None
    breakdown: tuple[ChangeRowView, ...]  # at most BREAKDOWN_ROWS, largest change first
    more: str | None


# --- building the contexts -----------------------------------------------------------------------


def _clip(name: str) -> str:
    """A CRM name as views show it: on one line (``bot.crm_text``), cut to ``NAME_CHARS``."""
    name = one_line(name)
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def _more(fmt: Formatter, hidden: int) -> str | None:
    return fmt.tn("and_more", hidden) if hidden > 0 else None


def _optional(fmt: Formatter, kpi: Kpi, value: Decimal | None) -> str | None:
    return None if value is None else fmt.value(kpi, value)


def _comparison(kpi: Kpi, comparison: Comparison, fmt: Formatter) -> ComparisonView:
    label = fmt.t("vs", period=fmt.period(comparison.period))
    if comparison.too_early:
        return ComparisonView(label=label, value=fmt.t("too_early_compare"), change=None)
    change: str | None = None
    if kpi.unit in (Unit.PERCENT, Unit.MULTIPLE, Unit.SCORE) and comparison.delta is not None:
        # A relative change of a ratio ("+8 %" of 27 %, "+389 %" of a coverage) misleads:
        # rates move in points, multiples in ×, scores in their own unit.
        change = fmt.delta(kpi, comparison.delta)
    elif comparison.relative is not None:
        change = fmt.change(comparison.relative)
    elif comparison.delta is not None:
        # The other period was 0: no relative change, but the difference still tells something.
        change = fmt.delta(kpi, comparison.delta)
    return ComparisonView(label=label, value=fmt.value(kpi, comparison.value), change=change)


def value_words(fmt: Formatter, kpi: Kpi, value: KpiValue) -> str:
    """The value, or in a few words why there is none ("period ended", "target reached")."""
    if value.value is None and value.reason is not None:
        return fmt.reason(value.reason)
    return fmt.value(kpi, value.value)


def status_words(
    fmt: Formatter, status: Status, target: Decimal | None, value: KpiValue, why: Why | None
) -> tuple[str, str]:
    # "No data" covers a missing value, a missing target, a sample too small to judge and a
    # period too young: say which, so that a value beside "no data" reads as no contradiction.
    if target is None:
        return fmt.emoji(Status.NO_DATA), fmt.t("no_target")
    if status is Status.NO_DATA and why is Why.TOO_EARLY:
        return fmt.emoji(status), fmt.t("too_early")
    if status is Status.NO_DATA and value.value is not None:
        return fmt.emoji(status), fmt.t("small_sample", n=fmt.number(value.sample or 0))
    return fmt.emoji(status), fmt.status(status)


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[Decimal | None]) -> str | None:
    """Values as bars from ▁ (the lowest) to █ (the highest), a space where there is no data;
    None with fewer than two values to draw. Plain text: it reads the same in Slack, Teams
    and a terminal."""
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return None
    low, high = min(known), max(known)
    span = high - low
    steps = len(_BARS) - 1

    def bar(value: Decimal | None) -> str:
        if value is None:
            return " "
        return _BARS[0 if not span else int((value - low) / span * steps + Decimal("0.5"))]

    return "".join(bar(v) for v in values)


def _versus_target(fmt: Formatter, answer: Answer) -> str | None:
    """Attainment as a reader expects it: "82,3 %" of a revenue target, but a CPA of 375 €
    against 1 800 € is "79 % better than target", not "480 %"."""
    margin = answer.better_than_target
    if margin is not None:
        key = "better_than_target" if margin >= 0 else "worse_than_target"
        return fmt.t(key, share=fmt.percent(abs(margin)))
    return None if answer.attainment is None else fmt.percent(answer.attainment)


def _why(fmt: Formatter, evaluation: Evaluation) -> str | None:
    kpi = KPIS[evaluation.kpi]
    match evaluation.why:
        case Why.BEHIND_PACE | Why.FORECAST_COVERS | Why.FORECAST_SHORT:
            gap = evaluation.gap
            return fmt.t(
                f"why.{evaluation.why.value}",
                gap=fmt.value(kpi, None if gap is None else abs(gap)),
                forecast=fmt.value(kpi, evaluation.forecast),
                target=fmt.value(kpi, evaluation.target),
            )
        case Why.OFF_TARGET | Why.ENDED_SHORT:
            return fmt.t(
                f"why.{evaluation.why.value}",
                actual=fmt.value(kpi, evaluation.actual.value),
                target=fmt.value(kpi, evaluation.target),
            )
        case _:
            return None


def _notes(fmt: Formatter, kpi: Kpi, value: KpiValue) -> tuple[str, ...]:
    notes = []
    if value.cohort is not None:
        notes.append(fmt.t("cohort", dates=fmt.dates(value.cohort.start, value.cohort.end)))
    if len(value.spend_split) > 1:
        # Teams carry only their own spend: the parts say why the company's CPA is above theirs,
        # in whole units that add up to the value as shown.
        levels = [level for level, _ in value.spend_split]
        wholes = _rounded_parts([part for _, part in value.spend_split])
        parts = " + ".join(
            fmt.t(f"spend_split.{level.value}", amount=fmt.money(part, whole=True))
            for level, part in zip(levels, wholes, strict=True)
        )
        notes.append(fmt.t("spend_split", parts=parts))
    if value.overdue is not None:
        # The forecast leaves slipped deals out; pipeline and coverage keep them.
        key = "overdue.out" if kpi.id == "forecast" else "overdue.in"
        deals = fmt.tn("deals", value.overdue_deals)
        notes.append(fmt.t(key, amount=fmt.money(value.overdue), deals=deals))
    return tuple(notes)


def _rounded_parts(parts: Sequence[Decimal]) -> list[Decimal]:
    """``parts`` in whole units adding up to their rounded sum (largest remainders round up):
    48.4 + 64.4 + 262.2 shows as 49 + 64 + 262 = 375, not 48 + 64 + 262 = 374."""
    total = int(sum(parts, Decimal(0)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    floors = [int(p) for p in parts]
    by_remainder = sorted(range(len(parts)), key=lambda i: parts[i] - floors[i], reverse=True)
    for i in by_remainder[: total - sum(floors)]:
        floors[i] += 1
    return [Decimal(f) for f in floors]


def _row(kpi: Kpi, row: BreakdownRow, fmt: Formatter) -> RowView:
    emoji, status = status_words(fmt, row.status, row.target, row.value, row.why)
    return RowView(
        name=_clip(row.scope.name),
        value=value_words(fmt, kpi, row.value),
        target=fmt.t("dash") if row.target is None else fmt.value(kpi, row.target),
        emoji=emoji,
        status=status,
    )


def _source_row(kpi: Kpi, row: SourceRow, fmt: Formatter) -> RowView:
    """A lead source's figure; its status column says what the figure counts ("sur 12 leads",
    "3 nouveaux clients", "4 affaires"): channels have no targets of their own."""
    sample = row.value.sample
    return RowView(
        name=fmt.t("channel.none") if row.channel is None else _clip(row.channel),
        value=value_words(fmt, kpi, row.value),
        target=fmt.t("dash"),
        emoji="•",
        status="" if not sample else fmt.tn(f"sample.{kpi.id}", sample),
    )


def _group(fmt: Formatter, key: str, group: RepGroup | None) -> LineView:
    """New or tenured reps as one line: how many, and their attainment."""
    if group is None:
        return LineView(fmt.t(f"ramp.{key}"), fmt.t("ramp.withheld"))
    name = fmt.t(f"ramp.{key}") + fmt.t("sep") + fmt.tn("ramp.reps", len(group.reps))
    attainment = group.attainment
    if attainment is None or group.target is None:
        return LineView(name, fmt.t("ramp.no_target"))
    value = fmt.t(
        "ramp.attainment",
        share=fmt.percent(attainment),
        revenue=fmt.money(group.revenue, whole=True),
        target=fmt.money(group.target, whole=True),
    )
    if group.targeted < len(group.reps):
        value += fmt.t("sep") + fmt.tn("ramp.targeted", group.targeted)
    return LineView(name, value)


def _ramp_sections(fmt: Formatter, ramp: RampUp, max_rows: int) -> tuple[SectionView, ...]:
    groups = SectionView(
        fmt.tn("ramp.groups", ramp.months),
        (_group(fmt, "new", ramp.new), _group(fmt, "tenured", ramp.tenured)),
    )
    if not ramp.new_reps:
        return (groups,)
    shown = ramp.new_reps[:max_rows]
    lines = tuple(
        LineView(
            _clip(rep.name),
            fmt.t("ramp.first_win", days=fmt.days(rep.days), started=fmt.date(rep.started))
            if rep.days is not None
            else fmt.t("ramp.no_win_yet", started=fmt.date(rep.started)),
        )
        for rep in shown
    )
    return groups, SectionView(
        fmt.t("ramp.new_reps"), lines, _more(fmt, len(ramp.new_reps) - len(shown))
    )


def _rebuilt(fmt: Formatter, answer: Answer) -> str | None:
    if not answer.rebuilt:
        return None
    if answer.history_since is None:
        return fmt.t("compare.rebuilt_no_history")
    return fmt.t("compare.rebuilt", date=fmt.date(answer.history_since))


def answer_view(answer: Answer, fmt: Formatter, *, max_rows: int = BREAKDOWN_ROWS) -> AnswerView:
    kpi = answer.kpi
    scope = fmt.scope(Scope(answer.scope.level, _clip(answer.scope.name)))
    period = fmt.period(answer.period)
    label = fmt.kpi_label(kpi)
    emoji, status = status_words(fmt, answer.status, answer.target, answer.value, answer.why)
    evaluation = answer.evaluation
    like_for_like = None
    if answer.period.is_running(answer.as_of) and answer.period.grain is not Grain.DAY:
        elapsed = (answer.as_of - answer.period.start).days + 1
        like_for_like = fmt.tn("like_for_like", elapsed)
    rows = answer.breakdown[:max_rows]
    sources = (answer.sources or ())[:max_rows]
    if sources:
        title: str | None = fmt.t("by.channel")
        shown = tuple(_source_row(kpi, row, fmt) for row in sources)
        more = _more(fmt, len(answer.sources or ()) - len(sources))
    else:
        title = fmt.breakdown_title(rows[0].scope.level) if rows else None
        shown = tuple(_row(kpi, row, fmt) for row in rows)
        # No "and N more" when the caller asked for no rows at all (the digest).
        more = _more(fmt, len(answer.breakdown) - len(rows)) if rows else None
    compared = (
        [answer.previous] if answer.last_year is None else [answer.previous, answer.last_year]
    )
    return AnswerView(
        title=fmt.t("sep").join((label, scope, period)),
        kpi=label,
        scope=scope,
        period=period,
        value=value_words(fmt, kpi, answer.value),
        target=_optional(fmt, kpi, answer.target),
        attainment=_versus_target(fmt, answer),
        expected=None if evaluation is None else _optional(fmt, kpi, evaluation.expected),
        forecast=None if evaluation is None else _optional(fmt, kpi, evaluation.forecast),
        status=status,
        emoji=emoji,
        why=None if evaluation is None else _why(fmt, evaluation),
        # Asked by source where no lead or spend names one: say so rather than show nothing.
        notes=_notes(fmt, kpi, answer.value)
        + ((fmt.t("channel.unknown"),) if answer.sources == () else ()),
        comparisons=tuple(_comparison(kpi, c, fmt) for c in compared),
        trend=sparkline(answer.trend),
        like_for_like=like_for_like,
        rebuilt=_rebuilt(fmt, answer),
        breakdown_title=title,
        breakdown=shown,
        more=more,
        as_of=fmt.t("as_of", date=fmt.date(answer.as_of)),
        deals_title=fmt.t("slipped.title") if answer.deals else None,
        deals=tuple(
            SlippedDealView(
                name=_clip(deal.name),
                rep=_clip(deal.rep),
                amount=fmt.money(deal.amount),
                pushes=fmt.tn("slipped.pushes", deal.pushes, days=fmt.days(deal.days)),
            )
            for deal in answer.deals[:SLIPPED_DEALS_SHOWN]
        ),
        deals_more=_more(fmt, len(answer.deals) - SLIPPED_DEALS_SHOWN),
        by_channel=bool(sources),
        sections=(
            ()
            if answer.ramp is None or not max_rows
            else _ramp_sections(fmt, answer.ramp, max_rows)
        ),
    )


def changes_view(
    changes: PipelineChanges, fmt: Formatter, *, max_rows: int = BREAKDOWN_ROWS
) -> ChangesView:
    whole = changes.waterfall
    minor_digits = changes.minor_digits

    def money(minor: int, *, signed: bool = False) -> str:
        return fmt.money(Decimal(minor).scaleb(-minor_digits), signed=signed)

    started = changes.history_from or changes.since
    rows = sorted(changes.breakdown, key=lambda w: (-abs(w.end - w.start), w.scope.name))
    shown = rows[:max_rows]
    return ChangesView(
        title=fmt.t(
            "changes.title",
            kpi=fmt.kpi_label(KPIS["pipeline"]),
            scope=fmt.scope(Scope(whole.scope.level, _clip(whole.scope.name))),
            period=fmt.period(whole.period),
            date=fmt.date(changes.since),
        ),
        start_label=fmt.t("changes.start", date=fmt.date(started)),
        start=money(whole.start),
        movements=tuple(
            MovementView(
                label=fmt.t(f"movement.{step.movement.value}"),
                amount=money(step.amount, signed=True),
                count=fmt.tn("deals", step.count),
                n=step.count,
                deals=tuple(
                    DealView(_clip(deal.name), _clip(deal.rep), money(deal.amount, signed=True))
                    for deal in step.largest
                ),
            )
            for step in whole.steps
        ),
        end_label=fmt.t("changes.end"),
        end=money(whole.end),
        note=(
            None
            if changes.history_from is None
            else fmt.t("changes.history_from", date=fmt.date(changes.history_from))
        ),
        breakdown_title=fmt.breakdown_title(shown[0].scope.level) if shown else None,
        breakdown=tuple(
            ChangeRowView(
                name=_clip(w.scope.name),
                start=money(w.start),
                change=money(w.end - w.start, signed=True),
                end=money(w.end),
            )
            for w in shown
        ),
        more=_more(fmt, len(rows) - len(shown)) if shown else None,
    )


def alert_view(
    evaluation: Evaluation,
    fmt: Formatter,
    previous: LogEntry | None = None,
    *,
    unstable: bool = False,
) -> AlertView:
    """``previous``: what was last notified about this alert, for a reminder; ``unstable``:
    it keeps starting and stopping (``metrics.alerts.AlertState.unstable``)."""
    kpi = KPIS[evaluation.kpi]
    status = fmt.status(evaluation.status)
    if unstable:
        status = fmt.t("unstable", status=status)
    since = None
    if previous is not None and previous.status is not None:
        since = fmt.t(
            "since",
            date=fmt.date(previous.notified_at.astimezone(fmt.zone).date()),
            status=fmt.status(previous.status),
            before=fmt.delta(kpi, previous.gap),
            now=fmt.delta(kpi, evaluation.gap),
        )
    return AlertView(
        emoji=fmt.emoji(evaluation.status),
        status=status,
        kpi=fmt.kpi_label(kpi),
        scope=fmt.scope(Scope(evaluation.scope.level, _clip(evaluation.scope.name))),
        period=fmt.period(evaluation.period),
        actual=fmt.value(kpi, evaluation.actual.value),
        target=fmt.value(kpi, evaluation.target),
        expected=_optional(fmt, kpi, evaluation.expected),
        gap=fmt.delta(kpi, evaluation.gap),
        forecast=_optional(fmt, kpi, evaluation.forecast),
        why=_why(fmt, evaluation),
        since=since,
        contributors=tuple(
            ContributorView(
                name=_clip(child.scope.name),
                actual=fmt.value(kpi, child.actual.value),
                gap=fmt.delta(kpi, child.gap),
            )
            for child in evaluation.contributors
        ),
        withheld=fmt.tn("withheld", evaluation.withheld) if evaluation.withheld else None,
    )


_SEVERITY = {Status.MISSED: 0, Status.AT_RISK: 1}


def alerts_view(
    evaluations: Iterable[Evaluation],
    fmt: Formatter,
    *,
    limit: int = ALERTS_SHOWN,
    posted: int | None = None,
    unstable: frozenset[str] = frozenset(),
) -> AlertsView:
    """The at-risk and missed evaluations among ``evaluations`` (others are left out), missed
    first and otherwise in the order given. ``posted`` is set for a digest: how many more
    were already posted in its channel today; a digest points to ``/kpi alertes`` for the
    rest."""
    firing = sorted(
        (e for e in evaluations if e.status.is_alert), key=lambda e: _SEVERITY[e.status]
    )
    shown = firing[:limit]
    hidden = len(firing) - len(shown)
    return AlertsView(
        title=fmt.tn("alert_count", len(firing)) if firing else fmt.t("no_alerts"),
        alerts=tuple(alert_view(e, fmt, unstable=str(Alert(e).key) in unstable) for e in shown),
        more=None
        if hidden <= 0
        else fmt.tn("and_more" if posted is None else "and_more_alerts", hidden),
        posted=fmt.tn("alerts_posted", posted) if posted else None,
    )


def digest_view(digest: Digest, fmt: Formatter) -> DigestView:
    entries = []
    # A row with neither a value nor a target tells a reader nothing (answers still show it).
    telling = [a for a in digest.answers if a.value.value is not None or a.target is not None]
    for answer in telling[:DIGEST_ANSWERS]:
        view = answer_view(answer, fmt, max_rows=0)
        parts = [view.kpi, view.period]
        if answer.scope != digest.scope:
            parts.insert(1, view.scope)
        entries.append(DigestEntryView(heading=fmt.t("sep").join(parts), answer=view))
    rebuilt = next((e.answer.rebuilt for e in entries if e.answer.rebuilt), None)
    return DigestView(
        title=digest.title,
        organisation=digest.organisation,
        date=fmt.date(digest.as_of, "full"),
        scope=fmt.scope(Scope(digest.scope.level, _clip(digest.scope.name))),
        entries=tuple(entries),
        more=_more(fmt, len(telling) - len(entries)),
        alerts=alerts_view(
            digest.alerts,
            fmt,
            limit=DIGEST_ALERTS,
            posted=digest.posted,
            unstable=digest.unstable,
        ),
        rebuilt=rebuilt,
        changes=None if digest.changes is None else changes_view(digest.changes, fmt),
    )


# --- the Jinja environment -----------------------------------------------------------------------


# Slack has no escape for its markup characters: one that could open or close bold, italics,
# strike-through or code becomes a look-alike that Slack leaves alone. Between two letters or
# digits (``win_rate``, ``Nord_Est``) Slack does not read * _ ~ as markup, so they stay.
_LOOKALIKES = {"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"}
_MARKUP = re.compile(r"[*_~`]")


def _inert(match: re.Match[str]) -> str:
    char, text, at = match.group(), match.string, match.start()
    inside_word = 0 < at < len(text) - 1 and text[at - 1].isalnum() and text[at + 1].isalnum()
    return char if inside_word and char != "`" else _LOOKALIKES[char]


def entity_escape(text: str) -> str:
    """Slack's escaping of ``&``, ``<`` and ``>`` (other entities would show literally), so
    ``<!channel>`` becomes inert ``&lt;!channel&gt;``: enough for a message's fallback text,
    which Slack shows as plain text (notifications, screen readers), markup and all."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn_escape(text: str) -> str:
    """``entity_escape``, and markup characters made inert, so a CRM name ``*9 999 999 €*``
    shows its stars instead of turning bold."""
    return _MARKUP.sub(_inert, entity_escape(text))


def _tojson(value: Any) -> str:
    # Jinja's own tojson HTML-escapes < > & ' into \u003c...: valid JSON, but it would hide
    # from tests whether the mrkdwn escaping ran. Keep the text as Slack will receive it.
    return json.dumps(value, ensure_ascii=False)


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: emoji and CJK count two, combining marks none."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or char == "\ufe0f":
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _strip_lines(text: str) -> str:
    # Lets templates indent the body of a {% call %} for readability: mrkdwn would keep the
    # leading spaces.
    return "\n".join(line.strip() for line in text.strip().splitlines())


def _ljust(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def _rjust(text: str, width: int) -> str:
    return " " * max(0, width - display_width(text)) + text


@cache
def environment() -> Environment:
    """The Jinja environment over the templates package: strict about undefined names, no HTML
    autoescape (Slack text is escaped with ``|mrkdwn``, JSON strings with ``|tojson``)."""
    env = Environment(
        loader=PackageLoader(TEMPLATES, "."),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["mrkdwn"] = mrkdwn_escape
    env.filters["tojson"] = _tojson
    env.filters["width"] = display_width
    env.filters["strip_lines"] = _strip_lines
    env.filters["ljust"] = _ljust
    env.filters["rjust"] = _rjust
    return env


def _render(name: str, view: object, fmt: Formatter) -> str:
    return environment().get_template(name).render(view=view, fmt=fmt)


def render_text_template(name: str, view: object, fmt: Formatter) -> str:
    # Blank lines are collapsed here so that templates and their macros need not count them.
    lines: list[str] = []
    for line in _render(name, view, fmt).splitlines():
        line = line.rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).strip("\n")


def _render_blocks(name: str, view: object, fmt: Formatter) -> Blocks:
    blocks = json.loads(_render(name, view, fmt))
    if not isinstance(blocks, list):
        raise TypeError(f"{name} must render a JSON array of blocks")
    fitted = fit_blocks(blocks, fmt)
    validate_blocks(fitted)
    return fitted


# --- Slack's limits ------------------------------------------------------------------------------


class BlockLimitError(ValueError):
    """A Block Kit payload that Slack would refuse; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def _truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with "…", never inside an ``&lt;`` entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&", len(cut) - 5)
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _split_lines(text: str, limit: int) -> list[str]:
    """``text`` in chunks of whole lines of at most ``limit`` characters each."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        line = _truncate(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    chunks.append(current)
    return chunks


def _fit_section(block: dict[str, Any]) -> Blocks:
    out: Blocks = []
    text = block.get("text")
    if text is not None and len(text["text"]) > MAX_SECTION_CHARS:
        chunks = _split_lines(text["text"], MAX_SECTION_CHARS)
        first = {**block, "text": {**text, "text": chunks[0]}}
        first.pop("fields", None)
        out.append(first)
        out.extend(
            {"type": "section", "text": {"type": text["type"], "text": chunk}}
            for chunk in chunks[1:]
        )
        if "fields" in block:
            out.append({"type": "section", "fields": block["fields"]})
    else:
        out.append(block)
    fitted: Blocks = []
    for section in out:
        fields = section.get("fields")
        if not fields:
            fitted.append(section)
            continue
        fields = [{**f, "text": _truncate(f["text"], MAX_FIELD_CHARS)} for f in fields]
        fitted.append({**section, "fields": fields[:MAX_FIELDS]})
        for start in range(MAX_FIELDS, len(fields), MAX_FIELDS):
            fitted.append({"type": "section", "fields": fields[start : start + MAX_FIELDS]})
    return fitted


def fit_blocks(blocks: Blocks, fmt: Formatter) -> Blocks:
    """``blocks`` made to fit Slack's limits without losing what can be kept: a long section
    is split at line ends into several sections, more than 10 fields go on to a next section,
    over-long header, field and context texts are cut with "…", and past 50 blocks the rest is
    replaced by a note that the message was shortened. Views already cap what they show, so in
    practice only freak CRM names reach the cutting steps."""
    fitted: Blocks = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            text = block["text"]
            fitted.append(
                {**block, "text": {**text, "text": _truncate(text["text"], MAX_HEADER_CHARS)}}
            )
        elif kind == "section":
            fitted.extend(_fit_section(block))
        elif kind == "context":
            elements = [
                {**e, "text": _truncate(e["text"], MAX_SECTION_CHARS)} if "text" in e else e
                for e in block["elements"][:MAX_CONTEXT_ELEMENTS]
            ]
            fitted.append({**block, "elements": elements})
        else:
            fitted.append(block)
    if len(fitted) > MAX_BLOCKS:
        note = {"type": "context", "elements": [{"type": "mrkdwn", "text": fmt.t("truncated")}]}
        fitted = [*fitted[: MAX_BLOCKS - 1], note]
    return fitted


def _limit_problems(blocks: Blocks) -> list[str]:
    problems = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks (Slack allows {MAX_BLOCKS})")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        text = block.get("text", {}).get("text", "")
        if kind == "header" and len(text) > MAX_HEADER_CHARS:
            problems.append(f"block {i}: header of {len(text)} characters")
        if kind == "section":
            if len(text) > MAX_SECTION_CHARS:
                problems.append(f"block {i}: section text of {len(text)} characters")
            fields = block.get("fields") or []
            if len(fields) > MAX_FIELDS:
                problems.append(f"block {i}: {len(fields)} fields")
            for j, field in enumerate(fields):
                if len(field["text"]) > MAX_FIELD_CHARS:
                    problems.append(f"block {i}: field {j} of {len(field['text'])} characters")
    return problems


def validate_blocks(blocks: Blocks) -> None:
    """Raise ``BlockLimitError`` unless every block parses with ``slack_sdk.models``, passes its
    validators and reads back unchanged, and the payload keeps Slack's limits (some, such as the
    2000 characters of a field, slack_sdk does not check)."""
    problems = _limit_problems(blocks)
    for i, raw in enumerate(blocks):
        parsed = Block.parse(raw)
        if parsed is None:
            problems.append(f"block {i}: unknown block type {raw.get('type')!r}")
            continue
        try:
            parsed.validate_json()
        except SlackObjectFormationError as error:
            problems.append(f"block {i}: {error}")
            continue
        # slack_sdk ignores keys it does not know; a round trip shows a misspelt one.
        if parsed.to_dict() != raw:
            problems.append(f"block {i}: slack_sdk reads it as {parsed.to_dict()}")
    if problems:
        raise BlockLimitError(problems)


# --- public rendering functions ------------------------------------------------------------------


def render_answer_text(answer: Answer, fmt: Formatter) -> str:
    return render_text_template("text/answer.txt.j2", answer_view(answer, fmt), fmt)


def render_answer_blocks(answer: Answer, fmt: Formatter) -> Blocks:
    return _render_blocks("slack/answer.json.j2", answer_view(answer, fmt), fmt)


def render_changes_text(changes: PipelineChanges, fmt: Formatter) -> str:
    return render_text_template("text/changes.txt.j2", changes_view(changes, fmt), fmt)


def render_changes_blocks(changes: PipelineChanges, fmt: Formatter) -> Blocks:
    return _render_blocks("slack/changes.json.j2", changes_view(changes, fmt), fmt)


def render_digest_text(digest: Digest, fmt: Formatter) -> str:
    return render_text_template("text/digest.txt.j2", digest_view(digest, fmt), fmt)


def render_digest_blocks(digest: Digest, fmt: Formatter) -> Blocks:
    return _render_blocks("slack/digest.json.j2", digest_view(digest, fmt), fmt)


def render_alerts_text(evaluations: Iterable[Evaluation], fmt: Formatter) -> str:
    return render_text_template("text/alerts.txt.j2", alerts_view(evaluations, fmt), fmt)


def render_alerts_blocks(evaluations: Iterable[Evaluation], fmt: Formatter) -> Blocks:
    return _render_blocks("slack/alerts.json.j2", alerts_view(evaluations, fmt), fmt)
