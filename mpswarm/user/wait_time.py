"""Wait-time functions, used as ``wait_time = between(1, 3)`` on a User or TaskSet.

Each returns a function of the user (or TaskSet) instance that gives the seconds to wait after
a task, as in Locust.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

WaitTime = Callable[[Any], float]


def between(min_wait: float, max_wait: float) -> WaitTime:
    """Wait a uniformly random time between ``min_wait`` and ``max_wait`` seconds."""
    span = max_wait - min_wait
    return lambda instance: min_wait + random.random() * span


def constant(wait_time: float) -> WaitTime:
    """Wait the same ``wait_time`` seconds after every task."""
    return lambda instance: wait_time


def constant_pacing(wait_time: float) -> WaitTime:
    """Start a task at most every ``wait_time`` seconds, whatever the task took.

    The wait after a task is ``wait_time`` minus the time since the previous wait ended, never
    negative: a task slower than ``wait_time`` is followed by no wait at all.
    """

    def pace(instance: Any) -> float:
        now = time.perf_counter()
        cycle_start = getattr(instance, "_mpswarm_pace_start", None)
        elapsed = 0.0 if cycle_start is None else now - cycle_start
        wait = max(0.0, wait_time - elapsed)
        instance._mpswarm_pace_start = now + wait
        return wait

    return pace


def constant_throughput(task_runs_per_second: float) -> WaitTime:
    """Run at most ``task_runs_per_second`` tasks per second per user (inverse of pacing)."""
    return constant_pacing(1.0 / task_runs_per_second)
