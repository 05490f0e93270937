"""What the parent does every second while a run goes on: history, CSV, status, checks."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import gevent

from mpswarm.config import RunConfig
from mpswarm.report.checks import CheckResult, evaluate_all, parse_check
from mpswarm.report.csv_report import CsvWriter
from mpswarm.report.html import Point
from mpswarm.report.live import LiveStatus, RunInfo
from mpswarm.stats.snapshot import Snapshot
from mpswarm.stats.window import History, difference

logger = logging.getLogger(__name__)


class RunReporting:
    """Samples the run once a second and feeds every live output.

    Args:
        config: the run's configuration.
        swarm: the running Swarm.
    """

    def __init__(self, config: RunConfig, swarm: Any) -> None:
        self.config = config
        self.swarm = swarm
        self.checks = [parse_check(expression) for expression in config.checks]
        self.history = History(10.0)
        self.series: list[Point] = []
        self.csv = (
            CsvWriter(config.csv_prefix, config.csv_full_history) if (config.csv_prefix) else None
        )
        self.live = None if config.only_summary else LiveStatus(sys.stderr, config.print_interval)
        self._failing_since: dict[str, float] = {}
        self._previous: Snapshot | None = None
        self._greenlet: gevent.Greenlet | None = None

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
        # Per-endpoint rows only when an output needs them every second (CSV, --check-abort);
        # the live status and the charts need the totals alone.
        needs_rows = self.csv is not None or (self.config.check_abort and bool(self.checks))
        snapshot = final if final is not None else self.swarm.snapshot(totals_only=not needs_rows)
        if snapshot.total.requests < (self._previous.total.requests if self._previous else 0):
            self.history.clear()  # the statistics were reset
            self._previous = None
        self.history.add(snapshot)
        window = self.history.window()
        self._add_point(snapshot)
        if self.csv is not None:
            self.csv.update(snapshot, window, time.time())
        if final is None:
            if self.live is not None and self.live.due(snapshot.duration_s):
                self.live.show(
                    snapshot,
                    window,
                    RunInfo(
                        elapsed_s=snapshot.duration_s,
                        run_time_s=self.config.run_time,
                        target_users=self.swarm.target_user_count,
                        worker_cpu=self.swarm.worker_cpu(),
                    ),
                )
            if self.config.check_abort and self.checks:
                self._abort_on_failing_checks(snapshot)
        return snapshot

    def _add_point(self, snapshot: Snapshot) -> None:
        previous = self._previous
        span = snapshot.duration_s - (previous.duration_s if previous else 0.0)
        second = difference(snapshot.total, previous.total if previous else None)
        p50, p95, p99 = second.percentiles([50.0, 95.0, 99.0])
        self.series.append(
            Point(
                t=snapshot.duration_s,
                users=snapshot.users,
                rps=second.requests / span if span > 0 else 0.0,
                fps=second.failures / span if span > 0 else 0.0,
                p50=p50,
                p95=p95,
                p99=p99,
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
                    f"check {key!r} failed for {self.config.check_grace:g} s ({result.describe()})"
                )
                return

    def finish(self, final: Snapshot) -> list[CheckResult]:
        """Stop sampling, write the last CSV rows, and evaluate the checks on ``final``."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
        self.sample(final)
        if self.csv is not None:
            self.csv.close()
        return evaluate_all(self.checks, final)
