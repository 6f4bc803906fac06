"""Change tracking: which fact rows changed, and which went, in each data version, so that
what reads a sync's changes (the history, the facts' refresh) costs what the sync changed
rather than the whole store.

A tracked fact row (opportunities, leads, spend, surveys) carries ``changed_in``, the data
version it last changed in. A writer marks the rows it changes as pending (``changed_in`` NULL:
``bot.store.upsert`` does so for every row that differs, ``delete_sourced`` for the rows it
marks deleted or unlinks); a row deleted outright leaves a tombstone in ``fact_deletions``.
``bump_data_version`` then stamps the pending rows of its own transaction with the version it
makes, through the ``changed_in`` indexes. Opportunities deleted by an importer stay as rows
(``deleted_at``), so their deletion is a change like any other."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import FromClause, Null, event, insert, null, update
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql.schema import Table

from bot.store.models import FactDeletion, Lead, Opportunity, Spend, Survey

TRACKED: tuple[type[Any], ...] = (Opportunity, Lead, Spend, Survey)


def tracked(table: FromClause) -> bool:
    return "changed_in" in table.c


def pending(table: FromClause) -> Mapping[str, Null]:
    """The values that mark rows of ``table`` as changed in the transaction under way (none
    for a table that is not tracked); a literal NULL, which binds no parameter."""
    return {"changed_in": null()} if tracked(table) else {}


def record_deletions(session: Session, table: Table, ids: Iterable[int]) -> None:
    """Leave a tombstone for each row of ``table`` about to be deleted outright."""
    rows = [{"table_name": table.name, "row_id": int(i)} for i in ids]
    if rows and tracked(table):
        session.execute(insert(FactDeletion), rows)


def stamp(session: Session, version: int) -> None:
    """Give the pending rows and tombstones of this transaction the version it makes."""
    for model in TRACKED:
        session.execute(
            update(model)
            .where(model.changed_in.is_(None))
            .values(changed_in=version)
            .execution_options(synchronize_session=False)
        )
    session.execute(
        update(FactDeletion)
        .where(FactDeletion.version.is_(None))
        .values(version=version)
        .execution_options(synchronize_session=False)
    )


def _mark_pending(_mapper: Mapper[Any], _connection: Any, target: Any) -> None:
    target.changed_in = None


# Rows changed through the ORM (tests, small tools) are marked like the bulk writers' rows.
for _model in TRACKED:
    event.listen(_model, "before_update", _mark_pending)
