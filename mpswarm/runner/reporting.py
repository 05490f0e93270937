"""What the parent does every second while a run goes on: history, CSV, status, checks."""

from __future__ import annotations

import dataclasses
import heapq
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

import gevent

from mpswarm._text import without_credentials
from mpswarm.config import RunConfig
from mpswarm.exceptions import UsageError
from mpswarm.report.checks import CheckResult, evaluate_all, parse_check
from mpswarm.report.csv_report import CsvWriter
from mpswarm.report.hdr_log import HdrLogWriter
from mpswarm.report.html import Point
from mpswarm.report.live import LiveStatus, RunInfo
from mpswarm.runner.stop import StopKind
from mpswarm.runner.supervisor import Supervisor
from mpswarm.stats.snapshot import Snapshot
from mpswarm.stats.window import History, difference

logger = logging.getLogger(__name__)

#: Seconds of load after which a run whose every request failed gets a warning: the summary
#: would show it only at the end. The samples come once a second, each a little before a whole
#: second of the run, hence the half second of slack.
DEAD_TARGET_AFTER_S = 3.0
_DEAD_TARGET_SLACK_S = 0.5
#: Error texts that mean the target was not reached at all (not an HTTP error status).
_UNREACHED = (
    "refused",
    "timed out",
    "timeout",
    "unreachable",
    "gaierror",
    "name or service",
    "connection",
    "reset by peer",
    "ssl",
    "certificate",
)


class Reported(Protocol):
    """What the live outputs read from the run, and how a failing check ends it (the Swarm)."""

    supervisor: Supervisor

    @property
    def target_user_count(self) -> int:
        """The users asked for."""

    def snapshot(self, final: bool = False, totals_only: bool = False) -> Snapshot:
        """Every segment summed now."""

    @property
    def name_count(self) -> int:
        """The distinct request names so far."""

    def request_stop(self, reason: str | None = None, kind: StopKind = StopKind.USER_CODE) -> None:
        """Ask the run to end."""


class RunReporting:
    """Samples the run once a second and feeds every live output.

    Args:
        config: the run's configuration.
        swarm: the running Swarm.
        clock: seconds, monotonic (when a sample of every row is due: ROWS_CPU_SHARE).
    """

    def __init__(
        self, config: RunConfig, swarm: Reported, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.swarm = swarm
        self.checks = [parse_check(expression) for expression in config.checks]
        self.history = History(10.0)
        self.series: list[Point] = []
        self.csv = _open_csv(config) if config.csv_prefix else None
        self.hdr = _open_hdr_log(config) if config.hdr_log else None
        #: Why the HdrHistogram log could not be written (None: fine).
        self.hdr_problem: str | None = None
        #: Why the CSV files could not be updated the last time they were tried (None: fine).
        self.csv_problem: str | None = None
        self._csv_warned = False
        self._target_checked = False
        self.live = None if config.only_summary else LiveStatus(sys.stderr, config.print_interval)
        self._failing_since: dict[str, float] = {}
        self._previous: Snapshot | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._clock = clock
        #: When the stats CSV and the chart next get a sample of every row (ROWS_CPU_SHARE).
        self._rows_due = float("-inf")
        #: The last sample that read every row: the chart's busiest endpoints are since then.
        self._previous_rows: Snapshot | None = None

    def start(self) -> None:
        """Start sampling in a greenlet."""
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(1.0)
            try:
                self.sample()
            except Exception:  # a broken report must not take the run down
                logger.exception("updating the live reports failed")

    def sample(self, final: Snapshot | None = None) -> Snapshot:
        """Take a snapshot (or use ``final``) and update history, CSV, status and checks."""
        started = time.thread_time()
        rows = final is not None or self._needs_rows()
        snapshot = final if final is not None else self.swarm.snapshot(totals_only=not rows)
        if snapshot.total.requests < (self._previous.total.requests if self._previous else 0):
            self.history.clear()  # the statistics were reset
            self._previous = self._previous_rows = None
        # The window's rows only feed the per-endpoint history (--csv-full-history): without
        # it the window keeps the totals, not a difference of 1 000 rows every second.
        full_history = self.csv is not None and self.csv.full_history
        self.history.add(snapshot if full_history else dataclasses.replace(snapshot, endpoints=()))
        window = self.history.window()
        self._add_point(snapshot)
        if self.csv is not None:
            self._update_csv(snapshot, window, rows)
        if self.hdr is not None and self.hdr_problem is None:
            try:
                self.hdr.update(snapshot, final=final is not None)
            except OSError as exc:  # the run goes on; the end says the log is incomplete
                self.hdr_problem = exc.strerror or str(exc)
                logger.warning("--hdr-log %s: writing failed (%s); the log stops here",
                               self.config.hdr_log, self.hdr_problem)  # fmt: skip
        if final is None:
            if not self._target_checked:
                self._warn_if_target_down(snapshot)
            if self.live is not None and self.live.due(snapshot.duration_s):
                self.live.show(
                    snapshot,
                    window,
                    RunInfo(
                        elapsed_s=snapshot.duration_s,
                        run_time_s=self.config.run_time,
                        target_users=self.swarm.target_user_count,
                        worker_cpu=self.swarm.supervisor.worker_cpu(),
                    ),
                )
            if self.config.check_abort and self.checks:
                self._abort_on_failing_checks(snapshot)
            if rows:  # half a second early: the next sample comes a second (and a bit) later
                spent = time.thread_time() - started
                self._rows_due = self._clock() + max(1.0, spent / ROWS_CPU_SHARE) - 0.5
        return snapshot

    def _needs_rows(self) -> bool:
        """Whether this second's sample reads every row, or the totals only.

        Every second for the outputs that need them (--hdr-log, --check-abort, the full CSV
        history); for the stats CSV and, while the names are few (CHART_NAMES), the chart of
        the busiest endpoints, as often as ROWS_CPU_SHARE allows.
        """
        if (
            self.hdr is not None
            or (self.config.check_abort and bool(self.checks))
            or (self.csv is not None and self.csv.full_history)
        ):
            return True
        wanted = self.csv is not None or self.swarm.name_count <= CHART_NAMES
        return wanted and self._clock() >= self._rows_due

    def _update_csv(self, snapshot: Snapshot, window: Any, rows: bool) -> None:
        assert self.csv is not None
        try:
            self.csv.update(snapshot, window, time.time(), rows=rows)
        except OSError as exc:  # disk full, folder removed: the run goes on, the end says so
            self.csv_problem = exc.strerror or str(exc)
            if not self._csv_warned:
                self._csv_warned = True
                logger.warning(
                    "--csv %s: updating the CSV files failed (%s); trying again every second",
                    self.config.csv_prefix,
                    self.csv_problem,
                )
        else:
            self.csv_problem = None

    def _warn_if_target_down(self, snapshot: Snapshot) -> None:
        """Once, a few seconds in: a warning when not one request has succeeded yet."""
        total = snapshot.total
        if snapshot.duration_s < DEAD_TARGET_AFTER_S - _DEAD_TARGET_SLACK_S or not total.requests:
            return
        self._target_checked = True
        if total.failures < total.requests:
            return
        top = max(snapshot.errors, key=lambda error: error.occurrences, default=None)
        error = top.error if top is not None else "failed"
        hint = "; is the target up?" if any(w in error.lower() for w in _UNREACHED) else ""
        hosts = self._hosts()
        logger.warning(
            "every request%s failed in the first %.0f s (%d requests): %s%s",
            f" to {hosts[0]}" if len(hosts) == 1 else "",
            snapshot.duration_s,
            total.requests,
            error,
            hint,
        )

    def _hosts(self) -> list[str]:
        if self.config.host:
            return [without_credentials(self.config.host)]
        classes = getattr(getattr(self.swarm, "spec", None), "user_classes", ())
        hosts = {cls.host for cls in classes if getattr(cls, "host", None)}
        return sorted(without_credentials(host) for host in hosts)

    def _add_point(self, snapshot: Snapshot) -> None:
        previous = self._previous
        span = snapshot.duration_s - (previous.duration_s if previous else 0.0)
        second = difference(snapshot.total, previous.total if previous else None)
        p50, p90, p95, p99, top = second.percentiles([50.0, 90.0, 95.0, 99.0, 100.0])
        dropped = uncorrected_p95 = None
        endpoints = None
        if snapshot.endpoints:  # since the last sample of every row: a second, or a few
            endpoints = _busiest_p95(snapshot, self._previous_rows)
            self._previous_rows = snapshot
        if snapshot.open_model:  # what the schedule could not start, and the uncorrected times
            before = previous.dropped if previous is not None else 0
            dropped = (snapshot.dropped - before) / span if span > 0 else 0.0
            if snapshot.total.uncorrected is not None:
                raw_then = previous.total.uncorrected if previous is not None else None
                (uncorrected_p95,) = difference(snapshot.total.uncorrected, raw_then).percentiles(
                    [95.0]
                )
        self.series.append(
            Point(
                t=snapshot.duration_s,
                users=snapshot.users,
                rps=second.requests / span if span > 0 else 0.0,
                fps=second.failures / span if span > 0 else 0.0,
                p50=p50,
                p95=p95,
                p99=p99,
                saturated=snapshot.saturation is not None and snapshot.saturation.now,
                p90=p90,
                max=top,
                dropped=dropped,
                uncorrected_p95=uncorrected_p95,
                endpoints=endpoints,
            )
        )
        self._previous = snapshot

    def _abort_on_failing_checks(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        for result in evaluate_all(self.checks, snapshot):
            key = result.check.expression
            if result.passed:
                self._failing_since.pop(key, None)
                continue
            since = self._failing_since.setdefault(key, now)
            if now - since >= self.config.check_grace:
                self.swarm.request_stop(
                    f"check {key!r} failed for {self.config.check_grace:g} s ({result.describe()})",
                    StopKind.CHECK_FAILED,
                )
                return

    def finish(self, final: Snapshot) -> list[CheckResult]:
        """Stop sampling, write the last CSV rows, and evaluate the checks on ``final``."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
        self.sample(final)
        if self.csv is not None:
            try:
                self.csv.close()
            except OSError as exc:
                self.csv_problem = exc.strerror or str(exc)
        if self.hdr is not None:
            try:
                self.hdr.close()
            except OSError as exc:
                self.hdr_problem = self.hdr_problem or exc.strerror or str(exc)
        return evaluate_all(self.checks, final)

    @property
    def failures(self) -> list[str]:
        """Live reports that could not be written, as ``OPTION PATH (why)``, once finished."""
        failed = []
        if self.csv_problem is not None:
            failed.append(f"--csv {self.config.csv_prefix} ({self.csv_problem})")
        if self.hdr_problem is not None:
            failed.append(f"--hdr-log {self.config.hdr_log} ({self.hdr_problem})")
        return failed


#: The share of one core that the samples of every row may take when only the stats CSV or
#: the chart of the busiest endpoints need them: one takes time in proportion to the rows that
#: moved, times the workers, times the buckets each row uses; with 16 busy workers x 1 000
#: names each second's took 100 ms (10 % of a core), with 16 x 200 18 ms (bench/parent_cpu.py).
#: So they come every second while one costs under 5 ms, else every (its cost /
#: ROWS_CPU_SHARE) s: the stats CSV is rewritten then, and the chart's busiest endpoints are
#: those of that span. The history's Aggregated row, the failures and exceptions files and the
#: live status still change every second; the final files are exact.
ROWS_CPU_SHARE = 0.005
#: Up to this many request names, the once-a-second sample takes every row (as with --csv),
#: for the chart of the busiest endpoints' p95.
CHART_NAMES = 200
#: The endpoints of each second the chart follows: its busiest.
CHART_ENDPOINTS = 10


def _busiest_p95(snapshot: Snapshot, previous: Snapshot | None) -> dict[str, float]:
    """p95 (ms) of the ``CHART_ENDPOINTS`` busiest endpoints since ``previous`` (the last
    sample of every row: a second ago, or a few under ROWS_CPU_SHARE): ``{"GET /x": ms}``."""
    if previous is not None and previous.total.requests and not previous.endpoints:
        return {}  # the last sample had totals only: no second to take per endpoint
    before = {(e.method, e.name): e for e in previous.endpoints} if previous is not None else {}
    moved = []  # (this second's requests, now, then): the busiest are known before any diff
    for stats in snapshot.endpoints:
        then = before.get((stats.method, stats.name))
        done = stats.requests - (then.requests if then is not None else 0)
        if done > 0:
            moved.append((done, stats, then))
    found = {}
    for _, stats, then in heapq.nlargest(CHART_ENDPOINTS, moved, key=lambda entry: entry[0]):
        (p95,) = difference(stats, then).percentiles([95.0])
        if p95 is not None:
            found[f"{stats.method} {stats.name}"] = p95
    return found


def _open_csv(config: RunConfig) -> CsvWriter:
    assert config.csv_prefix is not None
    try:
        return CsvWriter(config.csv_prefix, config.csv_full_history)
    except OSError as exc:  # checked at the start; this is what changed since
        raise UsageError(f"cannot write --csv {config.csv_prefix}: {exc.strerror or exc}") from None


def _open_hdr_log(config: RunConfig) -> HdrLogWriter:
    assert config.hdr_log is not None
    try:
        return HdrLogWriter(config.hdr_log, config.hdr_interval)
    except OSError as exc:  # checked at the start; this is what changed since
        problem = exc.strerror or exc
        raise UsageError(f"cannot write --hdr-log {config.hdr_log}: {problem}") from None
