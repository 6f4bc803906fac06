"""Adaptive Cards for every view: golden files in both locales, the official schema of each
version for every card the code can produce, Teams' size limit, and CRM text made inert.

Built by hand from the metrics dataclasses (``tests.bot.test_rendering``'s fixtures); no
database. ``UPDATE_GOLDEN=1 pytest tests/bot/teams/test_cards.py`` rewrites the golden files:
read the diff, they are reviewed like code.
"""

from __future__ import annotations

import base64
import json
import re
import string
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from babel.messages.pofile import read_po

from bot.chat_rendering import alert_snapshot
from bot.formatting import catalog_path
from bot.teams.cards import (
    MAX_CARD_BYTES,
    CardError,
    CardNotifications,
    CardRenderer,
    CardTooLarge,
    CardVersion,
    card_bytes,
    card_escape,
    check_card,
    fit_card,
    teams_markdown,
)
from bot.teams.pictures import FILE_URL, with_file
from conversation.authorization import Action, Refusal, alert_actions
from conversation.views import (
    AlertGroup,
    AlertList,
    AlertNote,
    AlertsResolved,
    AnswerView,
    ChangesView,
    Chart,
    ChatTarget,
    Help,
    Home,
    Notice,
    Outbound,
    Overview,
    Problem,
    Refused,
    Reply,
    SilenceList,
    TargetList,
    View,
    WhoAreYou,
)
from metrics.alerts import Silence
from metrics.scopes import Level, Scope
from tests.bot.teams.card_schema import schema_problems
from tests.bot.test_changes_rendering import pipeline_changes
from tests.bot.test_rendering import (
    LOCALES,
    Q4,
    TEAM,
    alerts,
    assert_golden,
    conversion_answer,
    cpa_answer,
    cpa_by_source_answer,
    cycle_answer,
    digest,
    early_conversion_answer,
    formatter,
    key_revenue_answer,
    many_rows,
    ramp_up_answer,
    revenue_answer,
    running_conversion_answer,
)
from tests.bot.test_slipped_rendering import DEALS, slipped_answer

VERSIONS = list(CardVersion)
NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def texts(card: dict[str, Any]) -> list[str]:
    """What a reader sees: the TextBlocks' texts and the facts, in order."""
    found: list[str] = []

    def walk(element: Any) -> None:
        if isinstance(element, list):
            for item in element:
                walk(item)
        elif isinstance(element, dict):
            if element.get("type") == "TextBlock":
                found.append(element["text"])
            if element.get("type") == "FactSet":
                found.extend(f"{f['title']}: {f['value']}" for f in element["facts"])
            walk(element.get("body", []))
            walk(element.get("items", []))

    walk(card)
    return found


# --- every view the code can produce --------------------------------------------------------------


def _catalog_problems() -> list[Problem]:
    """A problem for every problem message of the catalogs, with each placeholder filled."""
    with catalog_path("en").open("rb") as po:
        catalog = read_po(po)
    problems = []
    for message in catalog:
        key = str(message.id) if isinstance(message.id, str) else ""
        names = {
            name
            for name in (f[1] for f in string.Formatter().parse(str(message.string)) if f[1])
            if name
        }
        params: dict[str, Any] = dict.fromkeys(names, "x")
        if key.startswith("problem.") and key != "problem.target":
            code = key.removeprefix("problem.")
            base, _, level = code.rpartition(".")
            if level in ("region", "team", "rep"):
                code, params["level"] = base, level
            problems.append(Problem(code, params))
        elif key.startswith("target_error."):
            problems.append(Problem("target." + key.removeprefix("target_error."), params))
    assert len(problems) > 20
    return problems


HOSTILE = "[Pay here](https://evil.example) *9 999 999 €* <at>CEO</at> _x_ `y` \\ ~z~"


def every_view() -> dict[str, View]:
    silences = (
        Silence(ends_at=NOW, kpi="revenue", level=Level.TEAM, name="Lyon", created_by="29:1abc"),
        Silence(ends_at=NOW, created_by="U0ADMIN"),
    )
    chat_target = ChatTarget("revenue", TEAM, Q4, Decimal("800000"), "29:1abc", NOW)
    views: dict[str, View] = {
        "answer-revenue": AnswerView(revenue_answer(), "revenue"),
        "answer-revenue-long": AnswerView(revenue_answer(many_rows(200)), "revenue by rep"),
        "answer-conversion": AnswerView(conversion_answer(), "conversion"),
        "answer-cpa": AnswerView(cpa_answer(), "cpa"),
        "answer-early": AnswerView(early_conversion_answer(), "conversion"),
        "answer-cohort": AnswerView(running_conversion_answer(), "conversion"),
        "answer-cycle": AnswerView(cycle_answer(), "cycle"),
        "answer-slipped": AnswerView(slipped_answer(DEALS, rebuilt=True), "slipped"),
        "answer-key-revenue": AnswerView(key_revenue_answer(), "ca grands comptes"),
        "answer-cpa-by-source": AnswerView(cpa_by_source_answer(), "cpa par canal"),
        "answer-ramp-up": AnswerView(ramp_up_answer(), "montée en puissance"),
        "changes": ChangesView(pipeline_changes(), "pipeline changes"),
        "alerts": AlertList(alerts()),
        "alerts-none": AlertList(()),
        "targets": TargetList(alerts(), (chat_target,)),
        "targets-none": TargetList((), ()),
        "silences": SilenceList(silences),
        "silences-none": SilenceList(()),
        "help": Help(),
        "who": WhoAreYou("users_not_found"),
        "home-refused": Home(Refused(Refusal.UNKNOWN_USER)),
        "notice-target-set": Notice(
            "target.set", {"kpi": "revenue", "scope": TEAM, "period": Q4, "value": Decimal(800000)}
        ),
        "notice-target-removed": Notice(
            "target.removed", {"kpi": "revenue", "scope": TEAM, "period": Q4}
        ),
        "notice-subscribed": Notice(
            "subscribed",
            {"channel": "ventes", "time": "08:30", "zone": "Europe/Paris", "days": (0, 1, 2)},
        ),
        "notice-unsubscribed": Notice("unsubscribed", {"n": 2, "channel": "ventes"}),
        "notice-snoozed": Notice("snoozed", {"kpi": "revenue", "scope": TEAM, "until": NOW}),
        "notice-sync-done": Notice("sync.done", {"summary": "3 sources, 1 204 rows"}),
        "notice-sync-unavailable": Notice("sync.unavailable"),
        "notice-rep-not-found": Notice("not_found.rep", {"who": HOSTILE}),
    }
    for refusal in Refusal:
        views[f"refused-{refusal.value}"] = Refused(refusal, Scope(Level.TEAM, HOSTILE))
    for i, problem in enumerate(_catalog_problems()):
        views[f"problem-{i}-{problem.code}"] = Help(
            replace(problem, suggestions=("Lyon", HOSTILE), known=("Paris",))
        )
    views["overview"] = Overview(digest("en_US"), "team Lyon")
    views["overview-waterfall"] = Overview(
        replace(digest("fr_FR"), changes=pipeline_changes()), "weekly"
    )
    views["home"] = Home(Overview(digest("fr_FR"), "home"))
    return views


VIEWS = every_view()


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.value)
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", VIEWS)
def test_every_card_passes_the_official_schema_of_its_version(
    name: str, locale: str, version: CardVersion
) -> None:
    message = CardRenderer(formatter(locale), version).render(Reply(VIEWS[name]))

    card = message.card
    assert card["type"] == "AdaptiveCard" and card["version"] == version.value
    assert schema_problems(card, version.value) == []
    assert 0 < card_bytes(card) <= MAX_CARD_BYTES
    assert card["body"] and message.text
    if version is CardVersion.WEBHOOK:
        assert "Action." not in json.dumps(card)


# Slack's markup: <@U…> mentions, <#C…> channels, <!here>, &lt; entities, *bold* with one star.
SLACK_MARKUP = re.compile(r"<[@#!]|&(lt|gt|amp);|(?<![*\w])\*[^*\s][^*\n]*\*(?![*\w])")


@pytest.mark.parametrize("locale", LOCALES)
def test_nothing_slack_specific_reaches_a_card(locale: str) -> None:
    renderer = CardRenderer(formatter(locale))
    for name, view in VIEWS.items():
        for text in strings(renderer.render(Reply(view)).card):
            assert not SLACK_MARKUP.search(text), (name, text)


@pytest.mark.parametrize("locale", LOCALES)
def test_crm_text_is_inert_in_every_card(locale: str) -> None:
    """A name with markdown, a link, an <at> mention and escapes shows as typed, never as
    markup: no bracket, star, underscore, backtick, angle bracket or backslash of it is left."""
    renderer = CardRenderer(formatter(locale))
    showing = 0
    for view in VIEWS.values():
        shown = "\n".join(texts(renderer.render(Reply(view)).card))
        showing += "Pay here" in shown
        for markup in ("[Pay", "](", "<at>", "`y`", "\\", "~z~", "_x_", "*9 999"):
            assert markup not in shown, (view, shown)
    assert showing > 20  # refusals, problems with suggestions, a notice


@pytest.mark.parametrize(
    ("raw", "inert"),
    [
        ("Lyon", "Lyon"),
        ("Nord_Est", "Nord_Est"),  # inside a word, an underscore opens no emphasis
        ("_Est_", "\u02cdEst\u02cd"),
        ("[a](http://b)", "\uff3ba\uff3d(http://b)"),
        ("*9 999 999 €*", "\u22179 999 999 €\u2217"),
        ("<at>CEO</at>", "\u2039at\u203aCEO\u2039/at\u203a"),
        ("a\\*b", "a\u29f5\u2217b"),
        ("- Lyon", "\u2010 Lyon"),
        ("1. Lyon", "1\u2024 Lyon"),
        ("# Lyon", "\uff03 Lyon"),
        ("Lyon - Est", "Lyon - Est"),  # a dash inside a name starts no list
    ],
)
def test_card_escape(raw: str, inert: str) -> None:
    assert card_escape(raw) == inert


def test_code_spans_of_the_catalogs_show_in_bold() -> None:
    assert teams_markdown("Usage: `/kpi unsubscribe #channel`") == (
        "Usage: **/kpi unsubscribe #channel**"
    )


# --- golden files --------------------------------------------------------------------------------

GOLDEN_CASES = {
    "answer-revenue": AnswerView(revenue_answer(), "revenue"),
    "alerts": AlertList(alerts()),
    "changes": ChangesView(pipeline_changes(), "pipeline changes"),
    "help": Help(),
    # A slipped answer's deals, and the note on earlier figures rebuilt before the history.
    "answer-slipped": AnswerView(slipped_answer(DEALS, rebuilt=True), "slipped"),
    # Issue 13's KPIs: by lead source, and new against tenured reps.
    "answer-cpa-by-source": AnswerView(cpa_by_source_answer(), "cpa par canal"),
    "answer-ramp-up": AnswerView(ramp_up_answer(), "montée en puissance"),
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("case", [*GOLDEN_CASES, "digest", "digest-waterfall"])
def test_golden(case: str, locale: str) -> None:
    weekly = case == "digest-waterfall"
    overview = replace(digest(locale), changes=pipeline_changes() if weekly else None)
    view = GOLDEN_CASES.get(case) or Overview(overview, "")
    card = CardRenderer(formatter(locale)).render(Reply(view)).card
    assert_golden(f"teams/{case}.{locale}.json", json.dumps(card, ensure_ascii=False, indent=2))


def test_french_cards_are_in_french() -> None:
    card = CardRenderer(formatter("fr_FR")).render(Reply(AnswerView(revenue_answer(), ""))).card
    shown = texts(card)
    assert shown[0] == "Chiffre d'affaires · Équipe EMEA · T4 2026"
    assert "Réalisé: 1\u202f234\u202f567\u00a0€" in shown
    assert "Au 26 nov. 2026" in shown[-1]


def test_a_setup_hint_ends_the_card() -> None:
    reply = Reply(AnswerView(revenue_answer(), "revenue"), setup_hint="29:1abc")
    card = CardRenderer(formatter("en_US")).render(reply).card
    assert "29:1abc" in card["body"][-1]["text"]
    assert schema_problems(card, "1.5") == []


# --- size ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_a_digest_too_big_for_teams_ends_with_how_many_were_left_out(locale: str) -> None:
    # Views cap what a digest shows (20 KPIs, 10 alerts); freak names at the 80 characters
    # views keep, each character a 3-byte look-alike, still take it past Teams' limit.
    freak = "[*]" * 30
    answers = tuple(
        replace(revenue_answer(), scope=Scope(Level.TEAM, f"{freak}{i}")) for i in range(20)
    )
    at_risk = alerts()[0]
    behind = tuple(
        replace(at_risk.contributors[0], scope=Scope(Level.REP, f"{freak}{i}")) for i in range(5)
    )
    big = replace(
        digest(locale), answers=answers, alerts=(replace(at_risk, contributors=behind),) * 10
    )
    renderer = CardRenderer(formatter(locale), CardVersion.WEBHOOK)

    card = renderer.render(Reply(Overview(big, ""))).card

    assert card_bytes(card) <= MAX_CARD_BYTES
    last = card["body"][-1]["text"]
    assert re.fullmatch({"fr_FR": r"… et \d+ autres", "en_US": r"… and \d+ more"}[locale], last)
    assert schema_problems(card, "1.4") == []


def test_fit_card_drops_items_from_the_end_and_counts_them() -> None:
    fmt = formatter("en_US")
    item = {"type": "Container", "items": [{"type": "TextBlock", "text": "x" * 1000}]}
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock",
            "text": "title"}, *[item] * 10]}  # fmt: skip

    fitted = fit_card(card, fmt, limit=4000)

    assert card_bytes(fitted) <= 4000
    assert len(fitted["body"]) == 1 + 3 + 1  # the title, 3 items, "and 7 more"
    assert fitted["body"][-1]["text"] == "… and 7 more"
    with pytest.raises(CardTooLarge):
        fit_card(card, fmt, limit=100)


# --- validation ----------------------------------------------------------------------------------


def _card(version: str, *body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "AdaptiveCard", "version": version, "body": list(body), **extra}


TEXT = {"type": "TextBlock", "text": "hello"}
EXECUTE = {"type": "Action.Execute", "title": "Ack", "verb": "kpi.ack", "data": {}}


@pytest.mark.parametrize(
    ("card", "version", "problem"),
    [
        (_card("1.5", TEXT), CardVersion.WEBHOOK, "version '1.5', expected '1.4'"),
        (_card("1.4", TEXT, actions=[EXECUTE]), CardVersion.WEBHOOK, "Action.Execute in a"),
        (_card("1.5", {**TEXT, "text": "x" * MAX_CARD_BYTES}), CardVersion.BOT, "bytes"),
    ],
)
def test_check_card_rejects(card: dict[str, Any], version: CardVersion, problem: str) -> None:
    with pytest.raises(CardError) as raised:
        check_card(card, version)
    assert problem in str(raised.value)


def test_a_bot_card_may_carry_actions() -> None:
    check_card(_card("1.5", TEXT, actions=[EXECUTE]), CardVersion.BOT)


@pytest.mark.parametrize(
    ("card", "version", "where"),
    [
        (_card("1.4", {**TEXT, "colour": "Good"}), "1.4", "body/0"),
        (_card("1.4", {"type": "Table", "rows": []}), "1.4", "body/0"),  # new in 1.5
        (_card("1.5", {"type": "TextBlock"}), "1.5", "body/0"),
        (_card("1.5", TEXT, actions=[{**EXECUTE, "verb": 3}]), "1.5", "actions/0"),
    ],
)
def test_the_schemas_catch_what_the_tests_rely_on_them_for(
    card: dict[str, Any], version: str, where: str
) -> None:
    problems = schema_problems(card, version)
    assert problems and problems[0].startswith(where)
    assert schema_problems(_card(version, TEXT), version) == []


# --- what the scheduled jobs send (conversation.views.Outbound) ----------------------------------


def alert_group(locale: str, *, resolved: bool = False, legacy: bool = False) -> AlertGroup:
    fmt = formatter(locale)
    snapshots = [alert_snapshot(e, fmt, "alerts:lyon:1") for e in alerts() if e.status.is_alert]
    if resolved:
        snapshots[0] = {**snapshots[0], "resolved_at": "26 nov. 2026, 14:02"}
    if legacy:  # stored before snapshots held the view: a Slack block and a plain line
        snapshots.append({"key": "k", "status": "at_risk", "text": "Revenue · *Lyon* — at risk",
                          "block": {}, "resolved_at": None})  # fmt: skip
    return AlertGroup(
        key="alerts:lyon:1",
        alerts=tuple(snapshots),
        notes=(
            AlertNote(Action.ACKNOWLEDGE, "29:1abc", NOW),
            AlertNote(Action.SNOOZE, HOSTILE, NOW),
        ),
        actions=alert_actions(True),
        snooze_for=("1d", "3d", "1w"),
    )


def outbound(locale: str) -> dict[str, Outbound]:
    moments = {"last_sync": NOW, "stale_at": NOW, "zone": "Europe/Paris", "synced": NOW}
    failure = {"channel": "webhook:lyon", "error": "http_404", "message": "alerts:lyon:1"}
    return {
        "alert-group": alert_group(locale),
        "alert-group-resolved": alert_group(locale, resolved=True, legacy=True),
        "alert-group-all-resolved": replace(
            alert_group(locale),
            alerts=tuple({**a, "resolved_at": "x"} for a in alert_group(locale).alerts),
            actions=(),
        ),
        "resolved": AlertsResolved(alerts()[:2]),
        "digest": digest(locale),
        "stale": Notice("stale.notice", moments),
        "stale-resolved": Notice("stale.resolved", moments),
        "stale-fresh": Notice("stale.fresh", moments),
        "delivery-failure": Notice("notice.delivery_failure", failure),
    }


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.value)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_notification_card_passes_the_schema_of_its_version(
    locale: str, version: CardVersion
) -> None:
    renderer = CardNotifications(formatter(locale), version)
    for name, view in outbound(locale).items():
        rendered = renderer.render(view)
        card = rendered.body
        assert schema_problems(card, version.value) == [], name
        assert card["version"] == version.value and rendered.text
        for text in strings(card):
            assert not SLACK_MARKUP.search(text), (name, text)
        shown = "\n".join(texts(card))
        for markup in ("[Pay", "](", "<at>", "`y`", "~z~", "_x_"):
            assert markup not in shown, (name, shown)


def test_an_alert_group_offers_acknowledge_and_snooze_to_the_bot() -> None:
    card = CardNotifications(formatter("en_US"), CardVersion.BOT).render(alert_group("en_US")).body

    ack, snooze = card["actions"]
    data = {"kpibot": "kpi.ack", "key": "alerts:lyon:1"}
    assert ack == {"type": "Action.Execute", "title": "Acknowledge", "verb": "kpi.ack",
                   "style": "positive", "data": data}  # fmt: skip
    assert snooze["type"] == "Action.ShowCard" and snooze["title"] == "Snooze"
    choices = [(a["title"], a["verb"], a["data"]) for a in snooze["card"]["actions"]]
    assert choices == [
        (label, "kpi.snooze", {"kpibot": "kpi.snooze", "key": "alerts:lyon:1", "duration": d})
        for label, d in (("Snooze 1 day", "1d"), ("Snooze 3 days", "3d"), ("Snooze 1 week", "1w"))
    ]
    shown = texts(card)
    assert shown[0] == "⚠️ 3 alerts"
    assert any(t.startswith("👀 Acknowledged by 29:1abc") for t in shown)


def test_a_webhook_alert_card_has_no_actions_and_says_who_acted() -> None:
    card = CardNotifications(formatter("fr_FR"), CardVersion.WEBHOOK).render(alert_group("fr_FR"))
    assert "actions" not in card.body
    assert any(t.startswith("👀 Pris en charge par 29:1abc") for t in texts(card.body))


def test_a_resolved_alert_is_marked_and_an_old_snapshot_shows_its_line() -> None:
    view = alert_group("en_US", resolved=True, legacy=True)
    shown = texts(CardNotifications(formatter("en_US"), CardVersion.BOT).render(view).body)
    assert "✅ Resolved 26 nov. 2026, 14:02" in shown
    assert "Revenue · \u2217Lyon\u2217 — at risk" in shown


@pytest.mark.parametrize("locale", LOCALES)
def test_golden_alert_group(locale: str) -> None:
    card = CardNotifications(formatter(locale), CardVersion.BOT).render(alert_group(locale)).body
    assert_golden(
        f"teams/alert-group.{locale}.json", json.dumps(card, ensure_ascii=False, indent=2)
    )


def chart_view(locale: str) -> Chart:
    fmt = formatter(locale)
    title = f"{fmt.t('kpi.revenue')}{fmt.t('sep')}{'T4 2026' if locale == 'fr_FR' else 'Q4 2026'}"
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # what the card carries, not a picture test
    return Chart(title, fmt.t("chart.alt", title=title), png)


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.value)
@pytest.mark.parametrize("locale", LOCALES)
def test_a_chart_card_as_sent_passes_the_schema_of_its_version(
    locale: str, version: CardVersion
) -> None:
    view = chart_view(locale)
    rendered = CardNotifications(formatter(locale), version).render(view)
    # stored with the placeholder; the notifier puts the PNG in, as a data URI
    (image,) = [item for item in rendered.body["body"] if item["type"] == "Image"]
    assert image["url"] == FILE_URL and rendered.file == view.png and rendered.text == view.title
    sent = with_file(rendered.body, rendered.file)
    assert schema_problems(sent, version.value) == []
    (image,) = [item for item in sent["body"] if item["type"] == "Image"]
    assert image == {
        "type": "Image", "altText": view.alt, "size": "Stretch",
        "url": "data:image/png;base64," + base64.b64encode(view.png).decode(),
    }  # fmt: skip
    assert rendered.body["body"][0]["text"] == view.title


@pytest.mark.parametrize("locale", LOCALES)
def test_golden_chart(locale: str) -> None:
    card = CardNotifications(formatter(locale), CardVersion.BOT).render(chart_view(locale)).body
    assert_golden(f"teams/chart.{locale}.json", json.dumps(card, ensure_ascii=False, indent=2))


def test_a_chart_with_a_hostile_title_is_inert() -> None:
    view = Chart("[Pay here](https://evil.example) *now*", "alt <at>x</at>", b"\x89PNG")
    card = CardNotifications(formatter("en_US"), CardVersion.BOT).render(view).body
    shown = "\n".join(texts(card)) + card["body"][1]["altText"]
    for markup in ("[Pay", "](", "*now*", "<at>"):
        assert markup not in shown, shown
