"""One read-only numpy array made of pieces of several files, mapped side by side.

A snapshot's large array (an index array, a table's column) is stored in chunks
(``bot.store.array_files``), and a sync's snapshot writes only the chunks its changes touched,
keeping the others where an earlier snapshot wrote them. The answers need each array
contiguous. The kernel can place file mappings side by side: the address range is reserved
first (inaccessible, anonymous, no memory behind it), then each run of chunks is mapped over
its part of the range from its file (``MAP_FIXED``, shared, read-only). The pages are the page
cache's, shared by every process that maps them, as with a whole file mapped. Python's
``mmap`` cannot place a mapping, so libc's ``mmap`` is called through ``ctypes``. The range is
unmapped once no array uses it.

A writable copy is mapped the same way, privately (copy on write): what a patch of a few rows
leaves as it was is still the page cache's pages, read, not copied, and only the pages written
become the process's own (``metrics.index_patch``, which rewrites the few stretches of an
index that a sync's rows moved, not the million entries around them). Which pages those are,
the kernel says (``unwritten_pages``): the snapshot written next keeps the others' chunks
where they are without comparing them (``bot.store.array_files``)."""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import tempfile
import weakref
from pathlib import Path

import numpy as np

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
)  # fmt: skip
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
# The same on Linux, macOS and the BSDs; Python 3.11's mmap names neither.
_MAP_FIXED = 0x10
_PROT_NONE = 0
_FAILED = ctypes.c_void_p(-1).value
# The writable copies mapped and not yet unmapped: their size by their address.
_copies: dict[int, int] = {}


def _mapped(address: int | None, size: int, protection: int, flags: int, fd: int, at: int) -> int:
    placed = _libc.mmap(address, size, protection, flags, fd, at)
    if placed is None or placed == _FAILED:
        error = ctypes.get_errno()
        raise OSError(error, f"mmap: {os.strerror(error)}")
    return int(placed)


def _released(base: int, size: int) -> None:
    # Forgotten as a copy first: once unmapped, the range may be mapped again for another.
    _copies.pop(base, None)
    _libc.munmap(base, size)


def stitched(
    runs: list[tuple[Path, int, int]], dtype: np.dtype, length: int, writable: bool = False
) -> np.ndarray:
    """The read-only array of ``length`` items of ``dtype`` whose bytes are the ``runs`` in
    order: (file, offset, bytes), each offset a multiple of the page size, each run but the
    last a whole number of pages. Raises ``OSError`` when a file is missing or too short (a
    page mapped past a file's end would kill the process when read). ``writable``: a private
    copy instead, which the runs may fill only the start of (the rest is zeros, but for the
    last run's page, which holds what follows the run in its file)."""
    size = length * dtype.itemsize
    mapped = sum(run for _, _, run in runs)
    if mapped > size or (mapped != size and not writable):
        raise ValueError(f"pieces of {mapped} bytes for an array of {size}")
    if size == 0:
        return np.empty(0, dtype=dtype)
    reserved = size + -size % mmap.PAGESIZE
    # Reserved inaccessible when read-only; when writable, as zero pages the tail keeps.
    reserve = mmap.PROT_READ | mmap.PROT_WRITE if writable else _PROT_NONE
    base = _mapped(None, reserved, reserve, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    # The pieces: copy on write when writable, else the page cache's, read-only.
    protection = mmap.PROT_READ | mmap.PROT_WRITE if writable else mmap.PROT_READ
    flags = (mmap.MAP_PRIVATE if writable else mmap.MAP_SHARED) | _MAP_FIXED
    region = (ctypes.c_char * reserved).from_address(base)
    # From here the range is released with the last array over it, or at once on a failure.
    weakref.finalize(region, _released, base, reserved)
    if writable:
        _copies[base] = reserved
    offset = 0
    for path, at, run in runs:
        if at % mmap.PAGESIZE or offset % mmap.PAGESIZE:
            raise ValueError(f"{path}: a piece at {at} is not on a page")
        fd = os.open(path, os.O_RDONLY)
        try:
            if os.fstat(fd).st_size < at + run:
                raise OSError(f"{path} is truncated")
            _mapped(base + offset, run, protection, flags, fd, at)
        finally:
            os.close(fd)
        offset += run
    view = memoryview(region)
    return np.frombuffer(view if writable else view.toreadonly(), dtype=dtype, count=length)


# Linux's page map of a process: 8 bytes a page, these bits of which say where the page is.
_PAGEMAP = Path("/proc/self/pagemap")
_PRESENT, _SWAPPED, _FILE_PAGE = 1 << 63, 1 << 62, 1 << 61


def unwritten_pages(array: np.ndarray) -> np.ndarray | None:
    """Whether each page of ``array`` (a writable copy ``stitched`` made, or its start) is
    unwritten since it was mapped: still its file's page (or for a page past the runs, still
    zeros). A page written is copied at once (copy on write) and is the process's own from
    then on. Linux's page map says which pages are
    (present and not a file's page, or swapped out); None where there is no page map that
    tells (other systems, a sandbox that hides it), and for an array that is not such a copy
    (a page of the heap never written is not a file's page either)."""
    size = _copies.get(array.__array_interface__["data"][0])
    if size is None or array.nbytes > size:
        return None
    if not _pagemap_tells():
        return None
    return _unwritten(array)


def _unwritten(array: np.ndarray) -> np.ndarray | None:
    start = array.ctypes.data
    if start % mmap.PAGESIZE or not array.nbytes:  # not a mapping of its own
        return None
    count = -(-array.nbytes // mmap.PAGESIZE)
    try:
        with _PAGEMAP.open("rb", buffering=0) as pagemap:
            pagemap.seek(start // mmap.PAGESIZE * 8)
            raw = pagemap.read(count * 8)
    except OSError:
        return None
    if len(raw) != count * 8:
        return None
    flags = np.frombuffer(raw, dtype="<u8")
    written = ((flags & _PRESENT) != 0) & ((flags & _FILE_PAGE) == 0)
    unwritten: np.ndarray = ~(written | ((flags & _SWAPPED) != 0))
    return unwritten


@functools.cache
def _pagemap_tells() -> bool:
    """Whether this system's page map tells a page written in a copy from one left as it was
    (checked once on a copy of a file of two pages, one of them written): a page map that
    said every page was left would have the snapshot keep chunks that changed."""
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "pages"
            path.write_bytes(bytes(2 * mmap.PAGESIZE))
            copy = stitched(
                [(path, 0, 2 * mmap.PAGESIZE)], np.dtype(np.uint8), 2 * mmap.PAGESIZE, writable=True
            )
            copy[0] = 1
            int(copy[mmap.PAGESIZE])  # the second page read: present, and still the file's
            pages = _unwritten(copy)
    except OSError:
        return False
    return pages is not None and pages.tolist() == [False, True]
