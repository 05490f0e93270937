from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpswarm.stats.histogram import (
    MIDPOINTS_US,
    NUM_BUCKETS,
    bucket_bounds,
    bucket_index,
    percentile_us,
    percentiles_us,
)

# 0.1 ms to 1 h, in microseconds: the range where the 1 % error bound is promised.
VALUES = st.integers(min_value=100, max_value=3_600_000_000)


def histogram_of(values: list[int]) -> np.ndarray:
    hist = np.zeros(NUM_BUCKETS, dtype=np.int64)
    for value in values:
        hist[bucket_index(value)] += 1
    return hist


def true_percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@pytest.mark.parametrize(
    ("value", "index"),
    [(0, 0), (1, 1), (127, 127), (128, 128), (129, 128), (130, 129), (255, 191), (256, 192)],
)
def test_bucket_index_table(value: int, index: int) -> None:
    assert bucket_index(value) == index


@given(VALUES)
def test_value_lies_in_its_bucket(value: int) -> None:
    low, high = bucket_bounds(bucket_index(value))
    assert low <= value <= high


def test_buckets_tile_the_range_without_gaps() -> None:
    previous_high = -1
    for index in range(NUM_BUCKETS):
        low, high = bucket_bounds(index)
        assert low == previous_high + 1
        previous_high = high
    assert previous_high >= 3_600_000_000


def test_values_beyond_range_go_to_last_bucket() -> None:
    assert bucket_index(10**12) == NUM_BUCKETS - 1


@settings(max_examples=200)
@given(st.lists(VALUES, min_size=1, max_size=300), st.floats(min_value=0, max_value=100))
def test_percentile_within_one_percent(values: list[int], q: float) -> None:
    got = percentile_us(histogram_of(values), q, min(values), max(values))
    want = true_percentile(values, q)
    assert got is not None
    assert abs(got - want) <= 0.01 * want


@given(st.lists(VALUES, min_size=1, max_size=200))
def test_percentiles_monotonic_and_bounded(values: list[int]) -> None:
    qs = [0, 10, 50, 66, 90, 95, 99, 99.9, 99.99, 100]
    got = percentiles_us(histogram_of(values), qs, min(values), max(values))
    assert all(v is not None for v in got)
    assert got == sorted(got)  # type: ignore[type-var]
    assert got[-1] == max(values)
    assert min(values) <= got[0]


@given(st.lists(VALUES, max_size=50), st.lists(VALUES, max_size=50), st.lists(VALUES, max_size=50))
def test_merge_is_associative_and_equals_histogram_of_union(
    a: list[int], b: list[int], c: list[int]
) -> None:
    ha, hb, hc = histogram_of(a), histogram_of(b), histogram_of(c)
    assert np.array_equal((ha + hb) + hc, ha + (hb + hc))
    assert np.array_equal(ha + hb + hc, histogram_of(a + b + c))


def test_empty_histogram_has_no_percentile() -> None:
    assert percentile_us(np.zeros(NUM_BUCKETS, dtype=np.int64), 50, 0, 0) is None


def test_midpoints_are_inside_buckets() -> None:
    for index in (0, 127, 128, 500, NUM_BUCKETS - 1):
        low, high = bucket_bounds(index)
        assert low <= MIDPOINTS_US[index] <= high
