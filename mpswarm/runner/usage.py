"""Each process watches its own CPU and memory and fires Locust's usage events."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import psutil

from mpswarm.stats.segment import Segment

logger = logging.getLogger(__name__)

#: Seconds between two ``usage_monitor`` events (Locust's interval).
USAGE_INTERVAL_S = 5.0
#: Period of the event-loop lag probe.
LAG_PROBE_S = 0.05
#: CPU percentage of one core above which ``cpu_warning`` fires (Locust's threshold).
CPU_WARNING_PERCENT = 90.0


class UsageMonitor:
    """Fires ``usage_monitor`` every interval and ``cpu_warning`` when the CPU is saturated.

    Args:
        environment: whose events fire.
        report: also called with (cpu_percent, rss_bytes), e.g. to tell the parent.
        interval: seconds between samples.
    """

    def __init__(
        self,
        environment: Any,
        report: Callable[[float, int], None] | None = None,
        interval: float = USAGE_INTERVAL_S,
    ) -> None:
        self.environment = environment
        self.report = report
        self.interval = interval
        self.process = psutil.Process()
        self._warned = False

    def sample(self) -> tuple[float, int]:
        """CPU % (of one core) since the last sample, and resident memory in bytes."""
        return self.process.cpu_percent(), self.process.memory_info().rss

    def run_forever(self) -> None:
        """Sample until killed."""
        try:
            self.process.cpu_percent()  # the first reading only starts the measurement
        except (psutil.Error, OSError):
            pass
        while True:
            gevent.sleep(self.interval)
            try:
                cpu, rss = self.sample()
            except (psutil.Error, OSError):  # no descriptor to read /proc with: skip this one
                continue
            if self.report is not None:
                self.report(cpu, rss)
            events = self.environment.events
            events.usage_monitor.fire(environment=self.environment, cpu_usage=cpu, memory_usage=rss)
            if cpu >= CPU_WARNING_PERCENT:
                events.cpu_warning.fire(environment=self.environment, cpu_usage=cpu)
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "CPU usage of pid %d is %.0f%%: the load generator may be saturated "
                        "and its response times inflated",
                        self.process.pid,
                        cpu,
                    )


def measure_loop_lag(segment: Segment) -> None:
    """How late a short timer fires: the honest sign of a saturated event loop (until killed).

    Every 50 ms; the p99 of the last 5 s (100 samples) and the worst value go to the
    segment's header, where the parent reads them, with the time of each turn (the heartbeat:
    a loop held by a task, a CPU spin or a blocking C call, measures nothing until it lets go,
    and a worker killed meanwhile never would; the parent sees the heartbeat age instead).
    """
    samples: collections.deque[float] = collections.deque(maxlen=100)
    worst = 0.0
    while True:
        segment.beat()  # a loop that stops taking turns is seen by the parent while it is stuck
        before = time.perf_counter()
        gevent.sleep(LAG_PROBE_S)
        lag = max(0.0, time.perf_counter() - before - LAG_PROBE_S)
        samples.append(lag)
        worst = max(worst, lag)
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        segment.loop_lag_us = (int(p99 * 1e6), int(worst * 1e6))
