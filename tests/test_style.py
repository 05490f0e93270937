"""The house style is checked with the suite: ruff (lint and format) and mypy."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "mpswarm", "tests", "examples", "bench"],
        ["ruff", "format", "--check", "mpswarm", "tests", "examples", "bench"],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_style(command: list[str]) -> None:
    tool = shutil.which(command[0]) or shutil.which(command[0], path=str(ROOT / ".venv/bin"))
    if tool is None:
        pytest.skip(f"{command[0]} is not installed (pip install -e '.[test]')")
    if command[0] == "mypy":
        command = [sys.executable, "-m", "mypy"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
