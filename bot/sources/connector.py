"""What a connector is: the objects it pulls, in order, each onto one canonical table, and
for each the records changed since a moment and the ids deleted since then."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from bot.worded import WordedError


@dataclass(frozen=True)
class SourceObject:
    """One object of a source, e.g. Salesforce's ``Opportunity`` → ``opportunities``."""

    name: str
    table: str
    fields: tuple[str, ...]  # canonical fields each record fills (keys of Record.values)
    stages: Mapping[str, str] = field(default_factory=dict)  # stage name → open|won|lost
    date_format: str | None = None
    # The CRM's users (→ reps): read whole at every sync, as they are few and the owners of
    # deals and leads are resolved through them (``bot.sources.owners``).
    users: bool = False
    # Least time between two reads of the deletions by incremental syncs, for a CRM whose list
    # of deletions costs what the whole recycle bin holds rather than what changed (HubSpot's
    # archive); None reads them at every sync.
    deletions_every: timedelta | None = None


@dataclass(frozen=True)
class Record:
    """One record as canonical fields (values as the API gave them: text, numbers, None) and
    the moment it last changed, the high-water mark's measure."""

    values: Mapping[str, Any]
    modified: datetime | None


@dataclass(frozen=True)
class Budget:
    """The CRM's API allowance as it reports it (Salesforce: requests in the last 24 h)."""

    used: int
    limit: int
    what: str  # "daily API requests"


@dataclass(frozen=True)
class FieldChange:
    """One change of a deal's field as the CRM's field history records it: the deal's CRM id,
    the canonical field (stage, amount, close_date, probability or owner), the values before
    and after (as the API gave them) and when it happened."""

    record: str
    field: str
    old: Any
    new: Any
    at: datetime


@dataclass(frozen=True)
class HistoryCut:
    """Deals whose field history a read left unread because the API budget came down to what
    it keeps for the syncs: their history starts at the first sync."""

    records: frozenset[str]  # the deals' CRM ids
    kept: int  # the budget the read leaves for the syncs
    left: int  # the budget left when it stopped
    limit: int  # the day's budget


class SourceError(WordedError):
    """A sync that cannot go on, said for a person: bad credentials, the API budget spent,
    a server that kept failing (``source.*`` in the catalogs; the CRM's own text is a
    parameter). ``retry_after`` is when trying again makes sense, if known."""

    def __init__(self, code: str, *, retry_after: datetime | None = None, **params: object) -> None:
        super().__init__(code, **params)
        self.retry_after = retry_after


class Connector(Protocol):
    calls: int  # HTTP requests (or queries) sent so far
    # Per object, how many records its read is to return, where the CRM says so at its first
    # page (Salesforce's totalSize, HubSpot's search total): the progress bar's length.
    totals: dict[str, int]

    def objects(self) -> list[SourceObject]:
        """The objects to pull, parents first (reps before the deals they own)."""
        ...

    def changed(self, obj: SourceObject, since: datetime | None) -> Iterator[Record]:
        """Records of ``obj`` changed at or after ``since`` (every record when None)."""
        ...

    def deleted(self, obj: SourceObject, since: datetime) -> Iterator[str]:
        """Ids of ``obj``'s records deleted at or after ``since``."""
        ...

    def budget(self) -> Budget | None:
        """The API budget as last reported, if the CRM reports one."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CellBatch:
    """Records read as Arrow columns: their canonical fields as text cells, a column per field
    of the object in its order (``bot.sources.cells.text_cells``: the text ``cell`` makes of
    each value) or, for a date field, Arrow dates (``field_cells``), and the latest moment any
    of them last changed."""

    cells: pa.RecordBatch
    modified: datetime | None


@runtime_checkable
class Columnar(Protocol):
    """A connector that can read an object's records as Arrow columns, without a Python
    object per value (the SQL source's full reads from PostgreSQL)."""

    def cell_batches(self, obj: SourceObject, since: datetime | None) -> Iterator[CellBatch] | None:
        """Every record of ``obj`` changed at or after ``since`` (all when None), as batches;
        None when this read cannot be made so (``changed`` then reads it)."""
        ...


@runtime_checkable
class FieldHistory(Protocol):
    """A connector that can read the CRM's own history of deal fields, so that the first sync
    can backfill the pipeline history (``bot.sources.backfill``)."""

    calls: int
    # Set by a read that stopped before every deal's history (a CRM that charges a call per
    # deal); None when every deal's history was read.
    history_cut: HistoryCut | None

    def field_history(self, obj: SourceObject) -> Iterator[FieldChange]:
        """Every recorded change of ``obj``'s tracked fields, in any order."""
        ...
