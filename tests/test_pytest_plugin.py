"""The pytest plugin and mpswarm.run(), tested with pytester in real subprocesses."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mpswarm import run
from mpswarm.exceptions import UsageError
from tests.conftest import TAG_VAR, tagged_processes, wait_until_gone

pytest_plugins = ["pytester"]

LOADTEST = """
import pytest
from mpswarm import HttpUser, constant, task


class ShopUser(HttpUser):
    wait_time = constant(0.05)

    @task
    def item(self):
        self.client.get("/items/1", name="/items/[id]")


def test_fast_enough(swarm, mpswarm_demo):
    result = swarm(ShopUser, users=4, run_time="2s", host=mpswarm_demo, processes=2)
    assert result.requests > 20 and result.fail_ratio == 0
    assert result.percentile_ms(95) < 500
    assert result.endpoint("/items/[id]").requests == result.requests
    swarm.check("p95<500ms", "fail_ratio<0.01")


@pytest.mark.mpswarm(users=2, run_time="1s")
def test_too_strict(swarm, mpswarm_demo):
    swarm(ShopUser, host=mpswarm_demo)
    swarm.check("p50<0.001ms")
"""


@pytest.fixture()
def tagged(monkeypatch: pytest.MonkeyPatch):
    tag = uuid.uuid4().hex
    monkeypatch.setenv(TAG_VAR, tag)
    yield tag
    assert not wait_until_gone(tag), "processes left behind"


def test_fixture_marker_check_message_and_reports(pytester, tagged) -> None:
    pytester.makepyfile(test_load=LOADTEST)
    reports = pytester.path / "reports"
    result = pytester.runpytest_subprocess(
        f"--mpswarm-report-dir={reports}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*load check failed:*", "*p50<0.001ms*FAILED*", "*Aggregated*"])
    names = sorted(p.name for p in reports.iterdir())
    assert names == [
        "test_fast_enough.html",
        "test_fast_enough.json",
        "test_too_strict.html",
        "test_too_strict.json",
    ]


def test_interrupted_pytest_leaves_nothing(pytester, tagged) -> None:
    pytester.makepyfile(test_long=LOADTEST.replace('run_time="2s"', 'run_time="60s"'))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-k", "fast_enough", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(tagged_processes(tagged)) < 5:  # pytest, demo, parent, fork server, workers
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.1)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0


def test_run_rejects_classes_it_cannot_import() -> None:
    from mpswarm import User, task

    class Local(User):
        @task
        def t(self) -> None: ...

    with pytest.raises(UsageError, match="top level of a module"):
        run(Local, run_time="1s")


def test_run_with_a_locustfile(demo) -> None:
    result = run(
        locustfile=str(Path(__file__).parent.parent / "examples" / "shop.py"),
        users=4,
        run_time="2s",
        host=demo.url,
        checks=["fail_ratio<0.5"],
    )
    assert result.exit_code == 0 and not result.failed_checks
    assert result.requests == demo.stats()["total"]


def _chart_points(html: str) -> dict[str, int]:
    """How many x values each chart over time has (0 for an empty chart)."""
    import json as _json
    import re

    found = {}
    for match in re.finditer(r'\{"id": "(chart-[a-z]+)", "data": (\[.*?\]), "layout"', html):
        traces = _json.loads(match[2])
        found[match[1]] = max((len(t.get("x") or ()) for t in traces), default=0)
    return found


def test_run_gives_the_reports_of_the_command_line(run_cli, demo, tmp_path: Path) -> None:
    """mpswarm.run() and the command line, same run: the same summary (users and all), four
    CSV files with their history, an HTML report with its charts over time (before: "Users:
    peak 0" for a 5-user run, 3 of the 4 CSV files, empty charts on a Jan-Nov 2000 axis)."""
    shop = str(Path(__file__).parent.parent / "examples" / "shop.py")
    cli = tmp_path / "cli"
    done = run_cli("-f", shop, "-H", demo.url, "--headless", "-u", "5", "-r", "5", "-t", "3s",
                   "--only-summary", "--csv", str(cli), "--html", f"{cli}.html")  # fmt: skip
    assert done.code == 0, done
    result = run(locustfile=shop, users=5, spawn_rate=5, run_time="3s", host=demo.url)
    api = tmp_path / "api"
    result.write_csv(str(api))
    result.write_html(f"{api}.html")
    summary = result.summary()
    assert "Users: peak 5, 5 when the run stopped." in summary, summary
    assert "Users: peak 5, 5 when the run stopped." in done.stdout
    assert summary.rstrip().endswith("PASSED") and done.stdout.rstrip().endswith("PASSED")
    for suffix in ("_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv"):
        ours, theirs = Path(f"{api}{suffix}").read_text(), Path(f"{cli}{suffix}").read_text()
        assert ours.splitlines()[0] == theirs.splitlines()[0], suffix
        assert len(ours.splitlines()) > 1 or suffix in ("_failures.csv", "_exceptions.csv")
    history = Path(f"{api}_stats_history.csv").read_text().splitlines()
    assert len(history) >= 3, history  # a row a second, not the header alone
    charts = _chart_points(Path(f"{api}.html").read_text())
    expected = _chart_points(Path(f"{cli}.html").read_text())
    assert charts.keys() == expected.keys() and charts["chart-rps"] >= 2, (charts, expected)


def test_run_timeout_stops_everything(demo, tagged) -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run(
            locustfile=str(Path(__file__).parent.parent / "examples" / "shop.py"),
            users=4,
            run_time="60s",
            host=demo.url,
            processes=2,
            timeout=3,
        )
    assert time.monotonic() - started < 30
