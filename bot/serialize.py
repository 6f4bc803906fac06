"""Answers and evaluations as plain JSON data (``--json``): ISO dates, plain numbers, no
formatting, so that scripts and other tools can consume them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.formatting import Formatter
from metrics.answers import Answer, Comparison
from metrics.evaluation import Evaluation
from metrics.kpis import KPIS, KpiValue
from metrics.periods import Period
from metrics.ramp import RampUp, RepGroup
from metrics.scopes import Scope
from metrics.waterfall import PipelineChanges, Waterfall

Json = dict[str, Any]


def number(value: Decimal | None) -> float | int | None:
    """A Decimal as a JSON number: integers stay integers, others keep 6 decimals."""
    if value is None:
        return None
    if value == value.to_integral_value():
        return int(value)
    return float(round(value, 6))


def period(p: Period) -> Json:
    return {
        "start": p.start.isoformat(),
        "end": p.end.isoformat(),
        "label": p.key,
        "grain": p.grain.value,
    }


def scope(s: Scope) -> Json:
    return {"level": s.level.value, "name": s.name or None}


def _comparison(c: Comparison | None) -> Json | None:
    if c is None:
        return None
    return {
        "period": period(c.period),
        "value": number(c.value),
        "delta": number(c.delta),
        "relative": number(c.relative),
        "too_early": c.too_early,
        "rebuilt": c.rebuilt,
    }


def _value(v: KpiValue, fmt: Formatter) -> Json:
    """What a value measured beyond the number: why there is none (a code, and in words), the
    conversion cohort, the CPA's spend by the level it was booked at (per new customer)."""
    return {
        "sample": v.sample,
        "reason": None if v.reason is None else v.reason.value,
        "reason_text": None if v.reason is None else fmt.reason(v.reason),
        "cohort": None if v.cohort is None else period(v.cohort),
        "spend_split": {level.value: number(part) for level, part in v.spend_split} or None,
        "overdue": number(v.overdue),
        "overdue_deals": v.overdue_deals,
    }


def answer(a: Answer, fmt: Formatter) -> Json:
    return {
        "kpi": a.kpi.id,
        "label": fmt.kpi_label(a.kpi),
        "value": number(a.value.value),
        "unit": a.kpi.unit.value,
        "currency": fmt.currency,
        **_value(a.value, fmt),
        "period": period(a.period),
        "as_of": a.as_of.isoformat(),
        "scope": scope(a.scope),
        "target": number(a.target),
        "attainment": number(a.attainment),
        "better_than_target": number(a.better_than_target),
        "status": a.status.value,
        "why": None if a.why is None else a.why.value,
        "expected": number(a.evaluation.expected) if a.evaluation else None,
        "forecast": number(a.evaluation.forecast) if a.evaluation else None,
        "previous": _comparison(a.previous),
        "last_year": _comparison(a.last_year),
        "history_since": None if a.history_since is None else a.history_since.isoformat(),
        "breakdown": [
            {
                "scope": scope(row.scope),
                "value": number(row.value.value),
                "target": number(row.target),
                "status": row.status.value,
                "why": None if row.why is None else row.why.value,
            }
            for row in a.breakdown
        ],
        "deals": [
            {
                "name": deal.name,
                "rep": deal.rep,
                "team": deal.team,
                "amount": number(deal.amount),
                "pushes": deal.pushes,
                "days": deal.days,
            }
            for deal in a.deals
        ],
        "sources": [
            {"channel": row.channel, "value": number(row.value.value), **_value(row.value, fmt)}
            for row in a.sources or ()
        ],
        "ramp": None if a.ramp is None else _ramp(a.ramp),
    }


def _group(g: RepGroup | None) -> Json | None:
    """None: withheld from this audience (too few reps to be an aggregate)."""
    if g is None:
        return None
    return {
        "reps": len(g.reps),
        "with_target": g.targeted,
        "revenue": number(g.revenue),
        "target": number(g.target),
        "attainment": number(g.attainment),
    }


def _ramp(r: RampUp) -> Json:
    return {
        "new_rep_months": r.months,
        "new": _group(r.new),
        "tenured": _group(r.tenured),
        "new_reps": [
            {
                "name": rep.name,
                "started": rep.started.isoformat(),
                "first_win": None if rep.first_win is None else rep.first_win.isoformat(),
                "days": rep.days,
            }
            for rep in r.new_reps
        ],
    }


def evaluation(e: Evaluation, fmt: Formatter) -> Json:
    kpi = KPIS[e.kpi]
    return {
        "kpi": e.kpi,
        "label": fmt.kpi_label(kpi),
        "unit": kpi.unit.value,
        "currency": fmt.currency,
        "scope": scope(e.scope),
        "period": period(e.period),
        "as_of": e.as_of.isoformat(),
        "value": number(e.actual.value),
        **_value(e.actual, fmt),
        "target": number(e.target),
        "expected": number(e.expected),
        "forecast": number(e.forecast),
        "gap": number(e.gap),
        "attainment": number(e.attainment),
        "better_than_target": number(e.better_than_target),
        "status": e.status.value,
        "why": None if e.why is None else e.why.value,
        "explained_by": [
            {"scope": scope(c.scope), "value": number(c.actual.value), "target": number(c.target),
             "expected": number(c.expected), "gap": number(c.gap)}
            for c in e.contributors
        ],
    }  # fmt: skip


def _waterfall(w: Waterfall, minor_digits: int) -> Json:
    def money(minor: int) -> float | int | None:
        return number(Decimal(minor).scaleb(-minor_digits))

    return {
        "scope": scope(w.scope),
        "start": money(w.start),
        "movements": [
            {
                "movement": s.movement.value,
                "amount": money(s.amount),
                "count": s.count,
                "largest": [
                    {"name": d.name, "rep": d.rep, "amount": money(d.amount)} for d in s.largest
                ],
            }
            for s in w.steps
        ],
        "end": money(w.end),
    }


def changes(c: PipelineChanges, currency: str) -> Json:
    """The pipeline's movements since a day; amounts in the base currency."""
    return {
        "kpi": "pipeline",
        "currency": currency,
        "period": period(c.waterfall.period),
        "since": c.since.isoformat(),
        "history_from": None if c.history_from is None else c.history_from.isoformat(),
        **_waterfall(c.waterfall, c.minor_digits),
        "breakdown": [_waterfall(w, c.minor_digits) for w in c.breakdown],
    }
