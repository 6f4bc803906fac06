"""The KPI service: the one place where settings, the store, the facts cache and the metrics
core meet. The CLI, the Slack handlers and the scheduler all ask it, never the store directly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine

from bot.chat_targets import latest_changes, targets_stamp, with_chat_targets
from bot.settings import Settings, build_targets
from bot.store.database import ensure_schema, make_engine
from bot.store.facts_loader import FactsCache
from bot.store.history import deal_names, first_recorded
from conversation.views import Digest
from metrics.answers import Answer, answer
from metrics.evaluation import Evaluation, evaluate_all
from metrics.facts import Facts
from metrics.kpis import KPIS
from metrics.pace import PacePath, pace_path
from metrics.periods import Grain, Period, period_containing
from metrics.query import Directory, Query, parse_query
from metrics.scopes import DEFAULT_BREAKDOWN, Level, Scope, is_finer
from metrics.targets import TargetBook
from metrics.waterfall import (
    Named,
    Pair,
    PipelineChanges,
    changed_pair,
    changed_waterfalls,
    deal_ids,
    with_names,
)

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


@dataclass(frozen=True)
class Reading:
    """What one question is parsed and answered from, read once: the parse's names and the
    answer's figures come from the same data version and the same targets, and the store is
    asked whether they changed once per question rather than at every step."""

    snapshot: Snapshot
    targets: _Targets


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
        self._moved: dict[tuple[int, datetime, Period], Pair] = {}

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

    def snapshot(self) -> Snapshot:
        facts = self._cache.get()
        if self._snapshot is None or self._snapshot.facts is not facts:
            directory = Directory(
                regions=tuple(facts.names(Level.REGION)),
                teams=tuple(facts.names(Level.TEAM)),
                reps=tuple(facts.names(Level.REP)),
            )
            changed = self._snapshot is not None
            self._snapshot = Snapshot(facts, directory)
            if changed:
                # New data in a running process: bring the usual past moments forward before
                # a waterfall asks for them (a process's first waterfall reads its own).
                self._cache.prepare_past(datetime.now(UTC), facts)
        return self._snapshot

    def warm_facts(self) -> None:
        """Map the published facts (or start building them) before the first question: what a
        serving process does at its start, so that no answer waits for them. With the facts
        mapped, the past moments a waterfall usually starts from are read in the background
        too, so that a process's first waterfall reads no history inside its request."""
        self._cache.warm()
        facts = self._cache.held()
        if facts is not None:
            self._cache.prepare_past(datetime.now(UTC), facts)

    def catch_up(self) -> None:
        """Hold the facts of the store's data version before going on: for a process that has
        just written (``/kpi sync`` from chat), so that the answers after its "done" read what
        it wrote instead of starting the swap to it."""
        self._cache.caught_up()

    def wait_for_facts(self) -> None:
        """Wait for what is being brought up to date in the background (newer facts, their
        indexes, the past states): for a benchmark that measures each step."""
        self._cache.wait()

    def refresh_facts(self) -> None:
        """Bring the facts to the store's data version now and publish their snapshot: for a
        writer that goes on after its commit (the clock's sync job), so that serving
        processes only map it."""
        self._cache.refresh()

    def publish_facts(self) -> None:
        """Publish the snapshot of the store's data version, without holding the facts: for
        a writer that exits after its commit (``kpibot import``, ``kpibot sync``)."""
        self._cache.publish()

    def local_date(self, now: datetime) -> date:
        return now.astimezone(self.settings.organisation.zone).date()

    def reading(self) -> Reading:
        return Reading(self.snapshot(), self._current_targets())

    def parse(self, question: str, now: datetime, reading: Reading | None = None) -> Query:
        org = self.settings.organisation
        read = reading or self.reading()
        return parse_query(
            question,
            self.local_date(now),
            read.snapshot.directory,
            fiscal_start_month=org.fiscal_year_start_month,
            default_grain=org.default_grain,
            grains=read.targets.grains,
        )

    def answer(self, query: Query, now: datetime, reading: Reading | None = None) -> Answer:
        read = reading or self.reading()
        return answer(
            query, self.local_date(now), read.snapshot.facts, read.targets.book, self.policy
        )

    def ask(self, question: str, now: datetime) -> Answer:
        read = self.reading()
        return self.answer(self.parse(question, now, read), now, read)

    def changes(
        self, query: Query, now: datetime, named: Named = lambda rep: True
    ) -> PipelineChanges:
        """The pipeline's movements since ``query.since`` (from the start of that day in the
        organisation's time zone): from the deals changed since, as the history says they
        stood, to the facts in hand; counted from the first recorded state when the history
        starts later."""
        if query.since is None:
            raise ValueError("not a question about changes")
        zone = self.settings.organisation.zone
        since = datetime.combine(query.since, time(), tzinfo=zone)
        with self.engine.connect() as connection:
            first = first_recorded(connection)
        # Counted from the first recorded state when the history starts later
        # (``PastStates`` reads such a moment as that first one): the answer says from when.
        history_from = None
        if first is None or first > since:
            history_from = (first or now).astimezone(zone).date()
        facts = self.snapshot().facts
        key = (facts.version, since, query.period)
        moved = self._moved.get(key)
        if moved is None:
            changed, start = self._cache.past.changed_since(since, facts.version)
            moved = changed_pair(facts, start, changed, query.period)
            # Kept for the next viewer of the same question while the data stays the same.
            self._moved = {key: moved}
        scope, level = query.scope, query.breakdown
        children = facts.children(scope, level) if level is not None else []
        whole, breakdown = changed_waterfalls(facts, moved, scope, children, named)
        changes = PipelineChanges(
            waterfall=whole,
            breakdown=breakdown,
            since=query.since,
            history_from=history_from,
            minor_digits=facts.minor_digits,
        )
        with self.engine.connect() as connection:
            names = {i: n for i, n in connection.execute(deal_names(deal_ids(changes)))}
        return with_names(changes, names)

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
