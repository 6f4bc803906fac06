"""The official Adaptive Card schemas, as Microsoft publishes them (``shared/schemas/
adaptivecards``, beside the repository), for the tests and the fake Workflows endpoint."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft6Validator
from jsonschema.exceptions import ValidationError, best_match

SCHEMAS = Path(__file__).resolve().parents[4] / "shared" / "schemas" / "adaptivecards"


@cache
def validator(version: str) -> Draft6Validator:
    """The validator of version ``"1.4"`` or ``"1.5"``."""
    path = SCHEMAS / f"adaptive-card-{version}.0.json"
    return Draft6Validator(json.loads(path.read_text(encoding="utf-8")))


def schema_problems(card: dict[str, Any], version: str) -> list[str]:
    """Where and why ``card`` fails the schema of ``version``; empty when it passes."""
    return [_where(best_match([error])) for error in validator(version).iter_errors(card)]


def _where(error: ValidationError) -> str:
    # best_match descends into the schema's alternatives (anyOf: which element type) to the
    # error that says most, e.g. "body/0: Additional properties are not allowed".
    path = "/".join(str(p) for p in error.absolute_path) or "(card)"
    return f"{path}: {error.message[:300]}"
