"""Every example runs as its docstring says (shortened), against the demo target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, DemoServer


@pytest.mark.parametrize(
    ("example", "args"),
    [
        ("shop.py", ["-u", "5", "-r", "5"]),
        ("api.py", ["-u", "3", "-r", "3"]),
        ("locust_style.py", ["-u", "3", "-r", "3"]),
        ("rest_checks.py", ["-u", "4", "-r", "4", "--check", "p95<2s", "--check",
                            "fail_ratio<0.01", "--check", "POST /api/items: p99<2s"]),
        ("stages.py", []),  # the shape's first stage; -t cuts it short
        ("arrival_rate.py", ["--arrival-rate", "40/s", "--max-users", "50"]),
    ],
)  # fmt: skip
def test_example_runs(
    run_cli: Any, demo: DemoServer, tmp_path: Path, example: str, args: list[str]
) -> None:
    report = tmp_path / "run.json"
    result = run_cli("-f", f"examples/{example}", "-H", demo.url, "--headless", "-t", "3s",
                     "--only-summary", "--json-file", str(report), *args)  # fmt: skip
    assert result.code == 0, result
    data = json.loads(report.read_text())
    assert data["total"]["requests"] > 0 and data["total"]["failures"] == 0, result
    assert data["total"]["requests"] == demo.stats()["total"]
    assert result.stdout.strip().splitlines()[-1] == "PASSED"


def test_the_websocket_example_runs(run_cli: Any, demo: DemoServer, tmp_path: Path) -> None:
    """The demo counts the handshakes and the messages it receives: each recorded call but a
    WS-RECV (the echo of a send), which it sends."""
    report = tmp_path / "run.json"
    result = run_cli("-f", "examples/websocket_chat.py", "-H", demo.url, "--headless",
                     "-t", "3s", "-u", "4", "-r", "4", "--only-summary",
                     "--json-file", str(report))  # fmt: skip
    assert result.code == 0, result
    rows = {e["method"]: e for e in json.loads(report.read_text())["endpoints"]}
    assert sum(row["failures"] for row in rows.values()) == 0, result
    sent = sum(rows[method]["requests"] for method in ("WS-CONNECT", "WS-SEND", "WS-REQUEST"))
    assert sent == demo.stats()["total"] and rows["WS-REQUEST"]["requests"] > 20
    assert rows["WS-SEND"]["requests"] - 4 <= rows["WS-RECV"]["requests"]


def test_the_pytest_example_passes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "examples/test_load_check.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
