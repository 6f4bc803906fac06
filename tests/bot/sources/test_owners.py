"""CRM users matched to reps of other sources, rule by rule: email first (case aside), then
the full name (accents and case aside), a key several reps share matching none, and a
source's own reps never matched."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from bot.sources.owners import RepMatcher
from bot.store.database import session_factory
from tests.bot.sources.crm_support import make_store

REPS = [  # source, source_id, name, email
    ("hr", "1", "Anne Martin", "anne.martin@corp.test"),
    ("hr", "2", "Béatrice Lefèvre", None),
    ("hr", "3", "Paul Roux", "shared@corp.test"),
    ("hr", "4", "Léa Roux", "shared@corp.test"),
    ("hr", "5", "Jean Petit", "jean.a@corp.test"),
    ("dw", "6", "Jean Petit", "jean.b@corp.test"),
    ("crm", "7", "Own Rep", "own@corp.test"),  # the syncing source's own rep
]


@pytest.mark.parametrize(
    ("email", "name", "expected"),
    [
        ("Anne.Martin@CORP.test ", "Someone Else", "1"),  # email wins, case and spaces aside
        (None, "beatrice lefevre", "2"),  # by name, accents and case aside
        ("b.lefevre@crm.test", "BÉATRICE  LEFÈVRE", "2"),  # an unknown email falls to the name
        ("shared@corp.test", "Léa Roux", "4"),  # a shared email matches none: the name decides
        ("shared@corp.test", "Nobody", None),
        (None, "Jean Petit", None),  # two sources' reps share the name: no guess
        ("jean.b@corp.test", "Jean Petit", "6"),  # the email tells them apart
        ("own@corp.test", "Own Rep", None),  # the CRM's own rep is not "another source"
        (None, None, None),
        ("", "", None),
    ],
)
def test_match(tmp_path: Path, email: str | None, name: str | None, expected: str | None):
    store = make_store(tmp_path)
    with store.engine.begin() as connection:
        for source, source_id, rep_name, rep_email in REPS:
            connection.execute(
                text("INSERT INTO reps (source, source_id, name, email) VALUES (:s, :i, :n, :e)"),
                {"s": source, "i": source_id, "n": rep_name, "e": rep_email},
            )
    ids = {sid: rid for sid, rid in store.rows("SELECT source_id, id FROM reps")}
    with session_factory(store.engine)() as session:
        found = RepMatcher(session, "crm").match(email, name)
    assert found == (None if expected is None else ids[expected])
