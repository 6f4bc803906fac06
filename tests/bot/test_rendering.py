"""Rendering of answers, digests and alerts: golden files in both locales, Block Kit validity,
Slack's limits, and escaping of CRM text.

Everything is built by hand from the metrics dataclasses with fixed values; no database.
Run ``UPDATE_GOLDEN=1 pytest tests/bot/test_rendering.py`` to rewrite the golden files, then
read the diff: they are reviewed like code.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.formatting import Formatter
from bot.rendering import (
    MAX_BLOCKS,
    MAX_FIELD_CHARS,
    MAX_FIELDS,
    MAX_HEADER_CHARS,
    MAX_SECTION_CHARS,
    AlertsView,
    AlertView,
    AnswerView,
    BlockLimitError,
    ComparisonView,
    ContributorView,
    Digest,
    DigestEntryView,
    DigestView,
    LineView,
    RowView,
    SectionView,
    answer_view,
    digest_view,
    environment,
    fit_blocks,
    mrkdwn_escape,
    render_alerts_blocks,
    render_alerts_text,
    render_answer_blocks,
    render_answer_text,
    render_changes_blocks,
    render_changes_text,
    render_digest_blocks,
    render_digest_text,
    sparkline,
    validate_blocks,
)
from metrics.answers import Answer, BreakdownRow, Comparison
from metrics.evaluation import Evaluation, Status, Why
from metrics.kpis import KPIS, KpiValue, Reason
from metrics.periods import Grain, Period, period_containing
from metrics.ramp import NewRep, RampUp, RepGroup
from metrics.scopes import Level, Scope
from metrics.sources import SourceRow
from tests.bot.test_changes_rendering import pipeline_changes
from tests.bot.test_slipped_rendering import DEALS, slipped_answer

GOLDEN = Path(__file__).parents[1] / "golden"
LOCALES = {"fr_FR": "EUR", "en_US": "USD"}
AS_OF = date(2026, 11, 26)  # a Thursday, day 57 of Q4 2026
PARIS = ZoneInfo("Europe/Paris")


def formatter(locale: str) -> Formatter:
    return Formatter(locale, LOCALES[locale], PARIS)


def quarter(year: int, q: int, *, end: date | None = None) -> Period:
    whole = period_containing(Grain.QUARTER, date(year, 3 * q - 2, 1))
    return whole if end is None else replace(whole, end=end)


Q4 = quarter(2026, 4)
TEAM = Scope(Level.TEAM, "EMEA")


# --- fixtures: hand-built values -----------------------------------------------------------------


def revenue_answer(rows: tuple[BreakdownRow, ...] | None = None) -> Answer:
    """Revenue of team EMEA in Q4 2026, 26 November: behind pace, broken down by rep."""
    evaluation = Evaluation(
        kpi="revenue",
        scope=TEAM,
        period=Q4,
        as_of=AS_OF,
        actual=KpiValue(Decimal("1234567"), sample=41),
        target=Decimal("3000000"),
        expected=Decimal("1650000"),
        forecast=Decimal("2712500.40"),
        status=Status.AT_RISK,
        why=Why.FORECAST_SHORT,
    )
    if rows is None:
        rows = (
            BreakdownRow(Scope(Level.REP, "Camille Durand"), KpiValue(Decimal("612000")),
                         Decimal("500000"), Status.ACHIEVED),
            BreakdownRow(Scope(Level.REP, "<!channel>"), KpiValue(Decimal("410250.5")),
                         Decimal("1000000"), Status.ON_TRACK),
            BreakdownRow(Scope(Level.REP, "Zoé Martin & Co"), KpiValue(Decimal("212316.5")),
                         Decimal("1000000"), Status.AT_RISK),
            BreakdownRow(Scope(Level.REP, "New hire"), KpiValue(Decimal("0")), None,
                         Status.NO_DATA),
        )  # fmt: skip
    return Answer(
        kpi=KPIS["revenue"],
        scope=TEAM,
        period=Q4,
        as_of=AS_OF,
        value=evaluation.actual,
        target=evaluation.target,
        status=evaluation.status,
        evaluation=evaluation,
        previous=Comparison(
            quarter(2026, 3, end=date(2026, 8, 26)),
            Decimal("1100000"), Decimal("134567"), Decimal("0.122333636"),
        ),
        last_year=Comparison(
            quarter(2025, 4, end=date(2025, 11, 26)),
            Decimal("1187000"), Decimal("47567"), Decimal("0.040073294"),
        ),
        breakdown=rows,
        trend=(None, Decimal("900000"), Decimal("1187000"), Decimal("1050000"),
               Decimal("1100000"), Decimal("1234567")),
    )  # fmt: skip


def conversion_answer() -> Answer:
    """Lead conversion of the company, an ended quarter: points, no breakdown."""
    q3 = quarter(2026, 3)
    return Answer(
        kpi=KPIS["conversion"],
        scope=Scope.company(),
        period=q3,
        as_of=AS_OF,
        value=KpiValue(Decimal("0.274"), sample=1200),
        target=Decimal("0.25"),
        status=Status.ACHIEVED,
        evaluation=None,
        previous=Comparison(quarter(2026, 2), Decimal("0.253"), Decimal("0.021"), Decimal("0.083")),
        last_year=Comparison(quarter(2025, 3), None, None, None),
        breakdown=(),
    )


def cpa_answer() -> Answer:
    """CPA of the company in November, day 26: far under target (lower is better), most of the
    spend booked to no team (its parts shown in whole euros that add up to 375), and too few
    days of a rate to compare like for like... except that 26 days is past the grace: compared,
    but the year before is before the data started."""
    november = period_containing(Grain.MONTH, AS_OF)
    return Answer(
        kpi=KPIS["cpa"],
        scope=Scope.company(),
        period=november,
        as_of=AS_OF,
        value=KpiValue(Decimal("375"), sample=48, spend_split=(
            (Level.TEAM, Decimal("48.4")), (Level.REGION, Decimal("64.4")),
            (Level.COMPANY, Decimal("262.2")))),
        target=Decimal("1800"),
        status=Status.ON_TRACK,
        evaluation=None,
        previous=Comparison(period_containing(Grain.MONTH, date(2026, 10, 1)),
                            Decimal("400"), Decimal("-25"), Decimal("-0.0625")),
        last_year=Comparison(period_containing(Grain.MONTH, date(2025, 11, 1)), None, None, None),
        breakdown=(),
    )  # fmt: skip


def early_conversion_answer() -> Answer:
    """Lead conversion of the running month on its 2nd day: too early to judge or compare."""
    december = period_containing(Grain.MONTH, date(2026, 12, 1))
    as_of = date(2026, 12, 2)
    return Answer(
        kpi=KPIS["conversion"],
        scope=Scope.company(),
        period=december,
        as_of=as_of,
        value=KpiValue(None, sample=0, reason=Reason.TOO_EARLY),
        target=Decimal("0.25"),
        status=Status.NO_DATA,
        evaluation=None,
        previous=Comparison(replace(period_containing(Grain.MONTH, date(2026, 11, 1)),
                                    end=date(2026, 11, 2)), None, None, None, too_early=True),
        last_year=Comparison(replace(period_containing(Grain.MONTH, date(2025, 12, 1)),
                                     end=date(2025, 12, 2)), None, None, None, too_early=True),
        breakdown=(),
        why=Why.TOO_EARLY,
    )  # fmt: skip


def running_conversion_answer() -> Answer:
    """Lead conversion of the running quarter: measured on the leads old enough to convert."""
    return Answer(
        kpi=KPIS["conversion"],
        scope=Scope.company(),
        period=Q4,
        as_of=AS_OF,
        value=KpiValue(Decimal("0.262"), sample=640,
                       cohort=replace(Q4, end=date(2026, 10, 27))),
        target=Decimal("0.25"),
        status=Status.ON_TRACK,
        evaluation=None,
        previous=Comparison(quarter(2026, 3), Decimal("0.241"), Decimal("0.021"), None),
        last_year=Comparison(quarter(2025, 4), Decimal("0.272"), Decimal("-0.01"), None),
        breakdown=(),
    )  # fmt: skip


def key_revenue_answer() -> Answer:
    """Key accounts' revenue of the company in Q4 2026, 26 November, no target: by team."""
    return Answer(
        kpi=KPIS["key_revenue"],
        scope=Scope.company(),
        period=Q4,
        as_of=AS_OF,
        value=KpiValue(Decimal("965230"), sample=18),
        target=None,
        status=Status.NO_DATA,
        evaluation=None,
        previous=Comparison(quarter(2026, 3, end=date(2026, 8, 26)),
                            Decimal("583800"), Decimal("381430"), Decimal("0.653357")),
        last_year=Comparison(quarter(2025, 4, end=date(2025, 11, 26)),
                             Decimal("779810"), Decimal("185420"), Decimal("0.237776")),
        breakdown=(
            BreakdownRow(Scope(Level.TEAM, "Paris Grands Comptes"), KpiValue(Decimal("493800")),
                         None, Status.NO_DATA),
            BreakdownRow(Scope(Level.TEAM, "Munich"), KpiValue(Decimal("378330")), None,
                         Status.NO_DATA),
            BreakdownRow(Scope(Level.TEAM, "Bruxelles"), KpiValue(Decimal("0"), sample=0), None,
                         Status.NO_DATA),
        ),
    )  # fmt: skip


def cpa_by_source_answer() -> Answer:
    """CPA of the company in Q4 2026 by lead source: a channel with spend and customers, one
    with spend and none, one that cost nothing, and customers that came from no lead."""
    return replace(
        cpa_answer(),
        period=Q4,
        previous=Comparison(quarter(2026, 3, end=date(2026, 8, 26)),
                            Decimal("400"), Decimal("-25"), Decimal("-0.0625")),
        last_year=Comparison(quarter(2025, 4, end=date(2025, 11, 26)), None, None, None),
        breakdown=(),
        sources=(
            SourceRow("Salon", KpiValue(Decimal("405"), sample=12)),
            SourceRow("Google Ads", KpiValue(None, sample=0, reason=Reason.NO_NEW_CUSTOMER)),
            SourceRow("Recommandation", KpiValue(None, sample=3, reason=Reason.NO_SPEND)),
            SourceRow(None, KpiValue(None, sample=1, reason=Reason.NO_SPEND)),
        ),
    )  # fmt: skip


def ramp_up_answer() -> Answer:
    """Ramp-up of the company in Q4 2026: one new rep's first win, one still waiting; the new
    reps' attainment against the tenured reps', some of whom have no target."""
    return Answer(
        kpi=KPIS["ramp_up"],
        scope=Scope.company(),
        period=Q4,
        as_of=AS_OF,
        value=KpiValue(Decimal("41"), sample=1),
        target=Decimal("60"),
        status=Status.ACHIEVED,
        evaluation=None,
        previous=Comparison(quarter(2026, 3, end=date(2026, 8, 26)), None, None, None),
        last_year=Comparison(quarter(2025, 4, end=date(2025, 11, 26)), None, None, None),
        breakdown=(),
        ramp=RampUp(
            6,
            RepGroup(("Élodie Fournier", "Théo Blanc"), Decimal("12000"), Decimal("75000"), 2),
            RepGroup(tuple(f"Rep {i}" for i in range(25)), Decimal("1859283"),
                     Decimal("2060000"), 17),
            (NewRep("Élodie Fournier", date(2026, 8, 10), date(2026, 9, 20), 41),
             NewRep("Théo Blanc", date(2026, 11, 6), None, None)),
        ),
    )  # fmt: skip


def cycle_answer() -> Answer:
    """Sales cycle with no target and a previous value of 0 days."""
    return Answer(
        kpi=KPIS["sales_cycle"],
        scope=Scope.company(),
        period=Q4,
        as_of=AS_OF,
        value=KpiValue(Decimal("41.6"), sample=30),
        target=None,
        status=Status.NO_DATA,
        evaluation=None,
        previous=Comparison(quarter(2026, 3, end=date(2026, 8, 26)), Decimal(0), Decimal("41.6"),
                            None),
        last_year=Comparison(quarter(2025, 4, end=date(2025, 11, 26)), Decimal("45"),
                             Decimal("-3.4"), Decimal("-0.0755")),
        breakdown=(),
    )  # fmt: skip


def alerts() -> tuple[Evaluation, ...]:
    rep = Scope(Level.REP, "<https://evil|click>")
    missed = Evaluation(
        kpi="win_rate",
        scope=Scope(Level.TEAM, "Nordics"),
        period=quarter(2026, 3),
        as_of=AS_OF,
        actual=KpiValue(Decimal("0.212"), sample=85),
        target=Decimal("0.25"),
        expected=None,
        forecast=None,
        status=Status.MISSED,
        why=Why.ENDED_SHORT,
        contributors=(
            Evaluation("win_rate", rep, quarter(2026, 3), AS_OF, KpiValue(Decimal("0.1"), 20),
                       Decimal("0.25"), None, None, Status.MISSED),
        ),
    )  # fmt: skip
    at_risk = Evaluation(
        kpi="revenue",
        scope=TEAM,
        period=Q4,
        as_of=AS_OF,
        actual=KpiValue(Decimal("1234567"), sample=41),
        target=Decimal("3000000"),
        expected=Decimal("1650000"),
        forecast=Decimal("2712500"),
        status=Status.AT_RISK,
        why=Why.FORECAST_SHORT,
        contributors=(
            Evaluation("revenue", Scope(Level.REP, "Zoé Martin & Co"), Q4, AS_OF,
                       KpiValue(Decimal("212316.5")), Decimal("1000000"), Decimal("550000"),
                       None, Status.AT_RISK),
            Evaluation("revenue", Scope(Level.REP, "<!channel>"), Q4, AS_OF,
                       KpiValue(Decimal("410250.5")), Decimal("1000000"), Decimal("550000"),
                       None, Status.AT_RISK),
        ),
    )  # fmt: skip
    cpa = Evaluation(
        kpi="cpa",
        scope=Scope.company(),
        period=Q4,
        as_of=AS_OF,
        actual=KpiValue(Decimal("1250"), sample=24),
        target=Decimal("1000"),
        expected=None,
        forecast=None,
        status=Status.AT_RISK,
        why=Why.OFF_TARGET,
    )
    on_track = replace(cpa, kpi="csat", actual=KpiValue(Decimal("4.4"), 50), target=Decimal(4),
                       status=Status.ON_TRACK)  # fmt: skip
    return (at_risk, on_track, missed, cpa)


def digest(locale: str) -> Digest:
    return Digest(
        title={"fr_FR": "Récap quotidien", "en_US": "Daily digest"}[locale],
        as_of=AS_OF,
        scope=Scope.company(),
        answers=(revenue_answer(), conversion_answer(), cycle_answer()),
        alerts=alerts(),
        organisation="Acme <Sales> & Co",
    )


def many_rows(n: int, name: str = "Rep {i:03d}") -> tuple[BreakdownRow, ...]:
    return tuple(
        BreakdownRow(
            Scope(Level.REP, name.format(i=i)),
            KpiValue(Decimal(100000 + 1000 * i)),
            Decimal(150000),
            Status.ON_TRACK,
        )
        for i in range(n)
    )


# --- helpers -------------------------------------------------------------------------------------


def assert_golden(name: str, actual: str) -> None:
    """Compare with tests/golden/<name>; ``UPDATE_GOLDEN=1`` rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual + "\n", encoding="utf-8")
    assert path.exists(), f"{path} is missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    assert actual + "\n" == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def dumps(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False, indent=2)


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    """Slack's limits, checked independently of bot.rendering's own checks."""
    assert 0 < len(blocks) <= MAX_BLOCKS
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER_CHARS
        if block["type"] == "section":
            assert "text" in block or block.get("fields")
            assert len(block.get("text", {}).get("text", "")) <= MAX_SECTION_CHARS
            assert len(block.get("fields", [])) <= MAX_FIELDS
            assert all(0 < len(f["text"]) <= MAX_FIELD_CHARS for f in block.get("fields", []))
    validate_blocks(blocks)


def section_texts(blocks: list[dict[str, Any]]) -> list[str]:
    texts = []
    for block in blocks:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(f["text"] for f in block.get("fields", []))
        texts.extend(e["text"] for e in block.get("elements", []) if "text" in e)
    return texts


# --- golden files --------------------------------------------------------------------------------

CASES = {
    "answer-revenue": lambda fmt, locale: (
        render_answer_text(revenue_answer(), fmt),
        render_answer_blocks(revenue_answer(), fmt),
    ),
    "answer-conversion": lambda fmt, locale: (
        render_answer_text(conversion_answer(), fmt),
        render_answer_blocks(conversion_answer(), fmt),
    ),
    "answer-cpa": lambda fmt, locale: (
        render_answer_text(cpa_answer(), fmt),
        render_answer_blocks(cpa_answer(), fmt),
    ),
    "answer-conversion-early": lambda fmt, locale: (
        render_answer_text(early_conversion_answer(), fmt),
        render_answer_blocks(early_conversion_answer(), fmt),
    ),
    "answer-conversion-cohort": lambda fmt, locale: (
        render_answer_text(running_conversion_answer(), fmt),
        render_answer_blocks(running_conversion_answer(), fmt),
    ),
    "answer-cycle": lambda fmt, locale: (
        render_answer_text(cycle_answer(), fmt),
        render_answer_blocks(cycle_answer(), fmt),
    ),
    "answer-key-revenue": lambda fmt, locale: (
        render_answer_text(key_revenue_answer(), fmt),
        render_answer_blocks(key_revenue_answer(), fmt),
    ),
    # By lead source: each row says what it counts; no row has a target.
    "answer-cpa-by-source": lambda fmt, locale: (
        render_answer_text(cpa_by_source_answer(), fmt),
        render_answer_blocks(cpa_by_source_answer(), fmt),
    ),
    # New against tenured reps, and each new rep's first win.
    "answer-ramp-up": lambda fmt, locale: (
        render_answer_text(ramp_up_answer(), fmt),
        render_answer_blocks(ramp_up_answer(), fmt),
    ),
    "alerts": lambda fmt, locale: (
        render_alerts_text(alerts(), fmt),
        render_alerts_blocks(alerts(), fmt),
    ),
    "alerts-none": lambda fmt, locale: (render_alerts_text((), fmt), render_alerts_blocks((), fmt)),
    "digest": lambda fmt, locale: (
        render_digest_text(digest(locale), fmt),
        render_digest_blocks(digest(locale), fmt),
    ),
    "changes": lambda fmt, locale: (
        render_changes_text(pipeline_changes(), fmt),
        render_changes_blocks(pipeline_changes(), fmt),
    ),
    # Its deals listed, largest first, the rest counted.
    "answer-slipped": lambda fmt, locale: (
        render_answer_text(slipped_answer(DEALS), fmt),
        render_answer_blocks(slipped_answer(DEALS), fmt),
    ),
    # A weekly digest with the quarter's waterfall.
    "digest-waterfall": lambda fmt, locale: (
        render_digest_text(replace(digest(locale), changes=pipeline_changes()), fmt),
        render_digest_blocks(replace(digest(locale), changes=pipeline_changes()), fmt),
    ),
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, locale: str) -> None:
    text, blocks = CASES[case](formatter(locale), locale)
    assert_golden(f"text/{case}.{locale}.txt", text)
    assert_golden(f"slack/{case}.{locale}.json", dumps(blocks))
    assert_within_limits(blocks)


def test_golden_files_are_all_used() -> None:
    expected = {f"{kind}/{case}.{locale}.{ext}" for case in CASES for locale in LOCALES
                for kind, ext in (("text", "txt"), ("slack", "json"))}  # fmt: skip
    found = {str(p.relative_to(GOLDEN)) for kind in ("text", "slack")
             for p in (GOLDEN / kind).rglob("*") if p.is_file()}  # fmt: skip
    assert found == expected


# --- Slack's limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_long_breakdown_is_cut_with_a_count(locale: str) -> None:
    fmt = formatter(locale)
    answer = revenue_answer(many_rows(200))
    blocks = render_answer_blocks(answer, fmt)
    assert_within_limits(blocks)
    more = {"fr_FR": "… et 185 autres", "en_US": "… and 185 more"}[locale]
    assert more in section_texts(blocks)
    assert "Rep 014" in dumps(blocks) and "Rep 015" not in dumps(blocks)
    text = render_answer_text(answer, fmt)
    assert f"  {more}" in text.splitlines()
    assert "Rep 015" not in text


def test_huge_crm_names_are_clipped_and_split_across_sections() -> None:
    # Every name escapes to 4× its length; 15 of them cannot share one 3000-character section.
    answer = revenue_answer(many_rows(15, name="<" * 5000 + "{i}"))
    blocks = render_answer_blocks(answer, formatter("en_US"))
    assert_within_limits(blocks)
    row_lines = [line for t in section_texts(blocks) for line in t.split("\n") if "&lt;" in line]
    assert len(row_lines) == 15  # nothing lost, only split
    assert all("&lt;" * 79 + "…" in line for line in row_lines)


def test_many_alerts_are_cut_with_a_count() -> None:
    evaluation = alerts()[0]
    blocks = render_alerts_blocks([evaluation] * 75, formatter("en_US"))
    assert_within_limits(blocks)
    assert "… and 55 more" in section_texts(blocks)
    assert blocks[0]["text"]["text"] == "⚠️ 75 alerts"


def test_digest_with_many_answers_and_alerts_stays_within_limits() -> None:
    many = replace(digest("fr_FR"), answers=(revenue_answer(),) * 40, alerts=alerts() * 30)
    blocks = render_digest_blocks(many, formatter("fr_FR"))
    assert_within_limits(blocks)
    texts = section_texts(blocks)
    assert "… et 20 autres" in texts  # answers
    assert "… et 80 autres\u00a0: /kpi alertes" in texts  # 90 firing alerts, 10 shown


def test_fit_blocks_cuts_long_headers_without_breaking_an_entity() -> None:
    header = {"type": "header", "text": {"type": "plain_text", "text": "a" * 147 + "&lt;&lt;"}}
    (fitted,) = fit_blocks([header], formatter("en_US"))
    assert fitted["text"]["text"] == "a" * 147 + "…"


def test_fit_blocks_splits_fields_and_long_sections() -> None:
    fields = [{"type": "mrkdwn", "text": f"field {i}"} for i in range(23)]
    long_text = "\n".join(f"line {i:04d} " + "x" * 90 for i in range(100))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "fields": fields},
        {"type": "section", "text": {"type": "mrkdwn", "text": long_text}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "y" * 2500}]},
    ]
    fitted = fit_blocks(blocks, formatter("en_US"))
    assert_within_limits(fitted)
    assert [len(b.get("fields", [])) for b in fitted[:3]] == [10, 10, 3]
    assert "\n".join(b["text"]["text"] for b in fitted[3:-1]) == long_text
    assert fitted[-1]["fields"][0]["text"] == "y" * 1999 + "…"


def test_fit_blocks_replaces_blocks_beyond_50_with_a_note() -> None:
    blocks = [{"type": "divider"}] * 80
    fitted = fit_blocks(blocks, formatter("fr_FR"))
    assert len(fitted) == MAX_BLOCKS
    assert fitted[-1]["elements"][0]["text"].startswith("… message raccourci")
    validate_blocks(fitted)


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ({"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}, "header"),
        ({"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}, "section"),
        ({"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}, "field 0"),
        ({"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}, "11 fields"),
        ({"type": "section"}, "text or fields"),
        ({"type": "sectoin", "text": {"type": "mrkdwn", "text": "typo"}}, "unknown block type"),
        ({"type": "section", "txt": {"type": "mrkdwn", "text": "typo"}}, "block 0"),
    ],
)
def test_validate_blocks_rejects(block: dict[str, Any], problem: str) -> None:
    with pytest.raises(BlockLimitError, match=problem):
        validate_blocks([block])


# --- escaping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<https://evil|click>", "&lt;https://evil|click&gt;"),
        ("<@U123ABC>", "&lt;@U123ABC&gt;"),
        ("Martin & Co", "Martin &amp; Co"),
        ("&lt;", "&amp;lt;"),  # an entity already in the CRM stays visible as typed
        ("\"quoted\" 'text'", "\"quoted\" 'text'"),  # quotes are not special
        # Markup that could format becomes its look-alike; inside a word it cannot, and stays.
        ("*9 999 999 €*", "\u22179 999 999 €\u2217"),
        ("_Nord_ ~Est~ `code`", "\u02cdNord\u02cd \u223cEst\u223c \u02cbcode\u02cb"),
        ("win_rate a*b R&D_2", "win_rate a*b R&amp;D_2"),
    ],
)
def test_mrkdwn_escape(raw: str, escaped: str) -> None:
    assert mrkdwn_escape(raw) == escaped


@pytest.mark.parametrize("locale", LOCALES)
def test_crm_names_are_inert_in_every_payload(locale: str) -> None:
    fmt = formatter(locale)
    payloads = [
        render_answer_blocks(revenue_answer(), fmt),
        render_alerts_blocks(alerts(), fmt),
        render_digest_blocks(replace(digest(locale), scope=Scope(Level.REGION, "<!here>")), fmt),
    ]
    for blocks in payloads:
        serialized = dumps(blocks)
        for raw in ("<!channel>", "<https://evil|click>", "<Sales>", "<!here>", "& Co"):
            assert raw not in serialized
    joined = "\n".join(dumps(b) for b in payloads)
    for escaped in ("&lt;!channel&gt;", "&lt;https://evil|click&gt;", "Acme &lt;Sales&gt; &amp; Co",
                    "&lt;!here&gt;", "Zoé Martin &amp; Co"):  # fmt: skip
        assert escaped in joined


def test_text_renderings_keep_names_as_typed() -> None:
    # The terminal shows names as they are; Slack fallbacks go through mrkdwn_escape.
    text = render_answer_text(revenue_answer(), formatter("en_US"))
    assert "<!channel>" in text and "Zoé Martin & Co" in text


# --- views and templates -------------------------------------------------------------------------


def test_answer_view_of_a_running_period() -> None:
    view = answer_view(revenue_answer(), formatter("en_US"))
    assert view.title == "Revenue · Team EMEA · Q4 2026"
    assert (view.value, view.target, view.attainment) == ("$1,234,567", "$3,000,000", "41.2%")
    assert (view.expected, view.forecast) == ("$1,650,000", "$2,712,500")
    assert (view.comparisons[0].label, view.comparisons[0].change) == ("vs Q3 2026", "+12.2%")
    assert view.why == "forecast $2,712,500 below target $3,000,000"
    assert view.like_for_like == "Like for like: the first 57 days of each period"
    assert view.breakdown_title == "By rep"
    assert [r.emoji for r in view.breakdown] == ["✅", "🟢", "🟠", "⚪"]
    assert view.breakdown[-1].status == "no target"
    assert view.more is None


def test_answer_view_of_an_ended_period_uses_points_for_rates() -> None:
    view = answer_view(conversion_answer(), formatter("fr_FR"))
    assert view.like_for_like is None
    previous, last_year = view.comparisons
    assert previous.change == "+2,1\u00a0pts"
    assert last_year.change is None and last_year.value == "pas de données"
    assert view.breakdown == () and view.breakdown_title is None


def test_alerts_leave_out_what_is_not_firing_and_put_missed_first() -> None:
    text = render_alerts_text(alerts(), formatter("en_US"))
    assert "Customer satisfaction" not in text
    order = [line[0] for line in text.splitlines() if line[:1] in ("🔴", "🟠")]
    assert order == ["🔴", "🟠", "🟠"]


def _template_sources() -> str:
    env = environment()
    assert env.loader is not None
    names = env.list_templates(filter_func=lambda name: name.startswith(("slack/", "text/")))
    return "\n".join(env.loader.get_source(env, name)[0] for name in names)


@pytest.mark.parametrize(
    "view",
    [AnswerView, ComparisonView, RowView, AlertsView, AlertView, ContributorView, DigestView,
     DigestEntryView, SectionView, LineView],
    ids=lambda cls: cls.__name__,
)  # fmt: skip
def test_every_view_field_is_shown_by_a_template(view: type) -> None:
    sources = _template_sources()
    unused = [f.name for f in dataclasses.fields(view) if f".{f.name}" not in sources]
    assert unused == [], f"{view.__name__} fields no template shows: {unused}"


@pytest.mark.parametrize(
    ("locale", "said"),
    [("fr_FR", "trop peu pour juger (n = 5)"), ("en_US", "too few to judge (n = 5)")],
)
def test_a_sample_too_small_says_so_beside_its_value(locale: str, said: str) -> None:
    answer = replace(
        conversion_answer(), value=KpiValue(Decimal("0.4"), sample=5), status=Status.NO_DATA
    )
    text = render_answer_text(answer, formatter(locale))
    assert said in text
    assert "40" in text  # the value is still shown


@pytest.mark.parametrize(
    ("locale", "value", "expected"),
    [
        # a CPA of 375 against 1 800 is 79 % under target, not "480 % attained"
        ("fr_FR", "375", "79,2\u00a0% sous l'objectif"),
        ("en_US", "375", "79.2% better than target"),
        # 2 000 against 1 800 is 11 % over
        ("fr_FR", "2000", "11,1\u00a0% au-dessus de l'objectif"),
        ("en_US", "2000", "11.1% worse than target"),
    ],
)
def test_lower_is_better_attainment_reads_as_better_or_worse(
    locale: str, value: str, expected: str
) -> None:
    answer = replace(cpa_answer(), value=KpiValue(Decimal(value), sample=48))
    assert answer_view(answer, formatter(locale)).attainment == expected


@pytest.mark.parametrize(
    ("locale", "early", "verdict"),
    [("fr_FR", "trop tôt pour juger", "sous l'objectif"), ("en_US", "too early", "than target")],
)
def test_a_cpa_too_early_to_judge_is_not_set_against_its_target(
    locale: str, early: str, verdict: str
) -> None:
    # the demo on the 1st: 375 € against 1 800 € is "too early to judge", not also "79 % under"
    answer = replace(cpa_answer(), status=Status.NO_DATA, why=Why.TOO_EARLY)
    view = answer_view(answer, formatter(locale))
    assert (view.value, view.attainment) == (formatter(locale).money(Decimal(375)), None)
    text = render_answer_text(answer, formatter(locale))
    assert early in text and verdict not in text


def test_a_year_is_compared_with_the_previous_year_once() -> None:
    answer = replace(conversion_answer(), last_year=None)
    view = answer_view(answer, formatter("en_US"))
    assert [c.label for c in view.comparisons] == ["vs Q2 2026"]


def test_a_multiple_changes_in_x_not_in_percent() -> None:
    answer = replace(
        cycle_answer(),
        kpi=KPIS["coverage"],
        previous=Comparison(quarter(2026, 3), Decimal("0.8"), Decimal("3.1"), Decimal("3.894")),
    )
    assert answer_view(answer, formatter("fr_FR")).comparisons[0].change == "+3,1×"


def test_a_digest_points_to_the_alerts_it_does_not_repeat() -> None:
    many = alerts() * 4  # 12 firing: more than the 10 a digest shows
    view = digest_view(dataclasses.replace(digest("fr_FR"), alerts=many, posted=2),
                       formatter("fr_FR"))  # fmt: skip
    assert view.alerts.posted == (
        "2 autres alertes déjà publiées aujourd'hui dans ce canal\u00a0: /kpi alertes"
    )
    assert view.alerts.more is not None and view.alerts.more.endswith("\u00a0: /kpi alertes")


def test_a_digest_leaves_out_rows_with_no_value_and_no_target() -> None:
    empty = replace(cycle_answer(), value=KpiValue(None, sample=0), target=None)
    view = digest_view(replace(digest("en_US"), answers=(revenue_answer(), empty)),
                       formatter("en_US"))  # fmt: skip
    assert [e.heading for e in view.entries] == ["Revenue · Team EMEA · Q4 2026"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # lowest ▁, highest █, the rest in proportion of 7 steps over 334.567:
        # 1187 → 6.0 ▇, 1050 → 3.1 ▄, 1100 → 4.2 ▅; no data is a space
        ([None, 900, 1187, 1050, 1100, 1234.567], " ▁▇▄▅█"),
        # a flat series sits on the floor rather than dividing by zero
        ([5, 5, 5], "▁▁▁"),
        # fewer than two values: nothing to draw
        ([None, 3], None),
        ([], None),
    ],
)
def test_sparkline(values: list[float | int | None], expected: str | None) -> None:
    got = sparkline([None if v is None else Decimal(str(v)) for v in values])
    assert got == expected


def test_an_unstable_alert_is_shown_as_such_in_the_digest() -> None:
    flapping = alerts()[0]  # EMEA revenue, at risk
    key = f"revenue|team|EMEA|{Q4.key}"
    view = digest_view(replace(digest("fr_FR"), unstable=frozenset({key})), formatter("fr_FR"))
    statuses = {a.scope: a.status for a in view.alerts.alerts}
    assert statuses["Équipe EMEA"] == "à risque, instable (va et vient\u00a0: plus annoncé)"
    assert statuses["Équipe Nordics"] == "manqué"
    assert flapping.scope.name == "EMEA"


FORGED = "Paris\n✅ FORGED LINE — *9 999 999 €*"
HIDDEN = "Ly\u200bon\u202e\u2066 \t\r\x07Group\u2069"  # zero-width, bidi, controls


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


@pytest.mark.parametrize("locale", LOCALES)
def test_crm_names_cannot_start_a_line_of_their_own(locale: str) -> None:
    fmt = formatter(locale)
    at_risk, *others = alerts()
    contributor = replace(at_risk.contributors[0], scope=Scope(Level.REP, HIDDEN))
    at_risk = replace(at_risk, scope=Scope(Level.TEAM, FORGED), contributors=(contributor,))
    evaluations = (at_risk, *others)
    team = replace(digest(locale), scope=Scope(Level.TEAM, FORGED), alerts=evaluations)
    text = [render_alerts_text(evaluations, fmt), render_digest_text(team, fmt)]
    slack = [
        s
        for blocks in (render_alerts_blocks(evaluations, fmt), render_digest_blocks(team, fmt))
        for s in _strings(blocks)
    ]

    for rendering in text + slack:
        for line in rendering.splitlines():
            assert "✅ FORGED" not in line or "Paris ✅ FORGED LINE" in line, line
        assert not any(c in rendering for c in "\u200b\u202e\u2066\u2069\r\x07")
    # The terminal shows the name as typed, on one line; Slack shows its stars, not bold.
    assert all("Paris ✅ FORGED LINE — *9 999 999 €*" in t for t in text)
    assert all("Lyon Group" in t for t in text)
    joined = "\n".join(slack)
    assert "Paris ✅ FORGED LINE — \u22179 999 999 €\u2217" in joined
    assert "*9 999 999" not in joined and "Lyon Group" in joined


@pytest.mark.parametrize(
    ("locale", "said"),
    [
        ("fr_FR", "Aucun lead ni aucune dépense n'indique de source"),
        ("en_US", "No lead or spend names a source"),
    ],
)
def test_asked_by_source_where_nothing_names_one_says_so(locale: str, said: str) -> None:
    text = render_answer_text(replace(cpa_by_source_answer(), sources=()), formatter(locale))
    assert said in text
    assert said not in render_answer_text(cpa_answer(), formatter(locale))
