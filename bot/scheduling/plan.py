"""What runs when: one job for the CRM sync, one for the target evaluation, one per digest
subscription, each with its trigger. The plan is rebuilt from the config and the chat
subscriptions; job ids are stable so the job store and the claims recognise them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Protocol
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot.scheduling.triggers import WorkdayTrigger
from bot.settings import Settings

SYNC = "sync"
EVALUATE = "evaluate"
DIGEST = "digest"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SubscriptionLike(Protocol):
    """The part of ``bot.subscriptions.Subscription`` the schedule needs."""

    @property
    def id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def time(self) -> time: ...
    @property
    def timezone(self) -> str: ...
    @property
    def days(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class PlannedJob:
    id: str  # "sync", "evaluate", "digest:<subscription id>"
    kind: str  # SYNC | EVALUATE | DIGEST
    trigger: WorkdayTrigger
    # What ``kpibot status`` names, worded there in the organisation's language: the sync's
    # source and cron, the evaluation's cron, a digest's channel, time and zone.
    details: Mapping[str, str]
    subscription_id: str | None = None


def holidays(settings: Settings) -> frozenset[date]:
    return frozenset(settings.config.evaluation.holidays)


def digest_trigger(subscription: SubscriptionLike, days_off: Iterable[date]) -> WorkdayTrigger:
    days = ",".join(_DAYS[d] for d in sorted(subscription.days))
    cron = CronTrigger(
        day_of_week=days,
        hour=subscription.time.hour,
        minute=subscription.time.minute,
        timezone=ZoneInfo(subscription.timezone),
    )
    return WorkdayTrigger(cron, frozenset(days_off))


def build_plan(settings: Settings, subscriptions: Sequence[SubscriptionLike]) -> list[PlannedJob]:
    scheduling = settings.config.scheduling
    zone = settings.organisation.zone
    days_off = holidays(settings)
    jobs = [
        PlannedJob(
            SYNC,
            SYNC,
            WorkdayTrigger(CronTrigger.from_crontab(scheduling.sync_cron, timezone=zone)),
            {"source": "+".join(scheduling.sync_sources), "cron": scheduling.sync_cron},
        ),
        PlannedJob(
            EVALUATE,
            EVALUATE,
            WorkdayTrigger(
                CronTrigger.from_crontab(scheduling.evaluation_cron, timezone=zone), days_off
            ),
            {"cron": scheduling.evaluation_cron},
        ),
    ]
    for sub in subscriptions:
        jobs.append(
            PlannedJob(
                f"{DIGEST}:{sub.id}",
                DIGEST,
                digest_trigger(sub, days_off),
                {"channel": sub.channel, "time": f"{sub.time:%H:%M}", "zone": sub.timezone},
                sub.id,
            )
        )
    return jobs
