"""Runaway request names: run-wide caps, one warning, a short summary, exact reports."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from mpswarm.report.console import SUMMARY_ERRORS, SUMMARY_ROWS, write_summary
from mpswarm.report.json_report import report_dict, write_json
from mpswarm.stats.recorder import OVERFLOW_METHOD, overflow_name
from mpswarm.stats.snapshot import EndpointStats, ErrorStats, Snapshot
from tests.conftest import write

RUNAWAY = """
import random
from mpswarm import FastHttpUser, task

class Runaway(FastHttpUser):
    @task
    def unique(self):
        self.client.get(f"/items/{random.randrange(10**9)}")  # no name=: a name per request
"""

CAP = 80


def test_runaway_names_are_capped_for_the_whole_run(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "runaway.py", RUNAWAY)
    report = tmp_path / "r.json"
    run = run_cli(
        "-f", str(lf), "-H", demo.url, "--headless", "-u", "4", "-r", "4", "-t", "3s",
        "--processes", "2", "--max-endpoints", str(CAP), "--json-file", str(report),
    )  # fmt: skip
    assert run.code == 0, run
    data = json.loads(report.read_text())
    rows = data["endpoints"]
    # The cap is the run's: not CAP per worker (2 * CAP + 2 rows before).
    assert len(rows) == CAP + 1, run
    folded = [row for row in rows if row["name"] == overflow_name(CAP)]
    assert len(folded) == 1 and folded[0]["method"] == OVERFLOW_METHOD
    assert folded[0]["requests"] > 0
    served = demo.stats()["total"]
    assert sum(row["requests"] for row in rows) == data["total"]["requests"] == served
    warnings = [line for line in run.stderr.splitlines() if "distinct request names" in line]
    assert len(warnings) == 1, run.stderr
    assert f"more than {CAP} distinct request names in this run" in warnings[0]
    assert "first one: GET /items/" in warnings[0] and "name=" in warnings[0]
    # The summary: the busiest rows and the total, and how many it left out.
    lines = run.stdout.splitlines()
    assert len(lines) < SUMMARY_ROWS + 20, run.stdout
    assert f"... and {CAP + 1 - SUMMARY_ROWS} more endpoint(s)" in run.stdout
    assert overflow_name(CAP) in run.stdout and "Aggregated" in run.stdout


def _row(name: str, requests: int, method: str = "GET") -> EndpointStats:
    histogram = np.zeros(1728, dtype=np.int64)
    histogram[100] = requests
    return EndpointStats(method, name, requests, 0, 100 * requests, 100, 100, 0, histogram)


def _snapshot(rows: list[EndpointStats], errors: int = 0) -> Snapshot:
    total = sum(row.requests for row in rows)
    return Snapshot(
        endpoints=tuple(sorted(rows, key=lambda row: row.name)),
        total=_row("Aggregated", total),
        errors=tuple(ErrorStats("GET", f"/e/{i}", f"boom {i}", 1000 - i) for i in range(errors)),
        exceptions=(),
        started_at=0.0,
        duration_s=10.0,
        users=0,
        final=True,
    )


def test_the_summary_shows_the_busiest_rows_and_says_what_it_left_out() -> None:
    rows = [_row(f"/n/{i:03d}", 1 + i) for i in range(120)]
    overflow = _row(overflow_name(120), 1, OVERFLOW_METHOD)
    snapshot = _snapshot([*rows, overflow], errors=SUMMARY_ERRORS + 7)
    out = io.StringIO()
    write_summary(snapshot, out)
    text = out.getvalue()
    shown = [row.name for row in rows if f" {row.name} " in text]
    assert shown == [f"/n/{i:03d}" for i in range(120 - SUMMARY_ROWS, 120)]  # in name order
    assert overflow_name(120) in text  # the overflow row always: the warning points at it
    assert f"... and {121 - SUMMARY_ROWS - 1:,} more endpoint(s)" in text
    assert "see --csv/--json for all" in text
    assert "boom 0" in text and f"boom {SUMMARY_ERRORS - 1}" in text
    assert f"boom {SUMMARY_ERRORS}" not in text
    assert "... and 7 more error row(s)" in text
    assert len(text.splitlines()) < SUMMARY_ROWS + SUMMARY_ERRORS + 20


def test_the_json_report_keeps_every_row(tmp_path: Path) -> None:
    rows = [_row(f"/n/{i}", 1 + i % 7) for i in range(3000)]
    snapshot = _snapshot(rows, errors=3)
    out = io.StringIO()
    write_json(snapshot, out, {"users": 1})
    data = json.loads(out.getvalue())
    assert data == json.loads(json.dumps(report_dict(snapshot, {"users": 1})))
    assert len(data["endpoints"]) == 3000
    # One endpoint a line (through the C encoder), not one key a line.
    assert len(out.getvalue().splitlines()) < 3000 + 200
