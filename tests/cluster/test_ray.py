"""``--ray``: real runs over a real 2-node Ray cluster on 127.0.0.1 (mpswarm.cluster.simulate).

One cluster for the module (two nodes of one CPU each); every run goes to the demo target.
Without Ray installed these tests are skipped, unless MPSWARM_REQUIRE_RAY is set (CI sets it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, DemoServer, mpswarm_env, tagged_processes, wait_until_gone

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(
    not HAVE_RAY and not os.environ.get("MPSWARM_REQUIRE_RAY"), reason="Ray is not installed"
)
#: Every test and tool that starts Ray keeps it on 127.0.0.1.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _agents(kind: bytes = b"ray::HostAgent") -> list[int]:
    """Pids of live HostAgent actor processes (Ray names them ``ray::HostAgent...``), or of
    another kind of actor's."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(kind):
                        found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The address of a 2-node local Ray cluster, up for the module."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpswarm.cluster.simulate", "--nodes", "2", "--cpus", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, **RAY_ENV},
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()  # the first line, once the nodes are up
    try:
        assert line.startswith("address "), f"the cluster did not start: {line!r}"
        yield line.split()[1]
    finally:
        proc.stdin.close()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


class RayRun:
    """``python -m mpswarm ... --ray ADDRESS`` in the background, with its leftovers checked."""

    def __init__(
        self, tmp_path: Path, address: str, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.tag = uuid.uuid4().hex
        self.report = tmp_path / "run.json"
        command = [sys.executable, "-m", "mpswarm", *args, "--ray", address, "--processes", "1",
                   "--json-file", str(self.report)]  # fmt: skip
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env=mpswarm_env(self.tag, {**RAY_ENV, **(env or {})}),
        )  # fmt: skip

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def json(self) -> dict[str, Any]:
        return json.loads(self.report.read_text())

    def assert_nothing_left(self) -> None:
        """No process of the run (coordinator, bridge, hosts' fork servers and workers carry the
        tag) and no agent is left on any node."""
        survivors = wait_until_gone(self.tag, timeout=30)
        deadline = time.monotonic() + 30
        while (_agents() or _agents(b"ray::Collector")) and time.monotonic() < deadline:
            time.sleep(0.1)
        agents = _agents() + _agents(b"ray::Collector")
        for pid in survivors + agents:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert not survivors, f"processes left behind: {survivors}"
        assert not agents, f"host agents left behind: {agents}"


def _served(demo: DemoServer) -> dict[str, int]:
    return {route: count for route, count in demo.stats()["routes"].items() if count}


def _merged(report: dict[str, Any]) -> dict[str, int]:
    """mpswarm's per-endpoint counts as the demo target's routes (examples/api.py's names)."""
    merged: dict[str, int] = {}
    for row in report["endpoints"]:
        route = f"{row['method']} {row['name'].split('?')[0].replace('[id]', '<id>')}"
        merged[route] = merged.get(route, 0) + row["requests"]
    return merged


def _wait_for_load(demo: DemoServer, proc: subprocess.Popen[str], requests: int) -> None:
    deadline = time.monotonic() + 90
    while sum(demo.stats()["routes"].values()) < requests:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no load reached the target"
        time.sleep(0.1)


@needs_ray
def test_counts_equal_the_servers_and_checks_see_merged_stats(
    cluster: str, demo: DemoServer, tmp_path: Path
) -> None:
    from tests.report.test_prometheus import _free_port, scrape_after_the_run

    port = _free_port()
    run = RayRun(tmp_path, cluster, "-f", "examples/api.py", "-H", demo.url, "--headless",
                 "-u", "4", "-r", "4", "-t", "3s", "--check", "requests<1",
                 "--prometheus", str(port), "--prometheus-linger", "3")  # fmt: skip
    samples = scrape_after_the_run(run.proc, run.report, port)  # --prometheus: both hosts' too
    code, out, err = run.finish()
    run.assert_nothing_left()
    assert code == 3, (out, err)  # the check failed: evaluated on the merged numbers
    report = run.json()
    scraped = sum(v for k, v in samples.items() if k.startswith("mpswarm_requests_total{"))
    assert scraped == report["total"]["requests"]
    served = _served(demo)
    assert sum(served.values()) > 0
    assert _merged(report) == served
    assert report["checks"][0]["actual"] == report["total"]["requests"] == sum(served.values())
    # Both nodes ran a worker: two distinct Ray node ids in the bridge's facts.
    nodes = {line for line in err.splitlines() if "Ray bridge" in line}
    assert nodes and err.count("'node_id'") == 2, err
    for row in [*report["endpoints"], report["total"]]:
        assert sum(row["histogram"].values()) == row["requests"]


@needs_ray
def test_a_killed_agent_keeps_its_counts_and_its_users_come_back(
    cluster: str, demo: DemoServer, tmp_path: Path
) -> None:
    """An agent killed mid-run: a new one starts on its node and its users come back. The run
    is stopped (SIGTERM) once the log says they did, within a deadline: on a busy machine a
    replacement may take longer than a short run lasts."""
    run = RayRun(tmp_path, cluster, "-f", "examples/api.py", "-H", demo.url, "--headless",
                 "-u", "4", "-r", "4", "-t", "120s")  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(run.proc.stderr), daemon=True)
    reader.start()
    _wait_for_load(demo, run.proc, 20)
    agents = _agents()
    assert len(agents) == 2, agents
    os.kill(max(agents), signal.SIGKILL)
    deadline = time.monotonic() + 90
    while not any("user(s) restored" in line for line in lines):
        assert run.proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.1)
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.stdout is not None and run.proc.stderr is not None
    with run.proc.stdout, run.proc.stderr:
        out = run.proc.stdout.read()
        code = run.proc.wait(timeout=120)
        reader.join(10)
    err = "".join(lines)
    run.assert_nothing_left()
    assert code == 128 + signal.SIGTERM, (out, err)  # cut short of its -t, as asked
    assert "Hosts lost: 1" in out and "a new agent started on its node" in out, out
    assert "user(s) restored" in out, out
    report = run.json()
    served = sum(_served(demo).values())
    merged = report["total"]["requests"]
    assert report["hosts_lost"][0]["action"] == "a new agent started on its node"
    # What the lost agent's worker did after its last copy is missing: under a second of it.
    rate = served / report["duration_s"]
    assert 0 <= served - merged <= max(3.0, rate), (served, merged)


@needs_ray
def test_a_killed_collector_costs_no_request(
    cluster: str, demo: DemoServer, tmp_path: Path
) -> None:
    run = RayRun(tmp_path, cluster, "-f", "tests/cluster/unique_names.py", "-H", demo.url,
                 "--headless", "-u", "4", "-r", "4", "-t", "6s")  # fmt: skip
    _wait_for_load(demo, run.proc, 20)
    collectors = _agents(b"ray::Collector")
    assert len(collectors) == 1, collectors
    os.kill(collectors[0], signal.SIGKILL)
    code, out, err = run.finish()
    run.assert_nothing_left()
    assert code == 0, (out, err)
    assert "the collector was lost" in err, err
    assert "Hosts lost" not in out, out
    # Its successor read every host's log from the last copy the coordinator had: nothing is
    # missing, though each request's name and counts travelled in one copy only.
    report = run.json()
    served = sum(_served(demo).values())
    assert report["total"]["requests"] == served == len(report["endpoints"]), (served, report)
    assert all(row["requests"] == 1 for row in report["endpoints"])


@needs_ray
def test_kill_9_of_the_coordinator_leaves_no_process_on_any_node(
    cluster: str, demo: DemoServer, tmp_path: Path
) -> None:
    run = RayRun(tmp_path, cluster, "-f", "examples/api.py", "-H", demo.url, "--headless",
                 "-u", "2", "-r", "2", "-t", "60s")  # fmt: skip
    _wait_for_load(demo, run.proc, 10)
    assert tagged_processes(run.tag)
    run.proc.kill()
    run.proc.communicate()
    run.assert_nothing_left()


@needs_ray
def test_more_hosts_than_nodes_is_refused_before_any_load(
    cluster: str, demo: DemoServer, tmp_path: Path
) -> None:
    run = RayRun(tmp_path, cluster, "-f", "examples/api.py", "-H", demo.url, "--headless",
                 "-u", "2", "-t", "2s", "--ray-hosts", "3")  # fmt: skip
    code, out, err = run.finish()
    run.assert_nothing_left()
    assert code == 2, (out, err)
    assert err.strip().splitlines()[-1] == (
        "mpswarm: error: --ray-hosts 3: the cluster has 2 node(s)"
    ), err
    assert not _served(demo)


@needs_ray
def test_the_hosts_get_locusts_variables_as_the_coordinator_does(
    cluster: str, demo: DemoServer, tmp_path: Path
) -> None:
    # examples/api.py's users have no host of their own: every node's take it from LOCUST_HOST
    run = RayRun(tmp_path, cluster, "-f", "examples/api.py", "--headless", "-u", "2", "-r", "2",
                 "-t", "3s", env={"LOCUST_HOST": demo.url})  # fmt: skip
    code, out, err = run.finish()
    run.assert_nothing_left()
    assert code == 0, (out, err)
    served = _served(demo)
    assert sum(served.values()) > 0 and _merged(run.json()) == served


def test_ray_without_the_extra_is_a_usage_error(
    run_cli: Any, demo: DemoServer, tmp_path: Path
) -> None:
    fake = tmp_path / "ray"  # an installation without Ray: importing it fails
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    result = run_cli(
        "-f", "examples/api.py", "-H", demo.url, "--headless", "-u", "2", "-t", "2s",
        "--ray", "auto", env={"PYTHONPATH": str(tmp_path), **RAY_ENV},
    )  # fmt: skip
    assert result.code == 2, result
    assert result.stderr.strip().splitlines() == [
        "mpswarm: error: --ray needs Ray: pip install 'mpswarm[ray]'"
    ], result
    assert not _served(demo)


@needs_ray
def test_custom_messages_and_worker_reports_cross_the_hosts(
    cluster: str, demo: DemoServer, tmp_path: Path
) -> None:
    out = tmp_path / "messages.json"
    run = RayRun(tmp_path, cluster, "-f", "tests/cluster/messages.py", "-H", demo.url,
                 "--headless", "-u", "2", "-r", "2", "-t", "4s",
                 env={"MESSAGES_OUT": str(out)})  # fmt: skip
    code, stdout, err = run.finish()
    run.assert_nothing_left()
    assert code == 0, (stdout, err)
    got = json.loads(out.read_text())
    # Both remote workers got the coordinator's ping and answered it.
    assert sorted(p["index"] for p in got["pongs"]) == [0, 1], got
    assert all(p["got"] == "hello" for p in got["pongs"]), got
    pids = {p["pid"] for p in got["pongs"]}
    # Their reports reached the coordinator's worker_report listeners, from both workers.
    assert set(got["reporting_pids"]) == pids, got
    assert len(got["clients"]) == 2, got
