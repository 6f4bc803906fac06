"""The conversation core's views as Adaptive Cards, for the Teams bot (version 1.5) and for
Workflows webhooks (version 1.4, without bot actions).

The layout lives in ``templates/teams/*.json.j2``, over the same template contexts as Slack's
(``bot.rendering``: every number and word already formatted by the ``Formatter``); the short
messages are worded by ``bot.wording`` in Teams markdown. CRM text goes through ``card_escape``.
Every card leaving here has been fitted under ``MAX_CARD_BYTES`` (``fit_card``) and checked
(``check_card``); the tests validate every card the templates can produce against the official
schema of its version.

A ``Chart`` (the digest's picture) is a card with an ``Image`` whose url is ``FILE_URL``; the
notifiers put the PNG there as a ``data:`` URI when they send (``with_file``), as Teams
documents for pictures a bot draws itself (its 100 KB message limit leaves base64 images
out). A Workflows webhook's 28 KB include the picture: its chart is shrunk to fit
(``bot.teams.pictures.shrink_png``), or left out when even the smallest one would not
(``PictureLeftOut``).

Card actions, for the bot that receives them (``Action.Execute``, invoke
``adaptiveCard/action``): ``verb`` is ``kpi.ack`` or ``kpi.snooze``, and ``data`` is
``{"kpibot": <verb>, "key": <the alert message's idempotency key>}``, plus ``"duration":
"1d" | "3d" | "1w"`` for a snooze.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from jinja2 import Environment

from bot.chat_rendering import (
    alert_group_text,
    alert_line,
    note_text,
    resolved_reply,
    snapshot_view,
)
from bot.delivery.surfaces import PictureLeftOut, Rendered
from bot.formatting import Formatter
from bot.rendering import (
    AlertView,
    alerts_view,
    answer_view,
    changes_view,
    digest_view,
    environment,
    render_alerts_text,
    render_answer_text,
    render_changes_text,
    render_digest_text,
)
from bot.target_list import render_targets_text, targets_view
from bot.teams.pictures import FILE_URL, shrink_png, with_file
from bot.teams.webhook import MAX_PAYLOAD_BYTES, encode
from bot.wording import Wording, titled
from conversation.authorization import Action
from conversation.views import (
    AlertGroup,
    AlertList,
    AlertsResolved,
    AnswerView,
    ChangesView,
    Chart,
    Digest,
    Home,
    Notice,
    Outbound,
    Overview,
    Reply,
    TargetList,
    View,
)
from handlers.actions.acknowledge import ACK
from handlers.actions.snooze import SNOOZE
from metrics.evaluation import Evaluation

Card = dict[str, Any]


class CardVersion(Enum):
    """Which Adaptive Card version a destination takes."""

    BOT = "1.5"  # the Teams bot: Action.Execute works there
    WEBHOOK = "1.4"  # Workflows flows reject or mis-render newer cards


# Teams refuses a message over 28 KB; the card is kept under this, leaving room for the
# activity or the webhook body around it.
MAX_CARD_BYTES = 26 * 1024

ALERTS_PER_CARD = 15


# --- escaping ------------------------------------------------------------------------------------

# Teams reads TextBlocks and facts as a subset of Markdown (bold, italics, lists, links), and
# its clients disagree on backslash escapes (desktop honours them, mobile shows them), so a
# markup character in CRM text becomes a look-alike instead, as for Slack: a deal named
# ``[Pay here](https://evil.example)`` shows its brackets and links nowhere, ``*9 999 999 €*``
# shows its stars. Angle brackets go too (``<at>`` mentions, autolinks), and a backslash, which
# could escape the markup kpibot writes around the name. An underscore between two letters or
# digits (``Nord_Est``, ``channel_not_found``) opens no emphasis in Markdown: it stays.
_LOOKALIKES = {
    "*": "\u2217",
    "_": "\u02cd",
    "`": "\u02cb",
    "~": "\u223c",
    "[": "\uff3b",
    "]": "\uff3d",
    "<": "\u2039",
    ">": "\u203a",
    "\\": "\u29f5",
}
_MARKUP = re.compile("[" + re.escape("".join(_LOOKALIKES)) + "]")


def _inert(match: re.Match[str]) -> str:
    char, text, at = match.group(), match.string, match.start()
    inside_word = 0 < at < len(text) - 1 and text[at - 1].isalnum() and text[at + 1].isalnum()
    return char if char == "_" and inside_word else _LOOKALIKES[char]


# A list marker or a heading at the start of a text (a name that opens a fact title).
_LEADING = re.compile(r"^(\s*)([-+#]|\d+[.)])(?=\s)")
_MARKER_LOOKALIKES = {"-": "\u2010", "+": "\uff0b", "#": "\uff03", ".": "\u2024", ")": "\uff09"}


def card_escape(text: str) -> str:
    """``text`` inert in an Adaptive Card TextBlock or fact: no markup, no link, no list."""
    text = _MARKUP.sub(_inert, text)

    def marker(match: re.Match[str]) -> str:
        mark = match.group(2)
        return match.group(1) + mark[:-1] + _MARKER_LOOKALIKES[mark[-1]]

    return _LEADING.sub(marker, text)


_CODE = re.compile(r"`([^`\n]+)`")


def teams_markdown(text: str) -> str:
    """The catalogs' words in Teams markdown: Teams has no code spans, so ```/kpi alerts```
    shows in bold. (CRM text in ``text`` is escaped already: its backticks are look-alikes.)"""
    return _CODE.sub(r"**\1**", text)


class CardWording(Wording):
    """The short messages in Teams markdown: ``**bold**``, names escaped for cards, user and
    channel ids as they are (Teams has no ``<@U…>`` mentions in card text)."""

    def escape(self, text: str) -> str:
        return card_escape(text)

    def bold(self, text: str) -> str:
        return f"**{text}**"

    def user(self, user_id: str) -> str:
        return card_escape(user_id)

    def channel(self, channel_id: str) -> str:
        return card_escape(channel_id)


# --- the templates -------------------------------------------------------------------------------


@cache
def card_environment() -> Environment:
    """Slack's environment (same loader, ``|tojson`` and strictness) with the ``|card`` filter.
    An overlay shares its parent's filters dict, hence a copy rather than an insertion."""
    env = environment().overlay()
    env.filters = {**env.filters, "card": card_escape}
    return env


@dataclass(frozen=True)
class AlertItem:
    alert: AlertView | None  # None for a snapshot stored before snapshots held the view
    line: str  # the alert on one line, escaped: what such an old snapshot shows
    resolved: str | None  # "✅ Resolved 26 Nov 2026, 14:02" once resolved


@dataclass(frozen=True)
class SnoozeChoice:
    label: str  # "Snooze 1 day"
    duration: str  # "1d"


@dataclass(frozen=True)
class AlertGroupCard:
    """Context of ``teams/alert_group.json.j2``."""

    key: str  # the message's idempotency key: what the actions act on
    title: str  # "⚠️ 3 alerts"
    items: tuple[AlertItem, ...]
    more: str | None
    notes: tuple[str, ...]  # who acknowledged / snoozed, escaped
    ack_label: str | None  # the Acknowledge action, when offered
    snooze_label: str
    snooze_options: tuple[SnoozeChoice, ...]  # the Snooze choices, when offered


def alert_group_card(group: AlertGroup, fmt: Formatter, version: CardVersion) -> AlertGroupCard:
    """``group`` as a card's context. Its actions are offered on bot cards only: a webhook's
    card goes where nobody would receive them."""
    shown = group.alerts[:ALERTS_PER_CARD]
    firing = [a for a in group.alerts if a["resolved_at"] is None]
    bot = version is CardVersion.BOT
    snoozes = group.snooze_for if bot and Action.SNOOZE in group.actions else ()
    left_out = len(group.alerts) - len(shown)

    def resolved(snapshot: Mapping[str, Any]) -> str | None:
        at = snapshot["resolved_at"]
        return None if at is None else fmt.t("resolved", time=at)

    return AlertGroupCard(
        key=group.key,
        title=("⚠️ " if firing else "✅ ") + fmt.tn("alert_count", len(firing) or len(group.alerts)),
        items=tuple(
            AlertItem(
                alert=snapshot_view(a),
                line=card_escape(alert_line(a, fmt, markup=False)),
                resolved=resolved(a),
            )
            for a in shown
        ),
        more=fmt.tn("and_more", left_out) if left_out else None,
        notes=tuple(card_escape(note_text(n, fmt, markup=False)) for n in group.notes),
        ack_label=fmt.t("acknowledge") if bot and Action.ACKNOWLEDGE in group.actions else None,
        snooze_label=fmt.t("snooze"),
        snooze_options=tuple(SnoozeChoice(fmt.t(f"snooze.{d}"), d) for d in snoozes),
    )


def render_card(name: str, fmt: Formatter, version: CardVersion, **context: object) -> Card:
    """A template of ours rendered, fitted under ``MAX_CARD_BYTES`` and checked."""
    text = card_environment().get_template(name).render(fmt=fmt, version=version.value, **context)
    card = json.loads(text)
    if not isinstance(card, dict):
        raise TypeError(f"{name} must render a JSON object, an Adaptive Card")
    fitted = fit_card(card, fmt)
    check_card(fitted, version)
    return fitted


# --- size ----------------------------------------------------------------------------------------


class CardTooLarge(ValueError):
    """A card that stays over ``MAX_CARD_BYTES`` with every droppable item dropped."""


def card_bytes(card: Card) -> int:
    return len(json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode())


def fit_card(card: Card, fmt: Formatter, limit: int = MAX_CARD_BYTES) -> Card:
    """``card`` under ``limit`` bytes: its last Containers (the items: KPIs of a digest, alerts,
    movements) are dropped one by one and the card ends with "… and N more". Views already cap
    what they show, so only long digests with long names reach this."""
    if card_bytes(card) <= limit:
        return card
    body = list(card["body"])
    dropped = 0
    while True:
        last = max((i for i, e in enumerate(body) if e.get("type") == "Container"), default=None)
        if last is None:
            raise CardTooLarge(f"card of {card_bytes(card)} bytes with nothing left to drop")
        del body[last]
        dropped += 1
        more = {"type": "TextBlock", "text": fmt.tn("and_more", dropped), "wrap": True}
        fitted = {**card, "body": [*body, more]}
        if card_bytes(fitted) <= limit:
            return fitted


# --- checks --------------------------------------------------------------------------------------


class CardError(ValueError):
    """A card that its destination would refuse."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


BOT_ACTIONS = frozenset({"Action.Execute", "Action.Submit"})


def _action_types(value: Any) -> set[str]:
    if isinstance(value, dict):
        kind = str(value.get("type", ""))
        found = {kind} if kind.startswith("Action.") else set()
        return found.union(*(_action_types(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_action_types(v) for v in value))
    return set()


def check_card(card: Card, version: CardVersion) -> None:
    """Raise ``CardError`` unless ``card`` declares ``version``, fits ``MAX_CARD_BYTES`` and,
    for a webhook, has no action that only a bot can receive.

    The official schema of each version is checked by the tests, for every card the templates
    can produce (tests/bot/teams/test_cards.py), not here: jsonschema takes tens of
    milliseconds over the schema's alternatives, too much for every answer."""
    problems = []
    if card.get("version") != version.value:
        problems.append(f"version {card.get('version')!r}, expected {version.value!r}")
    if version is CardVersion.WEBHOOK:
        problems.extend(f"{kind} in a webhook card" for kind in _action_types(card) & BOT_ACTIONS)
    if card_bytes(card) > MAX_CARD_BYTES:
        problems.append(f"{card_bytes(card)} bytes (at most {MAX_CARD_BYTES})")
    if problems:
        raise CardError(problems)


# --- pictures ------------------------------------------------------------------------------------


def webhook_picture_budget(card: Card) -> int:
    """How many PNG bytes ``card`` may carry and stay, posted to a webhook with its picture,
    under ``MAX_PAYLOAD_BYTES`` (base64 makes 3 bytes 4 characters)."""
    empty = len(encode(with_file(card, b"")))
    return max(0, (MAX_PAYLOAD_BYTES - empty) // 4 * 3)


# --- views ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TeamsMessage:
    card: Card
    text: str  # plain text: the notification, the activity's summary, the console
    refused: bool = False


class CardRenderer:
    """Views as Adaptive Cards of one version, in the organisation's words."""

    def __init__(self, fmt: Formatter, version: CardVersion = CardVersion.BOT) -> None:
        self.fmt = fmt
        self.version = version
        self.words = CardWording(fmt)
        self.plain = Wording(fmt, markup=False)

    def _card(self, name: str, **context: object) -> Card:
        return render_card(name, self.fmt, self.version, **context)

    def message(self, text: str, plain: str) -> TeamsMessage:
        """Words already in Teams markdown, one TextBlock a line."""
        lines = [line for line in teams_markdown(text).split("\n") if line.strip()]
        return TeamsMessage(self._card("teams/message.json.j2", lines=lines), plain)

    def _content(self, view: View) -> TeamsMessage:
        fmt = self.fmt
        match view:
            case AnswerView():
                card = self._card("teams/answer.json.j2", view=answer_view(view.answer, fmt))
                return TeamsMessage(card, render_answer_text(view.answer, fmt))
            case ChangesView():
                card = self._card("teams/changes.json.j2", view=changes_view(view.changes, fmt))
                return TeamsMessage(card, render_changes_text(view.changes, fmt))
            case Overview():
                return self.digest(titled(view.digest, fmt))
            case AlertList():
                return self.alerts(view.alerts)
            case TargetList():
                card = self._card("teams/targets.json.j2", view=targets_view(view, fmt))
                return TeamsMessage(card, render_targets_text(view, fmt))
            case Home():
                return self._content(view.content)
        words, plain = self.words.short(view), self.plain.short(view)
        assert words is not None and plain is not None
        return self.message(words, plain)

    def render(self, reply: Reply) -> TeamsMessage:
        message = self._content(reply.view)
        if reply.setup_hint is not None:
            hint = teams_markdown(self.words.setup_hint(card_escape(reply.setup_hint)))
            block = {"type": "TextBlock", "text": hint, "wrap": True, "separator": True}
            card = fit_card({**message.card, "body": [*message.card["body"], block]}, self.fmt)
            check_card(card, self.version)
            message = dataclasses.replace(message, card=card)
        return dataclasses.replace(message, refused=reply.refused)

    def digest(self, digest: Digest) -> TeamsMessage:
        card = self._card("teams/digest.json.j2", view=digest_view(digest, self.fmt))
        return TeamsMessage(card, render_digest_text(digest, self.fmt))

    def alerts(self, evaluations: Sequence[Evaluation]) -> TeamsMessage:
        card = self._card("teams/alerts.json.j2", view=alerts_view(evaluations, self.fmt))
        return TeamsMessage(card, render_alerts_text(evaluations, self.fmt))

    def alert_group(self, group: AlertGroup) -> TeamsMessage:
        view = alert_group_card(group, self.fmt, self.version)
        card = self._card("teams/alert_group.json.j2", view=view, ack=ACK, snooze=SNOOZE)
        return TeamsMessage(card, alert_group_text(group, self.fmt, markup=False))

    def chart(self, view: Chart) -> tuple[TeamsMessage, bytes]:
        """The chart's card and the PNG it shows: as drawn for the bot, shrunk to fit a
        webhook's payload, or ``PictureLeftOut`` when it cannot."""
        card = self._card("teams/chart.json.j2", title=view.title, alt=view.alt, url=FILE_URL)
        if self.version is not CardVersion.WEBHOOK:
            return TeamsMessage(card, view.title), view.png
        png = shrink_png(view.png, webhook_picture_budget(card))
        if png is None:
            raise PictureLeftOut("webhook_payload_limit")
        return TeamsMessage(card, view.title), png

    def resolved(self, view: AlertsResolved) -> TeamsMessage:
        # The plain lines hold no markup of ours; escaping them makes their CRM names inert.
        return self.message(
            card_escape(resolved_reply(view, self.fmt, markup=False)),
            resolved_reply(view, self.fmt, markup=False),
        )

    def notice(self, view: Notice) -> TeamsMessage:
        return self.message(self.words.notice(view), self.plain.notice(view))

    def apology(self) -> TeamsMessage:
        text = self.fmt.t("oops")
        return dataclasses.replace(self.message(text, text), refused=True)


class CardNotifications:
    """The ``bot.delivery.surfaces.Renderer`` of a Teams surface: alert messages, their
    resolutions, digests and admin notices as cards of ``version``."""

    def __init__(self, fmt: Formatter, version: CardVersion) -> None:
        self.cards = CardRenderer(fmt, version)

    def render(self, view: Outbound) -> Rendered:
        match view:
            case AlertGroup():
                message = self.cards.alert_group(view)
            case AlertsResolved():
                message = self.cards.resolved(view)
            case Digest():
                message = self.cards.digest(view)
            case Notice():
                message = self.cards.notice(view)
            case Chart():
                message, png = self.cards.chart(view)
                return Rendered(message.text, message.card, png)
        return Rendered(message.text, message.card)
