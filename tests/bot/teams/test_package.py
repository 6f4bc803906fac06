"""``kpibot teams-package``: the zip Teams accepts (manifest fields, French localization, icons
of the required sizes, the outline white on transparent), and ``kpibot teams-conversations``."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from matplotlib.image import imread

from bot.cli import main
from bot.store.database import make_engine, migrate, session_factory
from bot.teams.conversations import Reference, remember
from bot.teams.package import MANIFEST_SCHEMA

APP_ID = "00000000-0000-4000-8000-00000000b07a"


def package(tmp_path: Path, *args: str, app_id: str = APP_ID) -> tuple[int, str, Path]:
    out = tmp_path / "kpibot-teams.zip"
    result = CliRunner().invoke(
        main,
        ["--config", str(tmp_path / "kpibot.yaml"), "teams-package", "--output", str(out), *args],
        env={"TEAMS_CLIENT_ID": app_id},
    )
    return result.exit_code, result.output, out


def test_the_package_holds_the_manifest_its_french_strings_and_two_icons(tmp_path: Path) -> None:
    code, output, out = package(tmp_path, "--version", "1.2.0", "--publisher", "Atelier Lumière",
                                "--website", "https://atelier-lumiere.example")  # fmt: skip
    assert code == 0, output
    with zipfile.ZipFile(out) as zipped:
        assert sorted(zipped.namelist()) == [
            "color.png",
            "fr-fr.json",
            "manifest.json",
            "outline.png",
        ]
        manifest = json.loads(zipped.read("manifest.json"))
        french = json.loads(zipped.read("fr-fr.json"))
        color = imread(io.BytesIO(zipped.read("color.png")), format="png")
        outline = imread(io.BytesIO(zipped.read("outline.png")), format="png")
    assert manifest["$schema"] == MANIFEST_SCHEMA
    assert manifest["manifestVersion"] == "1.22"
    assert (manifest["id"], manifest["version"]) == (APP_ID, "1.2.0")
    assert manifest["developer"] == {
        "name": "Atelier Lumière",
        "websiteUrl": "https://atelier-lumiere.example",
        "privacyUrl": "https://atelier-lumiere.example",
        "termsOfUseUrl": "https://atelier-lumiere.example",
    }
    assert len(manifest["name"]["short"]) <= 30 and len(manifest["description"]["short"]) <= 80
    (bot,) = manifest["bots"]
    assert bot["botId"] == APP_ID
    assert bot["scopes"] == ["personal", "team", "groupChat"]
    (commands,) = bot["commandLists"]
    titles = [c["title"] for c in commands["commands"]]
    assert titles[:3] == ["help", "revenue this quarter", "conversion"]
    assert len(titles) <= 10 and all(len(t) <= 32 for t in titles)
    assert all(len(c["description"]) <= 128 for c in commands["commands"])
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    # The command menu in French, keyed by place in the manifest.
    assert manifest["localizationInfo"]["additionalLanguages"] == [
        {"languageTag": "fr-fr", "file": "fr-fr.json"}
    ]
    assert french["bots[0].commandLists[0].commands[0].title"] == "aide"
    assert french["bots[0].commandLists[0].commands[1].title"] == "ca ce trimestre"
    assert len([k for k in french if k.endswith(".title")]) == len(titles)
    # Icons: 192×192 in colour, 32×32 white on transparent.
    assert color.shape == (192, 192, 4) and outline.shape == (32, 32, 4)
    assert (color[..., 3] == 1.0).all()
    visible = outline[..., 3] > 0
    assert 0.1 < visible.mean() < 0.9, "a glyph, not an empty or full square"
    assert np.allclose(outline[visible][:, :3], 1.0), "only white"
    assert outline[0, 0, 3] == 0, "a transparent background"


def test_without_a_client_id_the_package_says_what_to_set(tmp_path: Path) -> None:
    code, output, out = package(tmp_path, app_id="")
    assert code == 2
    assert "TEAMS_CLIENT_ID is not set" in output
    assert not out.exists()


def test_urls_must_be_https(tmp_path: Path) -> None:
    code, output, _ = package(tmp_path, "--website", "http://atelier-lumiere.example")
    assert code == 2
    assert "--website must be an https:// URL" in output


def test_teams_conversations_lists_the_stored_references(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
    migrate(engine)
    remember(
        session_factory(engine),
        Reference("19:lyon@thread.tacv2", "Équipe Lyon", "channel", "https://smba.example/",
                  "tenant", "28:bot"),
        datetime(2026, 11, 26, 9, tzinfo=UTC),
    )  # fmt: skip
    engine.dispose()
    result = CliRunner().invoke(
        main, ["--config", str(tmp_path / "kpibot.yaml"), "teams-conversations"]
    )
    assert result.exit_code == 0, result.output
    assert result.output == "Équipe Lyon\tchannel\t19:lyon@thread.tacv2\n"
