"""Duration and weekday words both ways in chat (issue 7): `2j`, `1 sem`, `lun-ven` are
accepted wherever a duration or weekdays are read, and the confirmations and refusals of a
French organisation say them in French."""

from __future__ import annotations

import pytest

from tests.bot.slack_world import ADMIN, world_fixture
from tests.bot.test_slack_app import all_text, ask

world = pytest.fixture(world_fixture)
NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        # (what the admin types, what the reply says); the world's clock: Thu 26 Nov, 10:00.
        ("snooze revenue team Lyon 2j", "en sourdine jusqu'au 28 nov. 2026, 10:00"),
        ("sourdine ca équipe Lyon 1 sem", "en sourdine jusqu'au 3 déc. 2026, 10:00"),
        ("sourdine ca 3 jours", "en sourdine jusqu'au 29 nov. 2026, 10:00"),
        ("snooze revenue 2d", "en sourdine jusqu'au 28 nov. 2026, 10:00"),
        ("snooze 4h", "en sourdine jusqu'au 26 nov. 2026, 14:00"),
        ("abonner <#CNEW|ventes> 08:30 lun-ven",
         "recevra le résumé quotidien à 08:30 (Europe/Paris), lun., mar., mer., jeu., ven."),
        ("subscribe <#CNEW|ventes> 8h30 mon-fri",
         "recevra le résumé quotidien à 08:30 (Europe/Paris), lun., mar., mer., jeu., ven."),
        ("abonner <#CNEW|ventes> 07:00 équipe Lyon sam,dim",
         "recevra le résumé quotidien à 07:00 (Europe/Paris), sam., dim."),
        # Refused with the reason in French, then how to write it.
        ("abonner <#CNEW|ventes> 25:00",
         f"heure attendue, par exemple 08:30 ou 8h30, reçu '25:00' Usage{NBSP}:"),
        ("abonner <#CNEW|ventes> 08:30 ville Lyon",
         "attendu entreprise, équipe Lyon, région EMEA ou commercial Alice Martin, reçu "
         f"'ville Lyon' Usage{NBSP}:"),
        ("sourdine ca ville Lyon 2j",
         "attendu entreprise, équipe Lyon, région EMEA ou commercial Alice Martin, reçu "
         "'ville Lyon'"),
    ],
)  # fmt: skip
def test_durations_and_weekdays_in_both_languages_answered_in_french(world, text, said):
    reply = all_text(ask(world, text, ADMIN))
    assert said in reply, reply
    assert "expected" not in reply and "got" not in reply
