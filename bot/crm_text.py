"""CRM text (team, rep, account, deal names) made safe to show: one line, nothing invisible.

A name is shown inside lines that kpibot writes (``Équipe Paris · T4 2026``); a line break in it
would let the CRM start a line of its own in an alert or a digest, and bidi overrides or
zero-width characters would let two names look alike or text read backwards. ``one_line`` is
applied twice, each time in one place: when a CSV import reads a text cell (so that the stored
name is the one people can type and the config can name), and when a name enters a message's
view (``bot.rendering``, ``Formatter.scope``), for names that reached the store another way.
Slack's own markup is escaped separately, by ``bot.rendering.mrkdwn_escape``.
"""

from __future__ import annotations

import re
import unicodedata

# Line and paragraph separators, and every control character (tab, CR, LF, NUL...): a space.
_BREAKS = frozenset({"Cc", "Zl", "Zp"})
_SPACES = re.compile(r" {2,}")


def one_line(text: str) -> str:
    """``text`` on one line: control characters and line breaks become a space, format
    characters (bidi controls, zero-width spaces and joiners, soft hyphens) are removed, and
    runs of spaces are collapsed."""
    if text.isprintable():  # the common case, in C: nothing to do
        return text
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category in _BREAKS:
            kept.append(" ")
        elif category != "Cf":
            kept.append(char)
    return _SPACES.sub(" ", "".join(kept)).strip()
