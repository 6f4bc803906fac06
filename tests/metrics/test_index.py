"""The date-ordered indexes (``metrics.index``): a period's rows found by binary search give
exactly the figures that a mask over every row gives.

The reference below is the straightforward computation the KPIs made before the indexes (a
boolean mask per period over all of a scope's rows); the property test runs both over random
companies, periods, scopes and days and asks for the same value to the cent, the same sample
and the same overdue part."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.facts import LOST, OPEN, WON, Facts, day, within
from metrics.index import DateOrder, Ordered, date_order
from metrics.kpis import KPIS, Context, KpiValue, Reason, prepare_indexes, usual_scopes
from metrics.periods import Grain, Period, period_containing
from metrics.scopes import Level, Scope
from tests.metrics.factories import Q3, company, frame

# --- Ordered ---------------------------------------------------------------------------------

DATES = np.array(
    ["2026-07-03", "NaT", "2026-07-01", "2026-07-03", "2026-08-01", "2026-06-30"],
    dtype="datetime64[D]",
)
AMOUNTS = np.array([10, 20, 30, 40, 50, 60])


def places(table: Ordered, rows: np.ndarray) -> np.ndarray:
    """The places in ``table``'s date order of the table rows ``rows``, ascending: what
    ``Facts`` gives a scope's index (``Ordered.part``)."""
    order = table.table.order
    if order is None:
        return rows.astype(np.int32)
    place = np.empty(len(order), dtype=np.int32)
    place[order] = np.arange(len(order))
    return np.sort(place[rows])


def ordered(rows: np.ndarray | None = None) -> Ordered:
    whole = {"close": DATES, "amount": AMOUNTS}
    table = Ordered.of_table(whole.__getitem__, "close")
    return table if rows is None else table.part(places(table, rows))


@pytest.mark.parametrize(
    ("first", "last", "amounts"),
    [
        # both bounds included; equal dates keep the table's order (a stable sort)
        (date(2026, 7, 1), date(2026, 7, 3), [30, 10, 40]),
        (date(2026, 7, 3), date(2026, 7, 3), [10, 40]),
        # no bound on one side; the undated row falls in no period
        (None, date(2026, 7, 1), [60, 30]),
        (date(2026, 7, 2), None, [10, 40, 50]),
        (None, None, [60, 30, 10, 40, 50]),
        # nothing dated between the bounds, or bounds the wrong way round: an empty slice
        (date(2026, 7, 4), date(2026, 7, 31), []),
        (date(2026, 8, 1), date(2026, 7, 1), []),
    ],
)
def test_rows_between_two_days_are_one_slice_in_date_order(
    first: date | None, last: date | None, amounts: list[int]
) -> None:
    got = ordered().between(first, last, ("amount",))
    assert got["amount"].tolist() == amounts
    assert list(got) == ["close", "amount"]


def test_a_scope_is_ordered_among_its_own_rows_only() -> None:
    got = ordered(np.array([0, 1, 4, 5])).within(Q3, ("amount",))
    assert got["amount"].tolist() == [10, 50]
    assert got["close"].tolist() == [date(2026, 7, 3), date(2026, 8, 1)]


@pytest.mark.parametrize(
    ("rows", "first", "last", "amounts"),
    [
        (np.array([1, 2, 3]), date(2026, 7, 1), date(2026, 7, 3), [30, 40]),
        (np.array([1, 2, 3]), None, None, [30, 40]),  # its undated row (20) in no period
        (np.array([5]), None, date(2026, 6, 30), [60]),
        (np.array([5]), date(2026, 7, 1), None, []),
        (np.array([], dtype=np.int32), None, None, []),
    ],
)
def test_a_scope_finds_its_run_among_the_tables_run(
    rows: np.ndarray, first: date | None, last: date | None, amounts: list[int]
) -> None:
    assert ordered(rows).between(first, last, ("amount",))["amount"].tolist() == amounts


def test_rows_holding_a_value_keep_the_date_order() -> None:
    whole = {"close": DATES, "amount": AMOUNTS, "won": np.array([1, 1, 0, 1, 1, 1])}
    table = Ordered.of_table(whole.__getitem__, "close")
    assert table.rows_where("won", 1).between(None, None, ("amount",))["amount"].tolist() == [
        60,
        10,
        40,
        50,
    ]
    team = table.part(places(table, np.array([0, 2, 3, 4]))).rows_where("won", 1)
    assert team.within(Q3, ("amount",))["amount"].tolist() == [10, 40, 50]


def test_dead_entries_are_left_out_of_every_read_of_the_table_and_of_its_scopes() -> None:
    # In date order the rows are 5, 2, 0, 3, 4 (row 1 has no date); rows 2 and 3 (amounts
    # 30 and 40) were deleted since: their entries, the second and the fourth, are dead.
    table = ordered()
    table.table.dead = np.array([1, 3], dtype=np.int32)
    team = table.part(places(table, np.array([0, 2, 3, 5])))
    kept = table.part(places(table, np.array([0, 2, 3, 5])))
    kept.keep(("amount",))
    for index, amounts in ((table, [60, 10, 50]), (team, [60, 10]), (kept, [60, 10])):
        assert index.between(None, None, ("amount",))["amount"].tolist() == amounts
        run = index.between(date(2026, 7, 1), date(2026, 7, 3), ("amount",))
        assert run["amount"].tolist() == [10]
        assert run["close"].tolist() == [date(2026, 7, 3)]
    assert table.between(date(2026, 8, 1), None, ("amount",))["amount"].tolist() == [50]
    # The earliest date is the first live entry's.
    assert table.table.earliest() == np.datetime64("2026-06-30")
    table.table.dead = np.array([0, 1], dtype=np.int32)
    assert table.table.earliest() == np.datetime64("2026-07-03")
    table.table.dead = np.array([0, 1, 2, 3, 4], dtype=np.int32)
    assert table.table.earliest() is None


def test_a_read_takes_the_tails_rows_of_its_period_after_the_settled_ones() -> None:
    # Settled, by close date: rows 5, 2, 0, 3, 4, then row 1 (no date). Since: row 2 moved to
    # 2026-08-02 and row 3 to 2026-07-02 (their settled entries dead), row 6 new on
    # 2026-07-01 and row 7 new without a date: the tail holds rows 6, 3, 2, 7.
    dates = np.array([*DATES, "2026-07-01", "NaT"], dtype="datetime64[D]")
    dates[2], dates[3] = np.datetime64("2026-08-02"), np.datetime64("2026-07-02")
    amounts = np.array([*AMOUNTS, 70, 80])
    order = np.array([5, 2, 0, 3, 4, 1, 6, 3, 2, 7], dtype=np.int32)
    table = Ordered(
        {"close": dates, "amount": amounts}.__getitem__,
        "close",
        # The dead entries keep their dates then.
        DateOrder(
            order,
            np.concatenate([DATES[order[:6]], dates[order[6:]]]),
            dead=np.array([1, 3], dtype=np.int32),
            tail=4,
        ),
    )
    assert (table.table.dated, table.table.tail_dated, table.table.settled) == (5, 3, 6)
    team = table.part(np.array([1, 2, 3, 6, 7, 9], dtype=np.int32))  # rows 2, 0, 3, 6, 3, 7
    kept = table.part(np.array([1, 2, 3, 6, 7, 9], dtype=np.int32))
    kept.keep(("amount",))
    cases = [
        (table, None, None, [60, 10, 50, 70, 40, 30]),
        (table, date(2026, 7, 1), date(2026, 7, 3), [10, 70, 40]),
        (table, date(2026, 8, 2), None, [30]),  # only the tail's
        (table, None, date(2026, 6, 30), [60]),  # only the settled ones'
        (team, None, None, [10, 70, 40]),
        (kept, date(2026, 7, 2), date(2026, 7, 31), [10, 40]),
    ]
    for index, first, last, expected in cases:
        assert index.between(first, last, ("amount",))["amount"].tolist() == expected
    # The earliest live date: the settled entries' first, or the tail's when earlier.
    assert table.table.earliest() == np.datetime64("2026-06-30")
    table.table.dead = np.array([0, 1, 2, 3, 4], dtype=np.int32)
    assert table.table.earliest() == np.datetime64("2026-07-01")
    table.table.dead = np.array([0, 1, 2, 3, 4, 6, 7], dtype=np.int32)
    assert table.table.earliest() == np.datetime64("2026-08-02")


def test_a_table_in_date_order_keeps_no_order_and_its_runs_are_views() -> None:
    dates = np.array(["2026-07-01", "2026-07-02", "2026-08-01", "NaT"], dtype="datetime64[D]")
    whole = {"close": dates, "amount": np.array([1, 2, 3, 4])}
    table = Ordered.of_table(whole.__getitem__, "close")
    run = table.within(Q3, ("amount",))
    assert run["amount"].tolist() == [1, 2, 3]
    assert np.shares_memory(run["amount"], whole["amount"])
    assert np.shares_memory(run["close"], dates)
    # A scope keeps its own positions and gathers only its period's rows.
    team = table.part(places(table, np.array([1, 3])))
    assert team.within(Q3, ("amount",))["amount"].tolist() == [2]


def _arrays(index: Ordered) -> dict[int, np.ndarray]:
    return {id(v): v for v in vars(index).values() if isinstance(v, np.ndarray)}


def test_a_scope_shares_the_tables_order_and_keeps_only_four_bytes_a_row() -> None:
    whole = {"close": DATES, "amount": AMOUNTS}
    table = Ordered.of_table(whole.__getitem__, "close")
    team = table.part(places(table, np.array([0, 3, 4])))
    team.within(Q3, ("amount",))  # a read keeps nothing
    own = [a for key, a in _arrays(team).items() if key not in _arrays(table)]
    assert [(a.dtype, a.tolist()) for a in own] == [(np.dtype("int32"), [2, 3, 4])]
    # The table in date order, with the columns gathered for any scope, is the table's.
    assert team.table is table.table and list(table.table.columns) == ["amount"]


def test_a_scope_that_keeps_its_columns_reads_views_of_them_and_the_same_rows() -> None:
    whole = {"close": DATES, "amount": AMOUNTS}
    table = Ordered.of_table(whole.__getitem__, "close")
    team = table.part(places(table, np.array([0, 1, 2, 3, 5])))
    before = team.between(None, date(2026, 7, 3), ("amount",))
    team.keep(("amount",))
    after = team.between(None, date(2026, 7, 3), ("amount",))
    assert after["amount"].tolist() == before["amount"].tolist() == [60, 30, 10, 40]
    assert np.shares_memory(after["amount"], team.kept["amount"])
    assert np.shares_memory(after["close"], team.kept["close"])


def test_facts_keep_one_index_per_table_scope_and_date_and_the_past_gets_its_own() -> None:
    facts = company()
    team = Scope(Level.TEAM, "A")
    assert facts.ordered("opportunities", team, "close") is facts.ordered(
        "opportunities", team, "close"
    )
    assert facts.ordered("opportunities", team, "created") is not facts.ordered(
        "opportunities", team, "close"
    )
    before = facts.opportunities[facts.opportunities["id"] != "o3"].reset_index(drop=True)
    past = facts.as_stood(before)
    amounts = past.ordered("opportunities", team, "close").within(Q3, ("amount",))["amount"]
    assert amounts.tolist() == [100_000, 50_000]  # o3 (300 000, 31 August) did not exist then


def test_children_are_kept_for_the_data_version_and_handed_out_as_copies() -> None:
    facts = company()
    teams = facts.children(Scope.company(), Level.TEAM)
    teams.clear()
    assert facts.children(Scope.company(), Level.TEAM) == [
        Scope(Level.TEAM, "A"),
        Scope(Level.TEAM, "B"),
    ]


# --- the reference: a mask per period over every row of the scope ----------------------------

DEALS = ("status_code", "amount", "created", "close", "probability")


def _money(minor: float) -> Decimal:
    return Decimal(round(minor)).scaleb(-2)


def _to_date(period: Period, as_of: date) -> Period | None:
    return None if as_of < period.start else period.to_date(as_of)


def _open_at(facts: Facts, scope: Scope, as_of: date) -> tuple[dict[str, np.ndarray], np.ndarray]:
    deals = facts.columns("opportunities", scope, DEALS)
    started = (deals["created"] <= day(as_of)) | np.isnat(deals["created"])
    still_open = (deals["status_code"] == OPEN) | (deals["close"] > day(as_of))
    return deals, started & still_open


def _overdue(
    deals: dict[str, np.ndarray], open_now: np.ndarray, period: Period, as_of: date
) -> tuple[Decimal | None, int]:
    late = open_now & within(deals["close"], period) & (deals["close"] < day(as_of))
    count = int(late.sum())
    return (_money(int(deals["amount"][late].sum())) if count else None), count


def reference(kpi: str, facts: Facts, scope: Scope, period: Period, as_of: date) -> KpiValue:
    deals = facts.columns("opportunities", scope, DEALS)
    elapsed = _to_date(period, as_of)
    if kpi in ("revenue", "avg_deal", "sales_cycle", "win_rate", "new_pipeline"):
        if elapsed is None:
            return KpiValue(None, reason=Reason.NOT_STARTED)
        closed = within(deals["close"], elapsed)
        won = (deals["status_code"] == WON) & closed
        amount, count = int(deals["amount"][won].sum()), int(won.sum())
        if kpi == "revenue":
            return KpiValue(_money(amount), sample=count)
        if kpi == "avg_deal":
            if count == 0:
                return KpiValue(None, sample=0, reason=Reason.NO_DEAL_WON)
            return KpiValue(_money(amount) / count, sample=count)
        if kpi == "sales_cycle":
            dated = won & ~np.isnat(deals["created"])
            if not dated.any():
                return KpiValue(None, sample=0, reason=Reason.NO_DEAL_WON)
            days = (deals["close"][dated] - deals["created"][dated]).astype("int64")
            return KpiValue(Decimal(repr(float(days.sum()) / int(dated.sum()))), int(dated.sum()))
        if kpi == "win_rate":
            lost = int(((deals["status_code"] == LOST) & closed).sum())
            if count + lost == 0:
                return KpiValue(None, sample=0, reason=Reason.NO_DEAL_CLOSED)
            return KpiValue(Decimal(repr(count / (count + lost))), sample=count + lost)
        created = within(deals["created"], elapsed)
        return KpiValue(_money(int(deals["amount"][created].sum())), sample=int(created.sum()))
    if kpi == "conversion":
        if as_of < period.start:
            return KpiValue(None, reason=Reason.NOT_STARTED)
        mature_by = as_of - timedelta(days=30)
        if mature_by < period.start:
            return KpiValue(None, sample=0, reason=Reason.TOO_EARLY)
        cohort = period.to_date(mature_by)
        leads = facts.columns("leads", scope, ("created", "converted"))
        created = within(leads["created"], cohort)
        shown = cohort if cohort.end < period.end else None
        if not created.any():
            return KpiValue(None, sample=0, reason=Reason.NO_LEADS, cohort=shown)
        converted = int((leads["converted"][created] <= day(as_of)).sum())
        return KpiValue(
            Decimal(repr(converted / int(created.sum()))), sample=int(created.sum()), cohort=shown
        )
    deals, open_now = _open_at(facts, scope, as_of)
    if kpi == "overdue":
        late = open_now & (deals["close"] < day(as_of))
        return KpiValue(_money(int(deals["amount"][late].sum())), sample=int(late.sum()))
    overdue, late_deals = _overdue(deals, open_now, period, as_of)
    if kpi == "pipeline":
        chosen = open_now & within(deals["close"], period)
        return KpiValue(
            _money(int(deals["amount"][chosen].sum())),
            sample=int(chosen.sum()),
            overdue=overdue,
            overdue_deals=late_deals,
        )
    assert kpi == "forecast"
    booked = reference("revenue", facts, scope, period, as_of)
    if booked.value is None:
        booked = KpiValue(Decimal(0), sample=0)
    if as_of >= period.end:
        return booked
    after = day(as_of) if as_of >= period.start else day(period.start) - np.timedelta64(1, "D")
    close = deals["close"]
    rest = open_now & (close > after) & (close <= day(period.end))
    weighted = float((deals["amount"][rest] * deals["probability"][rest]).sum())
    assert booked.value is not None
    return KpiValue(
        booked.value + _money(weighted),
        sample=int(rest.sum()),
        overdue=overdue,
        overdue_deals=late_deals,
    )


# --- random companies ------------------------------------------------------------------------

FIRST_DAY = date(2025, 1, 1)
SPAN = 900  # days: about two and a half years, so that periods, last year and trends all meet
REPS = {"ann": ("A", "North"), "bea": ("A", "North"), "cid": ("B", "North"), "dan": ("C", "South")}
KPI_IDS = (
    "revenue", "avg_deal", "sales_cycle", "win_rate", "new_pipeline", "conversion", "pipeline",
    "overdue", "forecast",
)  # fmt: skip

# Period bounds are where a binary search can be off by one: every month's first and last days
# (quarters and years start and end on them too) and a few Mondays and Sundays come up often.
EDGES = sorted(
    {
        offset + shift
        for offset in range(SPAN + 1)
        if (FIRST_DAY + timedelta(days=offset)).day == 1
        or (FIRST_DAY + timedelta(days=offset)).weekday() == 0
        for shift in (-1, 0)
        if 0 <= offset + shift <= SPAN
    }
)
days = st.integers(0, SPAN) | st.sampled_from(EDGES)
maybe_days = st.none() | days  # None: no date (NaT)


def _date(offset: int | None) -> str | None:
    return None if offset is None else (FIRST_DAY + timedelta(days=offset)).isoformat()


deals = st.lists(
    st.tuples(
        st.sampled_from(sorted(REPS)),
        st.sampled_from(["open", "won", "lost"]),
        st.integers(0, 10_000_000),  # amount in cents
        maybe_days,  # created
        maybe_days,  # close
        st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]),
    ),
    max_size=60,
)
leads = st.lists(
    st.tuples(st.sampled_from(sorted(REPS)), maybe_days, maybe_days),  # rep, created, converted
    max_size=40,
)


def random_company(
    deal_rows: list[tuple[str, str, int, int | None, int | None, float]],
    lead_rows: list[tuple[str, int | None, int | None]],
) -> Facts:
    base = company()
    opportunities = frame(
        ["id", "rep", "team", "region", "account", "status", "amount", "created", "close",
         "probability"],
        [
            (f"o{n}", rep, *REPS[rep], f"acc{n % 5}", status, amount, _date(created),
             _date(close), probability)
            for n, (rep, status, amount, created, close, probability) in enumerate(deal_rows)
        ],
        "created",
        "close",
    )  # fmt: skip
    opportunities["status"] = pd.Categorical(
        opportunities["status"], categories=["open", "won", "lost"]
    )
    opportunities["amount"] = opportunities["amount"].astype("int64")
    opportunities["probability"] = opportunities["probability"].astype("float64")
    lead_frame = frame(
        ["id", "rep", "team", "region", "created", "converted"],
        [
            (f"l{n}", rep, *REPS[rep], _date(created), _date(converted))
            for n, (rep, created, converted) in enumerate(lead_rows)
        ],
        "created",
        "converted",
    )
    reps = frame(
        ["name", "email", "team", "region", "active_from", "active_to"],
        [(name, f"{name}@x.test", *place, None, None) for name, place in REPS.items()],
        "active_from",
        "active_to",
    )
    teams = frame(
        ["name", "region", "manager"],
        [("A", "North", "x"), ("B", "North", "y"), ("C", "South", "z")],
    )
    return Facts(opportunities, lead_frame, base.spend, base.surveys, reps, teams)


SCOPES = [
    Scope.company(),
    Scope(Level.REGION, "North"),
    Scope(Level.REGION, "South"),
    Scope(Level.TEAM, "A"),
    Scope(Level.TEAM, "C"),
    Scope(Level.REP, "bea"),
    Scope(Level.REP, "nobody"),  # a scope without rows
]


@settings(max_examples=150, deadline=None)
@given(
    deal_rows=deals,
    lead_rows=leads,
    grain=st.sampled_from([Grain.WEEK, Grain.MONTH, Grain.QUARTER, Grain.YEAR]),
    inside=days,
    as_of=days,
)
def test_indexed_kpis_equal_a_mask_over_every_row(
    deal_rows: list[tuple[str, str, int, int | None, int | None, float]],
    lead_rows: list[tuple[str, int | None, int | None]],
    grain: Grain,
    inside: int,
    as_of: int,
) -> None:
    facts = random_company(deal_rows, lead_rows)
    assert_kpis_are_the_reference(facts, facts, grain, inside, as_of)


def assert_kpis_are_the_reference(
    facts: Facts, plain: Facts, grain: Grain, inside: int, as_of: int
) -> None:
    """Every KPI of every scope read through ``facts``' indexes is the ``reference`` (a mask
    over every row) on ``plain``, for the period of ``grain`` holding the day ``inside``."""
    period = period_containing(grain, FIRST_DAY + timedelta(days=inside))
    today = FIRST_DAY + timedelta(days=as_of)
    ctx = Context(lambda kpi, scope, period: None)
    for scope in SCOPES:
        for kpi in KPI_IDS:
            got = KPIS[kpi].compute(facts, scope, period, today, ctx)
            assert got == reference(kpi, plain, scope, period, today), (kpi, scope)


@settings(max_examples=100, deadline=None)
@given(deal_rows=deals, lead_rows=leads)
def test_the_first_day_recorded_is_the_same_read_from_the_indexes(
    deal_rows: list[tuple[str, str, int, int | None, int | None, float]],
    lead_rows: list[tuple[str, int | None, int | None]],
) -> None:
    # Read from the sorted dates of the indexes in hand (a serving process's mapped ones) or
    # from the columns (facts without them): the same day, None when nothing is dated.
    facts = random_company(deal_rows, lead_rows)
    indexed = facts.uncached()
    prepare_indexes(indexed, usual_scopes(indexed))
    assert indexed.data_start == facts.data_start
    dated = [
        *facts.opportunities["created"], *facts.opportunities["close"], *facts.leads["created"],
        *facts.spend["date"], *facts.surveys["date"],
    ]  # fmt: skip
    known = [d.date() for d in dated if not pd.isna(d)]
    assert facts.data_start == (min(known) if known else None)


@pytest.mark.parametrize("dtype", ["object", "category", "string[pyarrow]"])
def test_status_codes_read_the_same_from_every_kind_of_text_column(dtype: str) -> None:
    facts = company()
    facts.opportunities["status"] = facts.opportunities["status"].astype(dtype)
    codes = facts.columns("opportunities", Scope.company(), ("status_code",))["status_code"]
    assert codes.tolist() == [WON, LOST, WON, WON, OPEN, OPEN, WON]  # o1 … o7


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.sampled_from(["T1", "T2", "EMEA", "é"])), max_size=40),
    unused=st.booleans(),
    categorical=st.booleans(),
)
def test_a_levels_positions_are_those_of_a_groupby_of_its_names(
    values: list[str | None], unused: bool, categorical: bool
) -> None:
    """Every scope's rows (``Facts._rows``) are the ascending positions holding its name,
    missing names in none and categories no row holds absent, whether the column is
    categorical (grouped by its codes) or text."""
    column = pd.Series(values, dtype="object")
    if categorical:
        known = sorted({v for v in values if v is not None} | ({"unused"} if unused else set()))
        column = column.astype(pd.CategoricalDtype(known))
    expected: dict[str, list[int]] = {}
    for position, value in enumerate(values):
        if value is not None:
            expected.setdefault(value, []).append(position)

    empty = pd.DataFrame()
    frame = pd.DataFrame({"team": column})
    facts = Facts(frame, leads=empty, spend=empty, surveys=empty, reps=empty, teams=empty)

    found = {}
    for name in [*expected, "unused"]:
        rows = facts._rows("opportunities", Scope(Level.TEAM, name))
        assert rows is not None
        found[name] = rows.tolist()
    assert found == {**expected, "unused": []}
    for name in expected:
        rows = facts._rows("opportunities", Scope(Level.TEAM, name))
        assert rows is not None and rows.dtype == np.int32


@settings(max_examples=300, deadline=None)
@given(
    offsets=st.lists(st.one_of(st.none(), st.integers(-70_000, 70_000)), max_size=30),
    unit=st.sampled_from(["D", "h", "ns"]),
)
def test_the_date_order_is_a_stable_sort_with_missing_dates_last(
    offsets: list[int | None], unit: str
) -> None:
    """Whole days close enough together take the 16-bit radix sort, anything else (hours,
    dates centuries apart) the general one: both give the stable order, NaT last."""
    start = np.datetime64("2026-01-01")
    dates = np.array(
        [np.datetime64("NaT") if o is None else start + np.timedelta64(o, unit) for o in offsets],
        dtype=f"datetime64[{unit}]",
    )

    order = date_order(dates)

    assert order.dtype == np.int32
    assert order.tolist() == np.argsort(dates, kind="stable").tolist()
