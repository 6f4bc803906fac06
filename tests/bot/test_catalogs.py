"""The gettext catalogs (bot/locale): English and French hold the same message ids with the same
placeholders; every message renders in fr_FR, and in French (a test that fails on an English
string); no message carries Slack's control characters; every literal id the code asks for
exists."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from bot.formatting import Formatter, catalog_path, languages

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# The same in both languages on purpose: symbols, separators, and templates made only of values.
SAME_IN_BOTH = {
    "dash",
    "sep",
    "vs",
    "scope.rep",
    "points",
    "multiple",
    "kpi.pipeline",
    "kpi.nps",
    "report.sync.with_rows",
    "teams_app.command.conversion",
}
# Words that give away an English sentence (checked outside `code`, placeholders and names).
ENGLISH = re.compile(
    r"\b(the|and|you|your|is|are|not|of|to|with|for|this|that|by|from|no|only|ask|could|"
    r"sorry|please|known|until|team|rep|target|targets|alert|alerts|snoozed|day|days|week)\b",
    re.IGNORECASE,
)


def catalog(language: str) -> Catalog:
    with catalog_path(language).open("rb") as po:
        return read_po(po, locale=language)


def ids(language: str) -> set[str]:
    return {str(m.id if isinstance(m.id, str) else m.id[0]) for m in catalog(language) if m.id}


def strings(language: str) -> dict[str, tuple[str, ...]]:
    out = {}
    for message in catalog(language):
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        out[str(key)] = tuple(str(f) for f in forms)
    return out


def test_english_and_french_are_the_catalogs():
    assert languages() == ("en", "fr")


def test_every_language_has_every_message_with_the_same_placeholders():
    english = strings("en")
    for language in languages():
        assert ids(language) == set(english), language
        for key, forms in strings(language).items():
            assert all(forms), (language, key, "untranslated")
            wanted = set(PLACEHOLDER.findall(english[key][0]))
            for form in forms:
                assert set(PLACEHOLDER.findall(form)) <= wanted | {"n"}, (language, key)


def test_no_message_contains_slack_control_characters():
    # Templates put these words into mrkdwn without escaping them.
    texts = [f for language in languages() for forms in strings(language).values() for f in forms]
    assert not [t for t in texts if re.search("[&<>]", t)]


FRENCH = Formatter("fr_FR", "EUR", ZoneInfo("Europe/Paris"))
ENGLISH_FMT = Formatter("en_US", "EUR", ZoneInfo("Europe/Paris"))


def _values(template: str) -> dict[str, str]:
    return {name: "X" for name in PLACEHOLDER.findall(template)}


def _without_code(text: str) -> str:
    return re.sub(r"`[^`]*`|```.*?```|X", " ", text, flags=re.S)


@pytest.mark.parametrize("key", sorted(ids("fr")))
def test_every_message_renders_in_french_not_in_english(key):
    template = strings("en")[key][0]
    plural = len(strings("fr")[key]) > 1
    for n in (1, 2) if plural else (None,):
        values = {k: v for k, v in _values(template).items() if not (plural and k == "n")}
        french = FRENCH.tn(key, n, **values) if n else FRENCH.t(key, **values)
        english = ENGLISH_FMT.tn(key, n, **values) if n else ENGLISH_FMT.t(key, **values)
        if key not in SAME_IN_BOTH:
            assert french != english, f"{key}: the same in French and English: {french!r}"
            leaked = ENGLISH.findall(_without_code(french))
            assert not leaked, f"{key}: English in French: {french!r} ({leaked})"


def test_every_message_id_the_code_names_exists():
    used = set()
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("templates/**/*.j2")]:
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\.tn?\(\s*["']([a-z_.]+)["']""", text))
    assert used and used - ids("en") == set()


def test_a_missing_message_is_an_error_not_its_id():
    with pytest.raises(KeyError, match="no_such_message"):
        FRENCH.t("no_such_message")
