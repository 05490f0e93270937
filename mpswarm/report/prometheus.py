"""``--prometheus [HOST:]PORT``: the run's statistics as Prometheus metrics, on ``/metrics``.

The parent serves them (``prometheus_client``'s text format, from a collector that sums every
worker's segment at each scrape: nothing is kept between scrapes, and no worker is asked).
Listening follows the web UI's rules (``mpswarm.web.hosts``): loopback by default; only the
names it is served as in ``Host`` and ``Origin``; any other interface needs ``--web-auth``
(HTTP Basic, which Prometheus's ``basic_auth`` scrape setting sends).

**Exact buckets.** mpswarm's histogram has buckets 1/64 of their value wide (see
``mpswarm.stats.histogram``). Each ``--prometheus-buckets`` boundary is moved to the nearest
edge of those buckets (at most 0.8 % away; the ``le`` label says the edge used), so its count
is exact: every response time below it, at mpswarm's 1 µs resolution. The default boundaries,
1 ms to 60 s, are 15 such edges.

Metrics (``method`` and ``name`` labels per endpoint; ``--max-endpoints`` bounds them):

- ``mpswarm_requests_total``, ``mpswarm_failures_total``, ``mpswarm_response_bytes_total``
- ``mpswarm_response_time_seconds`` (histogram; corrected times in an open-model run)
- ``mpswarm_time_to_first_byte_seconds``, ``mpswarm_connect_seconds`` (histograms of the
  timing breakdown, for the endpoints that have one)
- ``mpswarm_users``, ``mpswarm_workers``, ``mpswarm_iterations_total``,
  ``mpswarm_dropped_iterations_total``, ``mpswarm_sent_bytes_total``
- ``mpswarm_generator_saturated`` (1 while the load generator is saturated),
  ``mpswarm_event_loop_lag_seconds`` (the worst worker's p99 of the last 5 s)

After the run, ``--prometheus-linger SECONDS`` keeps serving its final numbers, so that the
last scrape sees them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import gevent
import numpy as np
import numpy.typing as npt
from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from mpswarm.config import PROMETHEUS_BUCKETS, parse_address
from mpswarm.exceptions import UsageError
from mpswarm.stats.histogram import NUM_BUCKETS, bucket_bounds
from mpswarm.stats.snapshot import EndpointStats, Snapshot
from mpswarm.web.hosts import AllowedHosts, is_loopback, parse_allowed_names
from mpswarm.web.listen import BasicAuth

logger = logging.getLogger(__name__)

DEFAULT_BUCKETS = PROMETHEUS_BUCKETS
_LOWS = np.array([bucket_bounds(i)[0] for i in range(NUM_BUCKETS)], dtype=np.int64)


def exact_edges(boundaries: Iterable[float]) -> npt.NDArray[np.intp]:
    """The bucket edges (µs, ascending, distinct) nearest to ``boundaries`` (seconds)."""
    wanted = np.array([round(b * 1e6) for b in boundaries], dtype=np.int64)
    right = np.clip(np.searchsorted(_LOWS, wanted), 1, NUM_BUCKETS - 1)
    left = right - 1
    nearer = np.where(wanted - _LOWS[left] <= _LOWS[right] - wanted, left, right)
    return np.unique(np.maximum(nearer, 1))  # bucket indexes whose low is an edge


class RunCollector:
    """Builds the metric families from a Snapshot and the run's gauges at each scrape.

    Args:
        source: returns (snapshot, gauges): ``users``, ``workers``, ``saturated`` (0/1) and
            ``loop_lag_s``.
        buckets: the histogram boundaries in seconds (moved to exact edges).
    """

    def __init__(
        self,
        source: Callable[[], tuple[Snapshot, dict[str, float]]],
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> None:
        self.source = source
        self.edges = exact_edges(buckets)
        self._les = [_seconds(int(_LOWS[i])) for i in self.edges.tolist()]

    def collect(self) -> Iterator[Any]:
        snapshot, gauges = self.source()
        labels = ["method", "name"]
        requests = CounterMetricFamily("mpswarm_requests", "Requests sent.", labels=labels)
        failures = CounterMetricFamily("mpswarm_failures", "Requests failed.", labels=labels)
        size = CounterMetricFamily(
            "mpswarm_response_bytes", "Bytes of response bodies received.", labels=labels
        )
        times = HistogramMetricFamily(
            "mpswarm_response_time_seconds",
            "Response times (corrected for coordinated omission in an open-model run).",
            labels=labels,
        )
        ttfb = HistogramMetricFamily(
            "mpswarm_time_to_first_byte_seconds",
            "From the request sent to the first byte of its response.",
            labels=labels,
        )
        connect = HistogramMetricFamily(
            "mpswarm_connect_seconds", "TCP connects of new connections.", labels=labels
        )
        for row in snapshot.endpoints:
            key = [row.method, row.name]
            requests.add_metric(key, row.requests)
            failures.add_metric(key, row.failures)
            size.add_metric(key, row.content_bytes)
            self._histogram(times, key, row)
            for family, phase in ((ttfb, "ttfb"), (connect, "connect")):
                if phase in row.phases:
                    self._histogram(family, key, row.phases[phase])
        yield from (requests, failures, size, times, ttfb, connect)
        for name, text, value in (
            ("mpswarm_users", "Users running.", gauges["users"]),
            ("mpswarm_workers", "Worker processes alive.", gauges["workers"]),
            ("mpswarm_generator_saturated", "1 while the load generator is saturated.",
             gauges["saturated"]),
            ("mpswarm_event_loop_lag_seconds", "The worst worker's event-loop lag (p99, 5 s).",
             gauges["loop_lag_s"]),
        ):  # fmt: skip
            yield GaugeMetricFamily(name, text, value=value)
        for name, text, count in (
            ("mpswarm_iterations", "Task runs (open model: iterations started).",
             snapshot.iterations),
            ("mpswarm_dropped_iterations", "Open model: iterations not started.",
             snapshot.dropped),
            ("mpswarm_sent_bytes", "Request bytes sent.", snapshot.sent_bytes),
        ):  # fmt: skip
            yield CounterMetricFamily(name, text, value=count)

    def _histogram(self, family: HistogramMetricFamily, key: list[str], row: EndpointStats) -> None:
        """One row's cumulative counts below each edge, exact (whole buckets)."""
        cumulative = np.cumsum(row.counts)
        below = np.searchsorted(row.buckets, self.edges, side="left")  # buckets under each edge
        counts = np.where(below > 0, cumulative[np.maximum(below - 1, 0)], 0).tolist()
        if not cumulative.size:
            counts = [0] * len(self._les)
        pairs = [*zip(self._les, counts, strict=True), ("+Inf", row.requests)]
        family.add_metric(key, pairs, sum_value=row.total_us / 1e6)


class MetricsEndpoint:
    """The ``/metrics`` server of a run (see the module docstring).

    Args:
        address: ``[HOST:]PORT``.
        buckets: the histogram boundaries in seconds.
        basic_auth: ``user:password`` required (``--web-auth``); needed off loopback.
        allowed_names: more ``Host`` names accepted (``--web-allowed-host``).
        linger_s: seconds to keep serving the final numbers after the run.
    """

    def __init__(
        self,
        address: str,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
        basic_auth: str | None = None,
        allowed_names: Iterable[str] = (),
        linger_s: float = 0.0,
    ) -> None:
        self.host, self.port = parse_address(address)
        self._extra = parse_allowed_names(allowed_names)
        self._auth = BasicAuth(basic_auth) if basic_auth else None
        if self._auth is None and not is_loopback(self.host):
            raise UsageError(
                f"--prometheus on {self.host}, not a loopback address, needs --web-auth "
                "user:password (Prometheus sends it with basic_auth)"
            )
        self.linger_s = linger_s
        self.collector = RunCollector(self._read, buckets)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self._swarm: Any = None
        self._final: Snapshot | None = None
        self._server: WSGIServer | None = None
        self._hosts: AllowedHosts | None = None

    @classmethod
    def from_config(cls, config: Any) -> MetricsEndpoint | None:
        """The endpoint ``config`` asks for, or None (checked now: before any worker starts)."""
        if not config.prometheus:
            return None
        return cls(config.prometheus, config.prometheus_buckets, config.web_auth,
                   config.web_allowed_hosts, config.prometheus_linger)  # fmt: skip

    # -- what it serves --------------------------------------------------------------------------
    def follow(self, swarm: Any) -> None:
        """Serve ``swarm``'s numbers, summed at each scrape."""
        self._swarm, self._final = swarm, None

    def freeze(self, snapshot: Snapshot) -> None:
        """Serve the run's final numbers from now on (its workers are gone)."""
        self._final, self._swarm = snapshot, None

    def _read(self) -> tuple[Snapshot, dict[str, float]]:
        swarm = self._swarm
        if swarm is None:
            snapshot = self._final
            assert snapshot is not None
            return snapshot, {"users": 0, "workers": 0, "saturated": 0, "loop_lag_s": 0.0}
        live = swarm.pool.live()
        lag_us = max((handle.segment.loop_lag_us[0] for handle in live), default=0)
        return swarm.snapshot(), {
            "users": swarm.user_count,
            "workers": len(live),
            "saturated": 1 if swarm.supervisor.saturated_now else 0,
            "loop_lag_s": lag_us / 1e6,
        }

    # -- serving ---------------------------------------------------------------------------------
    def start(self, swarm: Any) -> None:
        """Listen (a taken port is a usage error) and serve ``swarm``'s numbers."""
        from mpswarm.web.listen import listening_server

        self.follow(swarm)
        server = listening_server(self.host, self.port, self._app, "--prometheus",
                                  "--prometheus PORT changes it")  # fmt: skip
        self.port = server.server_port
        self._hosts = AllowedHosts(self.host, self.port, self._extra)
        server.start()
        self._server = server
        shown = f"[{self.host}]" if ":" in self.host else self.host
        logger.info("Prometheus metrics: http://%s:%d/metrics", shown, self.port)

    def linger(self) -> None:
        """Keep serving the final numbers for ``linger_s`` seconds."""
        if self._server is not None and self.linger_s > 0:
            logger.info("serving the final metrics for %g s more (--prometheus-linger)",
                        self.linger_s)  # fmt: skip
            gevent.sleep(self.linger_s)

    def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        assert self._hosts is not None
        local = environ.get("SERVER_ADDR")
        origin = environ.get("HTTP_ORIGIN")
        if not self._hosts.allows_host(environ.get("HTTP_HOST"), local):
            return _reply(start_response, "421 Misdirected Request", b"wrong Host\n")
        if origin is not None and not self._hosts.allows_origin(origin, local):
            return _reply(start_response, "403 Forbidden", b"cross-site request refused\n")
        refused = self._auth.refusal(environ) if self._auth is not None else None
        if refused is not None:
            return _reply(start_response, refused[0], refused[1], refused[2])
        if environ.get("PATH_INFO") != "/metrics":
            return _reply(start_response, "404 Not Found", b"see /metrics\n")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"GET /metrics\n")
        started = time.perf_counter()
        body = generate_latest(self.registry)
        logger.debug("metrics scraped in %.1f ms", (time.perf_counter() - started) * 1000)
        return _reply(start_response, "200 OK", body, content_type=CONTENT_TYPE_LATEST)


def _reply(
    start_response: Any,
    status: str,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("X-Content-Type-Options", "nosniff"), *(headers or [])])  # fmt: skip
    return [body]


def _seconds(us: int) -> str:
    """An edge in µs as the ``le`` label: seconds, every digit kept (2490368 -> "2.490368")."""
    return f"{us / 1e6:.6f}".rstrip("0").rstrip(".")
