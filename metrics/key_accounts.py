"""Key accounts ("grands comptes"): the accounts of the configured segments or named in the
configured list. Their revenue, pipeline and win rate are the usual KPIs computed on the facts
restricted to their deals (``Facts.restricted``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrics.facts import Facts, Selection


def _folded(names: frozenset[str]) -> frozenset[str]:
    return frozenset(n.strip().casefold() for n in names)


@dataclass(frozen=True)
class KeyAccounts:
    """The config's ``key_accounts``: ``segments`` (the CRM's account segment) and
    ``accounts`` (account names), both matched without regard to case."""

    segments: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()

    def ids(self, facts: Facts) -> np.ndarray:
        """The ids of the key accounts among ``facts.accounts``."""
        accounts = facts.accounts
        segment = accounts["segment"].astype("object").str.strip().str.casefold()
        name = accounts["name"].astype("object").str.strip().str.casefold()
        key = segment.isin(_folded(self.segments)) | name.isin(_folded(self.accounts))
        return accounts["id"][key.to_numpy()].to_numpy()

    def select(self, facts: Facts) -> Selection:
        """The key accounts' deals (``Facts.restricted``)."""
        deals = facts.opportunities["account"]
        return {"opportunities": deals.isin(self.ids(facts)).to_numpy()}

    def of(self, facts: Facts) -> Facts:
        """``facts`` restricted to the key accounts' deals."""
        return facts.restricted(("key_accounts", self), self.select)
