"""``RunResult.stop``: why a ``mpswarm.run()`` ended, read from its JSON report."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mpswarm.api import RunResult, RunStop
from mpswarm.report.json_report import report_dict, snapshot_from_dict
from mpswarm.stats.aggregate import Aggregator
from mpswarm.stats.snapshot import Snapshot
from tests.stats.test_recorder import Worker

CRASH = "crash loop: workers died 6 times within 60 s (more than --max-restarts 5)"


@pytest.fixture()
def snapshot() -> Snapshot:
    aggregator = Aggregator()
    worker = Worker(aggregator, 0)
    for i in range(20):
        worker.record("GET", "/ok", 5.0 + i)
    snap = aggregator.snapshot(started_at=1_700_000_000.0, duration_s=2.0, users=1)
    for segment in aggregator.segments:
        segment.close()
    return snap


def result_of(snapshot: Snapshot, stop: dict[str, object] | None, exit_code: int) -> RunResult:
    """What ``run()`` builds from the child's JSON report."""
    if stop is not None:
        snapshot = dataclasses.replace(snapshot, final=True, stop=RunStop.from_dict(stop))
    data = json.loads(json.dumps(report_dict(snapshot, {})))
    return RunResult(snapshot_from_dict(data), data, exit_code, [])


def test_a_crash_loop_is_the_result_stop(snapshot) -> None:
    stop = {"kind": "crash_loop", "message": CRASH, "exit_code": 4, "at": 7.5}
    result = result_of(snapshot, stop, 4)
    assert result.stop == RunStop("crash_loop", CRASH, 4, 7.5)
    assert result.stop.failed and result.exit_code == result.stop.exit_code
    assert result.summary().rstrip("\n").splitlines()[-2:] == [
        f"Stopped after 7.5 s: {CRASH} [crash_loop, exit code 4]",
        f"FAILED: {CRASH}",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.stop.kind = "x"  # type: ignore[misc]


def test_a_clean_stop_has_not_failed(snapshot) -> None:
    stop = {"kind": "time_limit", "message": "the run time is over", "exit_code": 0, "at": 2.0}
    result = result_of(snapshot, stop, 0)
    assert result.stop is not None and result.stop.kind == "time_limit"
    assert not result.stop.failed


def test_a_report_without_a_stop(snapshot) -> None:
    result = result_of(snapshot, None, 0)
    assert result.stop is None and "Stopped" not in result.summary()
    assert RunStop.from_dict(None) is None
