"""The parent's supervision of its workers: saturation, memory limits, crashes.

Once a second it samples each worker's CPU and RSS (psutil) and reads the event-loop lag the
worker measures itself (in its segment's header). A worker is saturated in a second when its
CPU or its loop lag reaches the limits; five such seconds in a row get a warning, and every
saturated second is marked in the outputs, because response times measured by a saturated
generator include its own queueing. A worker over ``--max-worker-memory`` is recycled; one
that dies is replaced, and its users restored. Requests it recorded stay counted: its segment
stays with the aggregator.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import gevent
import psutil

from mpswarm.exceptions import WorkerError
from mpswarm.runner._fds import EXHAUSTED, FdReserve
from mpswarm.runner._handle import WorkerHandle
from mpswarm.runner.stop import StopKind, StopScope
from mpswarm.runner.usage import LAG_PROBE_S
from mpswarm.runner.worker import FORK_REFUSED
from mpswarm.stats.run_facts import HostLost, RecoveryEvent, Saturation

logger = logging.getLogger(__name__)

#: Seconds a worker must stay saturated before the warning.
SATURATION_WARN_AFTER_S = 5
#: The exit code of a run stopped for what user code did (as for an exception in it).
EXIT_USER_CODE = 1
#: Seconds without a turn of its event loop after which a worker is said to be blocked.
BLOCKED_WARN_S = 1.0
#: The window within which more than --max-restarts deaths stop the run.
CRASH_WINDOW_S = 60.0


class Supervised(Protocol):
    """What the supervisor watches and acts on (the Swarm)."""

    clients: dict[str, Any]
    started_at: float | None
    scope: StopScope
    fd_reserve: FdReserve

    @property
    def workers(self) -> list[WorkerHandle]:
        """The current worker of each slot."""

    @property
    def stop_requested(self) -> bool:
        """True once the run is ending: nothing is replaced or recycled then."""

    @property
    def fork_server_pid(self) -> int | None:
        """The fork server's pid, for memory accounting."""

    def elapsed(self) -> float:
        """Seconds into the run."""

    def fail(self, kind: StopKind, message: str) -> None:
        """Stop the run for a resource failure (exit code 4)."""

    def replace_worker(self, old: WorkerHandle) -> WorkerHandle | None:
        """Replace a dead worker; None when the run began to stop meanwhile."""

    def recycle_worker(self, old: WorkerHandle) -> WorkerHandle | None:
        """Replace a live worker; None when the run began to stop meanwhile."""


#: Seconds a replacement gets to start its users before its recovery event says so anyway.
RESTORE_TIMEOUT_S = 30.0


def _open_fds() -> int | str:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return "all"


def _mb(value: float) -> str:
    return f"{value / 1024 / 1024:.0f} MB"


class Supervisor:
    """Watches a Swarm's workers; see the module docstring.

    Args:
        swarm: what to supervise.
        cpu_warn: CPU % of one core counted as saturation.
        lag_warn_ms: loop lag p99 counted as saturation.
        max_worker_memory: bytes of RSS above which a worker is recycled (None: no limit).
        max_memory: bytes of RSS of all processes above which the run stops (None: no limit).
        max_restarts: deaths within a minute that are tolerated.
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        swarm: Supervised,
        cpu_warn: float = 90.0,
        lag_warn_ms: float = 50.0,
        max_worker_memory: int | None = None,
        max_memory: int | None = None,
        max_restarts: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.swarm = swarm
        self.cpu_warn = cpu_warn
        self.lag_warn_us = lag_warn_ms * 1000.0
        self.max_worker_memory = max_worker_memory
        self.max_memory = max_memory
        self.max_restarts = max_restarts
        self.events: list[RecoveryEvent] = []
        #: Under --ray: the hosts whose agent died (when, why, what was done).
        self.hosts_lost: list[dict[str, Any]] = []
        self._host_deaths: set[str] = set()
        self.seconds = 0
        self.saturated_seconds = 0
        self.saturated_now = False
        self.worst_lag_us = 0
        self._streaks: dict[int, int] = collections.defaultdict(int)
        self._deaths: collections.deque[float] = collections.deque()
        self._recycling: set[int] = set()
        self._parent = psutil.Process()
        self._clock = clock
        #: Slots whose event loop is blocked now, and since when (clock seconds).
        self._blocked: dict[int, float] = {}

    def record(self, handle: Any, cause: str, action: str) -> None:
        """Add a recovery event (once its action has happened) and log it."""
        event = RecoveryEvent(
            round(self.swarm.elapsed(), 1), handle.slot, handle.pid, cause, action
        )
        self.events.append(event)
        logger.warning("worker %d (pid %s): %s -> %s", handle.slot, handle.pid, cause, action)

    def host_lost(self, event: dict[str, Any]) -> None:
        """Keep a lost host's event for the summary: once when it is noticed, again (the
        same ``event["at"]``) with what was done about it."""
        logger.warning("%s -> %s", event["cause"], event["action"])
        for known in self.hosts_lost:
            if known["_at"] == event["at"] and known["host"] == event["host"]:
                known["action"] = event["action"]
                return
        self.hosts_lost.append({"at_s": round(self.swarm.elapsed(), 1), "host": event["host"],
                                "name": event["name"], "cause": event["cause"],
                                "action": event["action"], "_at": event["at"]})  # fmt: skip

    # -- the once-a-second sample -----------------------------------------------------------------
    def run_forever(self) -> None:
        """Sample once a second until killed."""
        while True:
            gevent.sleep(1.0)
            try:
                self.sample()
            except OSError as exc:
                if exc.errno not in EXHAUSTED:
                    logger.exception("supervising the workers failed")
                    continue
                # Supervision cannot go on: the descriptors held in reserve let the stop and
                # the reports happen, and the run ends as for any resource failure.
                self.swarm.fd_reserve.release()
                self.swarm.fail(StopKind.DESCRIPTORS, f"the parent ran out of file descriptors "
                                f"({_open_fds()} open): {exc.strerror}")  # fmt: skip
            except Exception:  # supervision must never take the run down
                logger.exception("supervising the workers failed")

    def sample(self) -> None:
        """One round of monitoring."""
        total_rss = self._rss(self._parent) + self._rss_of_pid(self.swarm.fork_server_pid)
        any_saturated = False
        for handle in list(self.swarm.workers):
            if not handle.alive or handle.pid is None or not handle.ready.is_set():
                continue
            cpu, rss = self._usage(handle)
            total_rss += rss
            if handle.segment.forked and not self.swarm.stop_requested:
                logger.error("worker %d (pid %s): %s", handle.slot, handle.pid, FORK_REFUSED)
                self.swarm.scope.request(StopKind.USER_CODE, FORK_REFUSED, EXIT_USER_CODE)
            lag, worst = handle.segment.loop_lag_us
            stalled = self._stalled_us(handle)
            lag, worst = max(lag, stalled), max(worst, stalled)
            self.worst_lag_us = max(self.worst_lag_us, worst)
            node = self.swarm.clients.get(handle.client_id)
            if node is not None:
                node.cpu_usage, node.memory_usage = cpu, rss
            saturated = cpu >= self.cpu_warn or lag >= self.lag_warn_us
            any_saturated = any_saturated or saturated
            self._streaks[handle.slot] = self._streaks[handle.slot] + 1 if saturated else 0
            if self._streaks[handle.slot] == SATURATION_WARN_AFTER_S:
                logger.warning(
                    "worker %d (pid %d) is saturated: CPU %.0f%%, event-loop lag p99 %.0f ms "
                    "for %d s; response times it measures now include its own delays (use "
                    "more --processes, fewer users per worker, or a lighter locustfile)",
                    handle.slot,
                    handle.pid,
                    cpu,
                    lag / 1000,
                    SATURATION_WARN_AFTER_S,
                )
            if (
                self.max_worker_memory is not None
                and rss > self.max_worker_memory
                and handle.slot not in self._recycling
                and not self.swarm.stop_requested
            ):
                self._recycling.add(handle.slot)
                gevent.spawn(self._recycle, handle, rss)
        if self.swarm.started_at is not None and not self.swarm.stop_requested:
            self.seconds += 1
            self.saturated_seconds += int(any_saturated)
        self.saturated_now = any_saturated
        if self.max_memory is not None and total_rss > self.max_memory:
            self.swarm.fail(
                StopKind.MEMORY_LIMIT,
                f"all processes together use {_mb(total_rss)}, over --max-memory "
                f"{_mb(self.max_memory)}",
            )

    def _stalled_us(self, handle: Any) -> int:
        """How long the worker's event loop has gone without a turn, beyond its probe's own
        sleep (microseconds; 0 for a remote worker, whose segment is a copy). A loop held by a
        task measures no lag of its own until it lets go: this sees it while it is held."""
        beat = handle.segment.last_beat_us
        if beat == 0 or getattr(handle, "remote", False):
            return 0
        now = time.monotonic()
        stalled = max(0, int(now * 1e6) - beat - int(LAG_PROBE_S * 1e6))
        if stalled >= BLOCKED_WARN_S * 1e6:
            if handle.slot not in self._blocked:
                self._blocked[handle.slot] = now - stalled / 1e6
                logger.warning(
                    "worker %d (pid %s): its event loop is blocked, no turn for %.1f s: a task "
                    "holds it (a CPU-bound loop or a blocking call that gevent does not patch); "
                    "its users and their response times wait",
                    handle.slot,
                    handle.pid,
                    stalled / 1e6,
                )
        elif handle.slot in self._blocked:
            since = self._blocked.pop(handle.slot)
            logger.warning(
                "worker %d (pid %s): its event loop runs again after %.1f s blocked",
                handle.slot,
                handle.pid,
                now - since,
            )
        return stalled

    @staticmethod
    def _rss(process: psutil.Process) -> int:
        try:
            return int(process.memory_info().rss)
        except psutil.Error:
            return 0

    def _rss_of_pid(self, pid: int | None) -> int:
        if pid is None:
            return 0
        try:
            return self._rss(psutil.Process(pid))
        except psutil.Error:
            return 0

    def _usage(self, handle: Any) -> tuple[float, int]:
        if getattr(handle, "remote", False):  # not this machine's pid: the worker's own reports
            node = self.swarm.clients.get(handle.client_id)
            return (node.cpu_usage, node.memory_usage) if node is not None else (0.0, 0)
        try:
            if handle.process is None:
                handle.process = psutil.Process(handle.pid)
            return float(handle.process.cpu_percent()), int(handle.process.memory_info().rss)
        except psutil.Error:
            return 0.0, 0

    # -- recovery ------------------------------------------------------------------------------
    def _recycle(self, handle: Any, rss: int) -> None:
        cause = f"RSS {_mb(rss)} over --max-worker-memory {_mb(self.max_worker_memory or 0)}"
        try:
            new = self.swarm.recycle_worker(handle)
        except (WorkerError, OSError) as exc:  # the old worker goes on: nothing is lost
            self.record(handle, cause, f"not recycled: {exc}")
            return
        finally:
            self._recycling.discard(handle.slot)
        if new is None:
            self.record(handle, cause, "retired; not replaced: the run is stopping")
        else:
            self._restored(handle, new, cause, "recycled")

    def on_worker_lost(self, handle: Any) -> None:
        """A worker's pipe closed while the run goes on: replace it, or stop on a crash loop."""
        handle.exited.wait(timeout=1.0)  # the fork server tells how it ended
        cause = f"died ({handle.exit_description or 'exit status unknown'})"
        now = self._clock()
        # The workers of a lost host die together: one death for the crash-loop limit.
        host_loss = getattr(handle, "lost_with_host", None)
        if host_loss is None or host_loss not in self._host_deaths:
            self._deaths.append(now)
        if host_loss is not None:
            self._host_deaths.add(host_loss)
        while self._deaths and now - self._deaths[0] > CRASH_WINDOW_S:
            self._deaths.popleft()
        if self.swarm.stop_requested:
            self.record(handle, cause, "not replaced: the run is stopping")
            return
        if len(self._deaths) > self.max_restarts:
            self.record(handle, cause, "not replaced: crash loop")
            self.swarm.fail(
                StopKind.CRASH_LOOP,
                f"crash loop: workers died {len(self._deaths)} times within "
                f"{CRASH_WINDOW_S:.0f} s (more than --max-restarts {self.max_restarts}); "
                f"the last one {cause}",
            )
            return
        try:
            new = self.swarm.replace_worker(handle)
        except (WorkerError, OSError) as exc:  # OSError: no descriptor or memory for it
            # The run cannot do what it was asked with a worker short: it ends, never silently.
            why = exc if isinstance(exc, WorkerError) else f"{type(exc).__name__}: {exc}"
            self.record(handle, cause, f"not replaced: {why}")
            self.swarm.fail(
                StopKind.WORKERS_LOST,
                f"worker {handle.slot} {cause} and could not be replaced: {why}",
            )
            return
        if new is None:
            self.record(handle, cause, "not replaced: the run is stopping")
        else:
            self._restored(handle, new, cause, "replaced")

    def _restored(self, old: Any, new: Any, cause: str, verb: str) -> None:
        """The recovery event, once the new worker runs its users (or could not)."""
        users = sum(old.target.values())
        if users:
            waits = [new.spawned, new.gone, self.swarm.scope.event]
            gevent.wait(waits, timeout=RESTORE_TIMEOUT_S, count=1)
        if new.spawned.is_set() or not users:
            self.record(old, cause, f"{verb}; its {users} user(s) restored")
        elif self.swarm.stop_requested:
            self.record(old, cause, f"{verb}; the run stopped before its users were restored")
        else:
            self.record(old, cause, f"{verb}; its users did not start")

    def worker_cpu(self) -> list[tuple[int, float]]:
        """(slot, CPU % of one core) of every live worker, as last sampled.

        Read from this sample: a second ``cpu_percent()`` caller would split the measuring
        interval between the two and skew both figures.
        """
        return [
            (handle.slot, self.swarm.clients[handle.client_id].cpu_usage)
            for handle in self.swarm.workers
            if handle.alive and handle.pid is not None
        ]

    def summary(self) -> Saturation:
        """Saturation figures for the reports."""
        share = self.saturated_seconds / self.seconds if self.seconds else 0.0
        return Saturation(
            share=share,
            saturated_seconds=self.saturated_seconds,
            seconds=self.seconds,
            worst_loop_lag_ms=self.worst_lag_us / 1000.0,
            now=self.saturated_now,
        )

    def lost_hosts(self) -> tuple[HostLost, ...]:
        """The hosts lost so far, for the reports."""
        return tuple(
            HostLost(lost["at_s"], lost["host"], lost["name"], lost["cause"], lost["action"])
            for lost in self.hosts_lost
        )
