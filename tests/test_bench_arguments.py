"""The benchmark's command line: a size, a number of rounds or of deals that cannot be run
is refused with what to give instead, before anything is generated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_answers.py"


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--size", "-5"], "'-5': give a whole number above zero, e.g. 100000"),
        (["--size", "lots"], "'lots': give a whole number above zero, e.g. 100000"),
        (["--repeats", "0"], "'0': give a whole number above zero, e.g. 100000"),
        (["--sync-sizes", "10,x"], "'10,x': give positive numbers of deals separated by commas"),
    ],
)
def test_arguments_that_cannot_be_run_are_refused_with_what_to_give(arguments, said):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert said in done.stderr
    assert "Traceback" not in done.stderr
