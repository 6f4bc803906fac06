"""A snapshot's index files (``bot.store.index_files``): arrays kept from an earlier snapshot
stay in its data file, linked, and so do the chunks of a large array that a change left
alone; what is read back is what was written."""

from __future__ import annotations

import json
import mmap
import tempfile
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.store import array_files, stitched
from bot.store.index_files import Reusable, index_files, read_indexes, write_indexes
from metrics import index_patch
from metrics.index import DateOrder, TableIndexes
from metrics.index_patch import patched_indexes
from metrics.kpis import prepared_indexes
from tests.metrics.test_index import deals, leads, random_company
from tests.metrics.test_index_patch import _changed, assert_same_indexes, nears, updates


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

    write_indexes(
        second, "opportunities", mapped, 2, 2, Reusable(first, "opportunities", mapped).earlier()
    )
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
    write_indexes(
        second, "opportunities", changed, 2, 2, Reusable(first, "opportunities", mapped).earlier()
    )
    again = read_indexes(second, "opportunities", 2)
    assert again is not None
    assert again.orders["close"].columns["amount"].tolist() == [100, 250]
    assert_same_indexes(again, changed)
    assert (second / "opportunities.index.v2").stat().st_size < (
        first / "opportunities.index.v1"
    ).stat().st_size


CHUNK = array_files._CHUNK
ITEMS = CHUNK // 8  # int64 items in a chunk


def _columns(**columns: np.ndarray) -> TableIndexes:
    return TableIndexes(columns=columns, groups={}, orders={}, parts={})


def chunk_files(entry: dict[str, Any]) -> list[str]:
    """The data file of each chunk of a chunked array's ``entry``."""
    return [name for name, _, size in entry["runs"] for _ in range(-(-size // array_files._CHUNK))]


def _chunk_files(folder: Path, table: str, key: str) -> list[str]:
    manifest = json.loads((folder / f"{table}.index.json").read_text(encoding="utf-8"))
    return chunk_files(manifest["columns"][key])


def _first_snapshot(folder: Path, array: np.ndarray) -> TableIndexes:
    """``array`` (and a small one) written as version 1's, and mapped back."""
    folder.mkdir()
    small = np.arange(5, dtype=np.int32)
    write_indexes(folder, "opportunities", _columns(close=array, small=small), len(array), 1)
    mapped = read_indexes(folder, "opportunities", len(array))
    assert mapped is not None
    return mapped


def test_a_large_array_keeps_the_chunks_a_change_left_alone(tmp_path: Path):
    first, second = tmp_path / "v1", tmp_path / "v2"
    mapped = _first_snapshot(first, np.arange(10 * ITEMS, dtype=np.int64))  # ten chunks
    changed = np.array(mapped.columns["close"])
    changed[3 * ITEMS + 5] = -1
    changed[8 * ITEMS - 1] = -2
    second.mkdir()
    again = _columns(close=changed, small=mapped.columns["small"])
    write_indexes(
        second,
        "opportunities",
        again,
        len(changed),
        2,
        Reusable(first, "opportunities", mapped).earlier(),
    )

    old, new = "opportunities.index.chunks.v1", "opportunities.index.chunks.v2"
    assert (
        _chunk_files(second, "opportunities", "close")
        == [old] * 3 + [new] + [old] * 3 + [new] + [old] * 2
    )
    assert (second / new).stat().st_size == 2 * CHUNK  # only the two chunks changed
    assert (second / old).stat().st_ino == (first / old).stat().st_ino
    # The manifest names runs of chunks that follow each other in a file, not each chunk.
    manifest = json.loads((second / "opportunities.index.json").read_text(encoding="utf-8"))
    assert manifest["columns"]["close"]["runs"] == [
        [old, 0, 3 * CHUNK], [new, 0, CHUNK], [old, 4 * CHUNK, 3 * CHUNK], [new, CHUNK, CHUNK],
        [old, 8 * CHUNK, 2 * CHUNK],
    ]  # fmt: skip
    # The small array kept whole, where the first snapshot packed it; nothing packed anew.
    assert index_files(second, "opportunities") == [
        "opportunities.index.json", old, new, "opportunities.index.v1",
    ]  # fmt: skip
    read = read_indexes(second, "opportunities", len(changed))
    assert read is not None
    np.testing.assert_array_equal(read.columns["close"], changed)
    np.testing.assert_array_equal(read.columns["small"], np.arange(5))
    assert not read.columns["close"].flags.writeable


def test_rows_added_at_the_end_write_only_the_last_chunk(tmp_path: Path):
    first, second = tmp_path / "v1", tmp_path / "v2"
    mapped = _first_snapshot(first, np.arange(4 * ITEMS + 3, dtype=np.int64))
    grown = np.concatenate([mapped.columns["close"], np.asarray([7, 8, 9], dtype=np.int64)])
    second.mkdir()
    again = _columns(close=grown, small=mapped.columns["small"])
    write_indexes(
        second,
        "opportunities",
        again,
        len(grown),
        2,
        Reusable(first, "opportunities", mapped).earlier(),
    )
    old, new = "opportunities.index.chunks.v1", "opportunities.index.chunks.v2"
    # The old last chunk held 3 items, the new one 6: it is written again, the rest kept.
    assert _chunk_files(second, "opportunities", "close") == [old] * 4 + [new]
    assert (second / new).stat().st_size == 6 * 8
    read = read_indexes(second, "opportunities", len(grown))
    assert read is not None
    np.testing.assert_array_equal(read.columns["close"], grown)


def test_chunks_are_not_kept_from_a_file_mostly_replaced(tmp_path: Path):
    first, second = tmp_path / "v1", tmp_path / "v2"
    mapped = _first_snapshot(first, np.arange(10 * ITEMS, dtype=np.int64))
    changed = np.array(mapped.columns["close"])
    changed[: 8 * ITEMS : ITEMS] = -1  # eight chunks of ten changed: two would be kept
    second.mkdir()
    again = _columns(close=changed, small=np.arange(5, dtype=np.int32))
    write_indexes(
        second,
        "opportunities",
        again,
        len(changed),
        2,
        Reusable(first, "opportunities", mapped).earlier(),
    )
    assert _chunk_files(second, "opportunities", "close") == ["opportunities.index.chunks.v2"] * 10
    assert index_files(second, "opportunities") == [
        "opportunities.index.json", "opportunities.index.chunks.v2", "opportunities.index.v2",
    ]  # fmt: skip
    read = read_indexes(second, "opportunities", len(changed))
    assert read is not None
    np.testing.assert_array_equal(read.columns["close"], changed)


def test_an_array_kept_whole_leaves_only_a_file_mostly_replaced(tmp_path: Path):
    """An array unchanged since the snapshot before, its chunks in two files, one of which
    the rest of that snapshot replaced: its chunks there are written again, those in the
    other file stay where they are."""
    folders = [tmp_path / f"v{n}" for n in (1, 2, 3)]
    for folder in folders:
        folder.mkdir()
    close, amount = np.arange(10 * ITEMS, dtype=np.int64), -np.arange(10 * ITEMS, dtype=np.int64)
    write_indexes(folders[0], "opportunities", _columns(close=close, amount=amount), len(close), 1)
    for version, change in ((2, "close"), (3, "amount")):
        before = folders[version - 2]
        mapped = read_indexes(before, "opportunities", len(close))
        assert mapped is not None
        columns = dict(mapped.columns)
        columns[change] = np.array(columns[change])
        columns[change][:: ITEMS if change == "amount" else 10 * ITEMS] += 1
        earlier = Reusable(before, "opportunities", mapped).earlier()
        write_indexes(
            folders[version - 1], "opportunities", _columns(**columns), len(close), version, earlier
        )
    # Version 2 wrote the first chunk of the close dates; version 3 every chunk of the
    # amounts, so that the first file holds twice as much as what is kept of it.
    first, second, third = (f"opportunities.index.chunks.v{n}" for n in (1, 2, 3))
    assert _chunk_files(folders[1], "opportunities", "close") == [second] + [first] * 9
    assert _chunk_files(folders[2], "opportunities", "close") == [second] + [third] * 9
    assert _chunk_files(folders[2], "opportunities", "amount") == [third] * 10
    read = read_indexes(folders[2], "opportunities", len(close))
    assert read is not None
    np.testing.assert_array_equal(read.columns["close"], close + (np.arange(len(close)) == 0))


def _concatenated(
    runs: list[tuple[Path, int, int]], dtype: np.dtype, length: int, writable: bool = False
) -> np.ndarray:
    """What ``stitched`` maps, read (and for a writable copy, with zeros after the runs):
    chunks of 16 bytes cannot be mapped to their places."""
    data = b"".join(path.read_bytes()[at : at + size] for path, at, size in runs)
    if writable:
        return np.frombuffer(bytearray(data.ljust(length * dtype.itemsize, b"\0")), dtype)
    return np.frombuffer(data, dtype, count=length)


@settings(max_examples=100, deadline=None)
@given(
    deal_rows=deals,
    first_deals=deals,
    second_deals=deals,
    lead_rows=leads,
    first_leads=leads,
    second_leads=leads,
    first=updates(20),
    second=updates(20),
    near=nears,
)
def test_indexes_patched_twice_read_back_as_built_from_chunks_of_three_snapshots(
    deal_rows, first_deals, second_deals, lead_rows, first_leads, second_leads, first, second,
    near
):  # fmt: skip
    """Random companies changed twice, each snapshot's indexes patched from the one before
    (rows moved into the tails and within them, with ``near`` small) and written with what
    it kept of it, in chunks of 16 bytes: what is read back is, array for array, what
    building the indexes again gives (entry for entry, with tails)."""
    with (
        tempfile.TemporaryDirectory() as name,
        patch.object(array_files, "_CHUNK", 16),
        patch.object(array_files, "stitched", _concatenated),
        patch.object(index_patch, "_NEAR", near),
    ):
        folder = Path(name)
        deal_steps: list[tuple[list, np.ndarray | None]] = [(deal_rows, None)]
        lead_steps: list[tuple[list, np.ndarray | None]] = [(lead_rows, None)]
        for new_deals, new_leads, updated in ((first_deals, first_leads, first),
                                              (second_deals, second_leads, second)):  # fmt: skip
            deal_steps.append(_changed(deal_steps[-1][0], new_deals, updated, (3, 4)))
            lead_steps.append(_changed(lead_steps[-1][0], new_leads, updated, (1,)))
        companies = [
            random_company(d, leads_)
            for (d, _), (leads_, _) in zip(deal_steps, lead_steps, strict=True)
        ]
        for table, steps in (("opportunities", deal_steps), ("leads", lead_steps)):
            before: TableIndexes | None = None
            for version, (facts, (_, written)) in enumerate(
                zip(companies, steps, strict=True), start=1
            ):
                snapshot = folder / f"{table}-v{version}"
                snapshot.mkdir()
                rows = len(getattr(facts, table))
                built = prepared_indexes(facts, table)
                indexes, reusable = built, None
                if before is not None and written is not None:
                    reusable = Reusable(folder / f"{table}-v{version - 1}", table, before).earlier()
                    assert reusable is not None
                    # Patched as a sync patches them: over copies of the mapped arrays.
                    patched = patched_indexes(before, facts, table, written, reusable.copy)
                    indexes = built if patched is None else patched
                write_indexes(snapshot, table, indexes, rows, version, reusable)
                before = read_indexes(snapshot, table, rows)
                assert before is not None
                assert_same_indexes(before, built)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc")
def test_a_chunked_array_is_copied_for_a_patch_as_a_private_mapping_of_its_files(tmp_path: Path):
    """What a patch writes over (``Earlier.copy``): an array the earlier snapshot holds in
    chunks is mapped again from its file copy on write (private), as long as asked, with
    its items; writing to it changes neither the file nor the array mapped before."""
    large = np.arange(3 * CHUNK // 8 + 5, dtype=np.int64)  # three chunks and a bit
    small = np.arange(5, dtype=np.int32)
    arrays = {("large",): large, ("small",): small}
    entries = array_files.write_arrays(tmp_path, "t", 1, arrays, None)
    mapped = array_files.read_arrays(tmp_path, entries)
    earlier = array_files.Earlier(tmp_path, array_files.matched(mapped, entries))
    data = tmp_path / "t.chunks.v1"
    before = _private_maps(data)
    for length in (len(large) + 100, len(large), CHUNK // 8 + 1):
        copy = earlier.copy(mapped[("large",)], length)
        assert len(copy) == length and copy.flags.writeable
        kept = min(length, len(large))
        np.testing.assert_array_equal(copy[:kept], large[:kept])
        copy[:kept] = -1
        assert _private_maps(data) > before, "mapped from the file, privately"
    np.testing.assert_array_equal(mapped[("large",)], large)
    np.testing.assert_array_equal(np.fromfile(data, dtype=np.int64)[: len(large)], large)
    # A packed array is copied: its place in its file is not on a page.
    copied = earlier.copy(mapped[("small",)], 7)
    np.testing.assert_array_equal(copied[:5], small)
    assert not np.shares_memory(copied, mapped[("small",)])


def _private_maps(path: Path) -> int:
    """How many private mappings of ``path`` this process holds."""
    lines = Path("/proc/self/maps").read_text().splitlines()
    return sum(1 for line in lines if line.endswith(f" {path}") and line.split()[1][3] == "p")


def _copied_from_a_snapshot(folder: Path, array: np.ndarray, length: int):
    """``array`` written in chunks into ``folder`` and mapped, the earlier snapshot, and a
    copy of it ``length`` long that ``Earlier.copy`` made."""
    entries = array_files.write_arrays(folder, "t", 1, {("a",): array}, None)
    mapped = array_files.read_arrays(folder, entries)
    earlier = array_files.Earlier(folder, array_files.matched(mapped, entries))
    return earlier, mapped[("a",)], earlier.copy(mapped[("a",)], length)


def test_the_chunks_a_patch_left_unwritten_are_kept_without_a_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A copy that ``Earlier.copy`` mapped copy on write: the chunks whose pages were not
    written are the old ones, kept as the kernel says without comparing them; those written
    are compared (one written with the bytes it held is kept all the same), and the last
    one, longer now, and the new one are written without a look either."""
    monkeypatch.setattr(array_files, "_CHUNK", mmap.PAGESIZE)
    items = mmap.PAGESIZE // 8
    array = np.arange(6 * items + 100, dtype=np.int64)  # seven chunks, the last short
    (tmp_path / "v1").mkdir()
    earlier, _, copy = _copied_from_a_snapshot(tmp_path / "v1", array, len(array) + items)
    copy[len(array) :] = -1
    copy[2 * items + 3] = -5
    copy[4 * items] = copy[4 * items]
    compared = []
    equal = np.array_equal

    def spied(*args: Any, **kwargs: Any) -> bool:
        compared.append(args)
        return bool(equal(*args, **kwargs))

    second = tmp_path / "v2"
    second.mkdir()
    with patch.object(np, "array_equal", spied):
        written = array_files.write_arrays(second, "t", 2, {("a",): copy}, earlier)
    assert len(compared) == 2  # chunks 2 and 4: the last is of another length now
    old, new = "t.chunks.v1", "t.chunks.v2"
    chunks = chunk_files(written[("a",)])
    assert chunks == [old, old, new, old, old, old, new, new]
    read = array_files.read_arrays(second, written)[("a",)]
    np.testing.assert_array_equal(read, copy)


@pytest.mark.skipif(not Path("/proc/self/pagemap").exists(), reason="reads Linux's /proc")
def test_a_splice_writes_no_page_whose_values_stay_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A patch over a copy on write (``Earlier.copy``) of a date order: rows whose dates
    did not change are put back at their places, a row moved among others of its day shifts
    them by one, and one row's value changes. Only the page holding that value is written:
    the others stay the snapshot's (so the next snapshot keeps their chunks unlooked at)."""
    monkeypatch.setattr(array_files, "_CHUNK", mmap.PAGESIZE)
    items = mmap.PAGESIZE // 8
    array = np.repeat(np.arange(8, dtype=np.int64), items)  # a day a page
    (tmp_path / "v1").mkdir()
    earlier, mapped, _ = _copied_from_a_snapshot(tmp_path / "v1", array, len(array))
    stay = np.arange(8) * items + 10  # one row a day put back, its date the same
    removed = np.sort(np.append(stay, 3 * items + 100))  # and one moved within day 3
    at = np.sort(np.append(stay - np.searchsorted(removed, stay), 3 * items + 200 - 4))
    values = np.sort(np.append(np.arange(8), 3))
    values[-3] = 99  # day 5's row: a new value
    out = index_patch._spliced(mapped, removed, at, values, earlier.copy)
    np.testing.assert_array_equal(out, np.insert(np.delete(array, removed), at, values))
    unwritten = stitched.unwritten_pages(out)
    assert unwritten is not None
    assert np.flatnonzero(~unwritten).tolist() == [5]


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(513, 8 * 512),  # in chunks of a page: more than one
    grown=st.integers(-600, 600),
    writes=st.lists(st.tuples(st.integers(0, 9 * 512), st.booleans()), max_size=12),
)
def test_chunks_kept_as_unwritten_are_those_a_comparison_keeps(size, grown, writes):
    """Whatever a patch wrote over a copy, and however much longer or shorter it made it,
    the chunks the page map says are unwritten hold the old chunks' bytes: the plan is the
    one comparing every chunk gives (written the same, a chunk may be compared and kept)."""
    with tempfile.TemporaryDirectory() as name, patch.object(array_files, "_CHUNK", mmap.PAGESIZE):
        array = np.arange(size, dtype=np.int64)
        earlier, before, copy = _copied_from_a_snapshot(Path(name), array, max(size + grown, 1))
        if len(copy) > size:
            copy[size:] = -1
        for at, same in writes:
            if at < len(copy):
                copy[at] = copy[at] if same else -copy[at] - 1
        entry = earlier.arrays[("a",)][1]
        unwritten = earlier.unwritten(copy, entry)
        assert unwritten is not None
        stored = array_files._Chunks.stored(entry, -(-copy.nbytes // mmap.PAGESIZE))
        looked = array_files._same_chunks(copy, before, stored, None)
        known = array_files._same_chunks(copy, before, stored, unwritten)
        assert known.file.tolist() == looked.file.tolist()
