"""What a JSON report read back must hold (``mpswarm compare``, ``mpswarm.run()``'s result).

A report may come from another machine, an older mpswarm, or a hand that edited it: before a
Snapshot is rebuilt from one, every field that rebuilding and comparing read is checked to be
what ``report_dict`` writes, and the first that is not is named.
"""

from __future__ import annotations

import math
from typing import Any

from mpswarm.stats.histogram import MIDPOINTS_US
from mpswarm.stats.snapshot import PHASE_NAMES

#: Counts go into 64-bit arrays.
_MOST = 2**63 - 1
_BUCKETS = len(MIDPOINTS_US)


class ReportSchemaError(ValueError):
    """A report that is not what ``report_dict`` writes; the message names the field."""


def check_report(data: Any, schema: int) -> None:
    """Raise ReportSchemaError naming the first field of ``data`` that is wrong."""
    _need(isinstance(data, dict), "the report", "an object")
    if data.get("schema") != schema:
        raise ReportSchemaError(
            f"schema {data.get('schema')!r}: this mpswarm reads schema {schema}"
        )
    _number(data, "started_at", "started_at")
    _number(data, "duration_s", "duration_s")
    for key in ("iterations", "sent_bytes", "lost_requests"):
        if key in data:
            _count(data, key, key)
    _endpoint(data.get("total"), "total")
    for index, endpoint in enumerate(_list(data, "endpoints", "endpoints")):
        _endpoint(endpoint, f"endpoints[{index}]")
    for index, error in enumerate(_list(data, "errors", "errors")):
        where = f"errors[{index}]"
        _need(isinstance(error, dict), where, "an object")
        for key in ("method", "name", "error"):
            _text(error, key, f"{where}.{key}")
        _count(error, "occurrences", f"{where}.occurrences")
    for index, exception in enumerate(_list(data, "exceptions", "exceptions")):
        where = f"exceptions[{index}]"
        _need(isinstance(exception, dict), where, "an object")
        _count(exception, "count", f"{where}.count")
        _text(exception, "message", f"{where}.message")
        _text(exception, "traceback", f"{where}.traceback")
    for key in ("recovery_events", "hosts_lost"):
        if data.get(key) is not None:
            for index, item in enumerate(_list(data, key, key)):
                _record(item, f"{key}[{index}]", key == "hosts_lost")
    for key in ("open_model", "stop", "saturation"):
        _need(data.get(key) is None or isinstance(data[key], dict), key, "an object or null")
    if data.get("saturation") is not None:
        saturation = data["saturation"]
        for key in ("share", "worst_loop_lag_ms"):
            _number(saturation, key, f"saturation.{key}")
        for key in ("saturated_seconds", "seconds"):
            _count(saturation, key, f"saturation.{key}")
        _need(isinstance(saturation.get("now"), bool), "saturation.now", "true or false")
    if data.get("open_model") and "dropped" in data["open_model"]:
        _count(data["open_model"], "dropped", "open_model.dropped")
    stop = data.get("stop") or {}
    if stop.get("exit_code") is not None:
        _count(stop, "exit_code", "stop.exit_code")
    if stop.get("at") is not None:
        _number(stop, "at", "stop.at")


def _endpoint(data: Any, where: str, phase: bool = False) -> None:
    _need(isinstance(data, dict), where, "an object")
    if phase:
        _count(data, "count", f"{where}.count")
    else:
        _text(data, "method", f"{where}.method")
        _text(data, "name", f"{where}.name")
        _count(data, "requests", f"{where}.requests")
        _count(data, "failures", f"{where}.failures")
        _need(data["failures"] <= data["requests"], f"{where}.failures", "at most its requests")
        _count(data, "content_bytes", f"{where}.content_bytes")
    for key in ("total_us", "min_us", "max_us"):
        _count(data, key, f"{where}.{key}")
    histogram = data.get("histogram")
    _need(isinstance(histogram, dict), f"{where}.histogram", "an object")
    total = 0
    for bucket, count in histogram.items():
        _need(
            bucket.isdecimal() and int(bucket) < _BUCKETS,
            f"{where}.histogram",
            f"bucket indexes from 0 to {_BUCKETS - 1}",
        )
        _count(histogram, bucket, f"{where}.histogram[{bucket}]")
        total += count
    _need(total <= _MOST, f"{where}.histogram", "counts that add up to a 64-bit number")
    if phase:
        return
    if "uncorrected" in data:
        _endpoint(data["uncorrected"], f"{where}.uncorrected")
    for name in PHASE_NAMES:
        if data.get(name) is not None:
            _endpoint(data[name], f"{where}.{name}", phase=True)


def _record(data: Any, where: str, host: bool) -> None:
    """A recovery event (``at_s``, ``worker``, ``pid``, ``cause``, ``action``), or a lost host
    (``at_s``, ``host``, ``name``, ``cause``, ``action``)."""
    _need(isinstance(data, dict), where, "an object")
    _number(data, "at_s", f"{where}.at_s")
    if host:
        _count(data, "host", f"{where}.host")
        _text(data, "name", f"{where}.name")
    else:
        _count(data, "worker", f"{where}.worker")
        if data.get("pid") is not None:
            _count(data, "pid", f"{where}.pid")
        _need("pid" in data, f"{where}.pid", "a whole number or null")
    _text(data, "cause", f"{where}.cause")
    _text(data, "action", f"{where}.action")


def _need(holds: bool, where: str, what: str) -> None:
    if not holds:
        raise ReportSchemaError(f"{where} must be {what}")


def _count(data: dict[str, Any], key: str, where: str) -> None:
    value: Any = data.get(key)
    _need(
        type(value) is int and 0 <= value <= _MOST,
        where,
        "a whole number from 0 to 2**63 - 1",
    )


def _number(data: dict[str, Any], key: str, where: str) -> None:
    value: Any = data.get(key)
    _need(
        type(value) in (int, float) and math.isfinite(value) and value >= 0,
        where,
        "a finite number, 0 or more",
    )


def _text(data: dict[str, Any], key: str, where: str) -> None:
    _need(isinstance(data.get(key), str), where, "a string")


def _list(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise ReportSchemaError(f"{where} must be a list")
    return value
