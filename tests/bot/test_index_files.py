"""A snapshot's index files (``bot.store.index_files``): arrays kept from an earlier snapshot
stay in its data file, linked; what is read back is what was written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.store.index_files import Reusable, index_files, read_indexes, write_indexes
from metrics.index import DateOrder, TableIndexes
from metrics.kpis import prepared_indexes
from tests.metrics.test_index import random_company
from tests.metrics.test_index_patch import assert_same_indexes


def test_indexes_kept_whole_are_read_from_the_earlier_file_and_none_is_written(tmp_path: Path):
    facts = random_company(
        [("ann", "won", 100, 1, 2, 0.5), ("dan", "open", 200, None, 3, 0.1)],
        [("ann", 1, None)],
    )
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir()
    second.mkdir()
    built = prepared_indexes(facts, "opportunities")
    write_indexes(first, "opportunities", built, 2, 1)
    mapped = read_indexes(first, "opportunities", 2)
    assert mapped is not None
    assert_same_indexes(mapped, built)

    write_indexes(second, "opportunities", mapped, 2, 2, Reusable(first, "opportunities", mapped))
    assert index_files(second, "opportunities") == [
        "opportunities.index.json",
        "opportunities.index.v1",
    ]
    assert not (second / "opportunities.index.v2").exists()
    assert (second / "opportunities.index.v1").stat().st_ino == (
        first / "opportunities.index.v1"
    ).stat().st_ino
    again = read_indexes(second, "opportunities", 2)
    assert again is not None
    assert_same_indexes(again, built)


def test_an_array_changed_is_written_and_the_others_linked(tmp_path: Path):
    facts = random_company([("ann", "won", 100, 1, 2, 0.5), ("dan", "won", 200, 2, 3, 0.1)], [])
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir()
    second.mkdir()
    write_indexes(first, "opportunities", prepared_indexes(facts, "opportunities"), 2, 1)
    mapped = read_indexes(first, "opportunities", 2)
    assert mapped is not None
    close = mapped.orders["close"]
    amounts = np.asarray([100, 250], dtype=close.columns["amount"].dtype)
    orders = {**mapped.orders}
    orders["close"] = DateOrder(
        close.order, close.dates, {**close.columns, "amount": amounts}, close.dated
    )
    changed = TableIndexes(mapped.columns, mapped.groups, orders, mapped.parts)
    write_indexes(second, "opportunities", changed, 2, 2, Reusable(first, "opportunities", mapped))
    again = read_indexes(second, "opportunities", 2)
    assert again is not None
    assert again.orders["close"].columns["amount"].tolist() == [100, 250]
    assert_same_indexes(again, changed)
    assert (second / "opportunities.index.v2").stat().st_size < (
        first / "opportunities.index.v1"
    ).stat().st_size
