"""The deals behind a slipped figure: for each open deal whose close date was pushed later in
the elapsed part of a period, how often and by how many days in all, at its amount and owner
when last pushed (the facts' ``slips``, in push order, from the history)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd

from metrics.facts import Facts, within
from metrics.periods import Period
from metrics.scopes import Scope


@dataclass(frozen=True)
class SlippedDeal:
    name: str
    rep: str
    team: str
    amount: Decimal  # base currency, when last pushed
    pushes: int  # how often its close date was pushed later in the period
    days: int  # by how many days in all


def slipped_deals(
    facts: Facts, scope: Scope, period: Period, as_of: date
) -> tuple[SlippedDeal, ...]:
    """The scope's slipped deals in the elapsed part of ``period``, largest amount first."""
    if as_of < period.start:
        return ()
    slips = facts.columns("slips", scope, ("date", "id", "name", "rep", "team", "days", "amount"))
    chosen = within(slips["date"], period.to_date(as_of))
    if not chosen.any():
        return ()
    frame = pd.DataFrame({name: column[chosen] for name, column in slips.items()})
    per_deal = frame.groupby("id", sort=False).agg(
        name=("name", "last"),
        rep=("rep", "last"),
        team=("team", "last"),
        amount=("amount", "last"),
        pushes=("days", "size"),
        days=("days", "sum"),
    )
    names = per_deal["name"].astype(str).to_numpy()
    amounts = per_deal["amount"].to_numpy(dtype="int64")
    order = np.lexsort((names, -amounts))
    columns = {c: per_deal[c].to_numpy() for c in ("rep", "team", "pushes", "days")}
    return tuple(
        SlippedDeal(
            name=str(names[i]),
            rep=str(columns["rep"][i]),
            team=str(columns["team"][i]),
            amount=Decimal(int(amounts[i])).scaleb(-facts.minor_digits),
            pushes=int(columns["pushes"][i]),
            days=int(columns["days"][i]),
        )
        for i in order
    )
