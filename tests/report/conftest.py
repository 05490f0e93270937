from __future__ import annotations

import pytest

from mpswarm.stats.aggregate import Aggregator
from mpswarm.stats.snapshot import Snapshot
from tests.stats.test_recorder import Worker


@pytest.fixture()
def snapshot() -> Snapshot:
    """Two endpoints over two workers, with failures, errors and an exception."""
    aggregator = Aggregator()
    a, b = Worker(aggregator, 0), Worker(aggregator, 1)
    for i in range(100):
        a.record("GET", "/b", 10.0 + i, 100)
        b.record("POST", "/a", 200.0 + i, 10, error="boom" if i % 10 == 0 else None)
    aggregator.on_exceptions({("KeyError: 'x'", "Traceback...\nKeyError: 'x'"): 3}, "node0")
    snap = aggregator.snapshot(started_at=1_700_000_000.0, duration_s=10.0, users=5)
    for segment in aggregator.segments:
        segment.close()
    return snap


@pytest.fixture()
def clean_snapshot() -> Snapshot:
    """One endpoint, no failures, errors or exceptions."""
    aggregator = Aggregator()
    worker = Worker(aggregator, 0)
    for i in range(50):
        worker.record("GET", "/ok", 5.0 + i, 10)
    snap = aggregator.snapshot(started_at=1_700_000_000.0, duration_s=5.0, users=2)
    for segment in aggregator.segments:
        segment.close()
    return snap
