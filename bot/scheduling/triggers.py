"""Cron triggers that know about holidays and daylight-saving time, and the arithmetic of fire
times that the claims and ``run-due`` rely on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger


class WorkdayTrigger(BaseTrigger):  # type: ignore[misc]
    """A ``CronTrigger`` that skips ``holidays`` (local dates) and fires once when the clocks go
    back: a 02:30 job on the night the wall clock passes 02:30 twice runs at the first one.

    APScheduler already keeps a 08:30 Europe/Paris job at 08:30 local on both sides of a
    change; this adds the two rules a cron expression cannot say. Stored pickled in the job
    store, so keep it importable under this name."""

    def __init__(self, cron: CronTrigger, holidays: frozenset[date] = frozenset()) -> None:
        self.cron = cron
        self.holidays = holidays

    @property
    def timezone(self) -> tzinfo:
        zone: tzinfo = self.cron.timezone
        return zone

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        candidate: datetime | None = self.cron.get_next_fire_time(previous_fire_time, now)
        while candidate is not None and self._skipped(candidate):
            candidate = self.cron.get_next_fire_time(candidate, candidate)
        return candidate

    def _skipped(self, moment: datetime) -> bool:
        local = moment.astimezone(self.timezone)
        if local.date() in self.holidays:
            return True
        # Same-zone comparisons ignore ``fold``: compare the instants in UTC.
        first = local.replace(tzinfo=None).replace(tzinfo=self.timezone, fold=0)
        return first.astimezone(UTC) < local.astimezone(UTC)

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "cron": self.cron, "holidays": sorted(self.holidays)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.cron = state["cron"]
        self.holidays = frozenset(state["holidays"])

    def __repr__(self) -> str:
        holidays = ",".join(d.isoformat() for d in sorted(self.holidays))
        return f"WorkdayTrigger({self.cron!r}, holidays=[{holidays}])"

    __str__ = __repr__


def fire_times(trigger: BaseTrigger, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every fire time ``start <= t <= end``, in order."""
    moment: datetime | None = trigger.get_next_fire_time(None, start)
    while moment is not None and moment <= end:
        yield moment
        moment = trigger.get_next_fire_time(moment, moment)


def latest_fire_time(trigger: BaseTrigger, at: datetime, grace: timedelta) -> datetime | None:
    """The last fire time at or before ``at`` and no older than ``grace``, in UTC: the one run
    that is due at ``at`` (older ones coalesce into it, as APScheduler's ``coalesce`` does).
    Every process computes the same value, which is what makes it a claim key."""
    latest = None
    for moment in fire_times(trigger, at - grace, at):
        latest = moment
    return None if latest is None else latest.astimezone(UTC)
