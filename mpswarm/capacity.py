"""``mpswarm capacity``: the highest arrival rate at which every check holds.

The search is a load shape with feedback (``CapacitySearch``), so it runs through the same
run, workers, supervision and reports as any other. It raises the open model's rate step by
step: doubling from ``--start`` until a step fails or ``--max`` is reached, then bisecting
between the highest step that held and the lowest that failed, until they are within
``TOLERANCE`` of each other. Each step holds its rate for ``--step-time``: the first half lets
the target settle, the checks are evaluated on the second half alone. After a failed step the
rate drops to 0 for a step's time, so that the target's queues drain before the next one.

Who is the limit is decided by the generator's own signals. A step in which a worker was
saturated (its CPU or event-loop lag, as ``--cpu-warn`` / ``--lag-warn`` define it) ends the
search: its times are the generator's, and the result says so (``generator_limited``)
instead of a rate. So does a step whose checks held but that dropped iterations (no free user
under ``--max-users`` although the target answered in time: too few users for the rate).
A step whose checks failed while the generator had headroom is the target's limit, even if
iterations were dropped meanwhile (its users were all waiting on the slow target: Little's
law), and the search bisects on.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mpswarm.report.checks import Check, evaluate_all
from mpswarm.shape import LoadTestShape
from mpswarm.stats.run_facts import CapacityResult, CapacityStep
from mpswarm.stats.snapshot import Snapshot
from mpswarm.stats.window import difference

#: The search stops when the failing rate is within this share above the holding one.
TOLERANCE = 0.05


class CapacitySearch(LoadTestShape):
    """The search (see the module docstring); subclassed with its settings by ``search_shape``."""

    abstract = True
    start_rate = 10.0
    max_rate = 10_000.0
    step_s = 10.0
    checks: tuple[Check, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[CapacityStep] = []
        self.good: float | None = None  # the highest rate that held
        self.bad: float | None = None  # the lowest rate that failed
        self.generator_limited = False
        self._rate = self.start_rate
        self._began: float | None = None  # when the current step (or cool-down) began
        self._cooling = False
        self._middle: tuple[Snapshot, int] | None = None

    @property
    def capacity_rps(self) -> float | None:
        """The highest rate at which every check held (None: none did, or the generator
        was the limit first)."""
        return None if self.generator_limited and self.good is None else self.good

    def report_facts(self, snapshot: Snapshot) -> Snapshot:
        """The final ``snapshot`` with the search for the reports: every step, the result."""
        result = CapacityResult(
            capacity_rps=self.capacity_rps,
            generator_limited=self.generator_limited,
            highest_held_rps=self.good,
            lowest_failed_rps=self.bad,
            checks=tuple(c.expression for c in self.checks),
            steps=tuple(self.steps),
        )
        return dataclasses.replace(snapshot, capacity=result)

    def exit_code(self) -> int:
        """0: a capacity found; 3: no step held; 4: the generator was the limit first."""
        if self.generator_limited:
            return 4
        return 0 if self.good is not None else 3

    def tick(self) -> dict[str, Any] | None:
        swarm, t = self.runner, self.get_run_time()
        if self._began is None:
            self._began = t
        elapsed = t - self._began
        if self._cooling:
            if elapsed < self.step_s:
                return {"rate": 0}
            self._cooling, self._began, elapsed = False, t, 0.0
        if elapsed < self.step_s / 2:
            return {"rate": self._rate}
        if self._middle is None:
            self._middle = (swarm.snapshot(), swarm.supervisor.saturated_seconds)
            return {"rate": self._rate}
        if elapsed < self.step_s:
            return {"rate": self._rate}
        step = self._judge(swarm)
        self.steps.append(step)
        self._middle, self._began = None, t
        following = self._next(step)
        if following is None:
            swarm.environment.process_exit_code = self.exit_code()
            return None
        self._cooling = not step.passed
        self._rate = following
        return {"rate": 0 if self._cooling else following}

    def _judge(self, swarm: Any) -> CapacityStep:
        """The measured half of the step: its checks, and whether the generator kept up."""
        assert self._middle is not None
        then, saturated_before = self._middle
        now = swarm.snapshot()
        span = now.duration_s - then.duration_s
        before = {(e.method, e.name): e for e in then.endpoints}
        window = dataclasses.replace(
            now,
            total=difference(now.total, then.total),
            endpoints=tuple(difference(e, before.get((e.method, e.name))) for e in now.endpoints),
            duration_s=span,
            dropped=now.dropped - then.dropped,
            iterations=now.iterations - then.iterations,
        )
        results = evaluate_all(list(self.checks), window)
        failed = tuple(r.check.expression for r in results if not r.passed)
        busy = swarm.supervisor.saturated_seconds > saturated_before  # its CPU or loop lag
        # The generator is the limit on its own signals only: a busy worker, or users run out
        # while the target kept its times (more users would have held the rate).
        limited = busy or (window.dropped > 0 and not failed)
        p50, p95, p99 = window.total.percentiles([50.0, 95.0, 99.0])
        return CapacityStep(self._rate, window.total.requests / span if span > 0 else 0.0, p50,
                            p95, p99, window.total.fail_ratio, window.dropped, limited,
                            not failed and not limited and window.dropped == 0,
                            failed)  # fmt: skip

    def _next(self, step: CapacityStep) -> float | None:
        """The next rate, or None when the search is over."""
        if step.saturated:
            self.generator_limited = True
            return None
        if step.passed:
            self.good = max(self.good or 0.0, step.rate)
        else:
            self.bad = min(self.bad or float("inf"), step.rate)
        if self.bad is None:  # nothing failed yet: double, up to the most asked for
            if step.rate >= self.max_rate:
                return None
            return min(step.rate * 2, self.max_rate)
        if self.good is None:  # the first step failed: halve, down to a request a second
            return step.rate / 2 if step.rate / 2 >= 1.0 else None
        if (self.bad - self.good) / self.good <= TOLERANCE:
            return None
        return (self.good + self.bad) / 2


def search_shape(start: float, most: float, step_s: float, checks: list[Check]) -> type:
    """The CapacitySearch class with these settings (a shape class, as the run expects)."""
    return type("capacity search", (CapacitySearch,), {
        "start_rate": start, "max_rate": most, "step_s": step_s, "checks": tuple(checks),
    })  # fmt: skip
