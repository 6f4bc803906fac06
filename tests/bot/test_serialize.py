"""``--json`` of the issue-13 answers: the figure per lead source and the new against the
tenured reps, as plain data."""

from __future__ import annotations

from bot.serialize import answer
from tests.bot.test_rendering import cpa_by_source_answer, formatter, ramp_up_answer


def test_an_answer_by_source_lists_each_source_with_what_it_counts() -> None:
    data = answer(cpa_by_source_answer(), formatter("fr_FR"))
    assert [(s["channel"], s["value"], s["sample"], s["reason"]) for s in data["sources"]] == [
        ("Salon", 405, 12, None),
        ("Google Ads", None, 0, "no_new_customer"),
        ("Recommandation", None, 3, "no_spend"),
        (None, None, 1, "no_spend"),
    ]
    assert data["sources"][1]["reason_text"] == "aucun nouveau client"
    assert data["ramp"] is None


def test_a_ramp_up_answer_gives_both_groups_and_each_new_rep() -> None:
    ramp = answer(ramp_up_answer(), formatter("en_US"))["ramp"]
    assert ramp["new_rep_months"] == 6
    assert ramp["new"] == {
        "reps": 2, "with_target": 2, "revenue": 12000, "target": 75000, "attainment": 0.16,
    }  # fmt: skip
    assert ramp["tenured"]["attainment"] == 0.902565
    assert ramp["new_reps"] == [
        {"name": "Élodie Fournier", "started": "2026-08-10", "first_win": "2026-09-20", "days": 41},
        {"name": "Théo Blanc", "started": "2026-11-06", "first_win": None, "days": None},
    ]
