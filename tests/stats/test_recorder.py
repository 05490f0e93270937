"""The recorder writes into a real segment; the aggregator sums several of them."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpswarm.stats.aggregate import Aggregator
from mpswarm.stats.announcements import (
    Announcement,
    ErrorAnnounced,
    NamesOverflowed,
    RowAnnounced,
)
from mpswarm.stats.recorder import OVERFLOW_METHOD, Recorder, overflow_name
from mpswarm.stats.segment import Segment


class Worker:
    """A recorder on its own segment, announcing to an aggregator like a real worker."""

    def __init__(self, aggregator: Aggregator, wid: int, max_endpoints: int = 100) -> None:
        self.segment = Segment.create(max_endpoints, 20)
        self.wid = wid
        aggregator.add_segment(wid, self.segment)
        self.messages: list[Announcement] = []

        def announce(message: Announcement) -> None:
            self.messages.append(message)
            message.apply_to(aggregator, wid)

        self.recorder = Recorder(self.segment, announce)

    def record(self, method: str, name: str, ms: float, length: int = 10, error: str | None = None):
        self.recorder.on_request(
            request_type=method,
            name=name,
            response_time=ms,
            response_length=length,
            exception=RuntimeError(error) if error else None,
        )


@pytest.fixture()
def aggregator():
    agg = Aggregator()
    yield agg
    for segment in agg.segments:
        segment.close()


def test_counts_sums_min_max_per_endpoint(aggregator: Aggregator) -> None:
    w = Worker(aggregator, 0)
    w.record("GET", "/a", 10.0, 100)
    w.record("GET", "/a", 30.0, 300)
    w.record("POST", "/a", 5.0, 0, error="boom")
    snap = aggregator.snapshot(started_at=0, duration_s=2.0, users=0)
    get_a = snap.endpoint("/a", "GET")
    assert get_a is not None
    assert (get_a.requests, get_a.failures, get_a.content_bytes) == (2, 0, 400)
    assert get_a.min_ms == 10.0 and get_a.max_ms == 30.0 and get_a.avg_ms == 20.0
    assert get_a.rps(2.0) == 1.0
    post_a = snap.endpoint("/a", "POST")
    assert post_a is not None and post_a.failures == 1
    assert snap.total.requests == 3 and snap.total.failures == 1
    assert [(e.method, e.name, e.error, e.occurrences) for e in snap.errors] == [
        ("POST", "/a", "RuntimeError: boom", 1)
    ]


def test_names_and_errors_are_announced_once(aggregator: Aggregator) -> None:
    w = Worker(aggregator, 0)
    for _ in range(50):
        w.record("GET", "/x", 1.0, error="same")
    kinds = [type(m) for m in w.messages]
    assert kinds == [RowAnnounced, ErrorAnnounced]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from(["/a", "/b", "/c", "/d"]),
            st.floats(min_value=0.1, max_value=5000),
            st.booleans(),
        ),
        max_size=200,
    )
)
def test_segment_sums_equal_totals(records: list[tuple[int, str, float, bool]]) -> None:
    aggregator = Aggregator()
    workers = [Worker(aggregator, i) for i in range(3)]
    try:
        for wid, name, ms, failed in records:
            workers[wid].record("GET", name, ms, error="e" if failed else None)
        snap = aggregator.snapshot(started_at=0, duration_s=1, users=0)
        assert snap.total.requests == len(records)
        assert sum(row.requests for row in snap.endpoints) == len(records)
        assert snap.total.failures == sum(1 for r in records if r[3])
        assert sum(e.occurrences for e in snap.errors) == snap.total.failures
        assert int(snap.total.histogram.sum()) == len(records)
        for row in snap.endpoints:
            expected = [r for r in records if r[1] == row.name]
            assert row.requests == len(expected)
            assert row.max_us == max(int(r[2] * 1000 + 0.5) for r in expected)
    finally:
        for segment in aggregator.segments:
            segment.close()


def test_names_beyond_the_cap_fold_into_overflow(aggregator: Aggregator) -> None:
    w = Worker(aggregator, 0, max_endpoints=5)
    for i in range(20):
        w.record("GET", f"/item/{i}", 1.0)
    snap = aggregator.snapshot(started_at=0, duration_s=1, users=0)
    overflow = snap.endpoint(overflow_name(5), OVERFLOW_METHOD)
    assert overflow is not None and overflow.requests == 15
    assert len(snap.endpoints) == 6
    assert snap.total.requests == 20
    overflowed = [m for m in w.messages if isinstance(m, NamesOverflowed)]
    assert overflowed == [NamesOverflowed("GET", "/item/5")]


def test_many_distinct_names_below_the_default_cap(aggregator: Aggregator) -> None:
    w = Worker(aggregator, 0, max_endpoints=10_000)
    names = [f"/n/{i}" for i in range(9_999)]
    for name in names:
        w.record("GET", name, random.uniform(1, 100))
    snap = aggregator.snapshot(started_at=0, duration_s=1, users=0)
    assert len(snap.endpoints) == 9_999
    assert all(row.requests == 1 for row in snap.endpoints)
