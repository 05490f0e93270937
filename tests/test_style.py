"""The house style is checked with the suite: ruff (lint and format) and mypy."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "mpswarm", "tests", "examples", "bench", "docs/hooks"],
        ["ruff", "format", "--check", "mpswarm", "tests", "examples", "bench", "docs/hooks"],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_style(command: list[str]) -> None:
    # Run the tools as modules of the interpreter running the tests: the test extra installs
    # them there, and nothing depends on what is on PATH (a fresh clone's PATH has no .venv).
    if importlib.util.find_spec(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed (pip install -e '.[test]')")
    command = [sys.executable, "-m", *command]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
