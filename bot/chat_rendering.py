"""Rendering of the chat-only messages: grouped alert messages with their buttons, help,
refusals, the "Share in channel" button, lists of targets and snoozes, and the App Home view.

Built on ``bot.rendering`` (its Jinja environment, ``alert_view``, ``fit_blocks`` and
``validate_blocks``): every payload leaving here has passed ``slack_sdk.models`` validation
and Slack's limits. CRM text goes through ``mrkdwn_escape``; words are English or French.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.formatting import Formatter
from bot.rendering import (
    alert_view,
    environment,
    fit_blocks,
    mrkdwn_escape,
    validate_blocks,
)
from metrics.alerts import LogEntry
from metrics.evaluation import Evaluation

Blocks = list[dict[str, Any]]

# The words the chat surface needs beyond bot.formatting's vocabulary. No & < > in them.
_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "acknowledge": "Acknowledge",
        "snooze": "Snooze",
        "snooze.1d": "Snooze 1 day",
        "snooze.3d": "Snooze 3 days",
        "snooze.1w": "Snooze 1 week",
        "acked": "👀 Acknowledged by {user} at {time}",
        "snoozed": "😴 Snoozed by {user} until {time}",
        "resolved": "✅ Resolved {time}",
        "resolved.reply": "✅ Resolved:\n{what}",
        "resolved.line": "{what} — now {status}: {figures}",
        "share": "Share in channel",
        "shared_by": "Shared by {user}",
        "refused.scope": "Sorry, {what} is not something your role lets you see. "
        "Ask your manager or sales-ops if you need it.",
        "refused.admin": "Sorry, `/kpi {command}` is for admins (sales leadership and sales-ops).",
        "refused.nothing": "Sorry, kpibot does not know you yet: ask sales-ops to add you.",
        "refused.not_yours": "Sorry, only an admin, the team's manager or the rep concerned "
        "can act on these alerts.",
        "refused.other_message": "That button does not belong to this message.",
        "refused.lookup": "Sorry, Slack could not tell me who you are ({error}), "
        "so I cannot tell what you may see. Ask sales-ops to check that kpibot has the "
        "users:read.email scope, or to list your user id under access.",
        "known": "Known: {names}.",
        "problem.unknown_kpi": "I don't know the KPI “{text}”.",
        "problem.unknown_scope.team": "I don't know the team “{name}”.",
        "problem.unknown_scope.region": "I don't know the region “{name}”.",
        "problem.unknown_scope.rep": "I don't know the rep “{name}”.",
        "problem.not_understood": "I understood {kpi}, but not “{text}”.",
        "problem.period": "{text}",
        "problem.since.unknown": "I don't understand “since {text}”: say “since last week”, "
        "“since yesterday”, “since Monday”, “since 2026-11-23” or “since 10 days”.",
        "problem.since.future": "{text} is in the future: ask for the changes since a day that "
        "has passed.",
        "problem.since.not_a_date": "“{text}” is not a date: write it like 2026-11-23.",
        "problem.since.not_pipeline": "Changes since a day are kept for the pipeline, not for "
        "{kpi}: try “pipeline changes since last week”.",
        "problem.target": "I could not set that target: {text}\n"
        "`/kpi target revenue team Lyon 2026-Q4 800k` (or `off` to remove it)",
        "problem.usage.subscribe": "{text} Usage: `/kpi subscribe #channel 08:30 [team Lyon] "
        "[mon-fri]`",
        "problem.usage.unsubscribe": "Usage: `/kpi unsubscribe #channel`",
        "problem.usage.snooze": "I could not read “{text}”. Usage: `/kpi snooze [kpi] "
        "[team Lyon] 2d`",
        "setup.admin": "👋 kpibot has no `access` section yet, so nobody is an admin. To make "
        "yourself one, add these lines to kpibot.yaml and restart kpibot:\n"
        "```access:\n  admins: [{user}]```",
        "did_you_mean": "Did you mean {options}?",
        "or": " or ",
        "home.title": "Your numbers",
        "home.alerts": "Active alerts",
        "home.none": "No active alerts. 🎉",
        "targets.title": "Targets",
        "targets.none": "No target you can see is set. Sales-ops sets them in the config "
        "or with `/kpi target`.",
        "targets.chat": "Set from chat",
        "targets.set_by": "by {user}, {time}",
        "target.set": "🎯 Target set: {what} → {value}.",
        "target.removed": "🎯 Target removed: {what}.",
        "target.problem": "I could not set that target: {problem}",
        "sync.done": "🔄 Sync finished: {summary}",
        "sync.unavailable": "Sync is not available in this process.",
        "help.french": "French words work too:",
        "help.english": "En anglais aussi :",
        "snoozes.title": "Snoozed alerts",
        "snoozes.none": "Nothing is snoozed.",
        "snoozed.ok": "😴 Snoozed {what} until {time}.",
        "subscribed": "Subscribed {channel} to the daily digest at {time} ({zone}), {days}.",
        "unsubscribed": "Removed {n} digest subscription(s) from {channel}.",
        "leaderboard.title": "Leaderboard",
        "not_found.rep": "I can't match {who} to a rep in the CRM.",
        "oops": "Sorry, something went wrong on our side. It has been logged; please try "
        "again in a minute.",
        "stale.notice": "⏳ CRM data is stale since {stale_at} ({zone}): the last successful "
        "sync was on {last_sync}. KPI alerts are held until a sync succeeds; `kpibot status` "
        "shows the last sync and its error.",
        "stale.resolved": "✅ Resolved: CRM data was stale from {stale_at} to {synced} "
        "({zone}); the last successful sync before that was on {last_sync}.",
        "stale.fresh": "✅ CRM data is fresh again: a sync succeeded on {synced} ({zone}). It "
        "had been stale since {stale_at}, after the last successful sync on {last_sync}. KPI "
        "alerts resume.",
    },
    "fr": {
        "acknowledge": "Prendre en charge",
        "snooze": "Mettre en sourdine",
        "snooze.1d": "Sourdine 1 jour",
        "snooze.3d": "Sourdine 3 jours",
        "snooze.1w": "Sourdine 1 semaine",
        "acked": "👀 Pris en charge par {user} à {time}",
        "snoozed": "😴 En sourdine par {user} jusqu'au {time}",
        "resolved": "✅ Résolu le {time}",
        "resolved.reply": "✅ Résolu\u00a0:\n{what}",
        "resolved.line": "{what} — désormais {status}\u00a0: {figures}",
        "share": "Partager dans le canal",
        "shared_by": "Partagé par {user}",
        "refused.scope": "Désolé, votre rôle ne permet pas de voir {what}. "
        "Demandez à votre manager ou à l'équipe sales-ops si vous en avez besoin.",
        "refused.admin": "Désolé, `/kpi {command}` est réservé aux administrateurs "
        "(direction commerciale et sales-ops).",
        "refused.nothing": "Désolé, kpibot ne vous connaît pas encore\u00a0: demandez à "
        "l'équipe sales-ops de vous ajouter.",
        "refused.not_yours": "Désolé, seuls un administrateur, le manager de l'équipe ou le "
        "commercial concerné peuvent agir sur ces alertes.",
        "refused.other_message": "Ce bouton n'appartient pas à ce message.",
        "refused.lookup": "Désolé, Slack n'a pas pu me dire qui vous êtes ({error}), je ne "
        "peux donc pas savoir ce que vous pouvez voir. Demandez à l'équipe sales-ops de "
        "vérifier que kpibot a le droit users:read.email, ou d'inscrire votre identifiant "
        "dans access.",
        "known": "Connus\u00a0: {names}.",
        "problem.unknown_kpi": "Je ne connais pas l'indicateur «\u00a0{text}\u00a0».",
        "problem.unknown_scope.team": "Je ne connais pas l'équipe «\u00a0{name}\u00a0».",
        "problem.unknown_scope.region": "Je ne connais pas la région «\u00a0{name}\u00a0».",
        "problem.unknown_scope.rep": "Je ne connais pas le commercial «\u00a0{name}\u00a0».",
        "problem.not_understood": "J'ai compris {kpi}, mais pas «\u00a0{text}\u00a0».",
        "problem.period": "{text}",
        "problem.since.unknown": "Je ne comprends pas «\u00a0depuis {text}\u00a0»\u00a0: dites "
        "«\u00a0depuis la semaine dernière\u00a0», «\u00a0depuis hier\u00a0», «\u00a0depuis "
        "lundi\u00a0», «\u00a0depuis le 2026-11-23\u00a0» ou «\u00a0depuis 10 jours\u00a0».",
        "problem.since.future": "Le {text} n'est pas encore passé\u00a0: demandez les "
        "mouvements depuis un jour passé.",
        "problem.since.not_a_date": "«\u00a0{text}\u00a0» n'est pas une date\u00a0: écrivez-la "
        "comme 2026-11-23.",
        "problem.since.not_pipeline": "Les mouvements depuis une date sont suivis pour le "
        "pipeline, pas pour {kpi}\u00a0: essayez «\u00a0mouvements du pipeline depuis "
        "lundi\u00a0».",
        "problem.target": "Je n'ai pas pu fixer cet objectif\u00a0: {text}\n"
        "`/kpi objectif ca équipe Lyon 2026-Q4 800k` (ou `off` pour le retirer)",
        "problem.usage.subscribe": "{text} Usage\u00a0: `/kpi abonner #canal 08:30 "
        "[équipe Lyon] [lun-ven]`",
        "problem.usage.unsubscribe": "Usage\u00a0: `/kpi desabonner #canal`",
        "problem.usage.snooze": "Je n'ai pas compris «\u00a0{text}\u00a0». Usage\u00a0: "
        "`/kpi sourdine [indicateur] [équipe Lyon] 2j`",
        "setup.admin": "👋 kpibot n'a pas encore de section `access`\u00a0: personne n'est "
        "administrateur. Pour le devenir, ajoutez ces lignes à kpibot.yaml puis redémarrez "
        "kpibot\u00a0:\n```access:\n  admins: [{user}]```",
        "did_you_mean": "Vouliez-vous dire {options}\u00a0?",
        "or": " ou ",
        "home.title": "Vos chiffres",
        "home.alerts": "Alertes en cours",
        "home.none": "Aucune alerte en cours. 🎉",
        "targets.title": "Objectifs",
        "targets.none": "Aucun objectif visible pour vous. L'équipe sales-ops les définit "
        "dans la configuration ou avec `/kpi objectif`.",
        "targets.chat": "Définis depuis Slack",
        "targets.set_by": "par {user}, le {time}",
        "target.set": "🎯 Objectif fixé : {what} → {value}.",
        "target.removed": "🎯 Objectif retiré : {what}.",
        "target.problem": "Je n'ai pas pu fixer cet objectif : {problem}",
        "sync.done": "🔄 Synchronisation terminée : {summary}",
        "sync.unavailable": "La synchronisation n'est pas disponible dans ce processus.",
        "help.french": "French words work too:",
        "help.english": "En anglais aussi :",
        "snoozes.title": "Alertes en sourdine",
        "snoozes.none": "Aucune alerte en sourdine.",
        "snoozed.ok": "😴 {what} en sourdine jusqu'au {time}.",
        "subscribed": "{channel} recevra le résumé quotidien à {time} ({zone}), {days}.",
        "unsubscribed": "{n} abonnement(s) au résumé retiré(s) de {channel}.",
        "leaderboard.title": "Classement",
        "not_found.rep": "Je ne trouve pas {who} parmi les commerciaux du CRM.",
        "oops": "Désolé, un problème est survenu de notre côté. Il a été enregistré\u00a0; "
        "réessayez dans une minute.",
        "stale.notice": "⏳ Les données du CRM sont périmées depuis le {stale_at} ({zone})\u00a0: "
        "la dernière synchronisation réussie date du {last_sync}. Les alertes KPI sont "
        "suspendues jusqu'à la prochaine synchronisation réussie\u00a0; `kpibot status` "
        "indique la dernière synchronisation et son erreur.",
        "stale.resolved": "✅ Résolu\u00a0: les données du CRM étaient périmées du {stale_at} "
        "au {synced} ({zone})\u00a0; la synchronisation réussie précédente datait du "
        "{last_sync}.",
        "stale.fresh": "✅ Les données du CRM sont à jour\u00a0: synchronisation réussie le "
        "{synced} ({zone}). Elles étaient périmées depuis le {stale_at}, après la "
        "synchronisation réussie du {last_sync}. Les alertes KPI reprennent.",
    },
}


def word(fmt: Formatter, key: str, **values: object) -> str:
    words = _WORDS.get(fmt.language, _WORDS["en"])
    return words[key].format(**values)


def render_blocks(name: str, fmt: Formatter, **context: object) -> Blocks:
    """A template of ours rendered, fitted to Slack's limits and validated."""
    text = environment().get_template(name).render(fmt=fmt, **context)
    blocks = json.loads(text)
    if not isinstance(blocks, list):
        raise TypeError(f"{name} must render a JSON array of blocks")
    fitted = fit_blocks(blocks, fmt)
    validate_blocks(fitted)
    return fitted


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def text_blocks(text: str, fmt: Formatter) -> Blocks:
    """Plain mrkdwn (already escaped) as validated blocks."""
    blocks = fit_blocks([_section(text)], fmt)
    validate_blocks(blocks)
    return blocks


# --- alert messages ------------------------------------------------------------------------------


def alert_snapshot(
    evaluation: Evaluation, fmt: Formatter, key: str, previous: LogEntry | None = None
) -> dict[str, Any]:
    """What an alert message stores about one alert, to re-render it when it is acknowledged,
    snoozed or resolved: its section block as first posted and a one-line title. A reminder
    (``previous``: what was last notified) says what changed since."""
    view = alert_view(evaluation, fmt, previous)
    macro = environment().get_template("slack/_alert.j2").module.alert  # type: ignore[attr-defined]
    block = json.loads(str(macro(view, fmt)))
    sep = fmt.t("sep")
    title = f"{view.emoji} *{view.kpi}*{sep}{mrkdwn_escape(view.scope)}{sep}{view.period}"
    plain = f"{view.kpi}{sep}{view.scope}{sep}{view.period} — {view.status}"
    return {
        "key": key,
        "status": evaluation.status.value,
        "title": title,
        "text": mrkdwn_escape(plain),
        "block": block,
        "resolved_at": None,
    }


def resolution_line(evaluation: Evaluation, fmt: Formatter) -> str:
    """A resolved alert with today's figures and why it resolved: "Revenue · Team Lyon ·
    Q4 2026 — on track: actual $300,000 · target $480,000 · forecast $500,000"."""
    view = alert_view(evaluation, fmt)
    sep = fmt.t("sep")
    figures = [f"{fmt.t('actual')} {view.actual}", f"{fmt.t('target')} {view.target}"]
    if view.forecast:
        figures.append(f"{fmt.t('forecast')} {view.forecast}")
    title = f"*{view.kpi}*{sep}{mrkdwn_escape(view.scope)}{sep}{view.period}"
    return word(fmt, "resolved.line", what=title, status=view.status, figures=sep.join(figures))


@dataclass(frozen=True)
class AlertItemView:
    block: dict[str, Any]  # the alert's section, as first posted
    resolved: str | None  # "✅ Resolved 26 Nov 2026, 14:02" once resolved


@dataclass(frozen=True)
class SnoozeOption:
    label: str
    value: str  # "<message key>|1d"


@dataclass(frozen=True)
class AlertGroupView:
    """Context of ``slack/alert_group.json.j2``."""

    key: str  # the message's idempotency key: what the buttons act on
    title: str  # "⚠️ 3 alerts"
    items: tuple[AlertItemView, ...]
    more: str | None
    notes: tuple[str, ...]  # who acknowledged / snoozed
    active: bool  # show the buttons: something still fires
    ack_label: str
    snooze_label: str
    snooze_options: tuple[SnoozeOption, ...]


SNOOZES = ("1d", "3d", "1w")
ALERTS_PER_MESSAGE = 15


def alert_group_view(
    key: str,
    alerts: list[dict[str, Any]],
    fmt: Formatter,
    notes: tuple[str, ...] = (),
) -> AlertGroupView:
    shown = alerts[:ALERTS_PER_MESSAGE]
    firing = [a for a in alerts if a["resolved_at"] is None]
    items = tuple(
        AlertItemView(
            block=a["block"],
            resolved=None
            if a["resolved_at"] is None
            else word(fmt, "resolved", time=a["resolved_at"]),
        )
        for a in shown
    )
    count = len(firing) if firing else len(alerts)
    title = ("⚠️ " if firing else "✅ ") + fmt.tn("alert_count", count)
    return AlertGroupView(
        key=key,
        title=title,
        items=items,
        more=fmt.tn("and_more", len(alerts) - len(shown)) if len(alerts) > len(shown) else None,
        notes=notes,
        active=bool(firing),
        ack_label=word(fmt, "acknowledge"),
        snooze_label=word(fmt, "snooze"),
        snooze_options=tuple(SnoozeOption(word(fmt, f"snooze.{d}"), f"{key}|{d}") for d in SNOOZES),
    )


def render_alert_group(view: AlertGroupView, fmt: Formatter) -> Blocks:
    return render_blocks("slack/alert_group.json.j2", fmt, view=view)


def alert_group_text(alerts: list[dict[str, Any]], fmt: Formatter) -> str:
    firing = [a for a in alerts if a["resolved_at"] is None]
    head = ("⚠️ " if firing else "✅ ") + fmt.tn("alert_count", len(firing) or len(alerts))
    return "\n".join([head, *(a["text"] for a in alerts[:ALERTS_PER_MESSAGE])])
