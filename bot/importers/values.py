"""Reading one CSV cell (or one CRM field) into its canonical value, or the reason it cannot be.

These are the import's reference rules: the columnar import (``bot.importers.cells``) reads the
common shapes of a value (plain ASCII text, plain numbers) a whole column at a time and hands
every other distinct value to these functions, and CRM history backfills read values through
``field_parser``. Each raises ``CellError`` (a ``ValueError``) with the reason a person reads,
as a catalog code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, Table

from bot.crm_text import one_line
from bot.importers.canonical import KINDS, FieldType, Kind
from bot.importers.reasons import CellError
from bot.settings import ColumnMap
from bot.store.models import Base
from metrics.limits import (
    FIRST_DATE,
    LAST_DATE,
    MAX_AMOUNT_TEXT,
    amount_problem,
    date_problem,
)

KINDS_BY_NAME = {kind.name: kind for kind in KINDS}
# Distinct date strings remembered per column: a year of dates is a few hundred strings, so
# parsing each once makes date columns nearly free; date-times would grow it without bound.
_DATE_CACHE_LIMIT = 50_000

Parser = Callable[[str], Any]


def _date_parser(date_format: str | None) -> Parser:
    cache: dict[str, date] = {}

    def parse(raw: str) -> date:
        found = cache.get(raw)
        if found is not None:
            return found
        try:
            if date_format is not None:
                value = datetime.strptime(raw, date_format).date()
            else:
                try:
                    value = date.fromisoformat(raw)
                except ValueError:
                    value = datetime.fromisoformat(raw).date()
        except ValueError:
            expected = date_format or "YYYY-MM-DD"
            raise CellError("date", value=repr(raw), expected=expected) from None
        # Placeholders (0001-01-01, 9999-12-31) and typos (0202-11-02) that pandas cannot hold.
        if date_problem(value) is not None:
            raise CellError(
                "date_outside", value=value.isoformat(), first=str(FIRST_DATE), last=str(LAST_DATE)
            )
        if len(cache) < _DATE_CACHE_LIMIT:
            cache[raw] = value
        return value

    return parse


def _number_pattern(decimal_separator: str, grouped: bool) -> re.Pattern[str]:
    point = re.escape(decimal_separator)
    group = r"[,\u00a0\u202f ']" if decimal_separator == "." else r"[.\u00a0\u202f ']"
    digits = rf"\d{{1,3}}(?:{group}\d{{3}})+|\d+" if grouped else r"\d+"
    return re.compile(rf"([-+]?)[$€£]?\s*({digits})(?:{point}(\d*))?\s*[$€£]?")


_NO_GROUPS = str.maketrans("", "", ",.\u00a0\u202f '")


def _decimal(match: re.Match[str]) -> Decimal:
    sign, whole, fraction = match.groups()
    return Decimal(f"{sign}{whole.translate(_NO_GROUPS)}.{fraction or '0'}")


def _amount_parser(decimal_separator: str) -> Parser:
    pattern = _number_pattern(decimal_separator, grouped=True)

    def parse(raw: str) -> Decimal:
        # Most exports write plain whole numbers: skip the pattern for them.
        if raw.isascii() and raw.isdigit():
            value = Decimal(raw)
        else:
            match = pattern.fullmatch(raw)
            if match is None:
                raise CellError("amount", value=repr(raw))
            value = _decimal(match)
        if amount_problem(value) is not None:
            raise CellError("amount_beyond", value=f"{value.normalize():f}", limit=MAX_AMOUNT_TEXT)
        return value

    return parse


def _number_parser(decimal_separator: str) -> Parser:
    pattern = _number_pattern(decimal_separator, grouped=False)

    def parse(raw: str) -> float:
        match = pattern.fullmatch(raw)
        if match is None:
            raise CellError("number", value=repr(raw))
        return float(_decimal(match))

    return parse


def _probability_parser(decimal_separator: str) -> Parser:
    number = _number_parser(decimal_separator)

    def parse(raw: str) -> float:
        percent = raw.endswith("%")
        value: float = number(raw.removesuffix("%").strip())
        if percent or value > 1:
            value /= 100
        if not 0 <= value <= 1:
            raise CellError("probability", value=repr(raw))
        return value

    return parse


def _stage_parser(stages: Mapping[str, str]) -> Parser:
    statuses = {name.strip().casefold(): status for name, status in stages.items()}
    known = ", ".join(stages)

    def parse(raw: str) -> tuple[str, str]:
        status = statuses.get(raw.casefold())
        if status is None:
            raise CellError("stage", value=repr(raw), known=known)
        return raw, status

    return parse


def _currency(raw: str) -> str:
    code = raw.upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise CellError("currency", value=repr(raw))
    return code


def _survey_kind(raw: str) -> str:
    kind = raw.casefold()
    if kind not in ("csat", "nps"):
        raise CellError("survey_kind", value=repr(raw))
    return kind


def _text_parser(limit: int | None) -> Parser:
    def parse(raw: str) -> str:
        # Names end up in messages: no line breaks, nothing invisible (bot.crm_text).
        text = one_line(raw)
        if limit is not None and len(text) > limit:
            raise CellError("too_long", limit=limit)
        return text

    return parse


def check_storable(raw: str, encoding: str) -> None:
    """Refuse what no field can store: a byte the file's encoding does not have (the reader
    keeps it as a lone surrogate) or a NUL character, which PostgreSQL refuses in text."""
    if raw.isprintable():  # the common case, in C
        return
    if "\x00" in raw:
        raise CellError("nul")
    for char in raw:
        if "\udc80" <= char <= "\udcff":
            raise CellError("byte", byte=f"{ord(char) - 0xDC00:02x}", encoding=encoding)


def text_limit(table: Table, column: str) -> int | None:
    kind = table.c[column].type if column in table.c else None
    return kind.length if isinstance(kind, String) else None


def field_limit(kind: Kind, field: str) -> int | None:
    """The most characters a text or reference field's stored column holds (None: no limit)."""
    table = Base.metadata.tables[kind.name]
    if kind.fields[field] is FieldType.REF or field == "id":
        return text_limit(table, "source_id")
    return text_limit(table, field)


def parser(kind: Kind, field: str, mapping: ColumnMap) -> Parser:
    field_type = kind.fields[field]
    if field_type is FieldType.DATE:
        return _date_parser(mapping.date_format)
    if field_type is FieldType.AMOUNT:
        return _amount_parser(mapping.decimal_separator)
    if field_type is FieldType.NUMBER:
        return _number_parser(mapping.decimal_separator)
    if field_type is FieldType.PROBABILITY:
        return _probability_parser(mapping.decimal_separator)
    if field_type is FieldType.STAGE:
        return _stage_parser(mapping.stages)
    if field_type is FieldType.CURRENCY:
        return _currency
    if field_type is FieldType.SURVEY_KIND:
        return _survey_kind
    return _text_parser(field_limit(kind, field))


def field_parser(table: str, field: str, mapping: ColumnMap) -> Parser:
    """How the import reads ``field`` of ``table`` under ``mapping``: text → value, raising
    ``ValueError`` with the reason (a stage parses to its name and status)."""
    return parser(KINDS_BY_NAME[table], field, mapping)
