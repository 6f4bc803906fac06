"""Indexes patched by the rows a refresh changed are, array for array, the indexes built
again from the facts after it (``metrics.index_patch``), over random companies and random
changes: deals and leads updated in place (dates moved, NaT or not, status, owner, amount)
and new ones added at the end."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.facts import Facts
from metrics.index import TableIndexes
from metrics.index_patch import _spliced, patched_indexes
from metrics.kpis import prepared_indexes
from tests.metrics.test_index import deals, leads, random_company


def assert_same_indexes(got: TableIndexes, built: TableIndexes) -> None:
    def same(a: np.ndarray | None, b: np.ndarray | None, where: object) -> None:
        assert (a is None) == (b is None), where
        if a is not None and b is not None:
            assert a.dtype == b.dtype, where
            np.testing.assert_array_equal(a, b, err_msg=str(where))

    assert got.columns.keys() == built.columns.keys()
    for name in built.columns:
        same(got.columns[name], built.columns[name], name)
    assert got.groups == built.groups == {}
    assert got.orders.keys() == built.orders.keys()
    for by, order in built.orders.items():
        patched = got.orders[by]
        same(patched.order, order.order, (by, "order"))
        same(patched.dates, order.dates, (by, "dates"))
        assert patched.dated == order.dated, by
        for name, column in order.columns.items():
            same(patched.columns[name], column, (by, name))
    assert got.parts.keys() == built.parts.keys()
    for key, (among, kept) in built.parts.items():
        same(got.parts[key][0], among, key)
        assert list(got.parts[key][1]) == list(kept), key
        for name, column in kept.items():
            same(got.parts[key][1][name], column, (key, name))


def _changed(
    before: list[tuple],
    draw_rows: list[tuple],
    updates: dict[int, int | None],
    dates: tuple[int, ...],
) -> tuple[list[tuple], np.ndarray]:
    """``before`` with the rows at the keys of ``updates`` replaced by rows of ``draw_rows``,
    and the rest of ``draw_rows`` added at the end; the positions written, ascending. An
    update naming a row of ``before`` takes that row's ``dates`` (the fields at those indexes)
    instead of the drawn ones: its own (the row stays in place in the date orders while its
    owner or status changes) or another's (rows that swap their dates)."""
    after = list(before)
    spare = list(draw_rows)
    written = []
    for position, dated_as in sorted(updates.items()):
        if position < len(after) and spare:
            row = list(spare.pop())
            if dated_as is not None:
                for field in dates:
                    row[field] = before[dated_as % len(before)][field]
            after[position] = tuple(row)
            written.append(position)
    written += range(len(after), len(after) + len(spare))
    after += spare
    return after, np.asarray(written, dtype=np.int64)


@settings(max_examples=200, deadline=None)
@given(
    deal_rows=deals,
    new_deals=deals,
    lead_rows=leads,
    new_leads=leads,
    updated=st.dictionaries(st.integers(0, 70), st.none() | st.integers(0, 70), max_size=20),
)
def test_indexes_patched_by_the_changed_rows_equal_the_indexes_built_again(
    deal_rows, new_deals, lead_rows, new_leads, updated
):
    before = random_company(deal_rows, lead_rows)
    deals_after, deals_written = _changed(deal_rows, new_deals, updated, (3, 4))
    leads_after, leads_written = _changed(lead_rows, new_leads, updated, (1,))
    after = random_company(deals_after, leads_after)
    for table, written in (("opportunities", deals_written), ("leads", leads_written)):
        old = prepared_indexes(before, table)
        got = patched_indexes(old, after, table, written)
        assert got is not None
        assert_same_indexes(got, prepared_indexes(after, table))


def test_rows_that_swap_their_dates_swap_their_places():
    """Each takes the other's place: every place keeps a row, but not the same one."""
    first, second = ("ann", "won", 100, 1, 2, 0.5), ("dan", "open", 200, 1, 3, 0.5)
    before = random_company([first, second], [])
    after = random_company([(*first[:4], 3, 0.5), (*second[:4], 2, 0.5)], [])
    old = prepared_indexes(before, "opportunities")
    rows = np.arange(2, dtype=np.int64)
    got = patched_indexes(old, after, "opportunities", rows)
    assert got is not None
    assert got.orders["close"].order is not None
    assert_same_indexes(got, prepared_indexes(after, "opportunities"))


def test_indexes_with_a_twentieth_of_their_rows_changed_and_more_than_a_thousand_are_built():
    deal = ("ann", "won", 100, 1, 2, 0.5)
    facts = random_company([deal] * 40_000, [])
    old = prepared_indexes(facts, "opportunities")
    assert patched_indexes(old, facts, "opportunities", np.arange(2_000)) is not None
    assert patched_indexes(old, facts, "opportunities", np.arange(2_001)) is None


def test_a_scope_usual_now_and_not_before_has_the_indexes_built_again():
    before = random_company([("ann", "won", 100, 1, 2, 0.5)], [])
    after: Facts = random_company([("ann", "won", 100, 1, 2, 0.5)], [])
    after.teams = after.teams.iloc[:2]  # team C gone: a scope less than the old indexes hold
    old = prepared_indexes(before, "opportunities")
    assert patched_indexes(old, after, "opportunities", np.zeros(0, dtype=np.int64)) is None


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    length=st.integers(0, 60),
    dtype=st.sampled_from(["int32", "int64", "float64", "datetime64[D]"]),
)
def test_a_splice_copied_run_by_run_is_numpys_delete_then_insert(data, length, dtype):
    array = np.arange(length).astype(dtype)
    removed = np.asarray(
        sorted(data.draw(st.sets(st.integers(0, max(length - 1, 0)), max_size=length))), int
    )
    removed = removed[removed < length]
    left = length - len(removed)
    at = np.asarray(sorted(data.draw(st.lists(st.integers(0, left), max_size=10))), int)
    values = (np.arange(len(at)) + 1_000).astype(dtype)
    expected = np.insert(np.delete(array, removed), at, values)
    np.testing.assert_array_equal(_spliced(array, removed, at, values), expected)
