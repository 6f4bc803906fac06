"""Why an imported row was skipped, as catalog codes: ``import.<code>`` with parameters, worded in
the organisation's language where people read it (``kpibot import csv``, a sync's summary) and
in English where programs and logs read it (``str()``, ``RowProblem.reason``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.formatting import languages, translations


@dataclass(frozen=True)
class Reason:
    """``import.<code>`` with its parameters; a parameter may be a reason itself (what was wrong
    with a cell, inside "<header>: …")."""

    code: str
    params: Mapping[str, object] = field(default_factory=dict)

    def words(self, language: str) -> str:
        catalog = translations(language if language in languages() else "en")
        values = {
            name: value.words(language) if isinstance(value, Reason) else value
            for name, value in self.params.items()
        }
        return catalog.gettext(f"import.{self.code}").format(**values)

    def __str__(self) -> str:
        return self.words("en")


class CellError(ValueError):
    """A cell kpibot cannot read: its reason; ``str()`` is the English wording."""

    def __init__(self, code: str, **params: object) -> None:
        self.reason = Reason(code, params)
        super().__init__(str(self.reason))
