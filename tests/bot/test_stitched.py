"""An array mapped from pieces of several files side by side (``bot.store.stitched``): its
items are the pieces' bytes in order, it cannot be written, a piece past its file's end is
refused before it is mapped, and the address range goes with the last array over it."""

from __future__ import annotations

import gc
import mmap
from pathlib import Path

import numpy as np
import pytest

from bot.store import stitched as stitched_module
from bot.store.stitched import stitched, unwritten_pages

PAGE = mmap.PAGESIZE
ITEMS = PAGE // 8  # int64 items in a page


def _files(folder: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    first, second = folder / "first", folder / "second"
    ones = np.arange(4 * ITEMS, dtype=np.int64)
    twos = -np.arange(4 * ITEMS, dtype=np.int64)
    ones.tofile(first)
    twos.tofile(second)
    return first, second, ones, twos


def _mapped(folder: Path) -> set[str]:
    """The address ranges this process maps from files in ``folder``."""
    lines = Path("/proc/self/maps").read_text().splitlines()
    return {
        line.split()[0] for line in lines if line.endswith(tuple(f" {p}" for p in folder.iterdir()))
    }


def test_pieces_of_two_files_read_as_one_array_in_their_order(tmp_path: Path):
    first, second, ones, twos = _files(tmp_path)
    # A page of the first file, two pages of the second from its second page, then half a
    # page from the first file's fourth page: the last piece need not fill its page.
    runs = [(first, 0, PAGE), (second, PAGE, 2 * PAGE), (first, 3 * PAGE, PAGE // 2)]
    array = stitched(runs, np.dtype(np.int64), ITEMS + 2 * ITEMS + ITEMS // 2)
    expected = np.concatenate(
        [ones[:ITEMS], twos[ITEMS : 3 * ITEMS], ones[3 * ITEMS : 3 * ITEMS + ITEMS // 2]]
    )
    np.testing.assert_array_equal(array, expected)
    assert not array.flags.writeable
    with pytest.raises(ValueError):
        array.flags.writeable = True


def test_a_piece_past_the_end_of_its_file_is_refused(tmp_path: Path):
    first, second, _, _ = _files(tmp_path)
    with pytest.raises(OSError, match="truncated"):
        stitched([(first, 0, PAGE), (second, 4 * PAGE, PAGE)], np.dtype(np.int64), 2 * ITEMS)


def test_a_piece_off_a_page_is_refused(tmp_path: Path):
    first, second, _, _ = _files(tmp_path)
    with pytest.raises(ValueError, match="not on a page"):
        stitched([(first, 0, PAGE), (second, 8, PAGE)], np.dtype(np.int64), 2 * ITEMS)
    with pytest.raises(ValueError, match="not on a page"):  # the piece before it ends mid-page
        stitched([(first, 0, PAGE // 2), (second, 0, PAGE)], np.dtype(np.int64), 3 * ITEMS // 2)


def test_pieces_that_do_not_make_the_array_are_refused(tmp_path: Path):
    first, _, _, _ = _files(tmp_path)
    with pytest.raises(ValueError, match="pieces of"):
        stitched([(first, 0, PAGE)], np.dtype(np.int64), 2 * ITEMS)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc")
def test_the_range_is_released_with_the_last_array_over_it(tmp_path: Path):
    first, second, _, twos = _files(tmp_path)
    array = stitched([(first, 0, PAGE), (second, 0, PAGE)], np.dtype(np.int64), 2 * ITEMS)
    view = array[ITEMS:]
    held = _mapped(tmp_path)
    assert len(held) == 2, "a piece of each file is mapped"
    del array
    gc.collect()
    assert _mapped(tmp_path) == held, "a view still uses the range"
    np.testing.assert_array_equal(view, twos[:ITEMS])
    del view
    gc.collect()
    assert not _mapped(tmp_path)


def test_a_writable_copy_is_private_and_may_be_longer_than_its_pieces(tmp_path: Path):
    first, second, ones, twos = _files(tmp_path)
    # A page of the first file, then half a page of the second: the copy is three pages.
    runs = [(first, 0, PAGE), (second, PAGE, PAGE // 2)]
    copy = stitched(runs, np.dtype(np.int64), 3 * ITEMS, writable=True)
    np.testing.assert_array_equal(copy[:ITEMS], ones[:ITEMS])
    np.testing.assert_array_equal(
        copy[ITEMS : ITEMS + ITEMS // 2], twos[ITEMS : ITEMS + ITEMS // 2]
    )
    np.testing.assert_array_equal(copy[2 * ITEMS :], 0)  # past the last piece's page: zeros
    copy[:] = 7
    # Copy on write: neither the files nor another mapping of them sees the writes.
    np.testing.assert_array_equal(np.fromfile(first, dtype=np.int64), ones)
    np.testing.assert_array_equal(np.fromfile(second, dtype=np.int64), twos)
    shared = stitched(runs, np.dtype(np.int64), ITEMS + ITEMS // 2)
    np.testing.assert_array_equal(shared[:ITEMS], ones[:ITEMS])
    with pytest.raises(ValueError, match="pieces of"):
        stitched(runs, np.dtype(np.int64), ITEMS, writable=True)  # shorter than its pieces


def test_a_writable_copy_says_which_of_its_pages_were_written(tmp_path: Path):
    """The pages a patch wrote are the process's own; the others are still the file's,
    read or not: Linux's page map tells them apart. Only of a copy ``stitched`` made: a
    page of the heap never written would pass for a file's."""
    first, _, ones, _ = _files(tmp_path)
    copy = stitched([(first, 0, 4 * PAGE)], np.dtype(np.int64), 5 * ITEMS, writable=True)
    pages = unwritten_pages(copy)
    assert pages is not None, "Linux's page map tells"
    assert pages.tolist() == [True] * 5
    assert int(copy[ITEMS]) == ones[ITEMS]  # read: still the file's page
    copy[2 * ITEMS + 5] = -7
    copy[3 * ITEMS] = copy[3 * ITEMS]  # the same value: written all the same
    pages = unwritten_pages(copy)
    assert pages is not None
    assert pages.tolist() == [True, True, False, False, True]
    start = unwritten_pages(copy[: 2 * ITEMS])
    assert start is not None and start.tolist() == [True, True]
    read_only = stitched([(first, 0, 4 * PAGE)], np.dtype(np.int64), 4 * ITEMS)
    for other in (np.zeros(4 * ITEMS), read_only, copy[ITEMS:], np.empty(0)):
        assert unwritten_pages(other) is None


def test_a_copy_unmapped_is_forgotten_as_a_copy(tmp_path: Path):
    """Its range may be mapped again for anything: the page map would be read for it."""
    first, _, _, _ = _files(tmp_path)
    copy = stitched([(first, 0, PAGE)], np.dtype(np.int64), ITEMS, writable=True)
    address = copy.__array_interface__["data"][0]
    assert address in stitched_module._copies
    del copy
    gc.collect()
    assert address not in stitched_module._copies
