"""``--prometheus``: scraped by a real Prometheus server on loopback, every second, during and
after a run against the demo target; PromQL then agrees with the target and with mpswarm."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mpswarm.config import PROMETHEUS_BUCKETS
from mpswarm.report.prometheus import _LOWS, exact_edges
from tests.conftest import write

LOCUSTFILE = """
from mpswarm import FastHttpUser, constant, task

class Mixed(FastHttpUser):
    wait_time = constant(0)

    @task(3)
    def fast(self):
        self.client.get("/")

    @task
    def slow(self):
        self.client.get("/slow?ms=30", name="slow")
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Prometheus:
    """A real Prometheus server on loopback scraping ``target`` every second."""

    def __init__(self, folder: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            if os.environ.get("MPSWARM_REQUIRE_PROMETHEUS"):
                pytest.fail("prometheus is not installed (MPSWARM_REQUIRE_PROMETHEUS is set)")
            pytest.skip("prometheus is not installed (Debian: apt-get install prometheus)")
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: mpswarm\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.url = f"http://127.0.0.1:{_free_port()}"
        self._log = open(folder / "prometheus.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if _get(f"{self.url}/-/ready")[0] == 200:
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, (folder / "prometheus.log").read_text()
            time.sleep(0.2)
        raise AssertionError("prometheus did not get ready in 60 s")

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, body = _get(url)
        assert status == 200, body
        return list(json.loads(body)["data"]["result"])

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture()
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        started.append(Prometheus(tmp_path, target))
        return started[-1]

    yield start
    for server in started:
        server.close()


def test_promql_agrees_with_the_target_and_with_mpswarm(
    run_cli, demo, tmp_path: Path, prometheus_for
) -> None:
    port = _free_port()
    prometheus = prometheus_for(f"127.0.0.1:{port}")
    locustfile = write(tmp_path / "mixed.py", LOCUSTFILE)
    report = tmp_path / "r.json"
    run = run_cli(
        "-f", str(locustfile), "-H", demo.url, "--headless", "-u", "4", "-r", "100", "-t", "3s",
        "--processes", "2", "--json-file", str(report), "--prometheus", str(port),
        "--prometheus-linger", "5",
    )  # fmt: skip
    assert run.code == 0, run
    assert "serving the final metrics for 5 s more" in run.stderr
    served = demo.stats()["total"]
    data = json.loads(report.read_text())
    assert data["total"]["requests"] == served
    # The last scrapes came during the linger: Prometheus holds the final numbers. (Each
    # series' last value: once mpswarm exits, a failed scrape marks its series stale.)
    [total] = prometheus.query("sum(last_over_time(mpswarm_requests_total[5m]))")
    assert float(total["value"][1]) == served
    by_name = {
        r["metric"]["name"]: float(r["value"][1])
        for r in prometheus.query("sum by (name) (last_over_time(mpswarm_requests_total[5m]))")
    }
    assert by_name == {e["name"]: e["requests"] for e in data["endpoints"]}
    # p95 from Prometheus's buckets lies in the bucket that holds mpswarm's exact p95.
    [quantile] = prometheus.query(
        "histogram_quantile(0.95, sum by (le) "
        "(last_over_time(mpswarm_response_time_seconds_bucket[5m])))"
    )
    promql_p95 = float(quantile["value"][1]) * 1000
    ours = data["total"]["percentiles_ms"]["95"]
    edges_ms = [0.0] + [int(_LOWS[i]) / 1000 for i in exact_edges(PROMETHEUS_BUCKETS).tolist()]
    upper = next(i for i, edge in enumerate(edges_ms) if edge >= ours)
    assert edges_ms[upper - 1] <= promql_p95 <= edges_ms[upper], (promql_p95, ours, edges_ms)
    # The gauges and the breakdown are there too.
    names = {
        r["metric"]["__name__"]
        for r in prometheus.query('last_over_time({__name__=~"mpswarm_.*"}[5m])')
    }
    assert {
        "mpswarm_users", "mpswarm_workers", "mpswarm_iterations_total", "mpswarm_sent_bytes_total",
        "mpswarm_generator_saturated", "mpswarm_event_loop_lag_seconds",
        "mpswarm_dropped_iterations_total", "mpswarm_failures_total",
        "mpswarm_response_bytes_total",
    } <= names  # fmt: skip
    [ttfb] = prometheus.query("sum(last_over_time(mpswarm_time_to_first_byte_seconds_count[5m]))")
    assert float(ttfb["value"][1]) == served


def scrape_after_the_run(proc: subprocess.Popen[str], report: Path, port: int) -> dict[str, float]:
    """Wait for the run's JSON report (written before the linger), then scrape ``/metrics``:
    each sample's name and labels -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + 120
    while not report.exists() or not report.read_text().rstrip().endswith("}"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.1)
    status, body = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def test_the_web_ui_serves_its_runs_metrics(demo, tmp_path: Path) -> None:
    from tests.conftest import ROOT, mpswarm_env

    port, report = _free_port(), tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpswarm", "-f", "examples/api.py", "-H", demo.url,
         "--autostart", "--autoquit", "0", "--web-port", "0", "-u", "2", "-r", "10", "-t", "2s",
         "--json-file", str(report), "--prometheus", str(port), "--prometheus-linger", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=mpswarm_env("prometheus-web"),
    )  # fmt: skip
    try:
        samples = scrape_after_the_run(proc, report, port)
    finally:
        proc.communicate(timeout=60)
    data = json.loads(report.read_text())
    requests = sum(v for k, v in samples.items() if k.startswith("mpswarm_requests_total{"))
    assert requests == data["total"]["requests"] == demo.stats()["total"] > 0
    assert samples["mpswarm_workers{}"] == 0  # the run is over: its final numbers
    assert proc.returncode == 0


def test_the_endpoint_is_refused_to_other_hosts_and_off_loopback_without_auth(
    run_cli, demo, tmp_path: Path
) -> None:
    from mpswarm.exceptions import UsageError
    from mpswarm.report.prometheus import MetricsEndpoint

    with pytest.raises(UsageError, match="needs --web-auth"):
        MetricsEndpoint("0.0.0.0:9646")
    refused = run_cli("-f", "examples/api.py", "-H", demo.url, "--headless", "-t", "1s",
                      "--prometheus", "99999")  # fmt: skip
    assert refused.code == 2 and "--prometheus '99999'" in refused.stderr, refused
    # A taken port: one line, exit 2, before any load.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo.reset()
        busy = run_cli("-f", "examples/api.py", "-H", demo.url, "--headless", "-t", "1s",
                       "--prometheus", str(port))  # fmt: skip
    assert busy.code == 2 and "cannot serve --prometheus" in busy.stderr, busy
    assert demo.stats()["total"] == 0


def test_wrong_host_and_origin_are_refused(tmp_path: Path) -> None:
    from mpswarm.report.prometheus import MetricsEndpoint

    class Idle:  # what the endpoint reads of a swarm, for a run that sent nothing yet
        class pool:
            @staticmethod
            def live() -> list[Any]:
                return []

        class supervisor:
            saturated_now = False

        user_count = 0

        @staticmethod
        def snapshot() -> Any:
            from mpswarm.stats.aggregate import Aggregator

            return Aggregator().snapshot(0.0, 0.0, 0)

    import gevent

    endpoint = MetricsEndpoint("127.0.0.1:0")
    endpoint.start(Idle())
    url = f"http://127.0.0.1:{endpoint.port}/metrics"
    results: dict[str, int] = {}

    def probe() -> None:
        results["ok"] = _get(url)[0]
        results["host"] = _get(url, {"Host": "evil.example"})[0]
        results["origin"] = _get(url, {"Origin": "http://evil.example"})[0]
        results["path"] = _get(url.replace("/metrics", "/"))[0]

    try:  # the server runs in this process's event loop: the client in a thread of its own
        gevent.get_hub().threadpool.spawn(probe).get(timeout=20)
    finally:
        endpoint.close()
    assert results == {"ok": 200, "host": 421, "origin": 403, "path": 404}
