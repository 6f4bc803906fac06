"""The one request grammar: every surface reads text into the same requests."""

from __future__ import annotations

import pytest

from conversation.grammar import Kind, Request, mentioned_user, parse_request


@pytest.mark.parametrize(
    ("text", "kind", "argument"),
    [
        ("", Kind.HELP, ""),
        ("aide", Kind.HELP, ""),
        ("?", Kind.HELP, ""),
        ("conversion", Kind.ASK, "conversion"),
        ("revenue team EMEA last quarter", Kind.ASK, "revenue team EMEA last quarter"),
        ("team Lyon", Kind.TEAM, "Lyon"),
        ("équipe  Lyon", Kind.TEAM, "Lyon"),
        ("rep <@U123|alice>", Kind.REP, "<@U123|alice>"),
        ("classement", Kind.LEADERBOARD, ""),
        ("objectifs", Kind.TARGETS, ""),
        ("alertes", Kind.ALERTS, ""),
        ("snooze revenue 2d", Kind.SNOOZE, "revenue 2d"),
        ("désabonner <#C1>", Kind.UNSUBSCRIBE, "<#C1>"),
        ("subscribe <#C1|sales> 08:30", Kind.SUBSCRIBE, "<#C1|sales> 08:30"),
        ("ca ce trimestre", Kind.ASK, "ca ce trimestre"),
        # An @mention of the bot reads like the slash command.
        ("<@U0BOT> revenue team Lyon", Kind.ASK, "revenue team Lyon"),
        ("<@U0BOT|kpibot>   classement", Kind.LEADERBOARD, ""),
        ("<@U0BOT>", Kind.HELP, ""),
    ],
)
def test_parse_request(text, kind, argument):
    assert parse_request(text) == Request(kind, argument)


@pytest.mark.parametrize(
    ("text", "replayed"),
    [
        ("revenue team Lyon", "revenue team Lyon"),
        ("équipe Lyon", "team Lyon"),
        ("alertes", "alerts"),
    ],
)
def test_a_request_typed_again_is_the_same_request(text, replayed):
    request = parse_request(text)
    assert request.text == replayed and parse_request(request.text) == request


def test_mentioned_user():
    assert mentioned_user("<@U123ABC|alice>") == "U123ABC"
    assert mentioned_user("<@W99>") == "W99"
    assert mentioned_user("alice") is None
