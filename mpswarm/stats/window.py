"""Figures over a recent window ("p95 of the last 10 s"): differences of cumulative stats.

Workers only ever increment their counters, so the requests of a window are the difference of
two cumulative snapshots, histogram included; no per-interval state lives in the workers.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from mpswarm.stats.histogram import bucket_bounds
from mpswarm.stats.snapshot import EndpointStats, Snapshot


def difference(now: EndpointStats, then: EndpointStats | None) -> EndpointStats:
    """The requests recorded between ``then`` and ``now`` (``then`` None: all of them).

    Min and max of the window come from its histogram's outer buckets, clamped to the
    cumulative exact min and max.
    """
    if then is None or then.requests == 0:
        return now
    requests = now.requests - then.requests
    if requests <= 0:
        return EndpointStats(now.method, now.name, 0, 0, 0, 0, 0, 0)
    # Sparse: the buckets either side uses, counts subtracted (no 1 728-bucket arrays).
    buckets = np.union1d(now.buckets, then.buckets)
    counts = np.zeros(buckets.size, dtype=np.int64)
    counts[np.searchsorted(buckets, now.buckets)] += now.counts
    counts[np.searchsorted(buckets, then.buckets)] -= then.counts
    used = counts != 0
    buckets, counts = buckets[used], counts[used]
    low = max(bucket_bounds(int(buckets[0]))[0], now.min_us) if buckets.size else now.min_us
    high = min(bucket_bounds(int(buckets[-1]))[1], now.max_us) if buckets.size else now.max_us
    return EndpointStats(
        method=now.method,
        name=now.name,
        requests=requests,
        failures=now.failures - then.failures,
        total_us=now.total_us - then.total_us,
        min_us=low,
        max_us=high,
        content_bytes=now.content_bytes - then.content_bytes,
        buckets=buckets,
        counts=counts,
    )


@dataclasses.dataclass(frozen=True)
class Window:
    """What happened during the last ``span_s`` seconds."""

    span_s: float
    total: EndpointStats
    endpoints: dict[tuple[str, str], EndpointStats]

    @property
    def rps(self) -> float:
        """Requests per second in the window."""
        return self.total.requests / self.span_s if self.span_s > 0 else 0.0

    @property
    def failures_per_s(self) -> float:
        """Failures per second in the window."""
        return self.total.failures / self.span_s if self.span_s > 0 else 0.0

    def rates(self, key: tuple[str, str]) -> tuple[float, float]:
        """(requests/s, failures/s) of one endpoint in the window."""
        stats = self.endpoints.get(key)
        if stats is None or self.span_s <= 0:
            return (0.0, 0.0)
        return (stats.requests / self.span_s, stats.failures / self.span_s)


class History:
    """The last few snapshots, one per second, to compute windows from.

    Args:
        seconds: length of the window.
    """

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds
        self._snapshots: collections.deque[Snapshot] = collections.deque()

    def add(self, snapshot: Snapshot) -> None:
        """Remember a snapshot (they must come in time order)."""
        self._snapshots.append(snapshot)
        while (
            len(self._snapshots) > 2
            and snapshot.duration_s - self._snapshots[1].duration_s >= self.seconds
        ):
            self._snapshots.popleft()

    def clear(self) -> None:
        """Forget everything (after a reset of the statistics)."""
        self._snapshots.clear()

    def window(self) -> Window | None:
        """The window from the oldest kept snapshot to the newest, None before two exist."""
        if not self._snapshots:
            return None
        now = self._snapshots[-1]
        then = self._snapshots[0] if len(self._snapshots) > 1 else None
        span = now.duration_s - (then.duration_s if then is not None else 0.0)
        old = {(e.method, e.name): e for e in then.endpoints} if then is not None else {}
        endpoints = {
            (e.method, e.name): difference(e, old.get((e.method, e.name))) for e in now.endpoints
        }
        total = difference(now.total, then.total if then is not None else None)
        return Window(span_s=span, total=total, endpoints=endpoints)
