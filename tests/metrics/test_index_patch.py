"""Indexes patched by the rows a refresh changed are, array for array, the indexes built
again from the facts after it (``metrics.index_patch``), over random companies and random
changes: deals and leads updated in place (dates moved, NaT or not, status, owner, amount)
and new ones added at the end."""

from __future__ import annotations

from dataclasses import replace
from unittest.mock import patch

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.store.facts_merge import _emptied, patched
from metrics import index_patch
from metrics.facts import WON, Facts
from metrics.index import DateOrder, TableIndexes
from metrics.index_patch import _Splice, _spliced, copied, patched_indexes
from metrics.kpis import INDEXED_TABLES, prepared_indexes
from metrics.periods import Grain
from metrics.scopes import Scope
from tests.metrics.test_index import (
    assert_kpis_are_the_reference,
    days,
    deals,
    leads,
    random_company,
)


def _same(a: np.ndarray | None, b: np.ndarray | None, where: object) -> None:
    assert (a is None) == (b is None), where
    if a is not None and b is not None:
        assert a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=str(where))


def assert_same_indexes(got: TableIndexes, built: TableIndexes) -> None:
    """``got`` (patched) is ``built`` (built again), array for array; where ``got`` has dead
    entries (records deleted, rows moved far since) or a tail, entry for entry once its live
    entries are put in date order and the rows without one (deleted records, emptied, with
    the rows without a date) are left out of ``built``."""
    assert got.columns.keys() == built.columns.keys()
    for name in built.columns:
        _same(got.columns[name], built.columns[name], name)
    assert got.groups == built.groups == {}
    assert got.orders.keys() == built.orders.keys()
    assert got.parts.keys() == built.parts.keys()
    for by, order in built.orders.items():
        patched = got.orders[by]
        _assert_in_order(patched)
        if len(patched.dead) or patched.tail:
            _assert_same_live(by, got, built)
            continue
        _same(patched.order, order.order, (by, "order"))
        _same(patched.dates, order.dates, (by, "dates"))
        assert patched.dated == order.dated, by
        for name, column in order.columns.items():
            _same(patched.columns[name], column, (by, name))
    for key, (among, kept) in built.parts.items():
        if len(got.orders[key[1]].dead) or got.orders[key[1]].tail:
            continue  # compared with its order's
        _same(got.parts[key][0], among, key)
        assert list(got.parts[key][1]) == list(kept), key
        for name, column in kept.items():
            _same(got.parts[key][1][name], column, (key, name))


def _rows(order: DateOrder) -> np.ndarray:
    return np.arange(len(order.dates)) if order.order is None else order.order


def _keys(order: DateOrder, places: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stable sort's keys of the entries at ``places``: the row, and the date (NaT last)."""
    ticks = order.dates[places].view(np.int64).copy()
    ticks[ticks == np.iinfo(np.int64).min] = np.iinfo(np.int64).max
    return _rows(order)[places], ticks


def _assert_in_order(order: DateOrder) -> None:
    """The settled entries, then the tail's, in the stable sort's order each, their dated
    counts right."""
    for start, stop, dated in (
        (0, order.settled, order.dated),
        (order.settled, len(order.dates), order.tail_dated),
    ):
        rows, ticks = _keys(order, np.arange(start, stop))
        assert (np.lexsort((rows, ticks)) == np.arange(len(rows))).all()
        assert np.count_nonzero(~np.isnat(order.dates[start:stop])) == dated


def _live_in_order(order: DateOrder, places: np.ndarray) -> np.ndarray:
    """The indexes among ``places`` (of entries of ``order``) of the live ones, in the order
    building it again would put them: by date, NaT last, then by row."""
    chosen = np.flatnonzero(~np.isin(places, order.dead))
    rows, ticks = _keys(order, places[chosen])
    return chosen[np.lexsort((rows, ticks))]


def _assert_same_live(by: str, got: TableIndexes, built: TableIndexes) -> None:
    """The order by ``by`` and its parts: ``got``'s live entries in date order, ``built``'s
    entries of the same rows (those left out have none: records deleted), in its order."""
    patched, order = got.orders[by], built.orders[by]
    live = _live_in_order(patched, np.arange(len(patched.dates)))
    rows = _rows(patched)[live]
    assert len(np.unique(rows)) == len(rows), by  # one live entry a row
    alive = np.isin(_rows(order), rows)
    np.testing.assert_array_equal(rows, _rows(order)[alive], err_msg=by)
    np.testing.assert_array_equal(patched.dates[live], order.dates[alive], err_msg=by)
    for name, column in order.columns.items():
        np.testing.assert_array_equal(patched.columns[name][live], column[alive], err_msg=name)
    for key, (among, kept) in built.parts.items():
        if key[1] != by:
            continue
        got_among, got_kept = got.parts[key]
        if among is None:
            assert got_among is None, key
            continue
        assert got_among is not None, key
        assert (np.diff(got_among) > 0).all(), key
        mine = _live_in_order(patched, got_among)
        theirs = alive[among]
        np.testing.assert_array_equal(
            _rows(patched)[got_among[mine]], _rows(order)[among[theirs]], err_msg=str(key)
        )
        assert list(got_kept) == list(kept), key
        for name, column in kept.items():
            np.testing.assert_array_equal(got_kept[name][mine], column[theirs], str(key))


# How far a row moves among the settled entries before it goes to the tail instead: every row
# at once, at most two entries, and as the code has it (none, in tables this small).
nears = st.sampled_from([0, 2, index_patch._NEAR])


def updates(most: int) -> st.SearchStrategy[dict[int, int | None]]:
    """Rows a sync updates, for ``_changed``: each position with the row whose dates it takes
    (None: drawn ones)."""
    return st.dictionaries(st.integers(0, 70), st.none() | st.integers(0, 70), max_size=most)


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
    updated=updates(20),
    near=nears,
)
def test_indexes_patched_by_the_changed_rows_equal_the_indexes_built_again(
    deal_rows, new_deals, lead_rows, new_leads, updated, near
):
    before = random_company(deal_rows, lead_rows)
    deals_after, deals_written = _changed(deal_rows, new_deals, updated, (3, 4))
    leads_after, leads_written = _changed(lead_rows, new_leads, updated, (1,))
    after = random_company(deals_after, leads_after)
    for table, written in (("opportunities", deals_written), ("leads", leads_written)):
        old = prepared_indexes(before, table)
        with patch.object(index_patch, "_NEAR", near):
            got = patched_indexes(old, after, table, written)
        assert got is not None
        assert_same_indexes(got, prepared_indexes(after, table))


@settings(max_examples=150, deadline=None)
@given(
    deal_rows=deals,
    new_deals=deals,
    more_deals=deals,
    lead_rows=leads,
    new_leads=leads,
    updated=updates(12),
    again=updates(12),
    gone=st.sets(st.integers(0, 70), max_size=8),
    near=nears,
    grain=st.sampled_from([Grain.MONTH, Grain.QUARTER, Grain.YEAR]),
    inside=days,
    as_of=days,
)
def test_kpis_read_through_tails_patched_by_four_syncs_equal_the_reference(
    deal_rows, new_deals, more_deals, lead_rows, new_leads, updated, again, gone, near, grain,
    inside, as_of
):  # fmt: skip
    # Rows moved and added (into the tails, with ``near`` small), moved again (within the
    # tails, or out of the settled entries), deleted (from either), then back.
    deals_once, deals_written = _changed(deal_rows, new_deals, updated, (3, 4))
    leads_once, leads_written = _changed(lead_rows, new_leads, updated, (1,))
    deals_twice, deals_again = _changed(deals_once, more_deals, again, (3, 4))
    leads_twice, leads_again = _changed(leads_once, [], again, (1,))
    twice = random_company(deals_twice, leads_twice)
    deleted, emptied = _deleted(twice, gone)
    syncs = [
        (random_company(deals_once, leads_once),
         {"opportunities": deals_written, "leads": leads_written}),
        (twice, {"opportunities": deals_again, "leads": leads_again}),
        (deleted, emptied),
        (random_company(deals_twice, leads_twice), emptied),  # back
    ]  # fmt: skip
    indexes = {t: prepared_indexes(random_company(deal_rows, lead_rows), t) for t in INDEXED_TABLES}
    for facts, written in syncs:
        served = facts.uncached()
        for table in INDEXED_TABLES:
            with patch.object(index_patch, "_NEAR", near):
                got = patched_indexes(indexes[table], facts, table, written[table])
            assert got is not None
            assert_same_indexes(got, prepared_indexes(facts, table))
            indexes[table] = got
            served.adopt(table, got)
        assert_kpis_are_the_reference(served, facts, grain, inside, as_of)


def _deleted(facts: Facts, chosen: set[int]) -> tuple[Facts, dict[str, np.ndarray]]:
    """``facts`` with the deals and leads at the positions ``chosen`` (those in each table)
    emptied, as a sync that deleted their records leaves them (``bot.store.facts_merge``);
    the positions emptied by table."""
    tables: dict[str, pd.DataFrame] = {}
    emptied: dict[str, np.ndarray] = {}
    for table in INDEXED_TABLES:
        frame: pd.DataFrame = getattr(facts, table)
        places = np.array(sorted(n for n in chosen if n < len(frame)), dtype=np.int64)
        rows = _emptied(frame.take(places)).reset_index(drop=True)
        tables[table] = patched(frame, places, rows) if len(places) else frame
        emptied[table] = places
    return replace(facts.uncached(), **tables), emptied


@settings(max_examples=150, deadline=None)
@given(
    deal_rows=deals,
    new_deals=deals,
    lead_rows=leads,
    updated=updates(10),
    first=st.sets(st.integers(0, 70), max_size=8),
    second=st.sets(st.integers(0, 70), max_size=8),
    grain=st.sampled_from([Grain.MONTH, Grain.QUARTER, Grain.YEAR]),
    inside=days,
    as_of=days,
)
def test_kpis_read_through_indexes_patched_across_deletions_equal_the_reference(
    deal_rows, new_deals, lead_rows, updated, first, second, grain, inside, as_of
):
    # Two syncs: deals updated and added, and records of both tables deleted; then more
    # deleted (some again). The patched indexes, dead entries and all, adopted by facts as a
    # serving process adopts a snapshot's, give every KPI of every scope as a mask over
    # every row of the facts after them does.
    before = random_company(deal_rows, lead_rows)
    deals_after, deals_written = _changed(deal_rows, new_deals, updated, (3, 4))
    middle, gone = _deleted(random_company(deals_after, lead_rows), first)
    written = {
        "opportunities": np.union1d(deals_written, gone["opportunities"]),
        **{"leads": gone["leads"]},
    }
    after, gone_again = _deleted(middle, second)
    served = after.uncached()
    for table in INDEXED_TABLES:
        once = patched_indexes(prepared_indexes(before, table), middle, table, written[table])
        assert once is not None
        twice = patched_indexes(once, after, table, gone_again[table])
        assert twice is not None
        assert_same_indexes(twice, prepared_indexes(after, table))
        served.adopt(table, twice)
    assert_kpis_are_the_reference(served, after, grain, inside, as_of)
    assert served.data_start == after.data_start


def test_a_deleted_record_keeps_its_entries_in_place_marked_dead_and_comes_back_in_the_tail():
    facts = random_company(
        [("ann", "won", 100, day, day, 1.0) for day in (5, 1, 3, 2, 4)], [("ann", 1, None)]
    )
    old = prepared_indexes(facts, "opportunities")
    after, gone = _deleted(facts, {2})
    got = patched_indexes(old, after, "opportunities", gone["opportunities"])
    assert got is not None
    close = got.orders["close"]
    # By close day 1, 2, 3, 4, 5: the rows 1, 3, 2, 4, 0; the third entry, row 2, is dead.
    assert close.order is not None and close.order.tolist() == [1, 3, 2, 4, 0]
    assert close.dead.tolist() == [2]
    assert close.order is old.orders["close"].order  # nothing moved: the array kept
    back = random_company([("ann", "won", 100, day, day, 1.0) for day in (5, 1, 3, 2, 4)], [])
    again = patched_indexes(got, back, "opportunities", np.array([2]))
    assert again is not None
    close = again.orders["close"]
    # Its dead entry stays; its live one is the tail's.
    assert close.order is not None and close.order.tolist() == [1, 3, 2, 4, 0, 2]
    assert close.dead.tolist() == [2] and close.tail == 1 and close.tail_dated == 1
    assert_same_indexes(again, prepared_indexes(back, "opportunities"))


def test_a_row_moved_far_leaves_a_dead_entry_and_takes_one_in_the_tail_a_near_one_shifts():
    # Rows 0-5 closed on days 0-5, all won; row 1 won on day 10 now, then on day 3.
    deals = [("ann", "won", 100, 0, day, 1.0) for day in range(6)]
    before = random_company(deals, [])
    moved = random_company([*deals[:1], ("ann", "won", 100, 0, 10, 1.0), *deals[2:]], [])
    with patch.object(index_patch, "_NEAR", 3):  # four entries after its place: far
        got = patched_indexes(
            prepared_indexes(before, "opportunities"), moved, "opportunities", np.array([1])
        )
    assert got is not None
    close = got.orders["close"]
    # Row 1's old entry, dead, in place; its new one the tail's.
    assert close.order is not None and close.order.tolist() == [0, 1, 2, 3, 4, 5, 1]
    assert close.dead.tolist() == [1] and close.tail == 1 and close.settled == 6
    company_won = got.parts[(Scope.company(), "close", ("status_code", WON))][0]
    assert company_won is not None and company_won.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert_same_indexes(got, prepared_indexes(moved, "opportunities"))
    # Back to day 3: a move within the tail (from the tail's one entry to its place there).
    back = random_company([*deals[:1], ("ann", "won", 100, 0, 3, 1.0), *deals[2:]], [])
    with patch.object(index_patch, "_NEAR", 3):
        again = patched_indexes(got, back, "opportunities", np.array([1]))
    assert again is not None and again.orders["close"].tail == 1
    assert again.orders["close"].dead.tolist() == [1]
    assert_same_indexes(again, prepared_indexes(back, "opportunities"))
    # Within three entries (day 4 from day 1, before row 4): it shifts them, none is dead.
    with patch.object(index_patch, "_NEAR", 3):
        near = patched_indexes(
            prepared_indexes(before, "opportunities"),
            random_company([*deals[:1], ("ann", "won", 100, 0, 4, 1.0), *deals[2:]], []),
            "opportunities",
            np.array([1]),
        )
    assert near is not None
    near_close = near.orders["close"]
    assert near_close.tail == 0 and not len(near_close.dead)
    assert near_close.order is not None and near_close.order.tolist() == [0, 2, 3, 1, 4, 5]


def test_past_the_dead_entries_allowed_the_indexes_are_built_again(monkeypatch):
    monkeypatch.setattr(index_patch, "_FEW", 1)  # one row dead at most, here
    facts = random_company([("ann", "won", 100, day, day, 1.0) for day in (5, 1, 3, 2, 4)], [])
    once, gone = _deleted(facts, {2})
    patched = patched_indexes(
        prepared_indexes(facts, "opportunities"), once, "opportunities", gone["opportunities"]
    )
    assert patched is not None and patched.orders["close"].dead.tolist() == [2]
    twice, gone = _deleted(once, {0})
    assert patched_indexes(patched, twice, "opportunities", gone["opportunities"]) is None


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
    runs=st.sampled_from([index_patch._RUNS, 0]),
)
def test_a_splice_copied_run_by_run_is_numpys_delete_then_insert(data, length, dtype, runs):
    array = np.arange(length).astype(dtype)
    removed = np.asarray(
        sorted(data.draw(st.sets(st.integers(0, max(length - 1, 0)), max_size=length))), int
    )
    removed = removed[removed < length]
    left = length - len(removed)
    at = np.asarray(sorted(data.draw(st.lists(st.integers(0, left), max_size=10))), int)
    values = (np.arange(len(at)) + 1_000).astype(dtype)
    expected = np.insert(np.delete(array, removed), at, values)
    with patch.object(index_patch, "_RUNS", runs):  # run by run, and under a mask
        np.testing.assert_array_equal(_spliced(array, removed, at, values), expected)


def test_a_splice_of_many_rows_whose_entries_stay_put_writes_over_a_copy():
    """A sync of a thousand deals whose amounts alone changed, and one whose date moved:
    each unmoved row's entry is taken out and put back at its place. Only the one move's run
    shifts, so the splice writes over the caller's copy (whose pages left alone stay the
    snapshot's) rather than making the array anew under a mask."""
    array = np.arange(100_000, dtype=np.int64) * 10
    stay = np.arange(5, 100_000, 97)[:1_000]  # the unmoved rows' entries
    removed = np.sort(np.append(stay, 50_003))  # and the moved row's, which goes at 50,100
    at = np.sort(np.append(stay - np.searchsorted(removed, stay), 50_100 - 1))
    values = -np.arange(len(at), dtype=np.int64)
    copies: list[int] = []

    def copy(old: np.ndarray, length: int) -> np.ndarray:
        copies.append(length)
        return copied(old, length)

    got = _spliced(array, removed, at, values, copy)
    np.testing.assert_array_equal(got, np.insert(np.delete(array, removed), at, values))
    assert copies == [100_000]


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    length=st.integers(0, 60),
    runs=st.sampled_from([index_patch._RUNS, 0]),
)
def test_a_scopes_places_spliced_with_the_shift_of_its_order_are_numpys(data, length, runs):
    """A scope's places (ascending indexes into a date order) after the order's splice: the
    places of the order's entries removed go, every other place moves as the order's entry
    there does (``_Splice.moved``), the new ones are put among them; made run by run over a
    copy, with the places' moves as steps (``_Splice.shift``), as numpy makes it whole."""
    order_removed = np.asarray(sorted(data.draw(st.sets(st.integers(0, max(length - 1, 0))))), int)
    order_removed = order_removed[order_removed < length]
    kept = length - len(order_removed)
    order_at = np.asarray(sorted(data.draw(st.lists(st.integers(0, kept), max_size=8))), int)
    splice = _Splice(order_removed, order_at, np.arange(len(order_at)), copied)
    among = np.asarray(
        sorted(data.draw(st.sets(st.integers(0, max(length - 1, 0)), max_size=length))), np.int32
    )
    among = among[among < length]
    joined = np.asarray(data.draw(st.lists(st.booleans(), min_size=len(order_at),
                                           max_size=len(order_at))), bool)  # fmt: skip
    gone = np.flatnonzero(np.isin(among, order_removed))
    left = np.delete(among, gone).astype(np.int64)
    moved = splice.moved(left)
    new_places = splice.placed[joined]
    expected = np.insert(moved, np.searchsorted(moved, new_places), new_places)
    with patch.object(index_patch, "_RUNS", runs):
        places, within = splice.part(among, joined)
    np.testing.assert_array_equal(places, expected)
    assert places.dtype == np.int32
    # The scope's own arrays follow its places: each value where its place went.
    got = within.apply(among.astype(np.int64) * 10, -new_places)
    np.testing.assert_array_equal(
        got, np.insert(left * 10, np.searchsorted(moved, new_places), -new_places)
    )
