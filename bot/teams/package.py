"""``kpibot teams-package``: the Teams app package to sideload or upload in the Teams admin
center — ``manifest.json`` (app manifest schema 1.22: the bot, in personal chats, teams and
group chats, with its command menu), its French localization file, and the two icons Teams
requires (colour 192×192; outline 32×32, white on transparent), drawn on matplotlib's Agg
canvas, in one zip.

The command menu's titles and descriptions come from the catalogs: English in the manifest,
French in ``fr-fr.json`` (Teams shows each user their own language's)."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from bot.formatting import Formatter

MANIFEST_VERSION = "1.22"
_SCHEMAS = f"https://developer.microsoft.com/json-schemas/teams/v{MANIFEST_VERSION}"
MANIFEST_SCHEMA = f"{_SCHEMAS}/MicrosoftTeams.schema.json"
LOCALIZATION_SCHEMA = f"{_SCHEMAS}/MicrosoftTeams.Localization.schema.json"
SCOPES = ("personal", "team", "groupChat")
ACCENT = "#1F4E79"
# The command menu: each command's title is what Teams types for the user ("kpi" is optional
# before a question); titles and descriptions are catalog entries teams_app.command.<name>.
COMMANDS = ("help", "revenue", "conversion", "pipeline", "team", "targets", "alerts")
COLOR, OUTLINE, FRENCH = "color.png", "outline.png", "fr-fr.json"
# Bars of rising height and one trend line, in units of the icon's side.
_BARS = ((0.18, 0.30), (0.42, 0.48), (0.66, 0.68))
_BAR_WIDTH = 0.16


@dataclass(frozen=True)
class Publisher:
    """Who publishes the app (Teams shows it; the URLs must be https)."""

    name: str
    website: str
    privacy: str
    terms: str


def _words(locale: str) -> Formatter:
    return Formatter(locale, "EUR", ZoneInfo("UTC"))


def _commands(fmt: Formatter) -> list[dict[str, str]]:
    return [
        {
            "title": fmt.t(f"teams_app.command.{name}"),
            "description": fmt.t(f"teams_app.command.{name}.description"),
        }
        for name in COMMANDS
    ]


def manifest(app_id: str, version: str, publisher: Publisher) -> dict[str, Any]:
    """The app manifest in English; ``localization`` gives the French strings."""
    en = _words("en_US")
    return {
        "$schema": MANIFEST_SCHEMA,
        "manifestVersion": MANIFEST_VERSION,
        "version": version,
        "id": app_id,
        "developer": {
            "name": publisher.name,
            "websiteUrl": publisher.website,
            "privacyUrl": publisher.privacy,
            "termsOfUseUrl": publisher.terms,
        },
        "name": {"short": "kpibot", "full": en.t("teams_app.name")},
        "description": {
            "short": en.t("teams_app.description.short"),
            "full": en.t("teams_app.description.full"),
        },
        "icons": {"color": COLOR, "outline": OUTLINE},
        "accentColor": ACCENT,
        "bots": [
            {
                "botId": app_id,
                "scopes": list(SCOPES),
                "supportsFiles": False,
                "isNotificationOnly": False,
                "commandLists": [{"scopes": list(SCOPES), "commands": _commands(en)}],
            }
        ],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [],
        "localizationInfo": {
            "defaultLanguageTag": "en-us",
            "additionalLanguages": [{"languageTag": "fr-fr", "file": FRENCH}],
        },
    }


def localization(locale: str) -> dict[str, Any]:
    """The manifest's strings in another language, keyed by their place in the manifest."""
    fmt = _words(locale)
    strings: dict[str, Any] = {
        "$schema": LOCALIZATION_SCHEMA,
        "name.short": "kpibot",
        "name.full": fmt.t("teams_app.name"),
        "description.short": fmt.t("teams_app.description.short"),
        "description.full": fmt.t("teams_app.description.full"),
    }
    for i, command in enumerate(_commands(fmt)):
        strings[f"bots[0].commandLists[0].commands[{i}].title"] = command["title"]
        strings[f"bots[0].commandLists[0].commands[{i}].description"] = command["description"]
    return strings


def icon(size: int, *, outline: bool) -> bytes:
    """A PNG of ``size``×``size`` pixels: rising bars and a trend line. The colour icon has the
    accent colour behind white shapes; the outline icon is the white shapes alone on a
    transparent background, as Teams requires."""
    figure = Figure(figsize=(1, 1), dpi=size)
    FigureCanvasAgg(figure)
    figure.patch.set_alpha(0.0 if outline else 1.0)
    figure.patch.set_facecolor("none" if outline else ACCENT)
    ax = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    for left, height in _BARS:
        ax.add_patch(Rectangle((left, 0.16), _BAR_WIDTH, height, color="white", linewidth=0))
    ax.plot([0.14, 0.50, 0.86], [0.56, 0.72, 0.90], color="white", linewidth=size / 24)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=size, transparent=outline)
    return out.getvalue()


def build_package(path: Path, app_id: str, version: str, publisher: Publisher) -> Path:
    """Write the zip at ``path`` (replacing it) and return it."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr(
            "manifest.json",
            json.dumps(manifest(app_id, version, publisher), indent=2, ensure_ascii=False),
        )
        package.writestr(FRENCH, json.dumps(localization("fr_FR"), indent=2, ensure_ascii=False))
        package.writestr(COLOR, icon(192, outline=False))
        package.writestr(OUTLINE, icon(32, outline=True))
    return path
