"""CRM users onto reps. A CRM's user (the id its deals and leads name as owner) is the rep some
other source already holds with the same email, case aside, or failing that the same full
name, accents and case aside: the rep a CSV or warehouse source gives with its team and region,
which the CRM's deals then count for. A user that no other source holds is a rep of the CRM's
own, as the CRM describes it. An email or a name that several reps share matches none of them,
rather than a guess."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Column, select, update
from sqlalchemy.orm import Session

from bot.store.changes import pending
from bot.store.models import Base, Rep
from bot.store.upsert import delete_sourced, ids_by_source_id
from metrics.query import normalise

_SHARED = -1


def _index(keys: Iterable[tuple[str, int]]) -> dict[str, int]:
    index: dict[str, int] = {}
    for key, rep_id in keys:
        index[key] = _SHARED if index.get(key, rep_id) != rep_id else rep_id
    return index


def _email(raw: object) -> str:
    return str(raw or "").strip().casefold()


def _name(raw: object) -> str:
    return normalise(str(raw or ""))


class RepMatcher:
    """The reps of every source but ``source``, found by email, then by name."""

    def __init__(self, session: Session, source: str) -> None:
        rows = session.execute(select(Rep.id, Rep.email, Rep.name).where(Rep.source != source))
        reps = [(int(rep_id), _email(email), _name(name)) for rep_id, email, name in rows]
        self._by_email = _index((email, rep_id) for rep_id, email, _ in reps if email)
        self._by_name = _index((name, rep_id) for rep_id, _, name in reps if name)

    def match(self, email: object, name: object) -> int | None:
        """The database id of the rep this user is, or None when no other source has them."""
        for index, key in ((self._by_email, _email(email)), (self._by_name, _name(name))):
            rep_id = index.get(key) if key else None
            if rep_id is not None and rep_id != _SHARED:
                return rep_id
        return None


def _rep_columns() -> list[Column[int]]:
    """Every column holding a rep's id: the foreign keys, and the history's owner, which has
    none so that history outlives the rows it names."""
    reps = Base.metadata.tables["reps"]
    columns: list[Column[int]] = [
        fk.parent for table in Base.metadata.sorted_tables for fk in table.foreign_keys
        if fk.column.table is reps
    ]  # fmt: skip
    return [*columns, Base.metadata.tables["opportunity_history"].c.owner_id]


def merge_matched(session: Session, source: str, matched: Mapping[str, int]) -> int:
    """Users written as reps of ``source`` before another source came to hold them (an HR
    export added later) become that rep: whatever named the old row names the matched one,
    and the old row goes. Returns how many reps went."""
    reps = Base.metadata.tables["reps"]
    stale = ids_by_source_id(session, reps, source, matched)
    if not stale:
        return 0
    for column in _rep_columns():
        for key, old in stale.items():
            session.execute(
                update(column.table)
                .where(column == old)
                .values({column.name: matched[key], **pending(column.table)})
            )
    return delete_sourced(session, reps, source, stale)
