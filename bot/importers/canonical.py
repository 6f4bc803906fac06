"""The canonical tables a CRM export maps onto: the fields each one takes, which are required,
and how references between them are resolved. The CSV importer reads rows with it; the config
checks every mapping against it when it is loaded, so that ``kpibot check-config`` reports an
unknown field or a bad delimiter before any import runs."""

from __future__ import annotations

import codecs
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import ColumnMap


class FieldType(Enum):
    TEXT = "text"
    DATE = "date"
    AMOUNT = "amount"
    NUMBER = "number"
    PROBABILITY = "probability"
    STAGE = "stage"
    CURRENCY = "currency"
    SURVEY_KIND = "survey kind"
    REF = "reference"


@dataclass(frozen=True)
class Ref:
    """A field naming a row of another table, stored as that row's database id."""

    table: str
    column: str  # the foreign key it fills
    noun: str
    create: bool  # create a missing row by name instead of rejecting the row
    carried: tuple[str, ...] = ()  # fields copied onto a created row (a team's region)


@dataclass(frozen=True)
class Kind:
    """One canonical table (and config key): the fields a mapping may name, how they are stored."""

    name: str
    fields: Mapping[str, FieldType]
    required: frozenset[str]  # mapped and never empty
    mapped: frozenset[str] = frozenset()  # mapped, but may be empty
    id_default: str | None = None  # "name" or "hash"; None: the id is required
    refs: Mapping[str, Ref] = dataclasses.field(default_factory=dict)
    unstored: frozenset[str] = frozenset()  # read only to create referenced rows


_T = FieldType
_OWNER = Ref("reps", "owner_id", "rep", create=False)
_ACCOUNT = Ref("accounts", "account_id", "account", create=True)
_TEAM = Ref("teams", "team_id", "team", create=True, carried=("region",))
KINDS: tuple[Kind, ...] = (
    Kind(
        "teams",
        {"id": _T.TEXT, "name": _T.TEXT, "region": _T.TEXT, "manager": _T.TEXT},
        frozenset({"name"}), id_default="name",
    ),
    Kind(
        "reps",
        {"id": _T.TEXT, "name": _T.TEXT, "email": _T.TEXT, "team": _T.REF, "region": _T.TEXT,
         "active_from": _T.DATE, "active_to": _T.DATE},
        frozenset({"name"}), id_default="name", refs={"team": _TEAM},
        unstored=frozenset({"region"}),
    ),
    Kind(
        "accounts",
        {"id": _T.TEXT, "name": _T.TEXT, "segment": _T.TEXT, "industry": _T.TEXT,
         "country": _T.TEXT},
        frozenset({"name"}), id_default="name",
    ),
    Kind(
        "opportunities",
        {"id": _T.TEXT, "name": _T.TEXT, "owner": _T.REF, "account": _T.REF,
         "product": _T.TEXT, "stage": _T.STAGE, "amount": _T.AMOUNT, "currency": _T.CURRENCY,
         "created_at": _T.DATE, "close_date": _T.DATE, "probability": _T.PROBABILITY,
         "forecast_category": _T.TEXT},
        frozenset({"id", "stage"}), mapped=frozenset({"close_date"}),
        refs={"owner": _OWNER, "account": _ACCOUNT},
    ),
    Kind(
        "leads",
        {"id": _T.TEXT, "created_at": _T.DATE, "owner": _T.REF, "converted_at": _T.DATE,
         "channel": _T.TEXT, "account": _T.REF},
        frozenset({"id", "created_at"}), refs={"owner": _OWNER, "account": _ACCOUNT},
    ),
    Kind(
        "spend",
        {"id": _T.TEXT, "date": _T.DATE, "channel": _T.TEXT, "amount": _T.AMOUNT,
         "currency": _T.CURRENCY, "team": _T.REF, "region": _T.TEXT},
        frozenset({"date", "amount"}), id_default="hash", refs={"team": _TEAM},
    ),
    Kind(
        "surveys",
        {"id": _T.TEXT, "date": _T.DATE, "account": _T.REF, "owner": _T.REF,
         "kind": _T.SURVEY_KIND, "score": _T.NUMBER},
        frozenset({"id", "date", "kind", "score"}),
        refs={"account": _ACCOUNT, "owner": Ref("reps", "rep_id", "rep", create=False)},
    ),
)  # fmt: skip


def mapping_problems(key: str, kind: Kind, mapping: ColumnMap) -> list[str]:
    """What is wrong with one table's mapping, each problem with its key path under ``key``."""
    problems = []
    for field in mapping.columns:
        if field not in kind.fields:
            problems.append(
                f"{key}.columns.{field}: unknown field for {kind.name}; "
                f"expected one of {', '.join(kind.fields)}"
            )
    for field in sorted(kind.required | kind.mapped):
        if field not in mapping.columns and not (field == "id" and kind.id_default):
            problems.append(f"{key}.columns: {field} must be mapped onto a column")
    if kind.name == "opportunities" and not mapping.stages:
        problems.append(f"{key}.stages: map each stage of the export onto open, won or lost")
    if kind.name != "opportunities" and mapping.stages:
        problems.append(f"{key}.stages: only opportunities have stages")
    if len(mapping.delimiter) != 1 or mapping.delimiter in '"\r\n':
        problems.append(
            f"{key}.delimiter: expected one character such as , or ; (not a quote or a line "
            f"break), got {mapping.delimiter!r}"
        )
    try:
        codecs.lookup(mapping.encoding)
    except LookupError:
        problems.append(f"{key}.encoding: unknown encoding {mapping.encoding!r}")
    return problems
