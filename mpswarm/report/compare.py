"""``mpswarm compare BASE.json NEW.json``: two runs' JSON reports, endpoint by endpoint.

For all requests and each endpoint in both runs: requests/s, fail ratio, p50, p95, p99 and
max in each run, the change (relative for times and rates, absolute for the fail ratio), and
a 95 % interval of that change computed from the runs' own histograms, so that sampling noise
is not called a regression:

- percentiles: a bootstrap (``BOOTSTRAP`` resamples of each run's histogram, multinomial over
  its buckets, with a fixed seed so the same reports always compare alike);
- the fail ratio: the normal interval of a difference of two proportions;
- requests/s: the log of the ratio of two Poisson counts over the runs' durations;
- max: the two values alone (one sample decides a maximum; no interval).

A change is *significant* when its interval excludes 0. A check (``p95 < +10%``,
``fail_ratio < +0.005``, ``rps > -5%``, scoped like ``--check``: ``GET /x: p99 < +20%``)
fails when the whole interval lies beyond its threshold: a regression, and not noise, at 95 %.
The interval covers sampling noise within a run, not the drift between two runs of the same
configuration on a busy machine (docs/outputs.md says how often that crossed a threshold).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import numpy as np

from mpswarm.exceptions import UsageError
from mpswarm.stats.histogram import MIDPOINTS_US
from mpswarm.stats.snapshot import EndpointStats, Snapshot

BOOTSTRAP = 1000
_Z = 1.959964  # the normal distribution's 97.5 % quantile
#: The metrics compared unless a check names another percentile too.
METRICS = ("rps", "fail_ratio", "p50", "p95", "p99", "max")
_CHECK = re.compile(
    r"^\s*(?:(?P<scope>.+?)\s*:\s+)?(?P<metric>rps|fail_ratio|max|p\d{1,2}(?:\.\d+)?)\s*"
    r"(?P<op><=|>=|<|>)\s*(?P<value>[+-]?\d+(?:\.\d+)?)\s*(?P<percent>%)?\s*$"
)


@dataclasses.dataclass(frozen=True)
class Change:
    """One metric in both runs, its change and the 95 % interval of the change."""

    metric: str
    base: float | None
    new: float | None
    change: float | None  # relative (0.1 = +10 %), absolute for fail_ratio
    low: float | None
    high: float | None

    @property
    def significant(self) -> bool:
        """The interval excludes no change."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "significant": self.significant}


@dataclasses.dataclass(frozen=True)
class Compared:
    """An endpoint (or all requests: ``name`` "Aggregated") in both runs."""

    method: str
    name: str
    base_requests: int
    new_requests: int
    changes: dict[str, Change]


@dataclasses.dataclass(frozen=True)
class CompareCheck:
    """``[SCOPE:] METRIC OP CHANGE``: e.g. ``p95 < +10%`` (relative) or ``fail_ratio < +0.005``."""

    expression: str
    method: str | None
    name: str | None
    metric: str
    op: str
    limit: float  # relative for % (0.1), else absolute


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """A check against one comparison: failed only when the change is beyond it for sure."""

    check: CompareCheck
    change: Change | None
    passed: bool

    def describe(self) -> str:
        change = self.change
        if change is None or change.change is None:
            return f"{self.check.expression}: no data in both runs (FAILED)"
        verdict = "passed" if self.passed else "FAILED: a significant regression"
        return f"{self.check.expression}: {change_text(change)} ({verdict})"


def parse_compare_check(expression: str) -> CompareCheck:
    """Parse ``[SCOPE:] METRIC OP [+|-]VALUE[%]``.

    Raises:
        UsageError: not of that form, or a % on fail_ratio (its change is absolute).
    """
    match = _CHECK.match(expression)
    if match is None:
        raise UsageError(
            f"invalid compare --check {expression!r}: use e.g. 'p95 < +10%', "
            "'fail_ratio < +0.005', 'rps > -5%' or 'GET /login: p99 < +20%'"
        )
    metric = match["metric"]
    if metric == "fail_ratio" and match["percent"]:
        raise UsageError(f"invalid compare --check {expression!r}: fail_ratio's change is "
                         "absolute (e.g. +0.005), not a percentage")  # fmt: skip
    if metric != "fail_ratio" and not match["percent"]:
        raise UsageError(f"invalid compare --check {expression!r}: {metric}'s change is "
                         "relative: give a percentage (e.g. +10%)")  # fmt: skip
    limit = float(match["value"]) / (100.0 if match["percent"] else 1.0)
    method = name = None
    if match["scope"]:
        first, _, rest = match["scope"].strip().partition(" ")
        if first.isupper() and rest.strip():
            method, name = first, rest.strip()
        else:
            name = match["scope"].strip()
    return CompareCheck(expression.strip(), method, name, metric, match["op"], limit)


def compare_runs(
    base: Snapshot, new: Snapshot, metrics: tuple[str, ...] = METRICS
) -> tuple[list[Compared], list[Any], list[Any]]:
    """(all requests and the endpoints in both runs, endpoints only in BASE, only in NEW),
    each compared on ``metrics`` (``rps``, ``fail_ratio``, ``max`` and any ``pNN``)."""
    rng = np.random.default_rng(0)
    base_rows = {(e.method, e.name): e for e in base.endpoints}
    new_rows = {(e.method, e.name): e for e in new.endpoints}
    pairs = [(base.total, new.total)] + [
        (base_rows[key], new_rows[key]) for key in base_rows if key in new_rows
    ]
    compared = [
        Compared(b.method, b.name, b.requests, n.requests,
                 _changes(b, n, base.duration_s, new.duration_s, rng, metrics))
        for b, n in pairs
    ]  # fmt: skip
    only_base = [base_rows[k] for k in base_rows if k not in new_rows]
    only_new = [new_rows[k] for k in new_rows if k not in base_rows]
    return compared, only_base, only_new


def _changes(
    base: EndpointStats,
    new: EndpointStats,
    base_s: float,
    new_s: float,
    rng: Any,
    metrics: tuple[str, ...],
) -> dict[str, Change]:
    found = {}
    for metric in metrics:
        if metric == "rps":
            found[metric] = _rate_change(base.requests, base_s, new.requests, new_s)
            continue
        if metric == "fail_ratio":
            found[metric] = _ratio_change(base, new)
            continue
        if metric == "max":
            b, n = base.max_ms, new.max_ms
            change = n / b - 1 if b and n is not None else None
            found[metric] = Change(metric, b, n, change, None, None)
            continue
        q = float(metric[1:])
        b, n = base.percentile(q), new.percentile(q)
        if not b or n is None:
            found[metric] = Change(metric, b, n, None, None, None)
            continue
        spread = _bootstrap(new, q, rng) / _bootstrap(base, q, rng) - 1.0
        low, high = np.percentile(spread, [2.5, 97.5]).tolist()
        found[metric] = Change(metric, b, n, n / b - 1, low, high)
    return found


def _bootstrap(stats: EndpointStats, q: float, rng: Any) -> np.ndarray:
    """The q-th percentile (ms) of BOOTSTRAP resamples of ``stats``' histogram."""
    counts = stats.counts
    total = int(counts.sum())
    samples = rng.multinomial(total, counts / total, size=BOOTSTRAP)
    rank = max(1, math.ceil(q / 100.0 * total - 1e-9))
    found = (np.cumsum(samples, axis=1) >= rank).argmax(axis=1)
    values = np.clip(MIDPOINTS_US[stats.buckets[found]], stats.min_us, stats.max_us)
    return np.asarray(values, dtype=np.float64) / 1000.0


def _rate_change(base_n: int, base_s: float, new_n: int, new_s: float) -> Change:
    if not (base_n and new_n and base_s > 0 and new_s > 0):
        rates = (base_n / base_s if base_s > 0 else None, new_n / new_s if new_s > 0 else None)
        return Change("rps", *rates, None, None, None)
    base_rate, new_rate = base_n / base_s, new_n / new_s
    log_ratio = math.log(new_rate / base_rate)
    spread = _Z * math.sqrt(1 / base_n + 1 / new_n)
    return Change("rps", base_rate, new_rate, new_rate / base_rate - 1,
                  math.exp(log_ratio - spread) - 1, math.exp(log_ratio + spread) - 1)  # fmt: skip


def _ratio_change(base: EndpointStats, new: EndpointStats) -> Change:
    if not (base.requests and new.requests):
        return Change("fail_ratio", base.fail_ratio, new.fail_ratio, None, None, None)
    b, n = base.fail_ratio, new.fail_ratio
    spread = _Z * math.sqrt(b * (1 - b) / base.requests + n * (1 - n) / new.requests)
    return Change("fail_ratio", b, n, n - b, n - b - spread, n - b + spread)


def evaluate_compare(checks: list[CompareCheck], compared: list[Compared]) -> list[CheckOutcome]:
    """Each check against the endpoint it names (all requests without a scope)."""
    outcomes = []
    for check in checks:
        row = next(
            (c for c in compared
             if (check.name is None and c.name == "Aggregated" and not c.method)
             or (check.name is not None and c.name == check.name
                 and (check.method is None or c.method == check.method))),
            None,
        )  # fmt: skip
        change = row.changes.get(check.metric) if row is not None else None
        outcomes.append(CheckOutcome(check, change, _passes(check, change)))
    return outcomes


def _passes(check: CompareCheck, change: Change | None) -> bool:
    if change is None or change.change is None:
        return False
    # With an interval, it fails only when the whole interval is beyond the limit: its edge
    # on the limit's side decides. Without one (max), the change itself.
    edge = change.low if check.op in ("<", "<=") else change.high
    value = change.change if edge is None else edge
    if check.op == "<":
        return value < check.limit
    if check.op == "<=":
        return value <= check.limit
    if check.op == ">":
        return value > check.limit
    return value >= check.limit


def change_text(change: Change) -> str:
    """``+12.3 % (+9.8 .. +14.9 %)``, or ``+0.0040 (...)`` for the fail ratio."""
    if change.change is None:
        return "n/a"
    if change.metric == "fail_ratio":
        shown = f"{change.change:+.4f}"
        if change.low is not None and change.high is not None:
            shown += f" ({change.low:+.4f} .. {change.high:+.4f})"
        return shown
    shown = f"{change.change * 100:+.1f} %"
    if change.low is not None and change.high is not None:
        shown += f" ({change.low * 100:+.1f} .. {change.high * 100:+.1f} %)"
    return shown
