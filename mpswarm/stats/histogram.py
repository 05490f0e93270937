"""Log-linear response-time histogram (HDR-style), in integer microseconds.

Values below 128 µs get one bucket per microsecond. Above, each power of two is split into 64
equal buckets, so a bucket is at most 1/64 of its values wide; reporting its midpoint keeps the
relative error at or below 1/128 (0.8 %). 1 728 buckets reach 2**32 µs (71 minutes); larger
values land in the last bucket (the exact maximum is kept separately).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SUB_BITS = 6
SUB_BUCKETS = 1 << SUB_BITS  # 64
_LINEAR_LIMIT = 2 * SUB_BUCKETS  # 128: below this, one bucket per µs
MAX_TRACKED_US = 1 << 32
NUM_BUCKETS = SUB_BUCKETS * (32 - SUB_BITS) + SUB_BUCKETS  # 1728


def bucket_index(value_us: int) -> int:
    """Bucket of a non-negative value in microseconds."""
    if value_us < _LINEAR_LIMIT:
        return value_us if value_us > 0 else 0
    shift = value_us.bit_length() - SUB_BITS - 1
    index = ((shift + 1) << SUB_BITS) + (value_us >> shift) - SUB_BUCKETS
    return index if index < NUM_BUCKETS else NUM_BUCKETS - 1


def bucket_bounds(index: int) -> tuple[int, int]:
    """Smallest and largest microsecond value that falls in bucket ``index``."""
    if index < _LINEAR_LIMIT:
        return index, index
    shift = (index >> SUB_BITS) - 1
    low = ((index & (SUB_BUCKETS - 1)) + SUB_BUCKETS) << shift
    return low, low + (1 << shift) - 1


def _midpoints() -> npt.NDArray[np.float64]:
    bounds = np.array([bucket_bounds(i) for i in range(NUM_BUCKETS)], dtype=np.float64)
    return bounds.mean(axis=1)


#: Reported value of each bucket, in microseconds.
MIDPOINTS_US = _midpoints()


#: Taken off q/100 * n before rounding it up to a rank: 99.9 % of 5 000 is 4 995, not the
#: 4 996 that the binary fraction 4995.000000000001 would round up to.
RANK_SLACK = 1e-9


def percentile_us(
    histogram: npt.NDArray[np.int64], q: float, min_us: int, max_us: int
) -> float | None:
    """The q-th percentile (0-100) of a histogram, in microseconds, or None when empty.

    Nearest-rank definition: the value of the ceil(q/100 * n)-th smallest recording. The result
    is clamped to [min_us, max_us], so p100 is the exact maximum and p0 the exact minimum.
    """
    return percentiles_us(histogram, [q], min_us, max_us)[0]


def percentiles_us(
    histogram: npt.NDArray[np.int64], qs: list[float], min_us: int, max_us: int
) -> list[float | None]:
    """Several percentiles of one histogram (see percentile_us), sharing one cumulative sum."""
    counts = np.cumsum(histogram)
    total = int(counts[-1]) if counts.size else 0
    if total == 0:
        return [None] * len(qs)
    result: list[float | None] = []
    for q in qs:
        if q >= 100:
            result.append(float(max_us))
            continue
        rank = max(1, int(np.ceil(q / 100.0 * total - RANK_SLACK)))
        index = int(np.searchsorted(counts, rank, side="left"))
        result.append(float(min(max(MIDPOINTS_US[index], min_us), max_us)))
    return result
