"""Thresholds (``--check``): parse ``p95<300ms``, ``GET /login: p99<1s``; evaluate them.

Grammar: ``[SCOPE:] METRIC OP VALUE[UNIT]``. SCOPE is an endpoint name, optionally preceded by
its method (``GET /login``); without it the check applies to all requests. METRIC is one of
avg, min, max, median, pNN or pNN.N, rps, fail_ratio, failures, requests. OP is <, <=, >, >=,
== or !=. Times take ms (default) or s.

Open model (``--arrival-rate``): time metrics are corrected (from each iteration's scheduled
start); ``uncorrected_`` before one (``uncorrected_p99<1s``) names the time from the send.
``dropped`` (iterations not started for want of a free user) and ``dropped_ratio`` (of the
scheduled ones) apply to the whole run, without a scope.

The timing breakdown: ``ttfb_``, ``connect_`` or ``tls_`` before a time metric
(``ttfb_p95<200ms``, as k6's ``http_req_waiting``) names that phase's times.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable

from mpswarm.exceptions import UsageError
from mpswarm.stats.snapshot import PHASE_NAMES, EndpointStats, Snapshot

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_EXPR = re.compile(
    r"^\s*(?:(?P<scope>.+?)\s*:\s+)?"
    r"(?P<metric>(?:uncorrected_|ttfb_|connect_|tls_)?(?:[a-z_]+|p\d{1,2}(?:\.\d+)?|p100))\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)?\s*$"
)
_TIME_METRICS = {"avg", "min", "max", "median"}
_PLAIN_METRICS = {"rps", "fail_ratio", "failures", "requests"}
_RUN_METRICS = {"dropped", "dropped_ratio"}  # open model, whole run only
_RAW = "uncorrected_"
#: A phase of the timing breakdown before a time metric: ``ttfb_p95<200ms``.
_PHASE_PREFIXES = {f"{phase}_": phase for phase in PHASE_NAMES}


def _base(metric: str) -> str:
    """The metric without its prefix (``uncorrected_``, ``ttfb_``, ...)."""
    for prefix in (_RAW, *_PHASE_PREFIXES):
        if metric.startswith(prefix):
            return metric.removeprefix(prefix)
    return metric


_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


@dataclasses.dataclass(frozen=True)
class Check:
    """One parsed threshold."""

    expression: str
    method: str | None
    name: str | None
    metric: str
    op: str
    value: float  # ms for time metrics

    @property
    def scope(self) -> str:
        """Where it applies, in words."""
        if self.name is None:
            return "all requests"
        return f"{self.method} {self.name}" if self.method else self.name


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """A check evaluated against a snapshot."""

    check: Check
    passed: bool
    actual: float | None

    def describe(self) -> str:
        """``p95<300ms: 412.3 ms (failed)``-style text."""
        unit = " ms" if _is_time(self.check.metric) else ""
        shown = "no data" if self.actual is None else f"{self.actual:.4g}{unit}"
        verdict = "passed" if self.passed else "FAILED"
        return f"{self.check.expression}: {shown} ({verdict})"


def _is_time(metric: str) -> bool:
    metric = _base(metric)
    return metric in _TIME_METRICS or (metric.startswith("p") and metric not in _PLAIN_METRICS)


def parse_check(expression: str) -> Check:
    """Parse one threshold expression.

    Raises:
        UsageError: the expression does not follow the grammar.
    """
    match = _EXPR.match(expression)
    if match is None:
        raise UsageError(
            f"invalid --check {expression!r}: use e.g. 'p95<300ms', 'fail_ratio<0.01', "
            "'rps>500' or 'GET /login: p99<1s'"
        )
    metric, unit = match["metric"], match["unit"]
    base = _base(metric)
    known = _TIME_METRICS | _PLAIN_METRICS | _RUN_METRICS
    if (base not in known and not re.fullmatch(r"p\d{1,3}(\.\d+)?", base)) or (
        base != metric and not _is_time(base)
    ):
        raise UsageError(
            f"invalid --check {expression!r}: unknown metric {metric!r} (use avg, min, max, "
            "median, pNN, rps, fail_ratio, failures, requests, dropped, dropped_ratio; "
            "uncorrected_, ttfb_, connect_ or tls_ before a time metric)"
        )
    if metric in _RUN_METRICS and match["scope"]:
        raise UsageError(f"invalid --check {expression!r}: {metric} applies to the whole run")
    if _is_time(base) and base.startswith("p") and float(base[1:]) > 100:
        raise UsageError(f"invalid --check {expression!r}: a percentile is at most p100")
    if unit and not _is_time(metric):
        raise UsageError(f"invalid --check {expression!r}: {metric} takes no time unit")
    value = float(match["value"]) * (1000.0 if unit == "s" else 1.0)
    method = name = None
    if match["scope"]:
        scope = match["scope"].strip()
        first, _, rest = scope.partition(" ")
        if first.upper() in _METHODS and rest.strip():
            method, name = first.upper(), rest.strip()
        else:
            name = scope
    return Check(expression.strip(), method, name, metric, match["op"], value)


def metric_value(stats: EndpointStats, metric: str, duration_s: float) -> float | None:
    """The value of ``metric`` for ``stats`` (times in ms), None when there is no data."""
    for prefix, phase in _PHASE_PREFIXES.items():
        if metric.startswith(prefix):  # no such phase (no TLS, a custom client): no data
            times = stats.phases.get(phase)
            return None if times is None else metric_value(times, _base(metric), duration_s)
    if metric.startswith(_RAW):
        # A closed-model run has no correction: its times are the uncorrected ones.
        raw = stats.uncorrected if stats.uncorrected is not None else stats
        return metric_value(raw, metric.removeprefix(_RAW), duration_s)
    if metric == "requests":
        return float(stats.requests)
    if metric == "failures":
        return float(stats.failures)
    if metric == "fail_ratio":
        return stats.fail_ratio
    if metric == "rps":
        return stats.rps(duration_s)
    if metric == "avg":
        return stats.avg_ms
    if metric == "min":
        return stats.min_ms
    if metric == "max":
        return stats.max_ms
    if metric == "median":
        return stats.median_ms
    return stats.percentile(float(metric[1:]))


def evaluate(check: Check, snapshot: Snapshot) -> CheckResult:
    """Evaluate one check; an endpoint without requests fails every check but 'requests'."""
    if check.name is None:
        stats: EndpointStats | None = snapshot.total
    else:
        stats = snapshot.endpoint(check.name, check.method)
    if check.metric in _RUN_METRICS:
        actual: float | None = float(
            snapshot.dropped if check.metric == "dropped" else snapshot.dropped_ratio
        )
    elif stats is None:
        actual = 0.0 if check.metric in ("requests", "failures") else None
    else:
        actual = metric_value(stats, check.metric, snapshot.duration_s)
    passed = actual is not None and _OPS[check.op](actual, check.value)
    return CheckResult(check, passed, actual)


def evaluate_all(checks: list[Check], snapshot: Snapshot) -> list[CheckResult]:
    """Evaluate every check."""
    return [evaluate(check, snapshot) for check in checks]
