"""Frozen, aggregated statistics: the only thing reporters read."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mpswarm.stats.histogram import MIDPOINTS_US, NUM_BUCKETS, RANK_SLACK
from mpswarm.stats.run_facts import (
    CapacityResult,
    HostLost,
    Phase,
    RecoveryEvent,
    RunStop,
    Saturation,
)

#: Percentiles in the end-of-run summary.
SUMMARY_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


#: Integer type of a sparse histogram's bucket indexes (NUM_BUCKETS fits in 16 bits).
BUCKET_DTYPE = np.uint16

_FIELDS = (
    "method",
    "name",
    "requests",
    "failures",
    "total_us",
    "min_us",
    "max_us",
    "content_bytes",
    "buckets",
    "counts",
    "uncorrected",
    "phases",
)

#: The timing breakdown's phases, in the order the reports show them.
PHASE_NAMES = ("connect", "tls", "ttfb")


class EndpointStats:
    """Statistics of one (method, name), or of all requests (``name`` "Aggregated").

    Immutable. Times are kept in integer microseconds; the ``*_ms`` accessors convert. The
    histogram is kept sparse, as the indexes of its non-empty buckets (``buckets``, ascending)
    and their ``counts``: a row that saw one request costs two one-element arrays, not 1 728
    int64 buckets (13.8 KB). ``histogram`` rebuilds the dense array when something asks.

    Args:
        method: the request method ("" for the total).
        name: the request name.
        requests: requests recorded.
        failures: requests that failed.
        total_us: sum of their response times.
        min_us: fastest response (0 without requests).
        max_us: slowest response.
        content_bytes: sum of the response body sizes.
        histogram: a dense histogram (NUM_BUCKETS counts); or give ``buckets`` and ``counts``.
        uncorrected: open model: the same requests timed from the actual send (the row's own
            times are corrected: from each iteration's scheduled start). None otherwise.
        buckets: sparse form: indexes of the non-empty buckets, ascending.
        counts: sparse form: the count of each of those buckets.
        phases: the timing breakdown of these requests: ``connect``, ``tls``, ``ttfb`` (see
            PHASE_NAMES) -> the times of that phase (``requests``: how many had it), for the
            phases that happened; empty for requests of a client without one.
    """

    __slots__ = _FIELDS

    method: str
    name: str
    requests: int
    failures: int
    total_us: int
    min_us: int
    max_us: int
    content_bytes: int
    buckets: npt.NDArray[np.uint16]
    counts: npt.NDArray[np.int64]
    uncorrected: EndpointStats | None
    phases: Mapping[str, EndpointStats]

    def __init__(
        self,
        method: str,
        name: str,
        requests: int,
        failures: int,
        total_us: int,
        min_us: int,
        max_us: int,
        content_bytes: int,
        histogram: npt.NDArray[np.int64] | None = None,
        uncorrected: EndpointStats | None = None,
        *,
        buckets: npt.NDArray[Any] | None = None,
        counts: npt.NDArray[Any] | None = None,
        phases: Mapping[str, EndpointStats] | None = None,
    ) -> None:
        if histogram is not None:
            used = np.flatnonzero(histogram)
            buckets, counts = used, np.asarray(histogram)[used]
        elif buckets is None or counts is None:
            buckets, counts = _NO_BUCKETS, _NO_COUNTS
        # One object.__setattr__ per field, spelled out: a report of 10 000 rows builds 20 000
        # of these, and a loop over the fields cost 3x as much (4 us each, now 1.2 us).
        put = object.__setattr__
        put(self, "method", method)
        put(self, "name", name)
        put(self, "requests", requests)
        put(self, "failures", failures)
        put(self, "total_us", total_us)
        put(self, "min_us", min_us)
        put(self, "max_us", max_us)
        put(self, "content_bytes", content_bytes)
        if not (isinstance(buckets, np.ndarray) and buckets.dtype == BUCKET_DTYPE):
            buckets = np.asarray(buckets, dtype=BUCKET_DTYPE)
        if not (isinstance(counts, np.ndarray) and counts.dtype == np.int64):
            counts = np.asarray(counts, dtype=np.int64)
        put(self, "buckets", buckets)
        put(self, "counts", counts)
        put(self, "uncorrected", uncorrected)
        put(self, "phases", phases if phases else _NO_PHASES)

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        fields = [getattr(self, field) for field in _FIELDS[:-1]]
        return (_rebuild, (*fields, dict(self.phases)))  # a mapping proxy does not pickle

    def __repr__(self) -> str:
        shown = ", ".join(f"{field}={getattr(self, field)!r}" for field in _FIELDS[:8])
        return f"EndpointStats({shown})"

    @property
    def histogram(self) -> npt.NDArray[np.int64]:
        """The dense histogram (NUM_BUCKETS counts), built anew on each access."""
        dense = np.zeros(NUM_BUCKETS, dtype=np.int64)
        dense[self.buckets] = self.counts
        return dense

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
        """Several percentiles in ms, computed together (see ``histogram.percentiles_us``).

        Straight from the sparse buckets: the same nearest-rank values as the dense histogram
        gives, at a cost that grows with the buckets in use, not with all 1 728.
        """
        counts = self.counts
        if not counts.size:
            return [None] * len(qs)
        low, high = self.min_us, self.max_us
        if counts.size == 1:  # one bucket (a name seen once or a few times): every rank is there
            value = min(max(float(MIDPOINTS_US[self.buckets[0]]), low), high) / 1000.0
            return [high / 1000.0 if q >= 100 else value for q in qs]
        cumulative = np.cumsum(counts)
        wanted = np.asarray(qs, dtype=np.float64)
        ranks = np.maximum(1, np.ceil(wanted / 100.0 * int(cumulative[-1]) - RANK_SLACK))
        found = self.buckets[np.searchsorted(cumulative, ranks, side="left")]
        values = np.minimum(np.maximum(MIDPOINTS_US[found], low), high) / 1000.0
        return [high / 1000.0 if q >= 100 else float(v) for q, v in zip(qs, values, strict=True)]

    @property
    def median_ms(self) -> float | None:
        """The 50th percentile in ms."""
        return self.percentile(50.0)

    def rps(self, duration_s: float) -> float:
        """Requests per second over ``duration_s``."""
        return self.requests / duration_s if duration_s > 0 else 0.0


def percentile_table(
    rows: Sequence[EndpointStats], qs: list[float] | tuple[float, ...]
) -> list[list[float | None]]:
    """``row.percentiles(qs)`` of every row, computed together: the same values.

    A report of 10 000 rows asks for 11 percentiles of each; one at a time that is 10 000
    cumulative sums and searches (~10 us each). Here the rows' sparse counts are laid end to
    end: their running sum is one ascending array (counts are positive), where the rank r of
    row i is the running sum before the row plus r, so one search finds every percentile.
    """
    if not rows:
        return []
    sizes = np.fromiter((row.counts.size for row in rows), dtype=np.int64, count=len(rows))
    counts = np.concatenate([row.counts for row in rows])
    if not counts.size or counts.min() <= 0:  # no requests, or a difference gone wrong
        return [row.percentiles(qs) for row in rows]
    buckets = np.concatenate([row.buckets for row in rows])
    running = np.cumsum(counts)
    ends = np.cumsum(sizes)
    before = np.where(ends > sizes, running[np.maximum(ends - sizes - 1, 0)], 0)
    totals = np.where(sizes > 0, running[np.maximum(ends - 1, 0)] - before, 0)
    wanted = np.asarray(qs, dtype=np.float64)
    ranks = np.maximum(1, np.ceil(wanted / 100.0 * totals[:, None] - RANK_SLACK))
    found = np.searchsorted(running, before[:, None] + ranks.astype(np.int64), side="left")
    found = buckets[np.minimum(found, buckets.size - 1)]  # (an empty row's search: unused)
    low = np.fromiter((row.min_us for row in rows), dtype=np.float64, count=len(rows))
    high = np.fromiter((row.max_us for row in rows), dtype=np.float64, count=len(rows))
    values = np.minimum(np.maximum(MIDPOINTS_US[found], low[:, None]), high[:, None]) / 1000.0
    top = wanted >= 100
    values[:, top] = (high / 1000.0)[:, None]
    table: list[list[float | None]] = values.tolist()
    for i in np.flatnonzero(sizes == 0).tolist():
        table[i] = [None] * wanted.size
    return table


def _rebuild(
    method: str,
    name: str,
    requests: int,
    failures: int,
    total_us: int,
    min_us: int,
    max_us: int,
    content_bytes: int,
    buckets: npt.NDArray[np.uint16],
    counts: npt.NDArray[np.int64],
    uncorrected: EndpointStats | None,
    phases: Mapping[str, EndpointStats] | None = None,
) -> EndpointStats:
    """Unpickle an EndpointStats (its ``__reduce__`` passes the fields in ``_FIELDS`` order)."""
    return EndpointStats(
        method,
        name,
        requests,
        failures,
        total_us,
        min_us,
        max_us,
        content_bytes,
        uncorrected=uncorrected,
        buckets=buckets,
        counts=counts,
        phases=phases,
    )


def merged(rows: Iterable[EndpointStats], method: str = "", name: str = "") -> EndpointStats:
    """The statistics of several rows' requests together (exact: their histograms summed)."""
    rows = list(rows)
    if not rows:
        return EndpointStats(method, name, 0, 0, 0, 0, 0, 0)
    requests = sum(row.requests for row in rows)
    hist = np.zeros(NUM_BUCKETS, dtype=np.int64)
    for row in rows:
        hist[row.buckets] += row.counts
    with_requests = [row for row in rows if row.requests]
    return EndpointStats(
        method,
        name,
        requests,
        sum(row.failures for row in rows),
        sum(row.total_us for row in rows),
        min((row.min_us for row in with_requests), default=0),
        max((row.max_us for row in with_requests), default=0),
        sum(row.content_bytes for row in rows),
        hist,
    )


def merged_phases(rows: Iterable[EndpointStats]) -> dict[str, EndpointStats]:
    """The timing breakdown of several rows together (the total's, from its endpoints')."""
    found: dict[str, list[EndpointStats]] = {}
    for row in rows:
        for phase, stats in row.phases.items():
            found.setdefault(phase, []).append(stats)
    return {p: merged(found[p], "", "Aggregated") for p in PHASE_NAMES if p in found}


_NO_PHASES: Mapping[str, EndpointStats] = types.MappingProxyType({})
_NO_BUCKETS = np.zeros(0, dtype=BUCKET_DTYPE)
_NO_COUNTS = np.zeros(0, dtype=np.int64)


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
        iterations: task runs (the open model: iterations started on schedule).
        dropped: open model: iterations not started (no free user under --max-users).
        sent_bytes: request bytes sent (headers and bodies) by requests that got a response.
        start_delay: open model: how late iterations began after their scheduled start (a
            histogram of their delays), else None.
        lost: requests in flight in workers that died or were killed: begun, never recorded.
        error_times: (method, name, error) -> when it was first and last seen (seconds since
            the epoch).
        exception_nodes: (message, traceback) of an exception -> the workers that raised it.
        saturation: the load generator's saturation figures (None: not supervised).
        recovery_events: what the supervisor did to workers, in order.
        hosts_lost: under --ray, the hosts whose agent died.
        stop: why the run ended, with its exit code once decided; None in a live Snapshot.
        users_at_stop: users running when the stop began (None in a live Snapshot).
        phases: a --profile's phases.
        capacity: ``mpswarm capacity``: the search's steps and result.
        reports_failed: reports that could not be written (``OPTION PATH (why)``): the
            reports written after them, and the summary, say so.

    A fact learnt later (the stop, the exit code, a report that failed) makes a new Snapshot
    (``dataclasses.replace``): none is ever changed.
    """

    endpoints: tuple[EndpointStats, ...]
    total: EndpointStats
    errors: tuple[ErrorStats, ...]
    exceptions: tuple[ExceptionStats, ...]
    started_at: float
    duration_s: float
    users: int
    final: bool = False
    open_model: bool = False
    iterations: int = 0
    dropped: int = 0
    sent_bytes: int = 0
    start_delay: EndpointStats | None = None
    lost: int = 0
    error_times: Mapping[tuple[str, str, str], tuple[float, float]] = dataclasses.field(
        default_factory=dict
    )
    exception_nodes: Mapping[tuple[str, str], frozenset[str]] = dataclasses.field(
        default_factory=dict
    )
    saturation: Saturation | None = None
    recovery_events: tuple[RecoveryEvent, ...] = ()
    hosts_lost: tuple[HostLost, ...] = ()
    stop: RunStop | None = None
    users_at_stop: int | None = None
    phases: tuple[Phase, ...] = ()
    capacity: CapacityResult | None = None
    reports_failed: tuple[str, ...] = ()

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
