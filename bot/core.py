"""The conversation core: a parsed request from any surface (slash command, direct message,
@mention, thread follow-up, button, ``kpibot ask``) → who is asking → ``authorize`` → the KPI
service → a view (``conversation.views``). It knows no chat platform: surfaces render the
views their own way and own their listeners.

Every refusal and every misunderstanding is a view, never an exception; only a failure to say
who the user is (``IdentityUnavailable``) becomes the ``WhoAreYou`` view here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, time

from sqlalchemy.orm import Session, sessionmaker

from bot import alerting
from bot.access import channel_audience
from bot.chat_targets import (
    TargetCommandError,
    latest_changes,
    parse_target_command,
    record_change,
)
from bot.rendering import visible_digest
from bot.service import KpiService
from bot.settings import (
    MAX_DURATION,
    Access,
    DurationTooLong,
    SettingError,
    parse_clock_time,
    parse_duration,
    parse_scope,
    parse_weekdays,
)
from bot.store.database import transaction
from bot.subscriptions import WEEKDAYS, add_subscription, remove_subscriptions
from conversation.authorization import (
    Action,
    Decision,
    IdentityUnavailable,
    Refusal,
    Role,
    Viewer,
    authorize,
    named_reps,
    visible_answer,
    visible_changes,
    visible_evaluations,
    visible_names,
)
from conversation.grammar import Kind, Request, mentioned_user, with_pipeline_changes
from conversation.views import (
    AlertList,
    AnswerView,
    ChangesView,
    ChatTarget,
    Help,
    Home,
    Notice,
    Overview,
    Param,
    Phrase,
    Problem,
    Refused,
    Reply,
    SilenceList,
    TargetList,
    View,
    WhoAreYou,
)
from metrics.periods import parse_period
from metrics.query import ALIASES, QueryError, normalise, suggest
from metrics.scopes import Level, Scope

# Who a user is: raises ``IdentityUnavailable`` when the platform cannot say.
Identify = Callable[[str, datetime], Viewer]
CHAT_TARGETS_SHOWN = 20
CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|[^>]*)?>|^([CG][A-Z0-9]{6,})$")
_WEEKDAY_WORDS = re.compile(r"[a-z]{3}[a-z]*(-[a-z]{3}[a-z]*)?(,[a-z]+)*")
# A subscription without the digest's chart: `/kpi subscribe #sales 08:30 no-chart`.
_NO_CHART = frozenset({"no chart", "sans graphique"})  # as `normalise` folds them


class ConversationCore:
    def __init__(
        self,
        service: KpiService,
        identify: Identify,
        sessions: sessionmaker[Session],
        *,
        sync: Callable[[datetime], str] | None = None,
    ) -> None:
        self.service = service
        self.identify = identify
        self.sessions = sessions
        # Runs the configured CRM sync now and returns its one-line summary (the scheduler's
        # own job, so a sync from chat is recorded and clears stale data like a scheduled one).
        self._sync = sync
        self.settings = service.settings
        # Who has been told how to make themselves admin, in this process (see ``_reply``).
        self._hinted: set[str] = set()

    # --- the entry points ------------------------------------------------------------------

    def handle(
        self, user_id: str, request: Request, now: datetime, *, into: str | None = None
    ) -> Reply:
        """The answer to ``request`` from ``user_id``. ``into`` is the channel the answer will
        be read in by everyone (a share, an @mention): only what both may see."""
        try:
            view = self._dispatch(user_id, request, now, into)
        except IdentityUnavailable as error:
            view = WhoAreYou(error.error)
        return self._reply(user_id, view)

    def home(self, user_id: str, now: datetime) -> Reply:
        """``user_id``'s own dashboard."""
        try:
            viewer = self.identify(user_id, now)
        except IdentityUnavailable as error:
            return self._reply(user_id, Home(WhoAreYou(error.error)))
        scope = viewer.home_scope
        decision = authorize(viewer, Action.HOME, scope)
        if not decision.allowed:
            return self._reply(user_id, Home(Refused(decision.refusal_reason, scope)))
        digest = self.service.digest(now, scope=scope, title="")
        return self._reply(user_id, Home(Overview(visible_digest(digest, decision), "")))

    def act_on_alerts(
        self, user_id: str, action: Action, value: str, now: datetime, channel: str, ts: str
    ) -> Reply | alerting.AlertMessageUpdate | None:
        """An action on an alert message, from any surface: ``Action.ACKNOWLEDGE`` (``value``:
        the message's key) or ``Action.SNOOZE`` (``value``: ``<message key>|<duration>``,
        a key of ``alerting.SNOOZE_FOR``), taken by ``user_id`` on the message it was offered
        on (``channel``: its destination, ``ts``: the surface's message id).

        Refused (a ``Reply`` for the user alone) unless the action belongs to that message —
        a value replayed on another is refused — and ``authorize`` lets the user take it for
        every alert still firing in it. Otherwise recorded, and the message's new view is
        returned to draw in place of the old; None when the message or duration is unknown."""
        key, _, duration = value.rpartition("|") if action is Action.SNOOZE else (value, "", "")
        posted = alerting.posted_alerts(self.sessions, key)
        if posted is None or (posted.channel, posted.ts) != (channel, ts):
            return self._reply(user_id, Refused(Refusal.OTHER_MESSAGE))
        try:
            viewer = self.identify(user_id, now)
        except IdentityUnavailable as error:
            return self._reply(user_id, WhoAreYou(error.error))
        for scope in posted.scopes:
            decision = authorize(viewer, action, scope)
            if not decision.allowed:
                return self._reply(user_id, Refused(decision.refusal_reason, scope))
        if action is Action.ACKNOWLEDGE:
            return alerting.acknowledge(self.sessions, key, user_id, now)
        return alerting.snooze(self.sessions, key, duration, user_id, now)

    def _reply(self, user_id: str, view: View) -> Reply:
        """A fresh install (no access section) tells whoever talks to kpibot how to become
        admin: with their first reply, then with help and refusals only, so that the hint
        does not bury every answer."""
        if self.settings.config.access != Access():
            return Reply(view)
        first = user_id not in self._hinted
        self._hinted.add(user_id)
        wanted = first or isinstance(view, Help | Refused | WhoAreYou)
        return Reply(view, setup_hint=user_id if wanted else None)

    def _dispatch(self, user_id: str, request: Request, now: datetime, into: str | None) -> View:
        arg = request.argument
        match request.kind:
            case Kind.HELP:
                return Help()
            case Kind.ASK:
                return self._answer(user_id, arg, request.text, now, into)
            case Kind.TEAM:
                return self._team(user_id, arg, request.text, now, into)
            case Kind.REP:
                return self._rep(user_id, arg, request.text, now, into)
            case Kind.LEADERBOARD:
                return self._leaderboard(user_id, now, into)
            case Kind.TARGETS:
                return self._targets(user_id, now, into, arg)
            case Kind.ALERTS:
                return self._alerts(user_id, now, into)
            case Kind.SNOOZE:
                return self._snooze(user_id, arg, now)
            case Kind.SUBSCRIBE:
                return self._subscribe(user_id, arg, now)
            case Kind.UNSUBSCRIBE:
                return self._unsubscribe(user_id, arg, now)
            case Kind.TARGET:
                return self._set_target(user_id, arg, now)
            case Kind.SYNC:
                return self._run_sync(user_id, now)

    # --- who is asking ---------------------------------------------------------------------

    def _decide(
        self, viewer: Viewer, action: Action, scope: Scope | None, into: str | None
    ) -> Decision:
        """``authorize`` for this request; an answer read in a channel is decided for the
        asker and that channel."""
        if into is None:
            return authorize(viewer, action, scope)
        channel = channel_audience(self.settings, into, self.service.snapshot().facts)
        return authorize(viewer, Action.SHARE, scope, into=channel)

    def _allowed(
        self, user_id: str, action: Action, what: Scope | str, now: datetime
    ) -> Refused | None:
        decision = authorize(self.identify(user_id, now), action)
        return None if decision.allowed else Refused(decision.refusal_reason, what)

    # --- questions and overviews -------------------------------------------------------------

    def _problem(self, user_id: str, error: QueryError, now: datetime) -> Help:
        if error.level is None:
            return Help(Problem(error.code, error.params, error.suggestions))
        # Names of teams or reps: only those the asker may see, a handful at most.
        decision = authorize(self.identify(user_id, now), Action.ASK)
        directory = self.service.snapshot().directory
        return Help(
            Problem(
                error.code,
                {**error.params, "level": error.level.value},
                visible_names(error.suggestions, error.level, decision),
                visible_names(directory.names(error.level), error.level, decision),
            )
        )

    def _answer(
        self, user_id: str, question: str, request: str, now: datetime, into: str | None
    ) -> View:
        read = self.service.reading()
        try:
            query = self.service.parse(question, now, read)
        except QueryError as error:
            return self._problem(user_id, error, now)
        decision = self._decide(self.identify(user_id, now), Action.ASK, query.scope, into)
        if not decision.allowed:
            return Refused(decision.refusal_reason, query.scope)
        if query.since is not None:
            changes = self.service.changes(query, now, named=named_reps(decision))
            return ChangesView(visible_changes(changes, decision), request)
        return AnswerView(visible_answer(self.service.answer(query, now, read), decision), request)

    def _overview(
        self, user_id: str, scope: Scope, request: str, now: datetime, into: str | None
    ) -> View:
        decision = self._decide(self.identify(user_id, now), Action.OVERVIEW, scope, into)
        if not decision.allowed:
            return Refused(decision.refusal_reason, scope)
        digest = self.service.digest(now, scope=scope, title="")
        return Overview(visible_digest(digest, decision), request)

    def _team(self, user_id: str, name: str, request: str, now: datetime, into: str | None) -> View:
        teams = self.service.snapshot().directory.teams
        found = next((t for t in teams if normalise(t) == normalise(name)), None)
        if found is None:
            # "team Lyon revenue" is a question about the team.
            return self._answer(user_id, f"team {name}", request, now, into)
        return self._overview(user_id, Scope(Level.TEAM, found), request, now, into)

    def _rep(self, user_id: str, who: str, request: str, now: datetime, into: str | None) -> View:
        mentioned = mentioned_user(who)
        name: str | None
        if mentioned is not None:
            try:
                name = self.identify(mentioned, now).rep
            except IdentityUnavailable:
                name = None  # about someone else: "not found", not "who are you"
        else:
            reps = self.service.snapshot().directory.reps
            name = next((r for r in reps if normalise(r) == normalise(who)), None)
        if name is None:
            return Notice("not_found.rep", {"who": who})
        return self._overview(user_id, Scope(Level.REP, name), request, now, into)

    def _leaderboard(self, user_id: str, now: datetime, into: str | None) -> View:
        viewer = self.identify(user_id, now)
        if viewer.is_admin:
            question = "revenue by rep"
        elif viewer.role is Role.MANAGER and len(viewer.teams) == 1:
            question = f"revenue team {next(iter(viewer.teams))}"
        else:
            question = "revenue by team"
        return self._answer(user_id, question, "leaderboard", now, into)

    def _targets(self, user_id: str, now: datetime, into: str | None, kpi_word: str = "") -> View:
        """The targets the user may see; ``kpi_word`` (``revenue``, ``ca``) narrows the list to
        that KPI's, shown in full."""
        kpi = None
        if kpi_word.strip():
            kpi = ALIASES.get(normalise(kpi_word))
            if kpi is None:
                return Help(Problem("unknown_kpi", {"text": kpi_word.strip()}, suggest(kpi_word)))
        viewer = self.identify(user_id, now)
        decision = self._decide(viewer, Action.TARGETS, None, into)
        if not decision.allowed:
            return Refused(decision.refusal_reason, "targets")
        evaluations = visible_evaluations(self.service.check(now), decision)
        chat_targets = self._chat_targets(decision, now)
        if kpi is None:
            return TargetList(evaluations, chat_targets, own=viewer.own_scopes)
        return TargetList(
            tuple(e for e in evaluations if e.kpi == kpi),
            tuple(t for t in chat_targets if t.kpi == kpi),
            request=f"targets {kpi}",
            kpi=kpi,
            own=viewer.own_scopes,
        )

    def _chat_targets(self, decision: Decision, now: datetime) -> tuple[ChatTarget, ...]:
        """The targets set from chat and in force (future periods too), with who set them."""
        with self.service.engine.connect() as connection:
            changes = [c for c in latest_changes(connection) if c.value is not None]
        org = self.settings.organisation
        today = self.service.local_date(now)
        return tuple(
            ChatTarget(
                change.kpi,
                change.scope,
                parse_period(change.period_key, today, org.fiscal_year_start_month),
                change.value,
                change.set_by or "",
                change.set_at,
            )
            for change in changes[-CHAT_TARGETS_SHOWN:]
            if change.value is not None and decision.shows(change.scope)
        )

    def _alerts(self, user_id: str, now: datetime, into: str | None) -> View:
        decision = self._decide(self.identify(user_id, now), Action.ALERTS, None, into)
        if not decision.allowed:
            return Refused(decision.refusal_reason, "alerts")
        return AlertList(visible_evaluations(alerting.active_alerts(self.service, now), decision))

    # --- admin commands ----------------------------------------------------------------------

    def _set_target(self, user_id: str, args: str, now: datetime) -> View:
        if not args.strip():
            return self._targets(user_id, now, None)  # "target" alone: the list
        refused = self._allowed(user_id, Action.TARGET, "target", now)
        if refused is not None:
            return refused
        org = self.settings.organisation
        try:
            change = parse_target_command(
                args,
                self.service.local_date(now),
                self.service.snapshot().directory,
                org.fiscal_year_start_month,
            )
        except TargetCommandError as error:
            return Help(Problem(f"target.{error.code}", error.params))
        with transaction(self.sessions) as session:
            record_change(session, change, user_id, now)
        period = parse_period(
            change.period_key, self.service.local_date(now), org.fiscal_year_start_month
        )
        what: dict[str, Param] = {"kpi": change.kpi, "scope": change.scope, "period": period}
        if change.value is None:
            return Notice("target.removed", what)
        return Notice("target.set", {**what, "value": change.value})

    def _run_sync(self, user_id: str, now: datetime) -> View:
        refused = self._allowed(user_id, Action.SYNC, "sync", now)
        if refused is not None:
            return refused
        if self._sync is None:
            return Notice("sync.unavailable")
        return Notice("sync.done", {"summary": self._sync(now)})

    def _subscribe(self, user_id: str, args: str, now: datetime) -> View:
        refused = self._allowed(user_id, Action.SUBSCRIBE, "subscribe", now)
        if refused is not None:
            return refused
        args, waterfall = with_pipeline_changes(args)
        words = args.split()
        channel = _channel(words[0]) if words else None
        if channel is None or len(words) < 2:
            return Help(Problem("usage.subscribe", {"text": ""}))
        try:
            at = parse_clock_time(words[1])
            days: tuple[int, ...] = WEEKDAYS
            rest = [w for w in words[2:] if normalise(w) not in _NO_CHART]
            chart = len(rest) == len(words) - 2
            if rest and _WEEKDAY_WORDS.fullmatch(rest[-1]):
                try:
                    days = parse_weekdays(rest[-1])
                    rest = rest[:-1]
                except ValueError:
                    pass  # not weekdays: part of the scope ("team Lyon")
            scope = parse_scope(" ".join(rest)) if rest else Scope.company()
        except SettingError as error:
            return Help(Problem("usage.subscribe", {"text": _phrase(error)}))
        zone = self.settings.organisation.timezone
        hour, minute = (int(p) for p in at.split(":"))
        with transaction(self.sessions) as session:
            add_subscription(
                session,
                channel=channel,
                at=time(hour, minute),
                timezone=zone,
                created_by=user_id,
                now=now,
                scope=scope,
                days=days,
                waterfall=waterfall,
                chart=chart,
            )
        said: dict[str, Param] = {
            "channel": channel, "time": at, "zone": zone, "days": days, "chart": chart,
        }  # fmt: skip
        if waterfall is not None:
            return Notice("subscribed.waterfall", {**said, "grain": waterfall.value})
        return Notice("subscribed", said)

    def _unsubscribe(self, user_id: str, args: str, now: datetime) -> View:
        refused = self._allowed(user_id, Action.SUBSCRIBE, "unsubscribe", now)
        if refused is not None:
            return refused
        channel = _channel(args.split()[0]) if args.split() else None
        if channel is None:
            return Help(Problem("usage.unsubscribe"))
        with transaction(self.sessions) as session:
            n = remove_subscriptions(session, channel)
        return Notice("unsubscribed", {"n": n, "channel": channel})

    # --- snoozes -----------------------------------------------------------------------------

    def _snooze(self, user_id: str, args: str, now: datetime) -> View:
        words = args.split()
        viewer = self.identify(user_id, now)
        if not words:
            return self._silences(viewer, now)
        # "2j", "1w", or with a space: "1 sem", "3 jours".
        spaced = len(words) >= 2 and words[-2].isdigit()
        try:
            duration = parse_duration(" ".join(words[-2:]) if spaced else words[-1])
        except DurationTooLong:
            return Help(Problem("snooze.too_long", {"text": args, "max": MAX_DURATION.days}))
        except ValueError:
            return Help(Problem("usage.snooze", {"text": args}))
        rest = words[:-2] if spaced else words[:-1]
        kpi = None
        if rest and normalise(rest[0]) in ALIASES:
            kpi = ALIASES[normalise(rest[0])]
            rest = rest[1:]
        scope = None
        if rest:
            try:
                scope = parse_scope(" ".join(rest))
            except SettingError as error:
                return Help(Problem("usage.snooze", {"text": _phrase(error)}))
        decision = authorize(viewer, Action.SNOOZE, scope)
        if not decision.allowed:
            return Refused(decision.refusal_reason, scope or "snooze")
        until = now + duration
        with transaction(self.sessions) as session:
            alerting.add_silence(session, None, until, user_id, now, kpi=kpi, scope=scope)
        return Notice("snoozed", {"kpi": kpi or "", "scope": scope or "", "until": until})

    def _silences(self, viewer: Viewer, now: datetime) -> View:
        decision = authorize(viewer, Action.ALERTS)
        if not decision.allowed:
            return Refused(decision.refusal_reason, "snooze")
        return SilenceList(
            tuple(
                s
                for s in alerting.active_silences(self.sessions, now)
                # A silence of every scope is about the company as a whole.
                if decision.shows(
                    Scope.company() if s.level is None else Scope(s.level, s.name or "")
                )
            )
        )


def _phrase(error: SettingError) -> Phrase:
    """A setting's error (``bot.settings``), worded with the usage line around it."""
    return Phrase(f"config.{error.code}", {k: str(v) for k, v in error.params.items()})


def _channel(token: str) -> str | None:
    match = CHANNEL.fullmatch(token) if token.startswith("<") else CHANNEL.match(token)
    if match is None:
        return None
    return match.group(1) or match.group(2)
