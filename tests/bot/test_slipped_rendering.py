"""A slipped answer lists its deals (how often and how far each was pushed), in both languages,
with CRM names made inert in Slack; a digest says once that earlier figures were rebuilt."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.formatting import Formatter
from bot.rendering import (
    SLIPPED_DEALS_SHOWN,
    render_answer_blocks,
    render_answer_text,
    render_digest_text,
)
from conversation.views import Digest
from metrics.answers import Answer, Comparison
from metrics.evaluation import Status
from metrics.kpis import KPIS, KpiValue
from metrics.periods import Grain, period_containing
from metrics.scopes import Scope
from metrics.slipped import SlippedDeal

Q4 = period_containing(Grain.QUARTER, date(2026, 11, 26))
DEALS = (
    SlippedDeal("Acme <!channel> — Lampes", "Camille Laurent", "Lyon", Decimal(45_000), 2, 38),
    SlippedDeal("Beta — Spots", "Anna Müller", "Munich", Decimal(12_000), 1, 14),
    *(SlippedDeal(f"Deal {i}", "Anna Müller", "Munich", Decimal(100 * i), 1, 7)
      for i in range(1, 6)),
)  # fmt: skip


def slipped_answer(deals: tuple[SlippedDeal, ...], *, rebuilt: bool = False) -> Answer:
    previous = Comparison(
        Q4.previous(), Decimal(40_000), Decimal(18_500), Decimal("0.4625"), rebuilt=rebuilt
    )
    last_year = Comparison(Q4.same_period_last_year(), None, None, None)
    return Answer(
        KPIS["slipped"], Scope.company(), Q4, date(2026, 11, 26), KpiValue(Decimal(58_500), 7),
        None, Status.NO_DATA, None, previous, last_year, (), rebuilt=rebuilt,
        history_since=date(2026, 11, 2), deals=deals,
    )  # fmt: skip


def _plain(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


@pytest.mark.parametrize(
    ("locale", "currency", "first", "second", "more"),
    [
        ("fr_FR", "EUR", "45 000 €  repoussée 2 fois, de 38 jours au total",
         "12 000 €  repoussée une fois, de 14 jours", "… et 2 autres"),
        ("en_GB", "EUR", "€45,000  pushed 2 times, by 38 days in all",
         "€12,000  pushed once, by 14 days", "and 2 more"),
    ],
)  # fmt: skip
def test_the_slipped_deals_are_listed_largest_first(
    locale: str, currency: str, first: str, second: str, more: str
) -> None:
    fmt = Formatter(locale, currency, ZoneInfo("Europe/Paris"))
    text = _plain(render_answer_text(slipped_answer(DEALS), fmt))
    lines = text.splitlines()
    title = fmt.t("slipped.title")
    listed = lines[lines.index(title) + 1 :]
    assert listed[0].startswith("  Acme <!channel> — Lampes  Camille Laurent")
    assert listed[0].endswith(first)
    assert listed[1].endswith(second)
    assert len([line for line in listed if line.startswith("  Deal ")]) == SLIPPED_DEALS_SHOWN - 2
    assert more in text


def test_slipped_deal_names_are_inert_in_slack() -> None:
    fmt = Formatter("fr_FR", "EUR", ZoneInfo("Europe/Paris"))
    blocks = render_answer_blocks(slipped_answer(DEALS), fmt)
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    listing = next(s for s in sections if fmt.t("slipped.title") in s)
    assert "Acme &lt;!channel&gt; — Lampes — Camille Laurent" in listing
    assert "<!channel>" not in listing


def test_no_list_without_slipped_deals() -> None:
    fmt = Formatter("en_GB", "EUR", ZoneInfo("Europe/Paris"))
    assert fmt.t("slipped.title") not in render_answer_text(slipped_answer(()), fmt)


def test_a_digest_says_once_that_earlier_figures_were_rebuilt() -> None:
    fmt = Formatter("en_GB", "EUR", ZoneInfo("Europe/Paris"))
    answer = slipped_answer((), rebuilt=True)
    digest = Digest("Daily digest", date(2026, 11, 26), Scope.company(), (answer, answer), (), "X")
    text = _plain(render_digest_text(digest, fmt))
    assert text.count("Earlier figures rebuilt from today's records") == 1
    assert "(the pipeline history starts on 2 Nov 2026)" in text
