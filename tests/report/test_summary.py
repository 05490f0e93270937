"""The end-of-run summary, as k6 users expect it: the settings first, data and users after the
table, and a verdict last. Real runs of the CLI against the demo target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import DemoServer, write

FAILING = """
from mpswarm import HttpUser, constant, task

class Failing(HttpUser):
    wait_time = constant(0.05)

    @task
    def broken(self):
        self.client.get("/status/500")
"""


def _run(run_cli: Any, demo: DemoServer, tmp_path: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    report = tmp_path / "run.json"
    result = run_cli(*args, "-H", demo.url, "--headless", "-u", "2", "-r", "2", "-t", "2s",
                     "--only-summary", "--json-file", str(report))  # fmt: skip
    return result, json.loads(report.read_text())


def test_a_passing_run_says_its_settings_data_users_and_passed(
    run_cli: Any, demo: DemoServer, tmp_path: Path
) -> None:
    result, report = _run(run_cli, demo, tmp_path, "-f", "examples/api.py")
    assert result.code == 0, result
    lines = result.stdout.strip().splitlines()
    assert lines[0] == (
        f"Run: examples/api.py -> {demo.url}: 2 users at 2/s, 1 worker process, run time 2 s"
    ), result.stdout
    data = next(line for line in lines if line.startswith("Data received: "))
    received = report["total"]["content_bytes"]
    assert received > 0
    shown = f"{received} B" if received < 1000 else f"{received / 1000:.1f} kB"
    assert data.startswith(f"Data received: {shown} of response bodies"), data
    sent = report["sent_bytes"]
    shown_sent = f"{sent} B" if sent < 1000 else f"{sent / 1000:.1f} kB"
    assert sent > 0 and f"sent: {shown_sent} of requests" in data, data
    users = lines[lines.index(data) + 1]
    assert users.startswith(f"Iterations: {report['iterations']:,} (") and report["iterations"] > 0
    assert users.endswith("Users: peak 2, 2 when the run stopped."), users
    assert lines[-2].startswith("Stopped after 2.0 s: the run time is over")
    assert lines[-1] == "PASSED"


def test_a_failed_check_is_the_verdict(run_cli: Any, demo: DemoServer, tmp_path: Path) -> None:
    result, _ = _run(run_cli, demo, tmp_path, "-f", "examples/api.py", "--check", "requests<1",
                     "--check", "fail_ratio<0.5")  # fmt: skip
    assert result.code == 3, result
    assert result.stdout.strip().splitlines()[-1] == "FAILED: 1 check failed"


def test_failed_requests_are_the_verdict_without_checks(
    run_cli: Any, demo: DemoServer, tmp_path: Path
) -> None:
    locustfile = write(tmp_path / "failing.py", FAILING)
    result, report = _run(run_cli, demo, tmp_path, "-f", str(locustfile))
    assert result.code == 1, result
    failures = report["total"]["failures"]
    assert failures > 0
    assert result.stdout.strip().splitlines()[-1] == f"FAILED: {failures} request(s) failed"
