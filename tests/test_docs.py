"""The README documents every config key, and its examples name real commands and files."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from bot.cli import main
from bot.settings import VARIABLES, ColumnMap, Config, SqlTable

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# How the README names the entries of a mapping of sections.
PLACEHOLDERS = {
    "import.csv": "<source>", "sources": "<source>", "targets[].periods": "<period>",
    "teams.webhooks": "<name>",
}  # fmt: skip
TABLE_MODELS = ([ColumnMap], [SqlTable])


def _models(annotation: object) -> list[type[BaseModel]]:
    """The models an annotation names, through Optional, unions and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = prefix + (field.alias or name)
        if path.count("<source>") and _models(field.annotation) in TABLE_MODELS:
            path = path.rsplit(".", 1)[0] + ".<table>"
            if field.alias or name != "teams":
                continue  # one set of rows documents every table
        origin = typing.get_origin(field.annotation)
        args = typing.get_args(field.annotation)
        nested = [m for a in args for m in _models(a)] if origin in (list, dict) else []
        if origin is list and nested:
            yield from keys(nested[0], path + "[].")
        elif origin is dict and nested:
            yield f"{path}.{PLACEHOLDERS[path]}"
            if path != "targets[].periods":  # its values take the target's own keys
                for each in nested:  # a source of each kind
                    yield from keys(each, f"{path}.{PLACEHOLDERS[path]}.")
        elif _models(field.annotation):
            yield from keys(_models(field.annotation)[0], path + ".")
        else:
            yield path


def test_every_config_key_is_in_the_readme() -> None:
    missing = [key for key in keys(Config) if f"`{key}`" not in README]
    assert missing == []


def test_every_cli_command_is_in_the_readme() -> None:
    for command in main.list_commands(None):  # type: ignore[arg-type]
        assert f"kpibot {command}" in README, command


def test_linked_files_exist() -> None:
    for name in ("manifest.yml", ".env.example", "Procfile", "examples/maven/kpibot.yaml",
                 "bot/importers/csv_import.py", "scripts/bench_answers.py",
                 "scripts/bench_fanout.py", "scripts/bench_sql_source.py"):  # fmt: skip
        assert (ROOT / name).exists(), name
        assert name in README, name


def test_every_environment_variable_is_documented() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name in VARIABLES:
        assert f"`{name}`" in README, name
        assert f"\n{name}=" in example, name
