"""The aggregator's run-wide caps, overflow folding and sparse, incremental rows."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpswarm.stats.aggregate import ERROR_OVERFLOW_KEY, Aggregator
from mpswarm.stats.announcements import (
    Announcement,
    ErrorAnnounced,
    NamesOverflowed,
    RowAnnounced,
)
from mpswarm.stats.histogram import NUM_BUCKETS, bucket_index, percentiles_us
from mpswarm.stats.recorder import OVERFLOW_METHOD, Recorder, overflow_name
from mpswarm.stats.segment import HIST, Segment
from mpswarm.stats.snapshot import EndpointStats


class Worker:
    """A recorder on its own segment, announcing to the aggregator as a worker's pipe would."""

    def __init__(self, aggregator: Aggregator, wid: int, max_endpoints: int, max_errors: int):
        self.segment = Segment.create(max_endpoints, max_errors)
        self.wid = wid
        self.aggregator = aggregator
        aggregator.add_segment(wid, self.segment)
        self.messages: list[Announcement] = []
        self.recorder = Recorder(self.segment, self._announce)

    def _announce(self, message: Announcement) -> None:
        self.messages.append(message)
        message.apply_to(self.aggregator, self.wid)

    def record(self, name: str, ms: float = 1.0, error: str | None = None) -> None:
        self.recorder.on_request(
            request_type="GET",
            name=name,
            response_time=ms,
            response_length=10,
            exception=RuntimeError(error) if error else None,
        )


@pytest.fixture()
def aggregator():
    made: list[Aggregator] = []

    def make(max_endpoints: int = 100, max_errors: int = 20) -> Aggregator:
        made.append(Aggregator(max_endpoints, max_errors))
        return made[-1]

    yield make
    for agg in made:
        for segment in agg.segments:
            segment.close()


def snap(agg: Aggregator, final: bool = True):
    return agg.snapshot(started_at=0, duration_s=1, users=0, final=final)


def test_the_cap_on_names_bounds_the_run_not_each_worker(aggregator) -> None:
    agg = aggregator(max_endpoints=5)
    a, b = Worker(agg, 0, 5, 20), Worker(agg, 1, 5, 20)
    for i in range(4):
        a.record(f"/a/{i}")
    for i in range(4):
        b.record(f"/b/{i}")  # each worker is under its own cap of 5: only the run's cap folds
    b.record("/a/0")  # a name the run knows keeps its row, from any worker
    result = snap(agg)
    names = {row.name: row.requests for row in result.endpoints}
    assert len(result.endpoints) == 6
    assert names[overflow_name(5)] == 3  # /b/1../b/3 came after the run's 5th name
    assert names["/a/0"] == 2
    assert sum(names.values()) == result.total.requests == 9
    assert agg.first_folded_name == ("GET", "/b/1")
    assert agg.names_full and agg.row_names() == [
        ("GET", n) for n in ["/a/0", "/a/1", "/a/2", "/a/3", "/b/0"]
    ]


def test_several_local_rows_sum_into_the_overflow_row(aggregator) -> None:
    """Many local rows of one worker map to the one overflow row: every one of them counts
    (``a[idx] += b`` would keep one of them), min of mins and max of maxes included."""
    agg = aggregator(max_endpoints=2)
    a, b = Worker(agg, 0, 50, 20), Worker(agg, 1, 50, 20)
    a.record("/x")
    a.record("/y")
    for i in range(10):
        a.record(f"/a/{i}", ms=2.0 + i)
        b.record(f"/b/{i}", ms=100.0 + i)
    overflow = snap(agg).endpoint(overflow_name(2), OVERFLOW_METHOD)
    assert overflow is not None and overflow.requests == 20
    assert overflow.min_us == 2000 and overflow.max_us == 109_000
    assert int(overflow.histogram.sum()) == 20
    assert overflow.total_us == sum(2000 + 1000 * i + 100_000 + 1000 * i for i in range(10))


def test_workers_told_the_run_names_fold_the_others_themselves(aggregator) -> None:
    agg = aggregator(max_endpoints=3)
    w = Worker(agg, 0, 3, 20)
    w.recorder.limit_names([("GET", "/known")])
    w.record("/known")
    w.record("/new/1")
    w.record("/new/2")
    w.record("/new/1")
    rows = [m for m in w.messages if isinstance(m, RowAnnounced)]
    assert rows == [RowAnnounced(1, "GET", "/known"),
                    RowAnnounced(4, OVERFLOW_METHOD, overflow_name(3))]  # fmt: skip
    overflowed = [m for m in w.messages if isinstance(m, NamesOverflowed)]
    assert overflowed == [NamesOverflowed("GET", "/new/1")]
    result = snap(agg)
    assert result.endpoint(overflow_name(3)).requests == 3
    assert result.endpoint("/known").requests == 1


def test_errors_of_folded_names_count_under_the_overflow_name(aggregator) -> None:
    agg = aggregator(max_endpoints=2, max_errors=50)
    a, b = Worker(agg, 0, 50, 50), Worker(agg, 1, 50, 50)
    a.record("/x", error="boom")
    a.record("/y")
    for i in range(20):
        (a if i % 2 else b).record(f"/runaway/{i}", error="boom")
    errors = snap(agg).errors
    assert [(e.name, e.error, e.occurrences) for e in errors] == [
        (overflow_name(2), "RuntimeError: boom", 20),
        ("/x", "RuntimeError: boom", 1),
    ]


def test_the_cap_on_error_rows_bounds_the_run(aggregator) -> None:
    agg = aggregator(max_endpoints=100, max_errors=4)
    a, b = Worker(agg, 0, 100, 4), Worker(agg, 1, 100, 4)
    for i in range(3):
        a.record("/a", error=f"a{i}")
        b.record("/b", error=f"b{i}")
    result = snap(agg)
    assert len(result.errors) == 5
    folded = [e for e in result.errors if (e.method, e.name, e.error) == ERROR_OVERFLOW_KEY]
    assert folded[0].occurrences == 2
    assert sum(e.occurrences for e in result.errors) == result.total.failures == 6
    assert agg.errors_full and len(agg.error_keys()) == 4
    b.recorder.limit_errors(agg.error_keys())
    b.record("/b", error="b0")  # known to the run: its own row
    b.record("/b", error="new")  # not: the overflow row, no announcement
    announced = [m for m in b.messages if isinstance(m, ErrorAnnounced)]
    assert (announced[-1].method, announced[-1].name, announced[-1].text) == ERROR_OVERFLOW_KEY


@settings(max_examples=40, deadline=None)
@given(
    cap=st.integers(1, 6),
    max_errors=st.integers(1, 4),
    told=st.booleans(),
    records=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 11),
            st.integers(0, 2_000_000),
            st.sampled_from([None, "e1", "e2", "e3"]),
        ),
        max_size=120,
    ),
)
def test_folded_rows_sum_to_the_totals(
    cap: int, max_errors: int, told: bool, records: list
) -> None:
    """Whatever the caps and the order: at most cap + 1 rows, every request counted once,
    errors summing to the failures; and once workers are told the run's names as soon as
    the cap is reached (as the Swarm does), every named row is exact, histogram included."""
    agg = Aggregator(cap, max_errors)
    workers = [Worker(agg, wid, cap, max_errors) for wid in range(3)]
    try:
        for wid, n, us, error in records:
            workers[wid].record(f"/n/{n}", ms=us / 1000.0, error=error)
            if told and agg.names_full and workers[0].recorder._run_names is None:
                for worker in workers:
                    worker.recorder.limit_names(agg.row_names())
        result = snap(agg)
        assert len(result.endpoints) <= cap + 1
        assert len(result.errors) <= max_errors + 1
        assert sum(row.requests for row in result.endpoints) == result.total.requests
        assert result.total.requests == len(records)
        assert sum(int(row.counts.sum()) for row in result.endpoints) == len(records)
        assert sum(e.occurrences for e in result.errors) == result.total.failures
        assert result.total.failures == sum(1 for r in records if r[3])
        expected = Counter(f"/n/{r[1]}" for r in records)
        for row in result.endpoints:
            if row.method == OVERFLOW_METHOD:
                continue
            # Untold, a worker's own cap may fold a name the run knows: never more than sent.
            assert row.requests <= expected[row.name]
            if told:
                mine = [r[2] for r in records if f"/n/{r[1]}" == row.name]
                assert row.requests == len(mine) and row.max_us == max(mine)
                dense = np.zeros(NUM_BUCKETS, dtype=np.int64)
                for us in mine:
                    dense[bucket_index(us)] += 1
                assert (row.histogram == dense).all()
    finally:
        for segment in agg.segments:
            segment.close()


def test_rows_are_sparse_and_unchanged_rows_are_not_rebuilt(aggregator) -> None:
    agg = aggregator()
    w = Worker(agg, 0, 100, 20)
    w.record("/a", ms=5.0)
    w.record("/b", ms=5.0)
    first = snap(agg, final=False)
    a = first.endpoint("/a")
    assert a is not None and a.buckets.size == 1 and a.counts.tolist() == [1]
    w.record("/b", ms=900.0)
    second = snap(agg, final=False)
    third = snap(agg, final=False)
    assert second.endpoint("/b").requests == 2 and second.endpoint("/b").counts.size == 2
    assert third.endpoint("/a") is second.endpoint("/a")  # the same object: no copy per snapshot
    assert third.endpoint("/b").requests == 2


def test_a_reset_is_seen_even_when_counts_come_back_equal(aggregator) -> None:
    agg = aggregator()
    w = Worker(agg, 0, 100, 20)
    w.record("/a", ms=1.0)
    w.record("/a", ms=9.0)
    snap(agg, final=False)
    snap(agg, final=False)
    w.segment.reset_counts()
    w.record("/a", ms=5.0)  # the same request count and time sum as before the reset
    w.record("/a", ms=5.0)
    row = snap(agg, final=False).endpoint("/a")
    assert row is not None and row.requests == 2 and row.max_us == 5000
    assert row.counts.tolist() == [2]


def test_only_the_written_part_of_a_row_is_read(aggregator) -> None:
    """The histogram is read between the buckets of the row's min and max: what a worker
    wrote outside them (never, in a real run) is not seen, so no other page is touched."""
    agg = aggregator()
    w = Worker(agg, 0, 100, 20)
    w.record("/a", ms=5.0)
    hist = w.segment.rows[1, HIST:]
    hist[NUM_BUCKETS - 1] = 7  # far above the row's max
    row = snap(agg).endpoint("/a")
    assert row is not None and row.buckets.tolist() == [bucket_index(5000)]


@settings(max_examples=200, deadline=None)
@given(
    counts=st.dictionaries(st.integers(0, NUM_BUCKETS - 1), st.integers(1, 10**6), max_size=40),
    low=st.integers(0, 10**6),
    span=st.integers(0, 2**34),
)
def test_sparse_percentiles_equal_the_dense_ones(counts: dict, low: int, span: int) -> None:
    qs = [0.0, 1.0, 50.0, 66.0, 90.0, 99.0, 99.9, 99.99, 100.0]
    buckets = np.array(sorted(counts), dtype=np.int64)
    values = np.array([counts[b] for b in sorted(counts)], dtype=np.int64)
    stats = EndpointStats(
        "GET", "/x", int(values.sum()), 0, 0, low, low + span, 0, buckets=buckets, counts=values
    )
    dense = stats.histogram
    assert int(dense.sum()) == int(values.sum())
    want = [None if v is None else v / 1000.0 for v in percentiles_us(dense, qs, low, low + span)]
    assert stats.percentiles(qs) == want
    again = pickle.loads(pickle.dumps(stats))
    assert (again.histogram == dense).all() and again.percentiles(qs) == want


def test_a_new_name_recorded_while_another_is_announced_gets_its_own_row(aggregator) -> None:
    """Announcing can yield (a full pipe), and another greenlet may then record a new name:
    the two must not share a row (they did: rows summed to more than the total)."""
    agg = aggregator()
    w = Worker(agg, 0, 100, 20)
    announce = w._announce
    nested = []

    def yielding_announce(message: Announcement) -> None:
        if isinstance(message, RowAnnounced) and not nested:
            nested.append(message)
            w.record("/during")  # what another greenlet does while this send blocks
        announce(message)

    w.recorder._announce = yielding_announce
    w.record("/first")
    w.record("/first")
    result = snap(agg)
    rows = [m.row for m in w.messages if isinstance(m, RowAnnounced)]
    assert len(set(rows)) == len(rows) == 2
    assert {row.name: row.requests for row in result.endpoints} == {"/first": 2, "/during": 1}
    assert sum(row.requests for row in result.endpoints) == result.total.requests == 3
