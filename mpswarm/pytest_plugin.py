"""pytest plugin: load checks next to your other tests.

    def test_shop_holds_up(swarm, mpswarm_demo):
        result = swarm(ShopUser, users=20, run_time="5s", host=mpswarm_demo)
        assert result.fail_ratio == 0
        assert result.percentile_ms(95) < 200
        swarm.check("p95<200ms", "fail_ratio<0.01")

Names are chosen not to collide with Locust's own plugin (fixtures ``session`` and
``fastsession``, option ``--host``): the fixtures are ``swarm`` and ``mpswarm_demo``, the
marker ``mpswarm``, the options start with ``--mpswarm-``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mpswarm.api import RunResult, run


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mpswarm", "mpswarm load checks")
    group.addoption(
        "--mpswarm-report-dir",
        default=None,
        metavar="DIR",
        help="write an HTML and a JSON report per swarm run into DIR",
    )
    group.addoption(
        "--mpswarm-processes",
        type=int,
        default=None,
        metavar="N",
        help="default worker processes for swarm runs",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mpswarm(**defaults): default arguments for the swarm fixture in this test "
        "(users, run_time, host, processes, checks, ...)",
    )


class Swarm:
    """The ``swarm`` fixture: call it to run a load test; ``check()`` to assert thresholds."""

    def __init__(self, defaults: dict[str, Any], report_dir: Path | None, test_name: str):
        self.defaults = defaults
        self.report_dir = report_dir
        self.test_name = test_name
        self.results: list[RunResult] = []

    def __call__(self, user_classes: Any = None, **kwargs: Any) -> RunResult:
        options = {**self.defaults, **kwargs}
        result = run(user_classes, **options)
        self.results.append(result)
        if self.report_dir is not None:
            self.report_dir.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^\w.-]+", "_", self.test_name)
            if len(self.results) > 1:
                stem += f"-{len(self.results)}"
            result.write_json(self.report_dir / f"{stem}.json")
            result.write_html(self.report_dir / f"{stem}.html")
        return result

    def check(self, *expressions: str, result: RunResult | None = None) -> None:
        """Assert thresholds on ``result`` (default: the last run); the message shows the
        failed checks and the stats table."""
        target = result or (self.results[-1] if self.results else None)
        if target is None:
            raise AssertionError("swarm.check() needs a run: call swarm(...) first")
        failed = [r for r in target.check(*expressions) if not r.passed]
        if failed:
            lines = "\n".join(f"  {r.describe()}" for r in failed)
            raise AssertionError(f"load check failed:\n{lines}\n{target.summary()}")


@pytest.fixture()
def swarm(request: pytest.FixtureRequest) -> Swarm:
    """Run load tests from a test; defaults from ``@pytest.mark.mpswarm(...)``."""
    defaults: dict[str, Any] = {}
    processes = request.config.getoption("--mpswarm-processes")
    if processes:
        defaults["processes"] = processes
    for marker in reversed(list(request.node.iter_markers("mpswarm"))):
        defaults.update(marker.kwargs)
    report_dir = request.config.getoption("--mpswarm-report-dir")
    return Swarm(defaults, Path(report_dir) if report_dir else None, request.node.name)


@pytest.fixture(scope="session")
def mpswarm_demo() -> Iterator[str]:
    """The built-in demo target on a free loopback port; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpswarm", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        if "http://" not in line:
            raise RuntimeError(f"the demo target did not start: {line!r}")
        yield line.strip().rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
