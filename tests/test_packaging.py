"""kpibot installed as operators install it: a wheel (``pip install .``, not editable) in a fresh
virtual environment, run from a directory that is not the repository. Templates, migrations and
message catalogs must ship inside the package and be found through it.

Offline and quick: the wheel is built with the test environment's setuptools
(``--no-build-isolation``), installed without dependencies, and the fresh environment borrows
this environment's site-packages for the dependencies only (a ``.pth`` line adds the folder to
``sys.path`` without running that folder's own ``.pth`` files, so the editable kpibot of the
test environment stays out)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a checkout holds besides the sources: never part of a build.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
    "*.db", "*.db-*", "kpibot.yaml", "tests",
)  # fmt: skip
# Files read at run time through the package, by the folder they live in within the checkout
# and the package they are installed as.
PACKAGE_DATA = {"templates": "bot/templates", "migrations": "bot/migrations", "bot": "bot"}
DATA_SUFFIXES = (".j2", ".json", ".mako", ".po", ".pot", ".mo")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "KPIBOT_CONFIG", "DATABASE_URL", "VIRTUAL_ENV")
        }
        return subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
        )


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("packaging")
    # A copy, because setuptools builds in the source tree and a stale build/ folder there
    # would smuggle deleted files into the wheel.
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(work), str(source))
    (wheel,) = work.glob("kpibot-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    _pip("--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel))
    ask = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", ask], check=True, capture_output=True, text=True
    ).stdout.strip()
    (Path(purelib) / "_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    yield Installed(wheel, venv)


def test_the_wheel_holds_every_template_migration_and_catalog(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = set()
    for folder, package in PACKAGE_DATA.items():
        for path in (ROOT / folder).rglob("*"):
            relative = path.relative_to(ROOT / folder)
            if "__pycache__" in relative.parts or not path.is_file():
                continue
            if folder == "bot" and path.suffix not in DATA_SUFFIXES:
                continue  # bot's modules are checked by running them below
            expected.add(f"{package}/{relative.as_posix()}")
    assert "bot/templates/slack/digest.json.j2" in expected
    assert "bot/migrations/versions/0001_canonical_model.py" in expected
    assert sorted(expected - names) == []


def test_an_installed_kpibot_runs_the_demo_from_any_directory(
    installed: Installed, tmp_path: Path
) -> None:
    where = installed.run(
        str(installed.bin / "python"),
        "-c",
        "import bot, bot.templates, bot.migrations; "
        "print(bot.__file__, bot.templates.__file__, bot.migrations.__file__)",
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(str(installed.venv)) for path in where.stdout.split())

    result = installed.run(str(installed.bin / "kpibot"), "demo", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    # The demo company is French: so is what the demo says.
    assert out.startswith("Configuration de l'entreprise de démo écrite dans kpibot.yaml\n")
    database = f"sqlite:///{tmp_path / 'kpibot.db'}"
    assert f"Entreprise de démo dans {database}\u00a0: 6 équipes, 30 commerciaux, " in out
    assert "Récap quotidien — Atelier Lumière SAS" in out  # rendered from bot.templates
    assert '$ kpibot ask "ca ce trimestre"' in out
    assert (tmp_path / "kpibot.yaml").read_text().startswith("#")  # templates/config/demo.yaml.j2
    assert (tmp_path / "kpibot.db").stat().st_size > 100_000  # migrated and filled
