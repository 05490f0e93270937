"""The JSON report (``--json``, ``--json-file``); its schema is in docs/outputs.md.

``stop`` says why the run ended: ``{"kind", "message", "exit_code", "at"}`` (see
``mpswarm.report.stop_reason``), null when the Snapshot does not know (a live one).
``recovery_events``, ``hosts_lost``, ``saturation``, ``phases`` and ``capacity`` are the
Snapshot's records of the same names (``mpswarm.stats.run_facts``) in their JSON form.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any, TextIO

import numpy as np

from mpswarm.report._schema import check_report
from mpswarm.report.checks import CheckResult
from mpswarm.stats.run_facts import HostLost, RecoveryEvent, RunStop, Saturation
from mpswarm.stats.snapshot import (
    PHASE_NAMES,
    EndpointStats,
    ErrorStats,
    ExceptionStats,
    Snapshot,
)

SCHEMA_VERSION = 1
JSON_PERCENTILES = (50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0)


def _key(q: float) -> str:
    return f"{q:g}"


_KEYS = [_key(q) for q in JSON_PERCENTILES]
_MEDIAN = JSON_PERCENTILES.index(50.0)


def endpoint_dict(stats: EndpointStats, duration_s: float) -> dict[str, Any]:
    """One endpoint (or the total) as JSON-ready data; times in ms, None without data.

    In an open-model run its times are corrected, and ``uncorrected`` holds the same keys
    for the times from the actual send.
    """
    data = _times_dict(stats, duration_s)
    if stats.uncorrected is not None:
        data["uncorrected"] = _times_dict(stats.uncorrected, duration_s)
    for phase in PHASE_NAMES:
        times = stats.phases.get(phase)
        data[phase] = None if times is None else _phase_dict(times)
    return data


def _phase_dict(stats: EndpointStats) -> dict[str, Any]:
    """One phase of the timing breakdown: ``count`` (the requests that had it) and the same
    time keys as an endpoint's."""
    return {"count": stats.requests, **_time_keys(stats)}


def _times_dict(stats: EndpointStats, duration_s: float) -> dict[str, Any]:
    return {
        "method": stats.method,
        "name": stats.name,
        "requests": stats.requests,
        "failures": stats.failures,
        "fail_ratio": stats.fail_ratio,
        "rps": stats.rps(duration_s),
        "avg_content_length": stats.avg_content_length,
        "content_bytes": stats.content_bytes,
        **_time_keys(stats),
    }


def _time_keys(stats: EndpointStats) -> dict[str, Any]:
    """The times of an endpoint or a phase: ms, the percentiles, and the exact sums and
    sparse histogram (bucket index -> count, see mpswarm.stats.histogram) to compute any
    other percentile later."""
    values = stats.percentiles(JSON_PERCENTILES)
    return {
        "avg_ms": stats.avg_ms,
        "min_ms": stats.min_ms,
        "max_ms": stats.max_ms,
        "median_ms": values[_MEDIAN],
        "percentiles_ms": dict(zip(_KEYS, values, strict=True)),
        "total_us": stats.total_us,
        "min_us": stats.min_us,
        "max_us": stats.max_us,
        "histogram": dict(
            zip(map(str, stats.buckets.tolist()), stats.counts.tolist(), strict=True)
        ),
    }


def endpoint_from_dict(data: dict[str, Any]) -> EndpointStats:
    """Rebuild an EndpointStats from ``endpoint_dict`` output (exact, histogram included)."""
    buckets, counts = _buckets(data["histogram"])
    phases = {
        phase: EndpointStats(
            "",
            data["name"],
            times["count"],
            0,
            times["total_us"],
            times["min_us"],
            times["max_us"],
            0,
            buckets=_buckets(times["histogram"])[0],
            counts=_buckets(times["histogram"])[1],
        )
        for phase in PHASE_NAMES
        if (times := data.get(phase))
    }
    return EndpointStats(
        method=data["method"],
        name=data["name"],
        requests=data["requests"],
        failures=data["failures"],
        total_us=data["total_us"],
        min_us=data["min_us"],
        max_us=data["max_us"],
        content_bytes=data["content_bytes"],
        buckets=buckets,
        counts=counts,
        uncorrected=endpoint_from_dict(data["uncorrected"]) if "uncorrected" in data else None,
        phases=phases,
    )


def _buckets(histogram: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indexes, counts) of a JSON histogram, by index."""
    buckets = np.array([int(index) for index in histogram], dtype=np.int64)
    counts = np.array(list(histogram.values()), dtype=np.int64)
    order = np.argsort(buckets, kind="stable")
    return buckets[order], counts[order]


def snapshot_from_dict(data: dict[str, Any]) -> Snapshot:
    """Rebuild the final Snapshot from a JSON report (its stop reason in ``stop``; None in a
    report without one, as in a live Snapshot).

    Raises:
        ReportSchemaError: a field is not what ``report_dict`` writes (it is named).
    """
    check_report(data, SCHEMA_VERSION)
    return Snapshot(
        endpoints=tuple(endpoint_from_dict(e) for e in data["endpoints"]),
        total=endpoint_from_dict(data["total"]),
        errors=tuple(
            ErrorStats(e["method"], e["name"], e["error"], e["occurrences"]) for e in data["errors"]
        ),
        exceptions=tuple(
            ExceptionStats(e["count"], e["message"], e["traceback"]) for e in data["exceptions"]
        ),
        started_at=data["started_at"],
        duration_s=data["duration_s"],
        users=0,
        final=True,
        open_model=data.get("open_model") is not None,
        iterations=data.get("iterations", 0),
        dropped=(data.get("open_model") or {}).get("dropped", 0),
        sent_bytes=data.get("sent_bytes", 0),
        lost=data.get("lost_requests", 0),
        saturation=Saturation.from_dict(data.get("saturation")),
        recovery_events=tuple(map(RecoveryEvent.from_dict, data.get("recovery_events") or ())),
        hosts_lost=tuple(map(HostLost.from_dict, data.get("hosts_lost") or ())),
        stop=RunStop.from_dict(data.get("stop")),
    )


def report_dict(
    snapshot: Snapshot, settings: dict[str, Any], checks: list[CheckResult] | None = None
) -> dict[str, Any]:
    """The whole report as JSON-ready data.

    ``stop`` is the run's stop reason, ``{"kind": "crash_loop", "message": "...", "exit_code":
    4, "at": 12.3}`` (``at``: seconds into the run), or None when the Snapshot has none.
    """
    return {
        "schema": SCHEMA_VERSION,
        "settings": settings,
        "started_at": snapshot.started_at,
        "duration_s": snapshot.duration_s,
        "stop": None if snapshot.stop is None else snapshot.stop.as_dict(),
        "iterations": snapshot.iterations,
        "sent_bytes": snapshot.sent_bytes,
        "lost_requests": snapshot.lost,
        "total": endpoint_dict(snapshot.total, snapshot.duration_s),
        "endpoints": [endpoint_dict(e, snapshot.duration_s) for e in snapshot.endpoints],
        "errors": [
            {"method": e.method, "name": e.name, "error": e.error, "occurrences": e.occurrences}
            for e in snapshot.errors
        ],
        "exceptions": [
            {"count": e.count, "message": e.message, "traceback": e.traceback}
            for e in snapshot.exceptions
        ],
        "checks": [
            {
                "check": r.check.expression,
                "scope": r.check.scope,
                "metric": r.check.metric,
                "passed": r.passed,
                "actual": r.actual,
            }
            for r in checks or []
        ],
        "recovery_events": [event.as_dict() for event in snapshot.recovery_events],
        "hosts_lost": [lost.as_dict() for lost in snapshot.hosts_lost],
        "saturation": None if snapshot.saturation is None else snapshot.saturation.as_dict(),
        "phases": [list(phase) for phase in snapshot.phases],
        # mpswarm capacity: its steps and result
        "capacity": None if snapshot.capacity is None else snapshot.capacity.as_dict(),
        "open_model": (
            {
                "iterations": snapshot.iterations,
                "dropped": snapshot.dropped,
                "scheduled": snapshot.scheduled,
                "dropped_ratio": snapshot.dropped_ratio,
                "corrected": True,
                "start_delay": (
                    None if snapshot.start_delay is None else _phase_dict(snapshot.start_delay)
                ),
            }
            if snapshot.open_model
            else None
        ),
    }


def write_json(
    snapshot: Snapshot,
    stream: TextIO,
    settings: dict[str, Any],
    checks: list[CheckResult] | None = None,
) -> None:
    """Write the report as indented JSON, each item of a list (an endpoint, an error) on a line.

    Items go through the json module's C encoder (``json.dumps`` without ``indent``): with
    an indent every value goes through its pure-Python encoder, 2 s for 10 000 endpoints. The
    endpoints are encoded one at a time, never all held as dicts (2.3 KB each).
    """
    data = report_dict(dataclasses.replace(snapshot, endpoints=()), settings, checks)
    stream.write("{")
    for i, (key, value) in enumerate(data.items()):
        stream.write(f"{',' if i else ''}\n  {json.dumps(key)}: ")
        items: Iterable[Any] = value if isinstance(value, list) else ()
        if key == "endpoints":
            items = (endpoint_dict(e, snapshot.duration_s) for e in snapshot.endpoints)
        if isinstance(value, list):
            _write_list(stream, items)
        else:
            stream.write(json.dumps(value, indent=2).replace("\n", "\n  "))
    stream.write("\n}\n")


def _write_list(stream: TextIO, items: Iterable[Any]) -> None:
    stream.write("[")
    separator = "\n    "
    for item in items:
        stream.write(separator)
        stream.write(json.dumps(item))
        separator = ",\n    "
    stream.write("]" if separator == "\n    " else "\n  ]")
