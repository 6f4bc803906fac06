"""The KPI service: the one place where settings, the store, the facts cache and the metrics
core meet. The CLI, the Slack handlers and the scheduler all ask it, never the store directly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd
from sqlalchemy import Engine

from bot.chat_targets import latest_changes, targets_stamp, with_chat_targets
from bot.settings import Settings, build_targets
from bot.store.database import ensure_schema, make_engine
from bot.store.facts_loader import FactsCache, current_owners, load_deal_states
from bot.store.history import first_recorded
from conversation.views import Digest
from metrics.answers import Answer, answer
from metrics.evaluation import Evaluation, evaluate_all
from metrics.facts import Facts
from metrics.kpis import KPIS
from metrics.pace import PacePath, pace_path
from metrics.periods import Grain, period_containing
from metrics.query import Directory, Query, parse_query
from metrics.scopes import DEFAULT_BREAKDOWN, Level, Scope, is_finer
from metrics.targets import TargetBook
from metrics.waterfall import Named, PipelineChanges, waterfall

# A weekly digest's waterfall counts the movements of the last seven days.
WEEK = 7

# What a sales leader reads first in the morning, in this order.
DIGEST_KPIS = (
    "revenue",
    "forecast",
    "pipeline",
    "coverage",
    "win_rate",
    "conversion",
    "cpa",
    "csat",
)


@dataclass(frozen=True)
class _Targets:
    stamp: int  # ``targets_stamp`` when built
    book: TargetBook
    grains: dict[str, Grain]


@dataclass(frozen=True)
class Snapshot:
    """The facts and the directory of names for one data version."""

    facts: Facts
    directory: Directory


class KpiService:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        ensure_schema(self.engine)
        evaluation = settings.config.evaluation
        self.policy = settings.policy()
        self._cache = FactsCache(
            self.engine,
            settings.organisation.currency,
            dict(settings.config.fx_rates),
            float(evaluation.default_probability),
            settings.organisation.zone,
            settings.snapshot_folder,
        )
        self._snapshot: Snapshot | None = None
        self._targets: _Targets | None = None
        self._current: tuple[int, pd.DataFrame] | None = None

    def _current_targets(self) -> _Targets:
        """The config's targets with those set from chat, rebuilt when an admin changed one:
        in this process or another (web and clock share the database), hence a cheap read of
        the chat targets' stamp rather than an in-process signal."""
        with self.engine.connect() as connection:
            stamp = targets_stamp(connection)
            current = self._targets
            if current is not None and current.stamp == stamp:
                return current
            changes = latest_changes(connection)
        # Two threads may both rebuild after a change: same input, same book, no lock needed.
        targets, removed = with_chat_targets(build_targets(self.settings.config), changes)
        book = TargetBook(targets, self.settings.organisation.fiscal_year_start_month, removed)
        # A KPI is read over the grain of its company target (monthly CPA, quarterly revenue).
        grains = {t.kpi: t.grain for t in reversed(targets) if t.scope.level is Level.COMPANY}
        self._targets = _Targets(stamp, book, grains)
        return self._targets

    @property
    def targets(self) -> TargetBook:
        return self._current_targets().book

    @property
    def grains(self) -> dict[str, Grain]:
        return self._current_targets().grains

    def snapshot(self) -> Snapshot:
        facts = self._cache.get()
        if self._snapshot is None or self._snapshot.facts is not facts:
            directory = Directory(
                regions=tuple(facts.names(Level.REGION)),
                teams=tuple(facts.names(Level.TEAM)),
                reps=tuple(facts.names(Level.REP)),
            )
            self._snapshot = Snapshot(facts, directory)
        return self._snapshot

    def refresh_facts(self) -> None:
        """Bring the facts to the store's data version now and publish their snapshot: for a
        writer after its commit (import, sync), so that serving processes only map it."""
        self._cache.refresh()

    def local_date(self, now: datetime) -> date:
        return now.astimezone(self.settings.organisation.zone).date()

    def parse(self, question: str, now: datetime) -> Query:
        org = self.settings.organisation
        return parse_query(
            question,
            self.local_date(now),
            self.snapshot().directory,
            fiscal_start_month=org.fiscal_year_start_month,
            default_grain=org.default_grain,
            grains=self.grains,
        )

    def answer(self, query: Query, now: datetime) -> Answer:
        facts = self.snapshot().facts
        return answer(query, self.local_date(now), facts, self.targets, self.policy)

    def ask(self, question: str, now: datetime) -> Answer:
        return self.answer(self.parse(question, now), now)

    def _current_deals(self, now: datetime, version: int) -> pd.DataFrame:
        """The deals as they stand, from the history's current intervals: the same for any
        moment until the next change of data, so kept for the data version."""
        current = self._current
        if current is None or current[0] != version:
            org = self.settings.organisation
            frame = load_deal_states(
                self.engine, now, org.currency, dict(self.settings.config.fx_rates)
            )
            current = self._current = (version, frame)
        return current[1]

    def changes(
        self, query: Query, now: datetime, named: Named = lambda rep: True
    ) -> PipelineChanges:
        """The pipeline's movements since ``query.since`` (from the start of that day in the
        organisation's time zone), from the history; counted from the first recorded state when
        the history starts later."""
        if query.since is None:
            raise ValueError("not a question about changes")
        zone = self.settings.organisation.zone
        since = datetime.combine(query.since, time(), tzinfo=zone)
        with self.engine.connect() as connection:
            first = first_recorded(connection)
        history_from = None
        if first is None or first > since:
            history_from = (first or now).astimezone(zone).date()
            since = first or now
        facts = self.snapshot().facts
        # The start never changes once past: read once, kept across syncs.
        start = self._cache.past.deals(since, current_owners(self.engine))
        end = self._current_deals(now, facts.version)
        scope, level = query.scope, query.breakdown
        children = facts.children(scope, level) if level is not None else []
        return PipelineChanges(
            waterfall=waterfall(start, end, query.period, scope, named),
            breakdown=tuple(waterfall(start, end, query.period, c, named) for c in children),
            since=query.since,
            history_from=history_from,
            minor_digits=facts.minor_digits,
        )

    def week_of_changes(
        self, now: datetime, scope: Scope, grain: Grain, named: Named = lambda rep: True
    ) -> PipelineChanges:
        """The movements over the last seven days of ``scope``'s pipeline closing in the
        current ``grain`` period, by its next level: a weekly digest's waterfall."""
        today = self.local_date(now)
        period = period_containing(grain, today, self.settings.organisation.fiscal_year_start_month)
        since = today - timedelta(days=WEEK)
        query = Query("pipeline", scope, period, DEFAULT_BREAKDOWN[scope.level], since=since)
        return self.changes(query, now, named)

    def check(self, now: datetime) -> list[Evaluation]:
        """Every target evaluated at ``now``; alerts are the at-risk and missed ones."""
        return evaluate_all(self.local_date(now), self.snapshot().facts, self.targets, self.policy)

    def pace_paths(self, now: datetime, scope: Scope | None = None) -> list[PacePath]:
        """Revenue to date against its pace line for the current revenue period: one path per
        team of ``scope`` (the team itself for a team, the rep for a rep), those with a target
        first. A company or region is drawn by teams, never by reps; whether the reader may see
        a rep's path is for the caller to decide (``bot.digests.visible_paths``)."""
        scope = scope or Scope.company()
        today = self.local_date(now)
        facts = self.snapshot().facts
        targets = self._current_targets()
        org = self.settings.organisation
        grain = targets.grains.get("revenue", org.default_grain)
        period = period_containing(grain, today, org.fiscal_year_start_month)
        drawn = scope.level in (Level.TEAM, Level.REP)
        scopes = [scope] if drawn else facts.children(scope, Level.TEAM)
        paths = [pace_path(facts, t, period, today, targets.book, self.policy) for t in scopes]
        return sorted(paths, key=lambda p: p.target is None)

    def digest(
        self,
        now: datetime,
        *,
        title: str,
        scope: Scope | None = None,
        kpis: tuple[str, ...] = DIGEST_KPIS,
    ) -> Digest:
        scope = scope or Scope.company()
        today = self.local_date(now)
        # One read of the facts and targets for the whole digest, not one per KPI.
        facts = self.snapshot().facts
        targets = self._current_targets()
        org = self.settings.organisation
        answers = tuple(
            answer(
                Query(
                    kpi,
                    scope,
                    period_containing(
                        targets.grains.get(kpi, org.default_grain),
                        today,
                        org.fiscal_year_start_month,
                    ),
                    DEFAULT_BREAKDOWN[scope.level],
                ),
                today,
                facts,
                targets.book,
                self.policy,
            )
            for kpi in kpis
            if kpi in KPIS
        )
        # A rep's alerts go to the rep and to their team's digest, not to the whole company's.
        rep_alerts = scope.level in (Level.TEAM, Level.REP)
        alerts = tuple(
            e
            for e in evaluate_all(today, facts, targets.book, self.policy)
            if e.status.is_alert
            and (rep_alerts or e.scope.level is not Level.REP)
            and _within(e.scope, scope, facts)
        )
        return Digest(
            title=title,
            as_of=today,
            scope=scope,
            answers=answers,
            alerts=alerts,
            organisation=org.name,
        )


def _within(candidate: Scope, scope: Scope, facts: Facts) -> bool:
    """Whether ``candidate`` is ``scope`` or inside it (a team's alerts go to its digest)."""
    if scope.level is Level.COMPANY or candidate == scope:
        return True
    return is_finer(candidate.level, scope.level) and candidate in facts.children(
        scope, candidate.level
    )
