"""The timing breakdown (connect, TLS, time to first byte), data sent and iterations, from real
runs of both HTTP clients against a server whose time to first byte is known: the demo
target's ``/slow?ms=N`` answers after N ms."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mpswarm.report.json_report import snapshot_from_dict
from tests.conftest import write

SLOW_MS = 80
USERS = 3
LOCUSTFILE = """
from mpswarm import {cls}, constant, task

class Waiting({cls}):
    wait_time = constant(0)

    @task
    def slow(self):
        self.client.get("/slow?ms={ms}", name="slow")
"""


@pytest.mark.parametrize("cls", ["FastHttpUser", "HttpUser"])
def test_breakdown_sent_bytes_and_iterations(run_cli, demo, tmp_path: Path, cls: str) -> None:
    locustfile = write(tmp_path / "slow.py", LOCUSTFILE.format(cls=cls, ms=SLOW_MS))
    report, prefix = tmp_path / "r.json", tmp_path / "run"
    run = run_cli(
        "-f", str(locustfile), "-H", demo.url, "--headless", "-u", str(USERS), "-r", "100",
        "-t", "3s", "--processes", "2", "--json-file", str(report), "--csv", str(prefix),
        "--html", str(tmp_path / "r.html"), "--check", f"ttfb_median>={SLOW_MS}ms",
        "--check", "slow: connect_max<1s", "--check", "tls_p95<1s",
    )  # fmt: skip
    assert run.code == 3, run  # only the TLS check fails: plain http has no handshake
    data = json.loads(report.read_text())
    assert [c["passed"] for c in data["checks"]] == [True, True, False]
    assert data["checks"][0]["actual"] == data["endpoints"][0]["ttfb"]["median_ms"]
    assert "tls_p95<1s: no data (FAILED)" in run.stdout
    [slow] = data["endpoints"]
    requests = slow["requests"]
    assert requests >= USERS * 10  # 3 s of 80 ms requests, 3 users
    ttfb = slow["ttfb"]
    assert ttfb["count"] == requests  # every request got an answer
    # The server waits SLOW_MS before its first byte: the breakdown says so, to within 1 %
    # plus the overhead of a loaded machine, and never less.
    assert SLOW_MS <= ttfb["median_ms"] <= SLOW_MS * 1.01 + 3, ttfb
    assert ttfb["median_ms"] <= slow["median_ms"] and ttfb["max_ms"] <= slow["max_ms"]
    assert set(ttfb["percentiles_ms"]) == set(slow["percentiles_ms"])
    # Connect: new connections only (each user keeps one alive); no TLS over plain http.
    connect = slow["connect"]
    assert connect is not None and 1 <= connect["count"] <= USERS, connect
    assert 0 < connect["max_ms"] < SLOW_MS
    assert slow["tls"] is None
    # The JSON rebuilds exactly (what mpswarm.run() returns is built from it).
    rebuilt = snapshot_from_dict(data)
    assert rebuilt.endpoints[0].phases["ttfb"].percentile(50) == ttfb["median_ms"]
    assert rebuilt.total.phases["connect"].requests == connect["count"]
    assert rebuilt.sent_bytes == data["sent_bytes"] and rebuilt.iterations == data["iterations"]
    # The total's breakdown is its endpoints' (one here).
    assert data["total"]["ttfb"]["count"] == requests
    assert data["total"]["ttfb"]["histogram"] == ttfb["histogram"]
    # Data sent: every request's bytes; FastHttpUser's request is known to the byte.
    host = demo.url.split("//", 1)[1]
    if cls == "FastHttpUser":
        from mpswarm.http.fast import FastHttpSession

        defaults = "".join(f"{k}: {v}\r\n" for k, v in FastHttpSession.default_headers.items())
        sent = f"GET /slow?ms={SLOW_MS} HTTP/1.1\r\nHost: {host}\r\n{defaults}\r\n"
        assert "User-Agent: mpswarm/" in sent and "Accept: */*" in sent  # requests' defaults
        assert data["sent_bytes"] == requests * len(sent)
    else:
        assert requests * 50 < data["sent_bytes"] < requests * 500
    # Iterations: one request per task run (a task claimed as the run stopped may send none).
    assert requests <= data["iterations"] <= requests + USERS
    # The CSV: Locust's columns, then the breakdown's.
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert int(rows[0]["TTFB Count"]) == requests
    assert abs(float(rows[0]["TTFB Median"]) - ttfb["median_ms"]) < 0.01
    assert int(rows[0]["Connect Count"]) == connect["count"] and rows[0]["TLS Median"] == ""
    # The summary: data sent, iterations, and where the time went.
    assert "sent: " in run.stdout and f"Iterations: {data['iterations']:,}" in run.stdout
    assert "Where the time went (ms):" in run.stdout
    assert "time to first byte: median" in run.stdout
    # The HTML report's table of it, and the data sent beside the requests.
    page = (tmp_path / "r.html").read_text()
    assert "<h2>Where the time went</h2>" in page and 'class="breakdown sortable"' in page
    assert f"{data['iterations']} iterations" in page
