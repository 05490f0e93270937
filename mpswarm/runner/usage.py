"""Each process watches its own CPU and memory and fires Locust's usage events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
import psutil

logger = logging.getLogger(__name__)

#: Seconds between two ``usage_monitor`` events (Locust's interval).
USAGE_INTERVAL_S = 5.0
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
        self.process.cpu_percent()  # the first reading only starts the measurement
        while True:
            gevent.sleep(self.interval)
            cpu, rss = self.sample()
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
