"""What ``runner.stats`` reads in the parent: current rates and a recent snapshot.

Locust's ``current_rps`` is the rate over the last seconds; user code may also read
``runner.stats`` in a tight loop, so a snapshot is aggregated at most every 0.2 s.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from mpswarm.stats.locust_view import CURRENT_WINDOW_S
from mpswarm.stats.snapshot import Snapshot

#: Seconds a snapshot read through ``runner.stats`` is reused.
SNAPSHOT_REUSE_S = 0.2


class RecentRates:
    """Totals remembered once a second, and a briefly cached snapshot.

    Args:
        snapshot: aggregates every segment now.
        clock: seconds, monotonic.
    """

    def __init__(
        self, snapshot: Callable[[], Snapshot], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._snapshot = snapshot
        self._clock = clock
        self._cached: tuple[float, Snapshot] | None = None
        self._history: collections.deque[tuple[float, int, int]] = collections.deque(
            maxlen=int(CURRENT_WINDOW_S) + 2
        )

    def remember(self, requests: int, failures: int) -> None:
        """Once a second: the run's totals now."""
        self._history.append((self._clock(), requests, failures))

    def clear(self) -> None:
        """The statistics were reset."""
        self._history.clear()

    def current(self) -> tuple[float, float]:
        """(requests, failures) per second over the remembered seconds."""
        if len(self._history) < 2:
            return (0.0, 0.0)
        t0, r0, f0 = self._history[0]
        t1, r1, f1 = self._history[-1]
        span = t1 - t0
        return ((r1 - r0) / span, (f1 - f0) / span) if span > 0 else (0.0, 0.0)

    def recent_snapshot(self) -> Snapshot:
        """A snapshot at most ``SNAPSHOT_REUSE_S`` old."""
        now = self._clock()
        if self._cached is None or now - self._cached[0] > SNAPSHOT_REUSE_S:
            self._cached = (now, self._snapshot())
        return self._cached[1]


__all__ = ["RecentRates"]
