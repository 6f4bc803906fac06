"""A fact table brought up to date by the rows a sync changed or deleted (``merged``), for the
refresh of the facts after a sync (``bot.store.facts_loader``): in time proportional to the
rows touched whenever the other rows can keep their places, which is what lets the indexes of
the table be patched by those rows (``metrics.index_patch``) instead of built again.

A row updated is written where it was; a new one (the store's ids only grow) is added at the
end; a row deleted is **emptied in place** (``metrics.facts``: every column but its id empty,
so that no KPI counts it; its entries in the indexes stay in place too, marked dead) rather
than removed, which would shift every row after it. Emptied rows are dropped the next time
the rows move anyway, and when they would pass ``_EMPTIED_SHARE`` of the table (and
``_FEWEST_DROPPED`` rows): a whole load has none."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

from metrics.index_patch import Copier, copied

# Emptied rows are dropped (every row after them shifted, the indexes built again) once they
# pass both a share of the table and a count: 100 deletions among a million deals stay
# emptied; a clean-up in the CRM deleting a twentieth of a table is dropped at once.
_EMPTIED_SHARE = 0.05
_FEWEST_DROPPED = 1_000
# An emptied row's integers: no amount, no owner (the shell's "rep_id" of a row without one).
_EMPTY_INTEGERS = {"amount": 0, "rep_id": -1}


class Merged(NamedTuple):
    frame: pd.DataFrame
    # The positions of the rows updated, emptied or added, ascending, when every other row
    # kept its position (what ``metrics.index_patch`` patches indexes by); None: rows moved.
    written: np.ndarray | None


def merged(
    old: pd.DataFrame, changed: pd.DataFrame, touched: np.ndarray, live: str, copy: Copier = copied
) -> Merged:
    """``old`` (ordered by id, each once) with the rows ``touched`` (changed or gone)
    replaced by ``changed`` and the rows gone emptied in place or dropped: still ordered by
    id. ``live`` is the column every record holds and an emptied row does not
    (``metrics.facts.LIVE_COLUMNS``).

    What a sync usually does (rows updated, new ones with the highest ids, a few deleted)
    keeps every other row where it was: the columns whose values changed are written at the
    rows over ``copy`` of their arrays (``patched``), the others stay the old ones (a
    snapshot's are shared with the mapped file), and the new rows are added at the end.
    Otherwise the positions are worked out on the ids, the emptied rows dropped, and the
    columns copied twice (the concatenation, the take)."""
    ids = old["id"].to_numpy()
    touched = np.unique(touched)
    touched_held = touched[_held(ids, touched)]
    if changed.empty and not len(touched_held):
        return Merged(old, np.zeros(0, dtype=np.int64))
    old, changed = same_categories(old, changed)
    changed = changed.take(np.argsort(changed["id"].to_numpy(), kind="stable"))
    changed = changed.reset_index(drop=True)
    new_ids = changed["id"].to_numpy()
    found = _held(ids, new_ids)
    gone = np.setdiff1d(touched_held, new_ids[found], assume_unique=True)
    emptied = int(np.count_nonzero(old[live].isna().to_numpy())) + len(gone)
    in_place = (
        (found.all() or not len(ids) or int(new_ids[~found].min()) > int(ids[-1]))
        and list(old.columns) == list(changed.columns)
        and all(old[c].dtype == changed[c].dtype for c in old.columns)
        and emptied <= max(_FEWEST_DROPPED, _EMPTIED_SHARE * (len(old) + len(changed)))
    )
    if in_place:
        rows = pd.concat([changed[found], _emptied(old.take(np.searchsorted(ids, gone)))])
        places = np.searchsorted(ids, rows["id"].to_numpy())
        order = np.argsort(places, kind="stable")
        places = places[order]
        updated = patched(old, places, rows.take(order).reset_index(drop=True), copy)
        added = changed[~found]
        written = np.concatenate([places, len(old) + np.arange(len(added))])
        if len(added):
            return Merged(pd.concat([updated, added], ignore_index=True), written)
        return Merged(updated, written)
    kept = np.flatnonzero(~old["id"].isin(touched).to_numpy() & old[live].notna().to_numpy())
    where = np.searchsorted(ids[kept], new_ids)
    index = np.insert(kept, where, len(old) + np.arange(len(changed)))
    both = pd.concat([old, changed], ignore_index=True) if len(changed) else old
    return Merged(both.take(index).reset_index(drop=True), None)


def _held(ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` is among ``ids`` (ascending): by binary searches, in time
    proportional to the keys, not to the ids."""
    places = np.searchsorted(ids, keys)
    found = places < len(ids)
    found[found] = ids[places[found]] == keys[found]
    return found


def _emptied(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with every column but their id empty: what a row of a record deleted
    becomes when it stays in place (missing names, dates, accounts and probabilities; no
    amount, no owner)."""
    columns: dict[str, Any] = {}
    for name in rows.columns:
        column = rows[name]
        if name == "id":
            columns[name] = column
        elif isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu":
            columns[name] = np.full(len(rows), _EMPTY_INTEGERS[name], dtype=column.dtype)
        else:  # names (categories), dates (NaT), nullable integers (NA), floats, objects
            columns[name] = pd.Series([None] * len(rows), dtype=column.dtype, index=rows.index)
    return pd.DataFrame(columns, index=rows.index, columns=rows.columns)


def patched(
    old: pd.DataFrame, places: np.ndarray, rows: pd.DataFrame, copy: Copier = copied
) -> pd.DataFrame:
    """``old`` with ``rows`` (same columns and dtypes) written at row positions ``places``:
    a column none of whose values there differ is ``old``'s own, not a copy; the others are
    written over ``copy`` of their arrays (``_written``)."""
    columns: dict[str, Any] = {}
    for name in old.columns:
        before = old[name]
        after = rows[name].array
        if pd.Series(before.array.take(places)).equals(pd.Series(after)):
            columns[name] = before
            continue
        columns[name] = _written(before, places, after, copy)
    return pd.DataFrame(columns, columns=old.columns, copy=False)


def _written(
    before: pd.Series, places: np.ndarray, after: ExtensionArray | np.ndarray, copy: Copier
) -> pd.Series:
    """``before`` with ``after`` (of its dtype, and for names of its categories) written at
    ``places``: over ``copy`` of the numpy array it holds (numbers, dates as int64, names'
    codes), which for a column mapped from a snapshot is mapped again copy on write
    (``bot.store.array_files.Earlier.copy``): only the pages of the rows written are copied,
    not the column. Other columns (text, nullable integers) are copied whole."""
    dtype = before.dtype
    # Codes only mean the same names under the same categories (``same_categories``): else
    # pandas' own writing, which checks them.
    if isinstance(after, pd.Categorical) and after.dtype == dtype:
        assert isinstance(dtype, pd.CategoricalDtype)
        codes = copy(before.array.codes, len(before))
        codes[places] = after.codes
        return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype, validate=False), copy=False)
    if isinstance(dtype, np.dtype) and dtype.kind in "iufM":
        # Dates as their int64 ticks, NaT included, as a snapshot stores them.
        plain = before.to_numpy().view(np.int64 if dtype.kind == "M" else dtype)
        values = copy(plain, len(plain))
        values[places] = np.asarray(after, dtype=dtype).view(plain.dtype)
        return pd.Series(values.view(dtype), copy=False)
    values = before.array.copy()
    values[places] = after
    return pd.Series(values, copy=False)


def same_categories(old: pd.DataFrame, changed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both frames with the union of each categorical column's categories: a concatenation of
    categoricals that differ would turn the column into Python strings (a new lead source
    in a sync would cost every lead a string). Codes are kept; only the categories grow."""
    for column in old.columns:
        before, after = old[column].dtype, changed[column].dtype
        if not (isinstance(before, pd.CategoricalDtype) and isinstance(after, pd.CategoricalDtype)):
            continue
        if before.categories.equals(after.categories):
            continue
        union = before.categories.union(after.categories)
        old = old.assign(**{column: old[column].cat.set_categories(union)})
        changed = changed.assign(**{column: changed[column].cat.set_categories(union)})
    return old, changed
