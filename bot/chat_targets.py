"""Targets set from chat by admins (``/kpi target revenue team Lyon 2026-Q4 800k``): parsing
the command, storing each change (``ChatTarget``, append-only) and laying the chat-set targets
over the config's. A chat-set target replaces the config's for the same (KPI, scope, grain,
period); ``off`` removes it.

Every process (the web process answering, the clock evaluating) sees a change at its next
question or run: ``targets_stamp`` is the table's largest id, one indexed read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from bot.settings import AmountTooLarge, parse_amount, parse_scope
from bot.store.chat_models import ChatTarget, from_db, to_db
from metrics.kpis import KPIS
from metrics.periods import Grain, PeriodParseError, parse_period
from metrics.query import ALIASES, Directory, normalise
from metrics.scopes import Level, Scope
from metrics.targets import Removal, Target

OFF_WORDS = frozenset({"off", "none", "remove", "aucun", "supprimer", "retirer"})
USAGE = "`/kpi target revenue team Lyon 2026-Q4 800k` (or `off` to remove it)"


class TargetCommandError(ValueError):
    """A ``target`` command the core cannot act on: ``code`` and ``params`` say what to fix
    (worded by the shell), the message in English for logs."""

    def __init__(self, code: str, message: str, **params: str) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class TargetChange:
    kpi: str
    scope: Scope
    grain: Grain
    period_key: str
    value: Decimal | None  # None: remove the target
    set_by: str | None = None  # the Slack user, once stored
    set_at: datetime | None = None


def _known_name(scope: Scope, directory: Directory) -> Scope:
    if scope.level is Level.COMPANY:
        return scope
    names = directory.names(scope.level)
    found = next((n for n in names if normalise(n) == normalise(scope.name)), None)
    if found is None:
        raise TargetCommandError(
            f"no_such.{scope.level.value}",
            f"no {scope.level.value} named {scope.name!r} in the CRM",
            name=scope.name,
        )
    return Scope(scope.level, found)


def parse_target_command(
    args: str, today: date, directory: Directory, fiscal_start_month: int = 1
) -> TargetChange:
    """``<kpi> <scope> <period> <value|off>``: ``revenue team Lyon 2026-Q4 800k``,
    ``win_rate company 2026-11 25%``, ``ca équipe Lyon 2026-T4 off``. The grain is the period's:
    a quarter key sets a quarterly target."""
    words = args.split()
    if len(words) < 4:
        raise TargetCommandError(
            "too_short", f"expected a KPI, a scope, a period and a value: {USAGE}"
        )
    kpi = ALIASES.get(normalise(words[0]))
    if kpi is None:
        raise TargetCommandError(
            "unknown_kpi",
            f"unknown KPI {words[0]!r}; expected one of {', '.join(KPIS)}",
            text=words[0],
        )
    raw_value, raw_period = words[-1], words[-2]
    try:
        period = parse_period(raw_period, today, fiscal_start_month)
    except PeriodParseError as error:
        # The parser's list of every period phrase is for questions; a target wants a key.
        reason = str(error).split(" Examples of valid periods")[0]
        raise TargetCommandError(
            "period", f"{reason} For a target, give a key such as 2026-Q4", text=raw_period
        ) from None
    value: Decimal | None = None
    if normalise(raw_value) not in OFF_WORDS:
        try:
            value = parse_amount(raw_value)
        except ValueError as error:
            code = "too_large" if isinstance(error, AmountTooLarge) else "value"
            raise TargetCommandError(code, str(error), text=raw_value) from None
        if value < 0:
            raise TargetCommandError(
                "negative", f"a target cannot be negative: {raw_value}", text=raw_value
            )
    try:
        scope = parse_scope(" ".join(words[1:-2]))
    except ValueError as error:
        raise TargetCommandError("scope", str(error), text=" ".join(words[1:-2])) from None
    return TargetChange(kpi, _known_name(scope, directory), period.grain, period.key, value)


def record_change(session: Session, change: TargetChange, user_id: str, now: datetime) -> None:
    session.add(
        ChatTarget(
            kpi=change.kpi,
            grain=change.grain.value,
            scope_level=change.scope.level.value,
            scope_name=change.scope.name,
            period_key=change.period_key,
            value=change.value,
            set_by=user_id,
            set_at=to_db(now),
        )
    )


def targets_stamp(connection: Connection) -> int:
    """Changes whenever a target is set or removed from chat, in any process."""
    return int(connection.scalar(select(func.max(ChatTarget.id))) or 0)


_Key = tuple[str, Scope, Grain, str | None]


def latest_changes(connection: Connection) -> list[TargetChange]:
    """The current state of each chat-set (kpi, scope, grain, period): its latest change."""
    latest: dict[_Key, TargetChange] = {}
    rows = connection.execute(select(ChatTarget).order_by(ChatTarget.id))
    for row in rows:
        scope = Scope(Level(row.scope_level), row.scope_name)
        grain = Grain(row.grain)
        value = None if row.value is None else Decimal(row.value)
        latest[(row.kpi, scope, grain, row.period_key)] = TargetChange(
            row.kpi, scope, grain, row.period_key, value, row.set_by, from_db(row.set_at)
        )
    return list(latest.values())


def with_chat_targets(
    config: Iterable[Target], changes: Iterable[TargetChange]
) -> tuple[list[Target], list[Removal]]:
    """The config's targets with the chat's laid over them, and the periods switched off.
    Chat-set ones come after the config's (which keeps the config deciding the grain a KPI is
    read over) and keep the config's ``min_sample`` for the same key. A period switched off has
    no target at all: not the config's value for it, nor its standing or yearly one."""
    by_key: dict[_Key, Target] = {(t.kpi, t.scope, t.grain, t.period_key): t for t in config}
    added: list[Target] = []
    removed: list[Removal] = []
    for change in changes:
        key: _Key = (change.kpi, change.scope, change.grain, change.period_key)
        replaced = by_key.pop(key, None)
        if change.value is None:
            removed.append((change.kpi, change.scope, change.grain, change.period_key))
            continue
        min_sample = None if replaced is None else replaced.min_sample
        added.append(
            Target(
                change.kpi, change.grain, change.scope, change.value, change.period_key,
                min_sample,
            )
        )  # fmt: skip
    return [*by_key.values(), *added], removed
