"""``mpswarm replay``: access logs the test writes, in each format, replayed against the demo
target: the target serves exactly the log's requests, on the log's schedule."""

from __future__ import annotations

import csv
import datetime
import json
import socket
import threading
from collections import Counter
from pathlib import Path

import pytest

from mpswarm.replay import Namer
from tests.runner.conftest import assert_follows

T0 = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.timezone.utc)


def _paths(n: int) -> list[str]:
    """Shop paths with IDs, UUIDs and hashes in them, and a query string now and then."""
    return [
        ["/", f"/items/{1000 + i % 7}", "/items/3f2b9c1e-0d4a-4b8e-9f1a-2c3d4e5f6a7b",
         "/items/deadbeef12?x=1"][i % 4]
        for i in range(n)
    ]  # fmt: skip


def _clf(path: Path, combined: bool) -> Counter[str]:
    """A log of 2 s at 20 requests a second, then 2 s at 60 (whole-second times, as nginx
    writes them), with a POST, a garbage line and an empty one; returns the GET counts."""
    lines, sent = [], Counter()
    paths = iter(_paths(160))
    for second, count in ((0, 20), (1, 20), (2, 60), (3, 60)):
        stamp = (T0 + datetime.timedelta(seconds=second)).strftime("%d/%b/%Y:%H:%M:%S %z")
        for _ in range(count):
            target = next(paths)
            tail = ' "-" "curl/8.5"' if combined else ""
            lines.append(f'10.0.0.1 - - [{stamp}] "GET {target} HTTP/1.1" 200 12{tail}')
            sent[target] += 1
    lines.insert(5, f'10.0.0.1 - - [{stamp}] "POST /login HTTP/1.1" 200 2')
    lines.insert(9, "not a log line")
    lines.insert(11, "")
    path.write_text("\n".join(lines) + "\n")
    return sent


def _served(demo) -> Counter[str]:
    return Counter({p.split(" ", 1)[1]: n for p, n in demo.stats()["paths"].items()})


@pytest.mark.parametrize("combined", [True, False], ids=["combined", "common"])
def test_a_log_is_replayed_request_for_request(run_cli, demo, tmp_path: Path, combined) -> None:
    log = tmp_path / "access.log"
    sent = _clf(log, combined)
    prefix, report = tmp_path / "run", tmp_path / "r.json"
    # (The demo shop knows no item of a UUID or hash: its 404s are the target's answers.)
    # The common log's requests are spread over 2 workers (every other one each).
    processes = "1" if combined else "2"
    run = run_cli("replay", str(log), "-H", demo.url, "--speed", "2", "--csv", str(prefix),
                  "--json-file", str(report), "--only-summary", "--processes", processes,
                  "--exit-code-on-error", "0", precise=True)  # fmt: skip
    assert run.code == 0, run
    assert "160 requests over 2.0 s; 0 with a host of their own" in run.stderr
    assert "skipped 1 unparsable lines, 0 longer than 64 KiB, 1 of other methods" in run.stderr
    # The target served exactly the log's GETs (the query strings sent as they were).
    assert _served(demo) == Counter({p.split("?")[0]: n for p, n in sent.items()})
    data = json.loads(report.read_text())
    names = {e["name"]: e["requests"] for e in data["endpoints"]}
    assert names == {"/": 40, "/items/{id}": 40, "/items/{uuid}": 40, "/items/{hash}": 40}
    assert data["open_model"]["dropped"] == 0 and data["open_model"]["iterations"] == 160
    # The replay's own timing: how late each request began after its scheduled time.
    delay = data["open_model"]["start_delay"]
    assert delay["count"] == 160 and delay["percentiles_ms"]["99"] < 50, delay
    assert "Start delay (scheduled start to a user beginning it): median" in run.stdout
    assert data["settings"]["replay"]["counts"]["unparsable"] == 1
    # The rate follows the log's: 40/s for its first second (2 s of 20/s at --speed 2), then
    # 120/s; each second's count within 1 % of the run plus the request or two at its edges.
    with open(f"{prefix}_stats_history.csv", newline="") as handle:
        history = [r for r in csv.DictReader(handle) if r["Name"] == "Aggregated"]
    counts = [int(r["Total Request Count"]) for r in history]
    assert counts[-1] == 160
    per_second = [b - a for a, b in zip([0, *counts], counts, strict=False)][:2]
    assert abs(per_second[0] - 40) <= 1.6 + 4 and abs(per_second[1] - 120) <= 1.6 + 12, counts


def test_json_lines_with_their_own_fields_and_a_time_range(run_cli, demo, tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    base = T0.timestamp()
    records = [{"ts": base + i * 0.05, "verb": "GET", "uri": f"/items/{i}"} for i in range(60)]
    records.append({"ts": base + 1, "verb": "DELETE", "uri": "/items/1"})
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n{broken\n")
    report = tmp_path / "r.json"
    run = run_cli(
        "replay", str(log), "-H", demo.url, "--log-format", "json",
        "--json-fields", "time=ts,method=verb,path=uri", "--from", "1s", "--to", "2s",
        "--name-rule", "^/items/5=/items/fifty-something", "--json-file", str(report),
        "--only-summary", "--exit-code-on-error", "0",
    )  # fmt: skip
    assert run.code == 0, run
    data = json.loads(report.read_text())
    # 1 s to 2 s: requests 20..40 (each 50 ms); the DELETE is skipped, as is the broken line.
    assert sum(e["requests"] for e in data["endpoints"]) == 21
    assert data["settings"]["replay"]["counts"] == {
        "sent": 21, "unparsable": 1, "other_method": 1, "outside_range": 39,
        "duration_s": pytest.approx(2.0), "too_long": 0, "absolute": 0, "gaps_shortened": 0,
    }  # fmt: skip
    assert {e["name"] for e in data["endpoints"]} == {"/items/{id}"}


class Trap:
    """A listener on another loopback address that counts who connects: where a replay must
    never send (a host named in the log)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.2", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


def test_a_hostile_log_sends_only_to_the_target_and_ends_with_t(run_cli, demo, tmp_path):
    """Access logs hold proxy probes (``GET http://elsewhere/``), network-path targets, endless
    lines and clock jumps: every request goes to -H as its path, a redirect is not followed,
    a 1 MB line is skipped, a ten-year gap is shortened to --max-gap, and -t ends the run."""
    trap = Trap()
    try:
        elsewhere = f"127.0.0.2:{trap.port}"

        def line(second: float, target: str) -> str:
            stamp = (T0 + datetime.timedelta(seconds=second)).strftime("%d/%b/%Y:%H:%M:%S %z")
            return f'10.0.0.1 - - [{stamp}] "GET {target} HTTP/1.1" 200 12 "-" "curl/8.5"'

        ten_years = 10 * 365 * 86400
        lines = [
            line(0, f"http://{elsewhere}/abs?q=1"),
            line(0, f"//{elsewhere}/net"),
            line(0, "/redirect/1"),
            line(1, "/items/1" + "a" * 1_000_000),
            line(1, "*"),
            line(1, "/"),
            line(ten_years, "/late"),
        ]
        log = tmp_path / "access.log"
        log.write_text("\n".join(lines) + "\n")
        report = tmp_path / "r.json"
        run = run_cli("replay", str(log), "-H", demo.url, "-t", "3s", "--json-file",
                      str(report), "--only-summary", "--exit-code-on-error", "0")  # fmt: skip
        assert run.code == 0, run
    finally:
        trap.close()
    assert trap.connections == 0, run.stderr
    assert "5 requests over 3602.0 s; 2 with a host of their own sent as their path" in run.stderr
    assert "1 quiet stretches over 3600 s shortened" in run.stderr
    assert "skipped 1 unparsable lines, 1 longer than 64 KiB" in run.stderr
    # The target served the paths; the redirect's own target ("/" once more) was not asked.
    assert _served(demo) == Counter({"/abs": 1, "/net": 1, "/redirect/1": 1, "/": 1})
    data = json.loads(report.read_text())
    assert data["duration_s"] < 4.5, data["duration_s"]


def test_a_json_line_nested_too_deep_is_unparsable(run_cli, demo, tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    deep = "[" * 30_000 + "]" * 30_000  # under the line cap, past the parser's recursion
    log.write_text(json.dumps({"time": T0.timestamp(), "method": "GET", "path": "/"}) + "\n"
                   + deep + "\n")  # fmt: skip
    run = run_cli("replay", str(log), "-H", demo.url, "--log-format", "json", "--only-summary")
    assert run.code == 0, run
    assert "skipped 1 unparsable lines" in run.stderr and "Traceback" not in run.stderr, run
    assert _served(demo) == Counter({"/": 1})


def test_names_are_templated_and_rules_come_first() -> None:
    namer = Namer((("^/api/v[0-9]+/users", "/api/users"),))
    assert namer("/items/123/reviews/9?page=2") == "/items/{id}/reviews/{id}"
    assert namer("/u/3f2b9c1e-0d4a-4b8e-9f1a-2c3d4e5f6a7b") == "/u/{uuid}"
    assert namer("/blob/0a1b2c3d4e5f") == "/blob/{hash}"
    assert namer("/blob/deadbeef") == "/blob/deadbeef"  # no digit: a word, not a hash
    assert namer("/api/v2/users/77") == "/api/users"


def test_a_log_with_nothing_to_replay_is_refused(run_cli, demo, tmp_path: Path) -> None:
    log = tmp_path / "empty.log"
    log.write_text("nothing here\n")
    run = run_cli("replay", str(log), "-H", demo.url)
    assert run.code == 2 and "no request to replay (1 unparsable lines" in run.stderr, run
    missing = run_cli("replay", str(tmp_path / "missing.log"), "-H", demo.url)
    assert missing.code == 2 and "cannot read" in missing.stderr, missing


def test_the_rate_follows_the_log_within_one_percent(run_cli, timed, tmp_path: Path) -> None:
    """Measured on the target's clock: in every half second of the replay, the requests that
    arrived are the log's for that half second, within 1 % (and the one at each edge)."""
    rates = (100, 300, 40, 200)  # per second of the log, each for one second
    offsets = [second + (i + 0.5) / rate for second, rate in enumerate(rates) for i in range(rate)]
    base = T0.timestamp()
    log = tmp_path / "access.jsonl"
    log.write_text("".join(
        json.dumps({"time": base + t, "method": "GET", "path": "/fast"}) + "\n" for t in offsets
    ))  # fmt: skip
    report = tmp_path / "r.json"
    run = run_cli("replay", str(log), "-H", timed.url, "--log-format", "json", "--speed", "2",
                  "--only-summary", "--processes", "2", "--exit-code-on-error", "0",
                  "--json-file", str(report), precise=True)  # fmt: skip
    assert run.code == 0, run
    arrived = timed.times()
    assert len(arrived) == len(offsets)
    # Both clocks start at the first request; the log's runs twice as fast at --speed 2.
    scheduled = [(t - offsets[0]) / 2 for t in offsets]
    assert_follows(arrived, scheduled, json.loads(report.read_text()), window=0.5)
