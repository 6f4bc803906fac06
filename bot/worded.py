"""Errors a person fixes, said as a catalog message with parameters: ``str()`` is the English
wording (for logs, which stay English), ``worded(fmt)`` the organisation's language. A
parameter may itself be a message (``Phrase``), worded in the same language."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC

from bot.formatting import Formatter
from conversation.views import Phrase


@functools.cache
def english() -> Formatter:
    return Formatter("en_US", "EUR", UTC)


class WordedError(Exception):
    """An error whose message is ``code`` in the catalogs (bot/locale), with ``params``."""

    def __init__(self, code: str, **params: object) -> None:
        self.code = code
        self.params = params
        super().__init__(self.worded(english()))

    def worded(self, fmt: Formatter) -> str:
        return _said(fmt, self.code, self.params)


def _said(fmt: Formatter, code: str, params: Mapping[str, object]) -> str:
    values = {
        key: _said(fmt, value.code, value.params) if isinstance(value, Phrase) else value
        for key, value in params.items()
    }
    return fmt.t(code, **values)
