from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mpswarm.stats.histogram import NUM_BUCKETS, bucket_index
from mpswarm.stats.snapshot import EndpointStats, percentile_table

CSV_PERCENTILES = (50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0)

# A row: none, one or many response times (µs), from one bucket or spread over many.
ROWS = st.lists(
    st.one_of(
        st.just([]),
        st.lists(st.integers(min_value=0, max_value=10_000_000), min_size=1, max_size=60),
        st.integers(min_value=0, max_value=10_000_000).flatmap(
            lambda v: st.lists(st.just(v), min_size=1, max_size=5)
        ),
    ),
    max_size=30,
)


def row_of(values: list[int]) -> EndpointStats:
    hist = np.zeros(NUM_BUCKETS, dtype=np.int64)
    for value in values:
        hist[bucket_index(value)] += 1
    if not values:
        return EndpointStats("GET", "/x", 0, 0, 0, 0, 0, 0)
    low, high = min(values), max(values)
    return EndpointStats("GET", "/x", len(values), 0, sum(values), low, high, 0, hist)


@settings(max_examples=200, deadline=None)
@given(ROWS, st.sampled_from([CSV_PERCENTILES, (50.0,), (50.0, 95.0, 99.0), (100.0, 0.0)]))
def test_the_table_holds_each_rows_own_percentiles(rows: list[list[int]], qs: tuple) -> None:
    stats = [row_of(values) for values in rows]
    assert percentile_table(stats, qs) == [row.percentiles(qs) for row in stats]


def test_a_row_with_a_negative_count_is_computed_alone() -> None:
    # A window's difference can go negative when a row was read half-written: the running
    # sum of the rows end to end would not ascend, so each such table falls back to the rows.
    odd = EndpointStats("GET", "/x", 1, 0, 5, 5, 500, 0,
                        buckets=np.array([3, 200]), counts=np.array([2, -1]))  # fmt: skip
    rows = [row_of([10, 20, 30]), odd]
    assert percentile_table(rows, (50.0, 99.0)) == [row.percentiles((50.0, 99.0)) for row in rows]


def test_a_snapshot_is_never_changed_a_fact_makes_a_new_one() -> None:
    import dataclasses

    import pytest

    from mpswarm.stats.run_facts import RunStop
    from mpswarm.stats.snapshot import Snapshot

    total = EndpointStats("", "Aggregated", 0, 0, 0, 0, 0, 0)
    live = Snapshot((), total, (), (), 0.0, 1.0, 0)
    assert live.stop is None and live.users_at_stop is None and live.reports_failed == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        live.stop = RunStop("time_limit", "the run time is over", 0, 1.0)  # type: ignore[misc]
    final = dataclasses.replace(live, stop=RunStop("time_limit", "over", 0, 1.0))
    assert live.stop is None and final.stop is not None and final.total is live.total
    assert not hasattr(live, "extra")
