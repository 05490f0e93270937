"""Locust's stats objects (``runner.stats``, ``locust.stats``) as views of a Snapshot.

Locustfiles read ``environment.runner.stats.total.fail_ratio`` and the like; these classes give
them Locust's names and units (milliseconds, ``get_response_time_percentile(0.95)``), computed
from mpswarm's histograms.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mpswarm.stats.snapshot import EndpointStats, ErrorStats, Snapshot

#: Seconds of history behind ``current_rps`` (Locust's window is 10 s too).
CURRENT_WINDOW_S = 10.0
#: Locust module constants some locustfiles set; kept for compatibility.
CSV_STATS_INTERVAL_SEC = 1
CSV_STATS_FLUSH_INTERVAL_SEC = 10
HISTORY_STATS_INTERVAL_SEC = 5
CONSOLE_STATS_INTERVAL_SEC = 2
PERCENTILES_TO_REPORT = [0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0]

Rates = Callable[[], tuple[float, float]]


class StatsEntry:
    """One endpoint's (or the total's) figures, with Locust's attribute names.

    Args:
        stats: the endpoint's statistics.
        duration_s: seconds the run has lasted.
        rates: (requests/s, failures/s) over the last seconds, or None to use the run average.
    """

    def __init__(
        self, stats: EndpointStats, duration_s: float, rates: tuple[float, float] | None = None
    ) -> None:
        self._stats = stats
        self._duration = duration_s
        self._rates = rates
        self.name = stats.name
        self.method = stats.method
        self.num_requests = stats.requests
        self.num_failures = stats.failures
        self.num_none_requests = 0
        self.total_response_time = stats.total_us / 1000.0
        self.total_content_length = stats.content_bytes

    @property
    def fail_ratio(self) -> float:
        """Failures / requests."""
        return self._stats.fail_ratio

    @property
    def avg_response_time(self) -> float:
        """Mean response time in ms (0 without requests)."""
        return self._stats.avg_ms or 0.0

    @property
    def min_response_time(self) -> float | None:
        """Fastest response in ms, None without requests."""
        return self._stats.min_ms

    @property
    def max_response_time(self) -> float:
        """Slowest response in ms."""
        return self._stats.max_ms or 0.0

    @property
    def median_response_time(self) -> float:
        """Median response time in ms."""
        return self._stats.median_ms or 0.0

    @property
    def avg_content_length(self) -> float:
        """Mean body size in bytes."""
        return self._stats.avg_content_length

    @property
    def total_rps(self) -> float:
        """Requests per second over the whole run."""
        return self._stats.rps(self._duration)

    @property
    def total_fail_per_sec(self) -> float:
        """Failures per second over the whole run."""
        return self.num_failures / self._duration if self._duration > 0 else 0.0

    @property
    def current_rps(self) -> float:
        """Requests per second over the last seconds."""
        return self._rates[0] if self._rates is not None else self.total_rps

    @property
    def current_fail_per_sec(self) -> float:
        """Failures per second over the last seconds."""
        return self._rates[1] if self._rates is not None else self.total_fail_per_sec

    def get_response_time_percentile(self, percent: float) -> float:
        """Response time in ms at ``percent`` (a fraction: 0.95 for p95); 0 without data."""
        return self._stats.percentile(percent * 100.0) or 0.0

    def get_current_response_time_percentile(self, percent: float) -> float:
        """As ``get_response_time_percentile`` (mpswarm keeps exact cumulative histograms)."""
        return self.get_response_time_percentile(percent)

    def __repr__(self) -> str:
        return f"<StatsEntry {self.method} {self.name}: {self.num_requests} requests>"


class StatsError:
    """One error row (Locust's ``StatsError``)."""

    def __init__(self, error: ErrorStats) -> None:
        self.method = error.method
        self.name = error.name
        self.error = error.error
        self.occurrences = error.occurrences


class RequestStats:
    """Live statistics of the run, read from shared memory when asked.

    Args:
        source: returns a fresh (or recent) Snapshot.
        rates: returns the total (requests/s, failures/s) over the last seconds.
        reset: zeroes the counters behind ``source`` (``clear_all()``), where this process
            may (a single-process runner); None: ``clear_all()`` is refused.
    """

    def __init__(
        self,
        source: Callable[[], Snapshot],
        rates: Rates | None = None,
        reset: Callable[[], None] | None = None,
    ) -> None:
        self._source = source
        self._rates = rates
        self._reset = reset

    def clear_all(self) -> None:
        """Zero every counter (Locust's ``clear_all``; ``reset_all`` is the same here)."""
        if self._reset is None:
            raise RuntimeError(
                "these statistics are the whole run's: reset them with the web UI's reset "
                "or --reset-stats, not from user code"
            )
        self._reset()

    reset_all = clear_all

    @property
    def total(self) -> StatsEntry:
        """All requests together."""
        snapshot = self._source()
        rates = self._rates() if self._rates is not None else None
        return StatsEntry(snapshot.total, snapshot.duration_s, rates)

    def get(self, name: str, method: str) -> StatsEntry:
        """The entry of one endpoint (an empty one if it saw no request yet)."""
        snapshot = self._source()
        found = snapshot.endpoint(name, method)
        if found is None:
            found = EndpointStats(method, name, 0, 0, 0, 0, 0, 0, snapshot.total.histogram * 0)
        return StatsEntry(found, snapshot.duration_s)

    @property
    def entries(self) -> dict[tuple[str, str], StatsEntry]:
        """Every endpoint, by (name, method)."""
        snapshot = self._source()
        return {(e.name, e.method): StatsEntry(e, snapshot.duration_s) for e in snapshot.endpoints}

    @property
    def errors(self) -> dict[str, StatsError]:
        """Every error row, keyed like Locust's."""
        snapshot = self._source()
        return {f"{e.method}.{e.name}.{e.error}": StatsError(e) for e in snapshot.errors}

    @property
    def num_requests(self) -> int:
        """Requests so far."""
        return self.total.num_requests

    @property
    def num_failures(self) -> int:
        """Failures so far."""
        return self.total.num_failures

    @property
    def last_request_timestamp(self) -> float:
        """Wall-clock time of this view (Locust's field, approximated)."""
        return time.time()
