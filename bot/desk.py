"""The desk behind the Slack listeners (``handlers.ports.KpiDesk``): who is asking, whether
their role lets them see it, the answer from ``KpiService``, rendered for Slack.

Every refusal and every misunderstanding is an answer, never an exception: the single
``@app.error`` handler is for bugs and outages only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import datetime, time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot import alerting
from bot.access import channel_audience, rep_teams, reps_by_email, viewer_for
from bot.chat_rendering import Blocks, text_blocks, word
from bot.chat_targets import USAGE as TARGET_USAGE
from bot.chat_targets import (
    TargetChange,
    TargetCommandError,
    latest_changes,
    parse_target_command,
    record_change,
)
from bot.formatting import Formatter
from bot.rendering import (
    MAX_BLOCKS,
    alert_view,
    mrkdwn_escape,
    render_alerts_blocks,
    render_alerts_text,
    render_answer_blocks,
    render_answer_text,
    render_digest_blocks,
    render_digest_text,
    visible_digest,
)
from bot.service import KpiService
from bot.settings import parse_clock_time, parse_duration, parse_scope, parse_weekdays
from bot.slack_users import SlackUsers, UserLookupFailed
from bot.store.database import transaction
from bot.subscriptions import WEEKDAYS, add_subscription, remove_subscriptions
from conversation.authorization import (
    Action,
    Decision,
    Refusal,
    Role,
    Viewer,
    authorize,
    visible_answer,
    visible_evaluations,
    visible_names,
)
from handlers.kpi_text import mentioned_user
from handlers.ports import MessageRef, MessageUpdate, Reply
from metrics.kpis import KPIS
from metrics.periods import parse_period
from metrics.query import ALIASES, QueryError, normalise
from metrics.scopes import Level, Scope

HELP_EXAMPLES = (
    "`/kpi conversion`",
    "`/kpi revenue team EMEA last quarter`",
    "`/kpi pipeline`",
    "`/kpi forecast`",
    "`/kpi team Lyon`",
    "`/kpi rep @someone`",
    "`/kpi leaderboard`",
    "`/kpi targets`",
    "`/kpi alerts`",
    "`/kpi snooze revenue team Lyon 2d`",
    "`/kpi subscribe #sales 08:30` (admins)",
    "`/kpi target revenue team Lyon 2026-Q4 800k` · `… off` (admins)",
    "`/kpi sync` (admins)",
)
# The same questions in French words: what a French-speaking team types.
HELP_EXAMPLES_FR = (
    "`/kpi ca ce trimestre`",
    "`/kpi ca équipe Lyon trimestre dernier`",
    "`/kpi conversion`",
    "`/kpi équipe Lyon`",
    "`/kpi commercial @quelqu'un`",
    "`/kpi classement`",
    "`/kpi objectifs`",
    "`/kpi alertes`",
    "`/kpi sourdine ca équipe Lyon 2d`",
    "`/kpi abonner #ventes 08:30` (admins)",
    "`/kpi objectif ca équipe Lyon 2026-Q4 800k` · `… off` (admins)",
    "`/kpi sync` (admins)",
)
CHAT_TARGETS_SHOWN = 20
CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|[^>]*)?>|^([CG][A-Z0-9]{6,})$")


class SlackDesk:
    def __init__(
        self,
        service: KpiService,
        users: SlackUsers,
        sessions: sessionmaker[Session],
        *,
        sync: Callable[[datetime], str] | None = None,
    ) -> None:
        self.service = service
        self.users = users
        self.sessions = sessions
        # Runs the configured CRM sync now and returns its one-line summary (the scheduler's
        # own job, so a sync from chat is recorded and clears stale data like a scheduled one).
        self._sync = sync
        self.settings = service.settings
        self.fmt = Formatter.for_organisation(self.settings.organisation)

    # --- who is asking ---------------------------------------------------------------------

    def viewer(self, user_id: str, now: datetime) -> Viewer:
        """Raises ``UserLookupFailed`` when Slack cannot say who ``user_id`` is."""
        facts = self.service.snapshot().facts
        # The email is needed even for users listed by id: it is what matches them to a rep.
        email = self.users.email_of(user_id, now)
        access = self.settings.config.access
        return viewer_for(access, user_id, email, reps_by_email(facts), rep_teams(facts))

    def _decide(
        self, viewer: Viewer, action: Action, scope: Scope | None, into: str | None
    ) -> Decision:
        """``authorize`` for this request; a shared answer is decided for the sharer and the
        channel it goes to."""
        if into is None:
            return authorize(viewer, action, scope)
        channel = channel_audience(self.settings, into, self.service.snapshot().facts)
        return authorize(viewer, Action.SHARE, scope, into=channel)

    def _reply(self, text: str, blocks: Blocks) -> Reply:
        return Reply(text=text, blocks=blocks)

    def _say(self, mrkdwn: str) -> Reply:
        return self._reply(mrkdwn, text_blocks(mrkdwn, self.fmt))

    def _refusal(self, decision: Decision, what: str) -> Reply:
        """The polite answer to a refused request (never posted in a channel)."""
        match decision.refusal:
            case Refusal.UNKNOWN_USER:
                text = word(self.fmt, "refused.nothing")
            case Refusal.ADMIN_ONLY:
                text = word(self.fmt, "refused.admin", command=what)
            case Refusal.NOT_YOURS:
                text = word(self.fmt, "refused.not_yours")
            case _:
                text = word(self.fmt, "refused.scope", what=mrkdwn_escape(what))
        return Reply(text, text_blocks(text, self.fmt), refused=True)

    def identity_problem(self, error: UserLookupFailed) -> Reply:
        """What a user is told when Slack could not say who they are."""
        text = word(self.fmt, "refused.lookup", error=mrkdwn_escape(error.error))
        return Reply(text, text_blocks(text, self.fmt), refused=True)

    def _shareable(
        self, user_id: str, command: str, text: str, blocks: Blocks, *, into: str | None
    ) -> Reply:
        """Ephemeral answers get a "Share in channel" button carrying the command, so that
        sharing computes the answer again as the sharer; shared ones say who shared."""
        if into is not None:
            note = {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": word(self.fmt, "shared_by", user=f"<@{user_id}>")}
                ],
            }
            return self._reply(text, [*blocks[: MAX_BLOCKS - 1], note])
        button = {
            "type": "actions",
            "block_id": "kpi.share",
            "elements": [
                {
                    "type": "button",
                    "action_id": "kpi.share",
                    "text": {"type": "plain_text", "text": word(self.fmt, "share")},
                    "value": command[:2000],
                }
            ],
        }
        return self._reply(text, [*blocks[: MAX_BLOCKS - 1], button])

    # --- help ------------------------------------------------------------------------------

    def help(self, user_id: str, now: datetime, *, problem: str | None = None) -> Reply:
        lines = [problem] if problem else []
        lines.append("*/kpi* — " + ", ".join(f"`{k}`" for k in KPIS))
        if self.fmt.language == "fr":
            # French first for a French organisation; the English words work as well.
            lines.extend(f"• {example}" for example in HELP_EXAMPLES_FR)
            lines.append(word(self.fmt, "help.english"))
            lines.append(" · ".join(HELP_EXAMPLES[:-3]))
        else:
            lines.extend(f"• {example}" for example in HELP_EXAMPLES)
            lines.append(word(self.fmt, "help.french") + " " + " · ".join(HELP_EXAMPLES_FR[:3]))
        return self._say("\n".join(lines))

    def _did_you_mean(self, user_id: str, error: QueryError, now: datetime) -> Reply:
        problem = mrkdwn_escape(error.message)
        suggestions = error.suggestions
        if error.level is not None:
            # Names of teams or reps: only those the asker may see, a handful at most.
            decision = authorize(self.viewer(user_id, now), Action.ASK)
            suggestions = visible_names(suggestions, error.level, decision)
            directory = self.service.snapshot().directory
            known = visible_names(directory.names(error.level), error.level, decision)
            if known:
                names = ", ".join(mrkdwn_escape(n) for n in known)
                problem += " " + word(self.fmt, "known", names=names)
        if suggestions:
            options = word(self.fmt, "or").join(f"`{mrkdwn_escape(s)}`" for s in suggestions)
            problem += " " + word(self.fmt, "did_you_mean", options=options)
        return self.help(user_id, now, problem=problem)

    # --- answers ---------------------------------------------------------------------------

    def _describe(self, scope: Scope) -> str:
        return self.fmt.scope(scope)

    def ask(self, user_id: str, question: str, now: datetime, *, into: str | None = None) -> Reply:
        return self._answer(user_id, question, question, now, into=into)

    def _answer(
        self, user_id: str, question: str, command: str, now: datetime, *, into: str | None
    ) -> Reply:
        try:
            query = self.service.parse(question, now)
        except QueryError as error:
            return self._did_you_mean(user_id, error, now)
        decision = self._decide(self.viewer(user_id, now), Action.ASK, query.scope, into)
        if not decision.allowed:
            return self._refusal(decision, self._describe(query.scope))
        answer = visible_answer(self.service.answer(query, now), decision)
        text = mrkdwn_escape(render_answer_text(answer, self.fmt))
        blocks = render_answer_blocks(answer, self.fmt)
        return self._shareable(user_id, command, text, blocks, into=into)

    def _overview(
        self, user_id: str, scope: Scope, command: str, now: datetime, *, into: str | None
    ) -> Reply:
        decision = self._decide(self.viewer(user_id, now), Action.OVERVIEW, scope, into)
        if not decision.allowed:
            return self._refusal(decision, self._describe(scope))
        digest = self.service.digest(now, scope=scope, title=self._describe(scope))
        digest = visible_digest(digest, decision)
        text = mrkdwn_escape(render_digest_text(digest, self.fmt))
        blocks = render_digest_blocks(digest, self.fmt)
        return self._shareable(user_id, command, text, blocks, into=into)

    def team(self, user_id: str, name: str, now: datetime, *, into: str | None = None) -> Reply:
        teams = self.service.snapshot().directory.teams
        found = next((t for t in teams if normalise(t) == normalise(name)), None)
        if found is None:
            # "/kpi team Lyon revenue" is a question about the team.
            return self.ask(user_id, f"team {name}", now, into=into)
        return self._overview(user_id, Scope(Level.TEAM, found), f"team {name}", now, into=into)

    def rep(self, user_id: str, who: str, now: datetime, *, into: str | None = None) -> Reply:
        mentioned = mentioned_user(who)
        reps = self.service.snapshot().directory.reps
        name: str | None
        if mentioned is not None:
            try:
                name = self.viewer(mentioned, now).rep
            except UserLookupFailed:
                name = None  # about someone else: "not found", not "who are you"
        else:
            name = next((r for r in reps if normalise(r) == normalise(who)), None)
        if name is None:
            return self._say(word(self.fmt, "not_found.rep", who=mrkdwn_escape(who)))
        return self._overview(user_id, Scope(Level.REP, name), f"rep {who}", now, into=into)

    def leaderboard(self, user_id: str, now: datetime, *, into: str | None = None) -> Reply:
        viewer = self.viewer(user_id, now)
        if viewer.is_admin:
            question = "revenue by rep"
        elif viewer.role is Role.MANAGER and len(viewer.teams) == 1:
            question = f"revenue team {next(iter(viewer.teams))}"
        else:
            question = "revenue by team"
        return self._answer(user_id, question, "leaderboard", now, into=into)

    def targets(self, user_id: str, now: datetime, *, into: str | None = None) -> Reply:
        decision = self._decide(self.viewer(user_id, now), Action.TARGETS, None, into)
        if not decision.allowed:
            return self._refusal(decision, "targets")
        lines = [f"*{word(self.fmt, 'targets.title')}*"]
        visible = visible_evaluations(self.service.check(now), decision)
        sep = self.fmt.t("sep")
        for evaluation in visible[:40]:
            view = alert_view(evaluation, self.fmt)
            lines.append(
                f"{view.emoji} *{view.kpi}*{sep}{mrkdwn_escape(view.scope)}{sep}{view.period}"
                f" — {view.actual} / {view.target} ({view.status})"
            )
        if len(visible) > 40:
            lines.append(self.fmt.tn("and_more", len(visible) - 40))
        chat_set = self._chat_targets(decision, now)
        if not visible and not chat_set:
            lines.append(word(self.fmt, "targets.none"))
        if chat_set:
            lines.append(f"*{word(self.fmt, 'targets.chat')}*")
            lines.extend(chat_set)
        text = "\n".join(lines)
        return self._shareable(user_id, "targets", text, text_blocks(text, self.fmt), into=into)

    def _chat_targets(self, decision: Decision, now: datetime) -> list[str]:
        """The targets set from chat and in force (future periods too), with who set them."""
        with self.service.engine.connect() as connection:
            changes = [c for c in latest_changes(connection) if c.value is not None]
        lines = []
        for change in changes[-CHAT_TARGETS_SHOWN:]:
            if not decision.shows(change.scope):
                continue
            when = self.fmt.datetime(change.set_at) if change.set_at else ""
            lines.append(
                f"• {self._target_what(change, now)} → {self._target_value(change)} "
                f"({word(self.fmt, 'targets.set_by', user=f'<@{change.set_by}>', time=when)})"
            )
        return lines

    def _target_what(self, change: TargetChange, now: datetime) -> str:
        org = self.settings.organisation
        period = parse_period(
            change.period_key, self.service.local_date(now), org.fiscal_year_start_month
        )
        sep = self.fmt.t("sep")
        kpi = self.fmt.kpi_label(KPIS[change.kpi])
        return f"*{kpi}*{sep}{mrkdwn_escape(self._describe(change.scope))}{sep}" + (
            self.fmt.period(period)
        )

    def _target_value(self, change: TargetChange) -> str:
        return "" if change.value is None else self.fmt.value(KPIS[change.kpi], change.value)

    def set_target(self, user_id: str, args: str, now: datetime) -> Reply:
        if not args.strip():
            return self.targets(user_id, now)  # "/kpi target" alone: the list
        decision = authorize(self.viewer(user_id, now), Action.TARGET)
        if not decision.allowed:
            return self._refusal(decision, "target")
        try:
            change = parse_target_command(
                args,
                self.service.local_date(now),
                self.service.snapshot().directory,
                self.settings.organisation.fiscal_year_start_month,
            )
        except TargetCommandError as error:
            problem = word(self.fmt, "target.problem", problem=mrkdwn_escape(str(error)))
            return self._say(f"{problem}\n{TARGET_USAGE}")
        with transaction(self.sessions) as session:
            record_change(session, change, user_id, now)
        what = self._target_what(change, now)
        if change.value is None:
            return self._say(word(self.fmt, "target.removed", what=what))
        return self._say(word(self.fmt, "target.set", what=what, value=self._target_value(change)))

    def sync(self, user_id: str, now: datetime) -> Reply:
        decision = authorize(self.viewer(user_id, now), Action.SYNC)
        if not decision.allowed:
            return self._refusal(decision, "sync")
        if self._sync is None:
            return self._say(word(self.fmt, "sync.unavailable"))
        summary = self._sync(now)
        return self._say(word(self.fmt, "sync.done", summary=mrkdwn_escape(summary)))

    def alerts(self, user_id: str, now: datetime, *, into: str | None = None) -> Reply:
        decision = self._decide(self.viewer(user_id, now), Action.ALERTS, None, into)
        if not decision.allowed:
            return self._refusal(decision, "alerts")
        firing = visible_evaluations(alerting.active_alerts(self.service, now), decision)
        text = mrkdwn_escape(render_alerts_text(firing, self.fmt))
        blocks = render_alerts_blocks(firing, self.fmt)
        return self._shareable(user_id, "alerts", text, blocks, into=into)

    # --- snoozes and subscriptions ------------------------------------------------------------

    def snooze(self, user_id: str, args: str, now: datetime) -> Reply:
        words = args.split()
        viewer = self.viewer(user_id, now)
        if not words:
            return self._list_silences(viewer, now)
        try:
            duration = parse_duration(words[-1])
        except ValueError:
            return self.help(user_id, now, problem=mrkdwn_escape(f"/kpi snooze {args}"))
        rest = words[:-1]
        kpi = None
        if rest and normalise(rest[0]) in ALIASES:
            kpi = ALIASES[normalise(rest[0])]
            rest = rest[1:]
        scope = None
        if rest:
            try:
                scope = parse_scope(" ".join(rest))
            except ValueError as error:
                return self.help(user_id, now, problem=mrkdwn_escape(str(error)))
        decision = authorize(viewer, Action.SNOOZE, scope)
        if not decision.allowed:
            return self._refusal(decision, self._describe(scope) if scope else "snooze")
        until = now + duration
        with transaction(self.sessions) as session:
            alerting.add_silence(session, None, until, user_id, now, kpi=kpi, scope=scope)
        what = " ".join(w for w in (kpi or "", self._describe(scope) if scope else "") if w)
        return self._say(
            word(
                self.fmt,
                "snoozed.ok",
                what=mrkdwn_escape(what or "*"),
                time=self.fmt.datetime(until),
            )
        )

    def _list_silences(self, viewer: Viewer, now: datetime) -> Reply:
        decision = authorize(viewer, Action.ALERTS)
        if not decision.allowed:
            return self._refusal(decision, "snooze")
        silences = [
            s
            for s in alerting.active_silences(self.sessions, now)
            # A silence of every scope is about the company as a whole.
            if decision.shows(Scope.company() if s.level is None else Scope(s.level, s.name or ""))
        ]
        lines = [f"*{word(self.fmt, 'snoozes.title')}*"]
        for s in silences[:40]:
            scope = "*" if s.level is None else self._describe(Scope(s.level, s.name or ""))
            lines.append(
                f"• {s.kpi or '*'} {mrkdwn_escape(scope)} {s.period_key or ''} → "
                f"{self.fmt.datetime(s.ends_at)} (<@{s.created_by}>)"
            )
        if not silences:
            lines.append(word(self.fmt, "snoozes.none"))
        return self._say("\n".join(lines))

    def subscribe(self, user_id: str, args: str, now: datetime) -> Reply:
        decision = authorize(self.viewer(user_id, now), Action.SUBSCRIBE)
        if not decision.allowed:
            return self._refusal(decision, "subscribe")
        words = args.split()
        usage = "`/kpi subscribe #channel 08:30 [team Lyon] [mon-fri]`"
        channel = _channel(words[0]) if words else None
        if channel is None or len(words) < 2:
            return self.help(user_id, now, problem=usage)
        try:
            at = parse_clock_time(words[1])
            days: tuple[int, ...] = WEEKDAYS
            rest = words[2:]
            if rest and re.fullmatch(r"[a-z]{3}[a-z]*(-[a-z]{3}[a-z]*)?(,[a-z]+)*", rest[-1]):
                try:
                    days = parse_weekdays(rest[-1])
                    rest = rest[:-1]
                except ValueError:
                    pass  # not weekdays: part of the scope ("team Lyon")
            scope = parse_scope(" ".join(rest)) if rest else Scope.company()
        except ValueError as error:
            return self.help(user_id, now, problem=mrkdwn_escape(str(error)) + " " + usage)
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
            )
        names = ", ".join(_DAY_NAMES[d] for d in days)
        return self._say(
            word(self.fmt, "subscribed", channel=f"<#{channel}>", time=at, zone=zone, days=names)
        )

    def unsubscribe(self, user_id: str, args: str, now: datetime) -> Reply:
        decision = authorize(self.viewer(user_id, now), Action.SUBSCRIBE)
        if not decision.allowed:
            return self._refusal(decision, "unsubscribe")
        channel = _channel(args.split()[0]) if args.split() else None
        if channel is None:
            return self.help(user_id, now, problem="`/kpi unsubscribe #channel`")
        with transaction(self.sessions) as session:
            n = remove_subscriptions(session, channel)
        return self._say(word(self.fmt, "unsubscribed", n=n, channel=f"<#{channel}>"))

    # --- alert buttons ---------------------------------------------------------------------

    def _refused_on_alerts(
        self, user_id: str, key: str, action: Action, now: datetime, where: MessageRef
    ) -> Reply | None:
        """The refusal for a button on alert message ``key`` clicked by ``user_id`` on the
        message ``where``, or None if allowed. A button acts only on its own message (a
        value copied onto another message is refused), and only for someone who manages
        every alert still firing in it."""
        posted = alerting.posted_alerts(self.sessions, key)
        if posted is None or (posted.channel, posted.ts) != (where.channel, where.ts):
            text = word(self.fmt, "refused.other_message")
            return Reply(text, text_blocks(text, self.fmt), refused=True)
        viewer = self.viewer(user_id, now)
        for scope in posted.scopes:
            decision = authorize(viewer, action, scope)
            if not decision.allowed:
                return self._refusal(decision, self._describe(scope))
        return None

    def acknowledge_alerts(
        self, user_id: str, key: str, now: datetime, where: MessageRef
    ) -> MessageUpdate | Reply | None:
        refused = self._refused_on_alerts(user_id, key, Action.ACKNOWLEDGE, now, where)
        if refused is not None:
            return refused
        update = alerting.acknowledge(self.sessions, key, user_id, now, self.fmt)
        return None if update is None else MessageUpdate(**dataclasses.asdict(update))

    def snooze_alerts(
        self, user_id: str, value: str, now: datetime, where: MessageRef
    ) -> MessageUpdate | Reply | None:
        key = value.rpartition("|")[0]
        refused = self._refused_on_alerts(user_id, key, Action.SNOOZE, now, where)
        if refused is not None:
            return refused
        update = alerting.snooze(self.sessions, value, user_id, now, self.fmt)
        return None if update is None else MessageUpdate(**dataclasses.asdict(update))

    # --- App Home --------------------------------------------------------------------------

    def home(self, user_id: str, now: datetime) -> dict[str, Any]:
        header = {
            "type": "header",
            "text": {"type": "plain_text", "text": word(self.fmt, "home.title")},
        }
        try:
            viewer = self.viewer(user_id, now)
        except UserLookupFailed as error:
            return {"type": "home", "blocks": [header, *self.identity_problem(error).blocks]}
        scope = viewer.home_scope
        decision = authorize(viewer, Action.HOME, scope)
        if not decision.allowed:
            refusal = self._refusal(decision, self._describe(scope))
            return {"type": "home", "blocks": [header, *refusal.blocks]}
        digest = self.service.digest(now, scope=scope, title=self._describe(scope))
        digest = visible_digest(digest, decision)
        return {"type": "home", "blocks": [header, *render_digest_blocks(digest, self.fmt)]}

    def apology(self, now: datetime) -> Reply:
        return self._say(word(self.fmt, "oops"))


_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _channel(token: str) -> str | None:
    match = CHANNEL.fullmatch(token) if token.startswith("<") else CHANNEL.match(token)
    if match is None:
        return None
    return match.group(1) or match.group(2)
