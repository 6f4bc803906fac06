"""Rendering of the alert messages (grouped, with their buttons) and of plain mrkdwn as
validated blocks.

Built on ``bot.rendering`` (its Jinja environment, ``alert_view``, ``fit_blocks`` and
``validate_blocks``): every payload leaving here has passed ``slack_sdk.models`` validation
and Slack's limits. CRM text goes through ``mrkdwn_escape``; words come from the catalogs
(``bot/locale``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.formatting import Formatter
from bot.rendering import (
    AlertView,
    ContributorView,
    alert_view,
    environment,
    fit_blocks,
    mrkdwn_escape,
    validate_blocks,
)
from conversation.authorization import Action
from conversation.views import AlertGroup, AlertNote, AlertsResolved
from metrics.alerts import LogEntry
from metrics.evaluation import Evaluation

Blocks = list[dict[str, Any]]


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
    """What an alert message stores about one alert, to draw it again on any surface when it
    is acknowledged, snoozed or resolved: its figures as first posted, formatted in the
    organisation's words, CRM text raw (an ``AlertView`` as a dict). A reminder (``previous``:
    what was last notified) says what changed since."""
    return {
        "key": key,
        "status": evaluation.status.value,
        "alert": dataclasses.asdict(alert_view(evaluation, fmt, previous)),
        "resolved_at": None,
    }


def snapshot_view(snapshot: Mapping[str, Any]) -> AlertView | None:
    """The alert of a snapshot; None for one stored before snapshots were surface-neutral,
    which carries its Slack ``block`` and its plain ``text`` instead."""
    stored = snapshot.get("alert")
    if stored is None:
        return None
    contributors = tuple(ContributorView(**c) for c in stored["contributors"])
    return AlertView(**{**stored, "contributors": contributors})


def alert_line(snapshot: Mapping[str, Any], fmt: Formatter, *, markup: bool = True) -> str:
    """One alert on one line: "Revenue · Team Lyon · Q4 2026 — at risk"."""
    view = snapshot_view(snapshot)
    if view is None:
        return str(snapshot["text"])
    sep = fmt.t("sep")
    line = f"{view.kpi}{sep}{view.scope}{sep}{view.period} — {view.status}"
    return mrkdwn_escape(line) if markup else line


def resolution_line(evaluation: Evaluation, fmt: Formatter, *, markup: bool = True) -> str:
    """A resolved alert with today's figures and why it resolved: "Revenue · Team Lyon ·
    Q4 2026 — on track: actual $300,000 · target $480,000 · forecast $500,000"."""
    view = alert_view(evaluation, fmt)
    sep = fmt.t("sep")
    figures = [f"{fmt.t('actual')} {view.actual}", f"{fmt.t('target')} {view.target}"]
    if view.forecast:
        figures.append(f"{fmt.t('forecast')} {view.forecast}")
    if markup:
        title = f"*{view.kpi}*{sep}{mrkdwn_escape(view.scope)}{sep}{view.period}"
    else:
        title = f"{view.kpi}{sep}{view.scope}{sep}{view.period}"
    return fmt.t("resolved.line", what=title, status=view.status, figures=sep.join(figures))


def resolved_reply(view: AlertsResolved, fmt: Formatter, *, markup: bool = True) -> str:
    lines = [resolution_line(e, fmt, markup=markup) for e in view.evaluations]
    return fmt.t("resolved.reply", what="\n".join(lines))


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
    ack_label: str | None  # the Acknowledge button, when offered
    snooze_label: str
    snooze_options: tuple[SnoozeOption, ...]  # the Snooze menu, when offered


ALERTS_PER_MESSAGE = 15


def _block(snapshot: Mapping[str, Any], fmt: Formatter) -> dict[str, Any]:
    view = snapshot_view(snapshot)
    if view is None:
        return dict(snapshot["block"])
    macro = environment().get_template("slack/_alert.j2").module.alert  # type: ignore[attr-defined]
    return dict(json.loads(str(macro(view, fmt))))


def _headline(group: AlertGroup, fmt: Formatter) -> str:
    firing = [a for a in group.alerts if a["resolved_at"] is None]
    return ("⚠️ " if firing else "✅ ") + fmt.tn("alert_count", len(firing) or len(group.alerts))


def note_text(note: AlertNote, fmt: Formatter, *, markup: bool = True) -> str:
    """ "Acknowledged by @someone at …" / "Snoozed by @someone until …"."""
    user = f"<@{note.user}>" if markup else note.user
    code = "acked" if note.action is Action.ACKNOWLEDGE else "snoozed"
    return fmt.t(code, user=user, time=fmt.datetime(note.at))


def alert_group_view(group: AlertGroup, fmt: Formatter) -> AlertGroupView:
    shown = group.alerts[:ALERTS_PER_MESSAGE]
    items = tuple(
        AlertItemView(
            block=_block(a, fmt),
            resolved=None if a["resolved_at"] is None else fmt.t("resolved", time=a["resolved_at"]),
        )
        for a in shown
    )
    left_out = len(group.alerts) - len(shown)
    snoozes = group.snooze_for if Action.SNOOZE in group.actions else ()
    return AlertGroupView(
        key=group.key,
        title=_headline(group, fmt),
        items=items,
        more=fmt.tn("and_more", left_out) if left_out else None,
        notes=tuple(note_text(n, fmt) for n in group.notes),
        ack_label=fmt.t("acknowledge") if Action.ACKNOWLEDGE in group.actions else None,
        snooze_label=fmt.t("snooze"),
        snooze_options=tuple(
            SnoozeOption(fmt.t(f"snooze.{d}"), f"{group.key}|{d}") for d in snoozes
        ),
    )


def render_alert_group(group: AlertGroup, fmt: Formatter) -> Blocks:
    return render_blocks("slack/alert_group.json.j2", fmt, view=alert_group_view(group, fmt))


def alert_group_text(group: AlertGroup, fmt: Formatter, *, markup: bool = True) -> str:
    """The message in plain lines: the Slack fallback (``markup``), or the terminal's."""
    lines = [alert_line(a, fmt, markup=markup) for a in group.alerts[:ALERTS_PER_MESSAGE]]
    if not markup:
        lines.extend(note_text(n, fmt, markup=False) for n in group.notes)
    return "\n".join([_headline(group, fmt), *lines])
