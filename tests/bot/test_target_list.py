"""``/kpi targets``: grouped by KPI then scope, each target with its period, where it stands and
who set it from chat; capped per KPI with the command that shows the rest; in French and
English, as text, as validated Block Kit and as a Teams card."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.formatting import Formatter
from bot.rendering import validate_blocks
from bot.target_list import render_targets_blocks, render_targets_text, targets_view
from bot.teams.cards import CardRenderer
from conversation.authorization import Role, Viewer
from conversation.views import ChatTarget, Reply, TargetList
from metrics.evaluation import Evaluation, Status, Why
from metrics.kpis import KpiValue, Reason
from metrics.periods import Grain, period_containing
from metrics.scopes import Level, Scope
from tests.bot.slack_world import MANAGER, make_world
from tests.bot.test_slack_app import all_text, ask
from tests.fakes.slack_api import FakeSlack

AS_OF = date(2026, 11, 26)
Q4 = period_containing(Grain.QUARTER, AS_OF)
Q1_2027 = period_containing(Grain.QUARTER, date(2027, 1, 1))
NOVEMBER = period_containing(Grain.MONTH, AS_OF)
FR = Formatter("fr_FR", "EUR", ZoneInfo("Europe/Paris"))
EN = Formatter("en_US", "EUR", ZoneInfo("Europe/Paris"))
COMPANY = Scope.company()
LYON = Scope(Level.TEAM, "Lyon")
SET_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def evaluation(
    kpi: str, scope: Scope, value: str | None, target: int, status: Status, **kw: object
) -> Evaluation:
    period = kw.pop("period", Q4)
    actual = KpiValue(None if value is None else Decimal(value), **kw)  # type: ignore[arg-type]
    return Evaluation(kpi, scope, period, AS_OF, actual, Decimal(target), None, None, status)  # type: ignore[arg-type]


def team(name: str, value: str, target: int = 400_000) -> Evaluation:
    return evaluation("revenue", Scope(Level.TEAM, name), value, target, Status.ON_TRACK)


def target_list(*, kpi: str | None = None) -> TargetList:
    """Given out of order: a CPA, six team revenues, the company's, a region's, and a revenue
    target set from chat for Lyon's next quarter (not evaluated yet)."""
    evaluations = (
        evaluation("cpa", COMPANY, None, 1800, Status.NO_DATA, reason=Reason.NO_NEW_CUSTOMER,
                   sample=0, period=NOVEMBER),
        *(team(n, "300000") for n in ("Paris", "Munich", "Lyon", "London", "Bruxelles", "Berlin")),
        evaluation("revenue", Scope(Level.REGION, "DACH"), "789514", 500_000, Status.ACHIEVED),
        evaluation("revenue", COMPANY, "2149083", 2_530_000, Status.AT_RISK),
    )  # fmt: skip
    chat = (ChatTarget("revenue", LYON, Q1_2027, Decimal(900_000), "U0ADMIN", SET_AT),)
    if kpi is not None:
        evaluations = tuple(e for e in evaluations if e.kpi == kpi)
    return TargetList(evaluations, chat, kpi=kpi)


def test_grouped_by_kpi_then_scope_level_and_name_capped_with_the_way_to_the_rest() -> None:
    view = targets_view(target_list(), FR)
    assert [g.kpi for g in view.groups] == ["Chiffre d'affaires", "Coût d'acquisition"]
    revenue, cpa = view.groups
    # company, then regions, then teams by name; 9 revenue targets, 5 shown
    assert [r.scope for r in revenue.rows] == [
        "Entreprise", "Région DACH", "Équipe Berlin", "Équipe Bruxelles", "Équipe London",
    ]  # fmt: skip
    assert revenue.more == "… et 4 autres\u00a0: `/kpi objectifs revenue`"
    assert cpa.more is None
    # a CPA with no new customer says so, and the status says why it is not judged
    [row] = cpa.rows
    assert (row.period, row.actual, row.status) == (
        "novembre 2026", "aucun nouveau client", "pas de données",
    )  # fmt: skip
    assert view.none is None


def test_one_kpi_is_listed_in_full_with_who_set_what_from_chat() -> None:
    view = targets_view(target_list(kpi="revenue"), EN)
    [revenue] = view.groups
    assert len(revenue.rows) == 9 and revenue.more is None
    lyon = [r for r in revenue.rows if r.scope == "Team Lyon"]
    # this quarter's from the config; next quarter's set from chat, not running yet
    assert [(r.period, r.actual, r.target, r.set_by) for r in lyon] == [
        ("Q4 2026", "€300,000", "€400,000", None),
        ("Q1 2027", None, "€900,000", "U0ADMIN"),
    ]
    assert lyon[1].set_at == EN.datetime(SET_AT)


def test_one_more_target_is_shown_rather_than_counted() -> None:
    listed = TargetList(tuple(team(n, "1") for n in "ABCDEF"), ())
    [group] = targets_view(listed, EN).groups
    assert len(group.rows) == 6 and group.more is None


@pytest.mark.parametrize("fmt", [FR, EN])
def test_nothing_to_see_says_how_targets_are_set(fmt: Formatter) -> None:
    view = targets_view(TargetList((), ()), fmt)
    assert view.groups == () and view.none == fmt.t("targets.none")
    assert fmt.t("targets.none") in render_targets_text(TargetList((), ()), fmt)


@pytest.mark.parametrize(
    ("fmt", "words"),
    [
        (FR, ("Objectifs", "*Chiffre d'affaires*", "par <@U0ADMIN>", "T1 2027")),
        (EN, ("Targets", "*Revenue*", "by <@U0ADMIN>", "Q1 2027")),
    ],
)
def test_slack_blocks_are_valid_and_mention_who_set_a_target(
    fmt: Formatter, words: tuple[str, ...]
) -> None:
    blocks = render_targets_blocks(target_list(kpi="revenue"), fmt)
    validate_blocks(blocks)
    text = str(blocks)
    assert all(w in text for w in words), text


def test_terminal_text_names_the_user_without_slack_markup() -> None:
    text = render_targets_text(target_list(kpi="revenue"), FR)
    assert "par U0ADMIN" in text and "<@" not in text and "*" not in text
    assert text.splitlines()[0] == "Objectifs"


def test_crm_names_are_escaped_in_slack() -> None:
    listed = TargetList((team("<!channel>", "1"),), ())
    text = str(render_targets_blocks(listed, EN))
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_status_reasons_read_as_in_answers() -> None:
    early = evaluation("cpa", COMPANY, "375", 1800, Status.NO_DATA, sample=3, period=NOVEMBER)
    early = Evaluation(early.kpi, early.scope, early.period, AS_OF, early.actual, early.target,
                       None, None, Status.NO_DATA, why=Why.TOO_EARLY)  # fmt: skip
    [group] = targets_view(TargetList((early,), ()), FR).groups
    assert (group.rows[0].actual, group.rows[0].status) == ("375\u00a0€", "trop tôt pour juger")


def test_teams_card_has_a_container_per_kpi_and_inert_names() -> None:
    hostile = "[Pay here](https://evil.example) **9 999 999 €**"
    listed = TargetList((*target_list().evaluations, team(hostile, "1")), ())
    message = CardRenderer(FR).render(Reply(listed))
    containers = [b for b in message.card["body"] if b["type"] == "Container"]
    assert [c["items"][0]["text"] for c in containers] == [
        "Chiffre d'affaires", "Coût d'acquisition",
    ]  # fmt: skip
    text = json.dumps(message.card, ensure_ascii=False)
    assert "](https://evil.example)" not in text and "**9 999 999 €**" not in text
    assert message.text == render_targets_text(listed, FR)


def test_a_managers_own_team_comes_first_in_every_renderer() -> None:
    """Lyon's manager: Lyon (today's target, then next quarter's set from chat) ahead of the
    company and the other teams, so that "… and 4 more" never hides it."""
    mine = dataclasses.replace(target_list(), own=(LYON,))
    view = targets_view(mine, EN)
    revenue = view.groups[0]
    assert [(r.scope, r.period) for r in revenue.rows] == [
        ("Team Lyon", "Q4 2026"), ("Team Lyon", "Q1 2027"), ("Company", "Q4 2026"),
        ("Region DACH", "Q4 2026"), ("Team Berlin", "Q4 2026"),
    ]  # fmt: skip
    assert revenue.more == "… and 4 more: `/kpi targets revenue`"
    # the same order in the terminal, on Slack and on Teams
    text = render_targets_text(mine, EN)
    assert text.index("Team Lyon") < text.index("Company") < text.index("Team Berlin")
    blocks = json.dumps(render_targets_blocks(mine, EN), ensure_ascii=False)
    assert blocks.index("Lyon") < blocks.index("Company") < blocks.index("Berlin")
    card = json.dumps(CardRenderer(EN).render(Reply(mine)).card, ensure_ascii=False)
    assert card.index("Lyon") < card.index("Company") < card.index("Berlin")
    # without a viewer of its own, Lyon is among the four not shown
    assert "Team Lyon" not in [r.scope for r in targets_view(target_list(), EN).groups[0].rows]


def test_a_viewers_own_scopes_are_their_teams_then_themselves() -> None:
    manager = Viewer("U1", Role.MANAGER, "Alice Martin", frozenset({"Paris", "lyon"}))
    assert manager.own_scopes == (
        Scope(Level.TEAM, "lyon"), Scope(Level.TEAM, "Paris"), Scope(Level.REP, "Alice Martin"),
    )  # fmt: skip
    assert Viewer("U2", Role.ADMIN).own_scopes == ()
    # names compare as people type them: "lyon" puts Lyon first
    view = targets_view(dataclasses.replace(target_list(), own=manager.own_scopes), EN)
    assert [r.scope for r in view.groups[0].rows][:3] == ["Team Lyon", "Team Lyon", "Team Paris"]


def test_lyons_manager_asking_in_slack_sees_lyon_first(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        world = make_world(tmp_path, fake)
        reply = json.loads(all_text(ask(world, "objectifs", MANAGER)))["text"]
        world.service.engine.dispose()
    revenue = reply[reply.index("Chiffre d'affaires") :]
    assert revenue.index("Équipe Lyon") < revenue.index("Entreprise"), revenue
