"""Numpy helpers over segment rows: sum them, split dense histograms, build EndpointStats.

A row here is the columns of ``segment.py`` (REQUESTS ... BYTES) and, apart, its histogram.
The Aggregator (``aggregate.py``) decides which rows to read and into which global row each
goes; these functions do the reading and summing, vectorised over many rows at once, and turn
the sums into the sparse :class:`EndpointStats` the reports read.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from mpswarm.stats.histogram import NUM_BUCKETS, bucket_bounds
from mpswarm.stats.segment import (
    BYTES,
    FAILURES,
    HIST,
    INT64_MAX,
    MAX_US,
    MIN_US,
    REQUESTS,
    ROW_WORDS,
    SUM_US,
)
from mpswarm.stats.snapshot import BUCKET_DTYPE, EndpointStats

#: The index of row 0, to fold into a one-row table.
FIRST = np.zeros(1, dtype=np.intp)
# Histogram words gathered from a segment in one numpy call (a few MB of temporaries).
_CHUNK_WORDS = 1 << 18
# 0, 1, 2, ...: the offsets of the words one piece of a gather reads (a piece passes
# _CHUNK_WORDS by less than a row).
_STEPS = np.arange(_CHUNK_WORDS + NUM_BUCKETS, dtype=np.int64)
# Lowest value of each bucket, to find the buckets of many values at once.
_BUCKET_LOWS = np.array([bucket_bounds(i)[0] for i in range(NUM_BUCKETS)], dtype=np.int64)


def empty(count: int) -> np.ndarray:
    """Summed columns (no histogram) of ``count`` rows, min at its neutral value."""
    table = np.zeros((count, HIST), dtype=np.int64)
    table[:, MIN_US] = INT64_MAX
    return table


def fold(table: np.ndarray, targets: np.ndarray, rows: np.ndarray) -> None:
    """Add the columns of ``rows`` into ``table[targets]`` (targets may repeat)."""
    np.add.at(table[:, :MIN_US], targets, rows[:, :MIN_US])
    np.minimum.at(table[:, MIN_US], targets, rows[:, MIN_US])
    np.maximum.at(table[:, MAX_US], targets, rows[:, MAX_US])
    np.add.at(table[:, BYTES], targets, rows[:, BYTES])


def gather(
    rows: np.ndarray,
    local: npt.NDArray[np.int64],
    pos: npt.NDArray[np.int64],
    columns: np.ndarray,
    hist: np.ndarray,
) -> tuple[int, int]:
    """Add the local ``rows`` into ``columns[pos]`` and ``hist[pos]``; returns the buckets
    it may have written, ``(first, stop)`` (``(NUM_BUCKETS, 0)``: none).

    Only the buckets from the row's fastest to its slowest response are read: no recorded
    time lies outside them, and the pages past them may never have been written (reading
    them would make the kernel back them).
    """
    head = rows[local, :HIST]
    fold(columns, pos, head)
    used = head[:, REQUESTS] > 0
    local, pos, head = local[used], pos[used], head[used]
    if not local.size:
        return NUM_BUCKETS, 0
    low = np.searchsorted(_BUCKET_LOWS, head[:, MIN_US], side="right") - 1
    high = np.searchsorted(_BUCKET_LOWS, head[:, MAX_US], side="right") - 1
    lengths = np.maximum(high - low + 1, 0)  # a half-written row may show min > max
    ends = np.cumsum(lengths)
    # The words of every entry's range, end to end: entry j's start there is ends - lengths.
    # Subtracted from its first word (in the segment and in the flat scratch), two repeats
    # and one shared arange make every index; and a plain ``+=`` sums when no two entries
    # share a global row (ufunc.at costs several times more).
    source = local * ROW_WORDS + HIST + low - (ends - lengths)
    target = pos * NUM_BUCKETS + low - (ends - lengths)
    distinct = bool((pos[1:] > pos[:-1]).all())  # the caller orders pos
    flat, out = rows.reshape(-1), hist.reshape(-1)
    # Split where the words to read pass each multiple of _CHUNK_WORDS (a row has < 1 728).
    cuts = np.searchsorted(ends, np.arange(_CHUNK_WORDS, int(ends[-1]), _CHUNK_WORDS))
    bounds = [0, *cuts.tolist(), local.size]
    for first, last in itertools.pairwise(bounds):
        if first >= last:
            continue
        size = lengths[first:last]
        start = int(ends[first] - lengths[first])
        steps = _STEPS[: int(ends[last - 1]) - start]
        values = flat[np.repeat(source[first:last] + start, size) + steps]
        into = np.repeat(target[first:last] + start, size) + steps
        if distinct:
            out[into] += values
        else:  # several local rows into one global row (the overflow row): unbuffered
            np.add.at(out, into, values)
    return int(low.min()), int(high.max()) + 1


def split(
    hist: np.ndarray, first: int = 0, stop: int = NUM_BUCKETS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bounds per row, bucket indexes, counts) of a block of dense histograms, whose buckets
    outside ``first:stop`` are empty (the rows' response times span a few hundred of the
    1 728: searching only those took a 10 000-row snapshot from 0.29 to 0.2 s)."""
    row_of, buckets = np.nonzero(hist[:, first:stop])
    buckets = (buckets + first).astype(BUCKET_DTYPE)  # as EndpointStats keeps them
    bounds = np.searchsorted(row_of, np.arange(hist.shape[0] + 1))
    return bounds, buckets, hist[row_of, buckets]


def same_stats(
    stats: EndpointStats, row: list[int], sparse: tuple[np.ndarray, np.ndarray, np.ndarray], i: int
) -> bool:
    """True when ``stats`` already holds the summed ``row`` (columns and buckets)."""
    if (stats.requests, stats.total_us, stats.max_us, stats.failures, stats.content_bytes) != (
        row[REQUESTS],
        row[SUM_US],
        row[MAX_US],
        row[FAILURES],
        row[BYTES],
    ) or stats.min_us != (row[MIN_US] if row[REQUESTS] else 0):
        return False
    bounds, buckets, counts = sparse
    first, last = bounds[i], bounds[i + 1]
    return bool(
        np.array_equal(stats.counts, counts[first:last])
        and np.array_equal(stats.buckets, buckets[first:last])
    )


def row_stats(
    method: str,
    name: str,
    row: list[int],
    sparse: tuple[np.ndarray, np.ndarray, np.ndarray],
    i: int,
    uncorrected: EndpointStats | None = None,
    phases: dict[str, EndpointStats] | None = None,
) -> EndpointStats:
    """Row ``i`` of a block: its summed columns (``row``) and its buckets in ``sparse``."""
    bounds, buckets, counts = sparse
    first, last = bounds[i], bounds[i + 1]
    requests = row[REQUESTS]
    return EndpointStats(
        method,
        name,
        requests,
        row[FAILURES],
        row[SUM_US],
        row[MIN_US] if requests else 0,
        row[MAX_US],
        row[BYTES],
        uncorrected=uncorrected,
        buckets=buckets[first:last],
        counts=counts[first:last].copy(),  # a copy: a view would keep the whole block alive
        phases=phases,
    )


def total_stats(
    method: str,
    name: str,
    row: np.ndarray,
    hist: np.ndarray,
    uncorrected: EndpointStats | None = None,
    phases: dict[str, EndpointStats] | None = None,
) -> EndpointStats:
    """One summed row and its dense histogram (a total: "Aggregated", the start delays)."""
    requests = int(row[REQUESTS])
    return EndpointStats(
        method,
        name,
        requests,
        int(row[FAILURES]),
        int(row[SUM_US]),
        int(row[MIN_US]) if requests else 0,
        int(row[MAX_US]),
        int(row[BYTES]),
        hist,
        uncorrected,
        phases=phases,
    )
