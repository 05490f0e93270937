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
