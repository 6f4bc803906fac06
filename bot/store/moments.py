"""Date-times in and out of the store. Every one is written in UTC, and SQLite hands them back
naive (PostgreSQL keeps the offset): this is the one place that makes them aware again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """``moment`` aware and in UTC; a naive one is taken to be UTC, as the store writes it."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
