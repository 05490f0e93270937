"""How a run ends: one typed stop reason, requested through one scope.

A run can end in a dozen ways (the time limit, iterations done, the shape's end, a failing
check, a signal, ``StopTest``, the web UI, a crash loop, the memory limit, every worker
gone). Each of them only *requests* a stop from the run's :class:`StopScope`, as trio's
``CancelScope`` is cancelled whatever asked for it, and its deadline is one more trigger. The
first request wins and says why the run ended; one shutdown sequence follows, whatever it was.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable

from gevent.event import Event

from mpswarm.stats.run_facts import RunStop

Clock = Callable[[], float]

#: Exit code of a run stopped by a resource failure (memory limit, crash loop, lost workers
#: that could not be restored).
EXIT_RESOURCE_FAILURE = 4


class StopKind(enum.Enum):
    """What ended a run."""

    TIME_LIMIT = "time_limit"  # -t ran out
    ITERATIONS_DONE = "iterations_done"  # -i: every iteration ran
    SHAPE_ENDED = "shape_ended"  # LoadTestShape.tick() returned None
    CHECK_FAILED = "check_failed"  # --check-abort: a check failed for --check-grace
    SIGNAL = "signal"  # Ctrl-C / SIGTERM
    USER_CODE = "user_code"  # StopTest, runner.quit() or runner.stop() in the locustfile
    WEB_UI = "web_ui"  # the page's stop button, or the UI closing
    CRASH_LOOP = "crash_loop"  # more than --max-restarts worker deaths within a minute
    MEMORY_LIMIT = "memory_limit"  # --max-memory exceeded
    DESCRIPTORS = "descriptors"  # the parent ran out of file descriptors
    WORKERS_LOST = "workers_lost"  # no worker left, or they could not be restored


@dataclasses.dataclass(frozen=True)
class StopReason:
    """Why a run ended.

    Attributes:
        kind: what ended it.
        message: one line for a person (``received SIGINT``, ``crash loop: ...``).
        exit_code: the exit code this reason imposes on the run, or None when the run's
            results decide it (failed requests, checks).
        at: seconds into the run when the stop was requested.
    """

    kind: StopKind
    message: str
    exit_code: int | None = None
    at: float = 0.0

    @property
    def failed(self) -> bool:
        """True when the run did not end as planned (the reason imposes an exit code)."""
        return self.exit_code is not None and self.exit_code != 0

    def record(self) -> RunStop:
        """As the reports show it (``kind`` as its string; the exit code this reason imposes,
        until the run's own is decided)."""
        return RunStop.shown(self.kind.value, self.message, self.exit_code, self.at)


class StopScope:
    """The one way to end a run: ``request()`` from any trigger, ``wait()`` in the driver.

    Args:
        clock: seconds, monotonic (tests pass a fake one).
        started: when the run started, on ``clock`` (``at`` of a reason counts from it).
    """

    def __init__(self, clock: Clock = time.monotonic, started: float | None = None) -> None:
        self._clock = clock
        self.started = clock() if started is None else started
        self.deadline: float | None = None
        self.reason: StopReason | None = None
        self._exited = False  # user code called sys.exit()
        self._event = Event()

    # -- triggers ------------------------------------------------------------------------------
    def request(self, kind: StopKind, message: str, exit_code: int | None = None) -> bool:
        """Ask the run to end. The first request is the reason; later ones change nothing.

        Returns:
            True when this request is the run's stop reason.
        """
        if self.reason is not None:
            return False
        self.reason = StopReason(kind, message, exit_code, self._clock() - self.started)
        self._event.set()
        return True

    def exit_with(self, code: int, message: str) -> None:
        """User code's ``sys.exit(code)``: the run ends, if it is not ending already, and its
        process exits with ``code`` (0 too, whatever the results: Locust's process exits with
        it). Only the first one counts, as in one process. A reason that imposes a failure
        (a signal, a resource failure) keeps its own code: it says more about the run."""
        if self._exited:
            return
        self._exited = True
        if self.request(StopKind.USER_CODE, message, code) or self.reason is None:
            return
        if not self.reason.failed:  # it was ending anyway (``on_stop``): then user code exited
            self.reason = dataclasses.replace(
                self.reason, message=f"{self.reason.message}, then {message}", exit_code=code
            )

    def fail(self, kind: StopKind, message: str) -> bool:
        """Request a stop for a resource failure (exit code 4)."""
        return self.request(kind, message, EXIT_RESOURCE_FAILURE)

    def move_on_after(self, seconds: float | None) -> None:
        """Set the time limit, ``seconds`` from now (None: no limit)."""
        self.deadline = None if seconds is None else self._clock() + seconds

    # -- the driver's side -----------------------------------------------------------------------
    @property
    def event(self) -> Event:
        """Set once a stop is requested (to wait on beside other events)."""
        return self._event

    @property
    def requested(self) -> bool:
        """True once the run is ending."""
        return self.reason is not None

    def remaining(self) -> float | None:
        """Seconds to the deadline (0 when passed), None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self._clock())

    def check_deadline(self) -> bool:
        """Request the time-limit stop when the deadline has passed; True once stopping."""
        remaining = self.remaining()
        if remaining is not None and remaining <= 0.0:
            self.request(StopKind.TIME_LIMIT, "the run time is over")
        return self.requested

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested, the deadline passes or ``timeout`` runs out.

        Returns:
            True once the run is stopping.
        """
        while not self.check_deadline():
            limit = self.remaining()
            if timeout is not None:
                limit = timeout if limit is None else min(limit, timeout)
            self._event.wait(limit)
            if timeout is not None:
                return self.check_deadline()
        return True

    def reset(self) -> None:
        """Ready for another run on the same workers (the web UI's next run)."""
        self.started = self._clock()
        self.deadline = None
        self.reason = None
        self._exited = False
        self._event.clear()


__all__ = ["EXIT_RESOURCE_FAILURE", "StopKind", "StopReason", "StopScope"]
