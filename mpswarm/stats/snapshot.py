"""Frozen, aggregated statistics: the only thing reporters read."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from mpswarm.stats.histogram import percentiles_us

#: Percentiles in the end-of-run summary.
SUMMARY_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclasses.dataclass(frozen=True, eq=False)
class EndpointStats:
    """Statistics of one (method, name), or of all requests (``name`` "Aggregated").

    Times are kept in integer microseconds; the ``*_ms`` accessors convert.
    """

    method: str
    name: str
    requests: int
    failures: int
    total_us: int
    min_us: int
    max_us: int
    content_bytes: int
    histogram: npt.NDArray[np.int64] = dataclasses.field(repr=False)
    #: Open model: the same requests timed from the actual send (the row's own times are
    #: corrected: from each iteration's scheduled start). None in a closed-model run.
    uncorrected: EndpointStats | None = dataclasses.field(default=None, repr=False)

    @property
    def fail_ratio(self) -> float:
        """Failures divided by requests (0 when there were none)."""
        return self.failures / self.requests if self.requests else 0.0

    @property
    def avg_ms(self) -> float | None:
        """Mean response time in ms, None without requests."""
        return self.total_us / self.requests / 1000.0 if self.requests else None

    @property
    def min_ms(self) -> float | None:
        """Fastest response in ms."""
        return self.min_us / 1000.0 if self.requests else None

    @property
    def max_ms(self) -> float | None:
        """Slowest response in ms."""
        return self.max_us / 1000.0 if self.requests else None

    @property
    def avg_content_length(self) -> float:
        """Mean response body size in bytes."""
        return self.content_bytes / self.requests if self.requests else 0.0

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0-100) of response times in ms, None without requests."""
        return self.percentiles([q])[0]

    def percentiles(self, qs: list[float] | tuple[float, ...]) -> list[float | None]:
        """Several percentiles in ms, computed together."""
        values = percentiles_us(self.histogram, list(qs), self.min_us, self.max_us)
        return [None if v is None else v / 1000.0 for v in values]

    @property
    def median_ms(self) -> float | None:
        """The 50th percentile in ms."""
        return self.percentile(50.0)

    def rps(self, duration_s: float) -> float:
        """Requests per second over ``duration_s``."""
        return self.requests / duration_s if duration_s > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class ErrorStats:
    """How often one error text occurred for one (method, name)."""

    method: str
    name: str
    error: str
    occurrences: int


@dataclasses.dataclass(frozen=True)
class ExceptionStats:
    """An exception raised by user code, with how often it happened."""

    count: int
    message: str
    traceback: str


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The aggregated state of a run at one moment.

    Attributes:
        endpoints: per (method, name), sorted by name then method.
        total: all requests together ("Aggregated").
        errors: request failures by text, most frequent first.
        exceptions: user-code exceptions, most frequent first.
        started_at: wall-clock time the load started (seconds since the epoch).
        duration_s: seconds from the start of the load to this snapshot (or to the stop).
        users: users running at this moment.
        final: True once every worker stopped and the numbers are exact.
        open_model: True under --arrival-rate (or a shape returning a rate).
        iterations: open model: iterations started on schedule.
        dropped: open model: iterations not started (no free user under --max-users).
    """

    endpoints: tuple[EndpointStats, ...]
    total: EndpointStats
    errors: tuple[ErrorStats, ...]
    exceptions: tuple[ExceptionStats, ...]
    started_at: float
    duration_s: float
    users: int
    final: bool = False
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    open_model: bool = False
    iterations: int = 0
    dropped: int = 0

    @property
    def scheduled(self) -> int:
        """Open model: iterations due so far (started + dropped)."""
        return self.iterations + self.dropped

    @property
    def dropped_ratio(self) -> float:
        """Dropped iterations over scheduled ones (0 when none were due)."""
        return self.dropped / self.scheduled if self.scheduled else 0.0

    def endpoint(self, name: str, method: str | None = None) -> EndpointStats | None:
        """The stats of ``name`` (and ``method``, when given), or None."""
        for row in self.endpoints:
            if row.name == name and (method is None or row.method == method):
                return row
        return None
