"""Rendering of the alert messages (grouped, with their buttons) and of plain mrkdwn as
validated blocks.

Built on ``bot.rendering`` (its Jinja environment, ``alert_view``, ``fit_blocks`` and
``validate_blocks``): every payload leaving here has passed ``slack_sdk.models`` validation
and Slack's limits. CRM text goes through ``mrkdwn_escape``; words come from the catalogs
(``bot/locale``).
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
    return fmt.t("resolved.line", what=title, status=view.status, figures=sep.join(figures))


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
            resolved=None if a["resolved_at"] is None else fmt.t("resolved", time=a["resolved_at"]),
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
        ack_label=fmt.t("acknowledge"),
        snooze_label=fmt.t("snooze"),
        snooze_options=tuple(SnoozeOption(fmt.t(f"snooze.{d}"), f"{key}|{d}") for d in SNOOZES),
    )


def render_alert_group(view: AlertGroupView, fmt: Formatter) -> Blocks:
    return render_blocks("slack/alert_group.json.j2", fmt, view=view)


def alert_group_text(alerts: list[dict[str, Any]], fmt: Formatter) -> str:
    firing = [a for a in alerts if a["resolved_at"] is None]
    head = ("⚠️ " if firing else "✅ ") + fmt.tn("alert_count", len(firing) or len(alerts))
    return "\n".join([head, *(a["text"] for a in alerts[:ALERTS_PER_MESSAGE])])
