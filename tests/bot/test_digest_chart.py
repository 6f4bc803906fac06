"""Which digests carry a chart, and what it may show: ``subscriptions[].chart`` (config and
``/kpi subscribe … no-chart``) turns it off; a channel's chart shows teams, its own team first,
and a rep only where ``visibility.rep_figures`` lets that channel see the rep."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.access import channel_audience
from bot.digests import own_teams, post_digest, visible_paths
from bot.formatting import Formatter
from bot.subscriptions import Subscription, load_subscriptions
from conversation.authorization import Action, authorize
from metrics.scopes import Level, Scope
from tests.bot.slack_world import (
    ADMIN,
    CHAT_CONFIG,
    MANAGER,
    NOW,
    REP_NAME,
    World,
    make_world,
    world_fixture,
)
from tests.bot.test_slack_app import all_text, ask
from tests.fakes.slack_api import FakeSlack

world = pytest.fixture(world_fixture)

SUBSCRIPTION = "    kpis: [revenue, pipeline]\n"


def world_with(tmp_path: Path, fake: FakeSlack, subscription: str = "", extra: str = "") -> World:
    """The Slack world whose leadership subscription has ``subscription``'s extra lines."""
    config = CHAT_CONFIG.replace(SUBSCRIPTION, SUBSCRIPTION + subscription)
    return make_world(tmp_path, fake, extra, chat_config=config)


def subscriptions(world: World) -> list[Subscription]:
    with world.sessions()() as session:
        return load_subscriptions(world.settings, session)


def post(world: World, subscription: Subscription) -> None:
    fmt = Formatter.for_organisation(world.settings.organisation)
    post_digest(world.service, world.dispatcher(), subscription, NOW, fmt)


def test_chart_false_in_the_config_posts_the_digest_without_its_chart(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        world = world_with(tmp_path, fake, "    chart: false\n")
        (subscription,) = subscriptions(world)
        assert subscription.chart is False
        post(world, subscription)
        assert len(fake.posts("CLEAD")) == 1 and fake.shared_files("CLEAD") == []
        world.service.engine.dispose()


def test_the_chart_is_on_by_default(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        world = world_with(tmp_path, fake)
        (subscription,) = subscriptions(world)
        post(world, subscription)
        assert len(fake.shared_files("CLEAD")) == 1
        world.service.engine.dispose()


@pytest.mark.parametrize(
    ("words", "chart", "said"),
    [
        ("abonner <#CNEW|ventes> 08:30 équipe Lyon sans-graphique", False,
         "recevra le résumé quotidien à 08:30 (Europe/Paris), lun., mar., mer., jeu., ven., "
         "sans son graphique."),
        ("subscribe <#CNEW|ventes> 08:30 No-Chart sat,sun", False,
         "recevra le résumé quotidien à 08:30 (Europe/Paris), sam., dim., sans son graphique."),
        ("abonner <#CNEW|ventes> 08:30 équipe Lyon", True,
         "recevra le résumé quotidien à 08:30 (Europe/Paris), lun., mar., mer., jeu., ven."),
        ("abonner <#CNEW|ventes> 08:30 avec mouvements du pipeline sans-graphique", False,
         "recevra le résumé quotidien à 08:30 (Europe/Paris), lun., mar., mer., jeu., ven., "
         "avec les mouvements du pipeline du trimestre sur les sept derniers jours, sans ses "
         "graphiques."),
    ],
)  # fmt: skip
def test_a_chat_subscription_may_go_without_its_chart(
    world: World, words: str, chart: bool, said: str
) -> None:
    reply = all_text(ask(world, words, ADMIN))
    assert said in reply, reply
    (_, made) = subscriptions(world)
    assert made.channel == "CNEW" and made.chart is chart
    # the words are no part of the scope: "équipe Lyon" stays Lyon, none stays the company
    assert made.scope in (Scope(Level.TEAM, "Lyon"), Scope.company())
    post(world, made)
    assert len(world.fake.shared_files("CNEW")) == (1 if chart else 0)


def test_the_usage_names_the_switch_in_both_languages(world: World) -> None:
    reply = all_text(ask(world, "abonner <#CNEW|ventes>", ADMIN))
    assert "[sans-graphique]" in reply, reply


# --- what a channel's chart may show ------------------------------------------------------------


def test_a_channels_chart_shows_its_own_team_first(world: World) -> None:
    facts = world.service.snapshot().facts
    paths = world.service.pace_paths(NOW)
    teams = [p.scope.name for p in paths]
    assert "Lyon" in teams and teams[0] != "Lyon"  # otherwise this test shows nothing
    for destination in ("CLYON", MANAGER):  # Lyon's channel, Lyon's manager's DMs
        audience = channel_audience(world.settings, destination, facts)
        first = own_teams(world.service, destination, audience)
        assert first == {"lyon"}
        shown = visible_paths(paths, authorize(audience, Action.ALERTS), first)
        assert [p.scope.name for p in shown] == ["Lyon"] + [t for t in teams if t != "Lyon"]
        # every team, never a rep
        assert all(p.scope.level is Level.TEAM for p in shown)
    # the leadership channel: the teams in their order
    audience = channel_audience(world.settings, "CLEAD", facts)
    assert own_teams(world.service, "CLEAD", audience) == frozenset()


@pytest.mark.parametrize(
    ("visibility", "shared"),
    [("", 0), ("visibility:\n  rep_figures: company\n", 1)],
)
def test_a_reps_digest_has_a_chart_only_where_the_channel_may_see_the_rep(
    tmp_path: Path, visibility: str, shared: int
) -> None:
    scope = f'    scope: "rep {REP_NAME}"\n'
    with FakeSlack() as fake:
        world = world_with(tmp_path, fake, scope, visibility)
        (subscription,) = subscriptions(world)
        assert subscription.scope == Scope(Level.REP, REP_NAME)
        assert [p.scope for p in world.service.pace_paths(NOW, subscription.scope)] == [
            subscription.scope
        ]
        post(world, subscription)
        assert len(fake.shared_files("CLEAD")) == shared
        world.service.engine.dispose()
