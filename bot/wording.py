"""The short messages of the conversation core in words, for every surface: help, problems,
refusals, confirmations, the list of snoozes. Words come from
``bot.chat_rendering.word`` in the organisation's language. With ``markup`` (Slack), CRM text
is escaped for mrkdwn and emphasis is ``*bold*``; without it (the terminal), plain text.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal

from bot.formatting import Formatter, translations
from bot.rendering import mrkdwn_escape
from conversation.authorization import Refusal
from conversation.views import (
    Digest,
    Help,
    Notice,
    Param,
    Phrase,
    Problem,
    Refused,
    SilenceList,
    View,
    WhoAreYou,
)
from metrics.kpis import KPIS
from metrics.periods import Period
from metrics.scopes import Scope

LIST_SHOWN = 40
# Delivery errors with their own advice in the catalogs ("advice.<error>"); others get the
# general one.
ADVISED = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "token_revoked",
        "account_inactive",
        "webhook_not_configured",
        "webhook_not_found",
        "webhook_unauthorized",
        # The Teams bot's (bot.teams.notifier).
        "teams_unknown_conversation",
        "teams_bot_removed",
        "teams_credentials_refused",
    }
)


def help_examples(language: str) -> list[str]:
    """The example questions of ``language``'s catalog (``help.examples``), one a line: a
    translator changes them there, with the words they show."""
    return translations(language).gettext("help.examples").splitlines()


class Wording:
    """The short messages of the core in words: help, problems, refusals, notices, lists."""

    def __init__(self, fmt: Formatter, *, markup: bool = True) -> None:
        self.fmt = fmt
        self.markup = markup

    def escape(self, text: str) -> str:
        return mrkdwn_escape(text) if self.markup else text

    def bold(self, text: str) -> str:
        return f"*{text}*" if self.markup else text

    def user(self, user_id: str) -> str:
        return f"<@{user_id}>" if self.markup else user_id

    def channel(self, channel_id: str) -> str:
        """A Slack channel id as a link; any other destination (``teams:sales``) as it is."""
        if self.markup and ":" not in channel_id:
            return f"<#{channel_id}>"
        return self.escape(channel_id)

    def param(self, value: Param) -> str:
        match value:
            case datetime():
                return self.fmt.datetime(value)
            case Scope():
                return self.escape(self.fmt.scope(value))
            case Period():
                return self.fmt.period(value)
            case tuple():
                return ", ".join(self.escape(str(v)) for v in value)
            case Phrase():
                return self.fmt.t(value.code, **{k: self.param(v) for k, v in value.params.items()})
            case _:
                return self.escape(str(value))

    def what(self, kpi: str, scope: Scope, period: Period) -> str:
        sep = self.fmt.t("sep")
        label = self.fmt.kpi_label(KPIS[kpi])
        return f"{self.bold(label)}{sep}{self.param(scope)}{sep}{self.fmt.period(period)}"

    def help(self, problem: Problem | None) -> str:
        lines = [self.problem(problem)] if problem else []
        lines.append(self.bold("/kpi") + " — " + ", ".join(f"`{k}`" for k in KPIS))
        lines.extend(f"• {example}" for example in self.fmt.t("help.examples").splitlines())
        if self.fmt.language == "fr":
            # French first for a French organisation; the English words work as well.
            lines.append(self.fmt.t("help.english"))
            lines.append(" · ".join(help_examples("en")[:-3]))
        else:
            lines.append(self.fmt.t("help.french") + " " + " · ".join(help_examples("fr")[:3]))
        return "\n".join(lines)

    def problem(self, problem: Problem) -> str:
        params = dict(problem.params)
        key = f"problem.{problem.code}"
        if "level" in params:
            key += f".{params.pop('level')}"
        values = {k: self.param(v) for k, v in params.items()}
        if problem.code.startswith("target."):
            # Why the target was not set, then how to write one.
            why = self.fmt.t(f"target_error.{problem.code.removeprefix('target.')}", **values)
            text = self.fmt.t("problem.target", why=why)
        else:
            text = self.fmt.t(key, **values).strip()
        if problem.known:
            text += " " + self.fmt.t("known", names=self.param(problem.known))
        if problem.suggestions:
            options = self.fmt.t("or").join(f"`{self.escape(s)}`" for s in problem.suggestions)
            text += " " + self.fmt.t("did_you_mean", options=options)
        return text

    def refused(self, view: Refused) -> str:
        what = self.param(view.what)
        match view.reason:
            case Refusal.UNKNOWN_USER:
                return self.fmt.t("refused.nothing")
            case Refusal.ADMIN_ONLY:
                return self.fmt.t("refused.admin", command=what)
            case Refusal.NOT_YOURS:
                return self.fmt.t("refused.not_yours")
            case Refusal.OTHER_MESSAGE:
                return self.fmt.t("refused.other_message")
            case Refusal.SCOPE | Refusal.CHANNEL:
                return self.fmt.t("refused.scope", what=what)

    def notice(self, view: Notice) -> str:
        p = view.params
        match view.code:
            case "target.set" | "target.removed":
                assert isinstance(p["kpi"], str) and isinstance(p["scope"], Scope)
                assert isinstance(p["period"], Period)
                what = self.what(p["kpi"], p["scope"], p["period"])
                value = p.get("value")
                shown = self.fmt.value(KPIS[p["kpi"]], value) if isinstance(value, Decimal) else ""
                return self.fmt.t(view.code, what=what, value=shown)
            case "subscribed" | "subscribed.waterfall":
                days = p["days"]
                assert isinstance(days, tuple)
                names = ", ".join(self.fmt.weekday(int(d)) for d in days)
                # The period's words with their article ("du trimestre"): one id per grain.
                grain = self.fmt.t(f"subscribed.grain.{p['grain']}") if "grain" in p else ""
                return self.fmt.t(
                    view.code if p.get("chart", True) else f"{view.code}.no_chart",
                    channel=self.channel(str(p["channel"])),
                    time=p["time"],
                    zone=p["zone"],
                    days=names,
                    grain=grain,
                )
            case "notice.delivery_failure":
                error = str(p["error"])
                advice = f"advice.{error}" if error in ADVISED else "advice.other"
                return self.fmt.t(
                    view.code,
                    channel=self.channel(str(p["channel"])),
                    error=self.escape(error),
                    advice=self.fmt.t(advice),
                    message=self.escape(str(p["message"])),
                )
            case "unsubscribed":
                return self.fmt.t("unsubscribed", n=p["n"], channel=self.channel(str(p["channel"])))
            case "snoozed":
                parts = [self.param(p["kpi"]), self.param(p["scope"])]
                what = " ".join(x for x in parts if x) or "*"
                return self.fmt.t("snoozed.ok", what=what, time=self.param(p["until"]))
            case _:
                return self.fmt.t(view.code, **{k: self.param(v) for k, v in p.items()})

    def silences(self, view: SilenceList) -> str:
        lines = [self.bold(self.fmt.t("snoozes.title"))]
        for s in view.silences[:LIST_SHOWN]:
            scope = "*" if s.level is None else self.param(Scope(s.level, s.name or ""))
            lines.append(
                f"• {s.kpi or '*'} {scope} {s.period_key or ''} → "
                f"{self.fmt.datetime(s.ends_at)} ({self.user(s.created_by)})"
            )
        if not view.silences:
            lines.append(self.fmt.t("snoozes.none"))
        return "\n".join(lines)

    def setup_hint(self, user_id: str) -> str:
        return self.fmt.t("setup.admin", user=user_id)

    def short(self, view: View) -> str | None:
        """A view that is a short message, in words; None for the data views."""
        match view:
            case Help():
                return self.help(view.problem)
            case Refused():
                return self.refused(view)
            case WhoAreYou():
                return self.fmt.t("refused.lookup", error=self.escape(view.error))
            case Notice():
                return self.notice(view)
            case SilenceList():
                return self.silences(view)
        return None


def titled(digest: Digest, fmt: Formatter) -> Digest:
    """A digest on demand, titled with its scope."""
    return dataclasses.replace(digest, title=digest.title or fmt.scope(digest.scope))
