"""A small, hand-checkable company for the metrics tests: two teams, three reps, seven deals,
five accounts (two of the "Grands comptes" segment), two lead sources.

Every expected number in the KPI tests is computed by hand from the rows below.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from metrics.facts import Facts
from metrics.periods import Grain, Period

NaT = pd.NaT
Q3 = Period(Grain.QUARTER, date(2026, 7, 1), date(2026, 9, 30))
Q4 = Period(Grain.QUARTER, date(2026, 10, 1), date(2026, 12, 31))
Q1_2025 = Period(Grain.QUARTER, date(2025, 1, 1), date(2025, 3, 31))


def d(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def frame(columns: list[str], rows: list[tuple[object, ...]], *dates: str) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=columns)
    for column in dates:
        out[column] = pd.to_datetime(out[column]).astype("datetime64[ns]")
    return out


def company() -> Facts:
    teams = frame(["name", "region", "manager"], [("A", "North", "Ann"), ("B", "South", "Ben")])
    reps = frame(
        ["name", "email", "team", "region", "active_from", "active_to"],
        [
            ("alice", "alice@x.test", "A", "North", None, None),
            ("bob", "bob@x.test", "A", "North", None, "2026-08-15"),
            ("carol", "carol@x.test", "B", "South", "2026-07-15", None),
        ],
        "active_from",
        "active_to",
    )
    owners = {"alice": ("A", "North"), "bob": ("A", "North"), "carol": ("B", "South")}
    # id, rep, account, status, amount (cents), created, close, probability
    deals = [
        ("o1", "alice", "Acme", "won", 100_000, "2026-06-10", "2026-07-05", 1.0),
        ("o2", "alice", "Acme", "lost", 50_000, "2026-06-20", "2026-07-20", 0.0),
        ("o3", "bob", "Beta", "won", 300_000, "2026-07-01", "2026-08-31", 1.0),
        ("o4", "carol", "X", "won", 200_000, "2026-05-01", "2026-09-30", 1.0),
        ("o5", "carol", "Y", "open", 400_000, "2026-08-01", "2026-09-30", 0.5),
        ("o6", "bob", "Z", "open", 1_000_000, "2026-09-01", "2026-10-15", 0.25),
        ("o7", "alice", "Acme", "won", 70_000, "2026-03-01", "2026-04-10", 1.0),
    ]
    opportunities = frame(
        ["id", "rep", "team", "region", "account", "status", "amount", "created", "close",
         "probability"],
        [(i, r, *owners[r], a, s, m, c, cl, p) for i, r, a, s, m, c, cl, p in deals],
        "created",
        "close",
    )  # fmt: skip
    # A lead's source (channel) and the account it converted into: an account's deals come
    # from its first converted lead's source (Beta: Salon; X and Y: Web; Acme, Z: none).
    leads = frame(
        ["id", "rep", "team", "region", "created", "converted", "channel", "account"],
        [
            ("l1", "alice", "A", "North", "2026-07-01", "2026-07-10", "Salon", "Beta"),
            ("l2", "alice", "A", "North", "2026-07-02", None, "Salon", None),
            ("l3", "carol", "B", "South", "2026-08-01", "2026-10-05", "Web", "Y"),
            ("l4", "bob", "A", "North", "2026-06-30", "2026-07-01", "Web", "X"),
        ],
        "created",
        "converted",
    )
    spend = frame(
        ["date", "team", "region", "amount", "channel"],
        [("2026-07-15", "A", "North", 60_000, "Salon"), ("2026-08-01", None, None, 90_000, "Web")],
        "date",
    )
    accounts = frame(
        ["id", "name", "segment"],
        [("Acme", "Acme", "Grands comptes"), ("Beta", "Beta", "PME"), ("X", "X", "PME"),
         ("Y", "Y", "ETI"), ("Z", "Z", "Grands comptes")],
    )  # fmt: skip
    surveys = frame(
        ["date", "rep", "team", "region", "kind", "score"],
        [
            ("2026-07-03", "alice", "A", "North", "csat", 4.0),
            ("2026-08-03", "bob", "A", "North", "csat", 5.0),
            ("2026-09-03", "carol", "B", "South", "csat", 3.0),
            ("2026-07-04", "alice", "A", "North", "nps", 10.0),
            ("2026-07-05", "alice", "A", "North", "nps", 9.0),
            ("2026-07-06", "bob", "A", "North", "nps", 7.0),
            ("2026-07-07", "carol", "B", "South", "nps", 3.0),
            ("2026-07-08", "carol", "B", "South", "nps", 0.0),
        ],
        "date",
    )
    return Facts(
        opportunities, leads, spend, surveys, reps, teams, currency="EUR", accounts=accounts
    )
