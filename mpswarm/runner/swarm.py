"""The parent's side of a run: the pool, the dispatcher, the router and the stop, together.

``Swarm`` is also ``environment.runner`` in the parent: Locust's MasterRunner API (``stats``,
``user_count``, ``clients``, ``send_message``, ``quit()``...). Its parts each own one concern:
``WorkerPool`` the processes, ``Dispatcher`` the shares, ``RunCaps`` the run-wide caps, the
``Supervisor`` the health, ``StopScope`` the end. Request counts never travel through pipes:
``snapshot()`` sums the segments.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Group

from mpswarm.env import Environment
from mpswarm.exceptions import WorkerError
from mpswarm.runner import messages as m
from mpswarm.runner._caps import RunCaps
from mpswarm.runner._fds import FdReserve, raise_soft_limit
from mpswarm.runner._handle import WorkerHandle
from mpswarm.runner._rates import RecentRates
from mpswarm.runner.base import (
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
    MasterRunner,
    WorkerNode,
)
from mpswarm.runner.dispatcher import Dispatcher
from mpswarm.runner.host import HARD_STOP_GRACE_S
from mpswarm.runner.inbox import parent_router
from mpswarm.runner.pool import WorkerPool
from mpswarm.runner.stop import StopKind, StopReason, StopScope
from mpswarm.runner.supervisor import Supervisor
from mpswarm.runner.usage import UsageMonitor
from mpswarm.runner.worker import WorkerSpec
from mpswarm.stats.aggregate import Aggregator
from mpswarm.stats.locust_view import RequestStats
from mpswarm.stats.snapshot import Snapshot

logger = logging.getLogger(__name__)

#: Seconds past a worker's own stop limit (--stop-timeout + grace) before it is killed.
STOP_SLACK_S = 0.5
#: Seconds the final snapshot waits for the supervisor to record what it did about a lost
#: worker (it learns how the worker ended from the fork server within a second).
RECOVERY_SETTLE_S = 1.5


class Swarm(MasterRunner):
    """Runs users across worker processes and aggregates their statistics.

    Args:
        spec: what every worker runs.
        processes: number of workers.
        environment: the parent's Environment (its ``runner`` becomes this Swarm).
        supervision: the Supervisor's limits (see ``Supervisor``).
        fork_server: a started fork server to use (``--ray``'s bridge), else the pool's own.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        processes: int,
        environment: Environment,
        supervision: dict[str, Any] | None = None,
        fork_server: Any = None,
    ) -> None:
        super().__init__(environment)
        self.spec = spec
        self.processes = processes
        raise_soft_limit()
        #: Descriptors held back for replacing workers and writing the reports.
        self.fd_reserve = FdReserve()
        # The caps on names and error rows are the run's: the parent folds past them.
        self.aggregator = Aggregator(spec.max_endpoints, spec.max_errors)
        self.pool = WorkerPool(spec, processes, self, fork_server)
        self.dispatcher = Dispatcher(self.pool, spec.user_classes)
        self.caps = RunCaps(self.aggregator, self.pool, spec.max_endpoints, spec.max_errors)
        self.scope = StopScope()
        self._forced = Event()  # a second signal: stop without waiting for anyone
        self.started_at: float | None = None
        self._t_start: float | None = None
        self._t_end: float | None = None
        self.clients: dict[str, WorkerNode] = {}
        self.rates = RecentRates(self.snapshot)
        self.stats = RequestStats(self.rates.recent_snapshot, self.rates.current, self.reset_stats)
        #: Slots that ran their share of -i.
        self.iterations_done: set[int] = set()
        self._reset_done = False
        #: Runs executed on these workers (the web UI runs several).
        self.runs = 0
        # The supervisor's answers to lost workers: the final snapshot waits for their events.
        self._recoveries = Group()
        self.supervisor = Supervisor(self, **(supervision or {}))
        self._route = parent_router(self)

    # -- lifecycle -------------------------------------------------------------------------------
    def start_fork_server(self) -> None:
        """Fork the fork server. Call before any greenlet runs (see ``_zygote``)."""
        self.pool.start_server()

    def start_workers(self) -> None:
        """Start the workers and wait until each is ready.

        Raises:
            WorkerError: a worker did not come up.
        """
        self.pool.start()
        self.greenlet.spawn(self._tick_forever)
        self.greenlet.spawn(UsageMonitor(self.environment).run_forever)
        self.greenlet.spawn(self.supervisor.run_forever)

    @property
    def workers(self) -> list[WorkerHandle]:
        """The current worker of each slot."""
        return self.pool.workers

    @property
    def fork_server_pid(self) -> int | None:
        """The fork server's pid (for memory accounting)."""
        return self.pool.server_pid

    # -- what the pool reports ---------------------------------------------------------------------
    def on_message(self, handle: WorkerHandle, message: Any) -> None:
        """A record from a worker (``PoolOwner``)."""
        self._route(handle, message)

    def on_worker_added(self, handle: WorkerHandle) -> None:
        """A worker was forked: count its segment, list it in ``clients``."""
        self.clients[handle.client_id] = WorkerNode(id=handle.client_id, index=handle.slot)
        self.aggregator.add_segment(handle.source_id, handle.segment)

    def on_worker_lost(self, handle: WorkerHandle) -> None:
        """A worker died: the supervisor replaces it, or the run ends without workers."""
        self.clients[handle.client_id].state = STATE_MISSING
        if handle.ready.is_set() and self.started_at is not None:
            self._recoveries.spawn(self.supervisor.on_worker_lost, handle)
        elif not self.pool.live():
            self.scope.request(StopKind.WORKERS_LOST, "every worker process exited", 1)

    def on_host_lost(self, event: dict[str, Any]) -> None:
        """A Ray host's agent died: the supervisor keeps the event for the summary."""
        self.supervisor.host_lost(event)

    def on_server_lost(self, how: str) -> None:
        """The fork server died, and its workers with it: the run cannot go on (exit 4)."""
        self.fail(
            StopKind.WORKERS_LOST,
            f"the fork server died{how} and its workers with it; no worker can be started any more",
        )

    def spawning_complete(self) -> None:
        """Every live worker started its users: ``spawning_complete``, ``--reset-stats``."""
        live = self.pool.live()
        self.state = STATE_RUNNING
        for worker in live:
            self.clients[worker.client_id].state = STATE_RUNNING
        self.environment.events.spawning_complete.fire(user_count=self.user_count)
        if self.spec.reset_stats_after_spawn and not self._reset_done:
            self._reset_done = True
            self.reset_stats()

    # -- steering --------------------------------------------------------------------------------
    def _begin(self, users: int) -> None:
        """The first load of a run: ``test_start``, which may read ``target_user_count`` (as
        in Locust, where it is set first: Locust's example splits test data by it and sends
        each worker its part), and whose custom messages reach every worker before the load
        (the same pipe, in order)."""
        if self.started_at is None:
            self.dispatcher.target_user_count = users
            self.started_at = time.time()
            self._t_start = time.perf_counter()
            self.scope.started = time.monotonic()  # a stop's ``at`` counts from here
            self.environment.events.test_start.fire(environment=self.environment)

    def set_target(
        self,
        users: int,
        spawn_rate: float,
        user_classes: Sequence[type] | None = None,
        host: str | None = None,
    ) -> None:
        """Move to ``users`` users in total, started at ``spawn_rate`` per second overall
        (with ``host``: users started from now on send there)."""
        if not self.pool.live():
            raise WorkerError("no worker is running")
        self._begin(users)
        self.state = STATE_SPAWNING
        self.dispatcher.set_target(users, spawn_rate, user_classes, host)

    def set_arrival(
        self,
        rate: float,
        max_users: int,
        kind: str = "constant",
        prealloc: int = 0,
        user_classes: Sequence[type] | None = None,
        host: str | None = None,
    ) -> None:
        """Open model: start ``rate`` iterations per second in total, at most ``max_users``."""
        if not self.pool.live():
            raise WorkerError("no worker is running")
        self._begin(max_users)
        self.aggregator.open_model = True
        self.state = STATE_RUNNING
        self.dispatcher.set_arrival(rate, max_users, kind, prealloc, user_classes, host)

    def set_iterations(self, total: int) -> None:
        """Run exactly ``total`` task iterations over all workers, then stop."""
        self.dispatcher.set_iterations(total)

    @property
    def target_user_count(self) -> int:
        """The users asked for (the open model: its most users)."""
        return self.dispatcher.target_user_count

    @target_user_count.setter
    def target_user_count(self, value: int) -> None:
        pass  # Runner's constructor sets it; the dispatcher is the source of truth

    def reset_stats(self) -> None:
        """Start the statistics afresh: every worker zeroes its segment (``--reset-stats``).

        Segments of workers that are gone are zeroed here, since nobody writes them any more.
        """
        for handle in self.pool.spawned:
            if not self.pool.send(handle, m.ResetStats()):
                handle.segment.reset_counts()
        self.aggregator.reset_exceptions()
        self.started_at = time.time()
        self._t_start = time.perf_counter()
        self.rates.clear()
        self.environment.events.reset_stats.fire()

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        """Send a custom message to every worker, or to the one with ``client_id``."""
        targets = [h for h in self.pool.live() if client_id in (None, h.client_id)]
        self.pool.broadcast(m.Custom(msg_type, data), targets)

    # -- recovery (the supervisor's hands) --------------------------------------------------------
    def replace_worker(self, old: WorkerHandle) -> WorkerHandle | None:
        """Fork a fresh worker for a dead one and give it its users back.

        Returns:
            The new worker, or None when the run began to stop meanwhile.
        """
        new = self.fd_reserve.retry(lambda: self.pool.swap_in(old))
        if self.scope.requested:
            return None
        self.dispatcher.hand_over(old, new)
        return new

    def recycle_worker(self, old: WorkerHandle) -> WorkerHandle | None:
        """Replace a live worker: start a fresh one, stop the old one, move the users over.

        The old worker's users stop as at the end of a run (their requests in flight finish),
        so nothing it recorded is lost; then the new worker starts them at the spawn rate.
        """
        old.retiring = True
        new = self.pool.swap_in(old)
        self.pool.retire(old, self._stop_limit())
        if self.scope.requested:
            return None
        self.dispatcher.hand_over(old, new)
        return new

    def fail(self, kind: StopKind, message: str) -> None:
        """Stop the run because of a resource failure (exit code 4)."""
        if self.scope.fail(kind, message):
            logger.error("stopping the run: %s", message)

    # -- stopping --------------------------------------------------------------------------------
    def request_stop(
        self,
        reason: str | None = None,
        kind: StopKind = StopKind.USER_CODE,
        exit_code: int | None = None,
    ) -> None:
        """Ask the run to end (user code's StopTest or runner.quit(), the web UI, a signal with
        the exit code it imposes...)."""
        self.scope.request(kind, reason or "stop requested", exit_code)

    @property
    def stop_requested(self) -> bool:
        """True once something asked the run to end."""
        return self.scope.requested

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the run ends, once it does."""
        return self.scope.reason

    def force_stop(self) -> None:
        """A second signal: kill the workers now instead of waiting (data is kept)."""
        self._forced.set()
        self.pool.kill_all()

    @property
    def forced(self) -> bool:
        """True once ``force_stop()`` was called: requests in flight were abandoned."""
        return self._forced.is_set()

    def _stop_limit(self) -> float:
        """Seconds a worker gets to stop its users (their task, then a request in flight)."""
        return self.spec.stop_timeout + HARD_STOP_GRACE_S + STOP_SLACK_S

    def stop_all(self) -> Snapshot:
        """The shutdown sequence, whatever ended the run; returns the exact final Snapshot.

        Users get ``--stop-timeout`` to finish their task, then a grace period for a request
        in flight; a worker that does not confirm in time is killed (its recorded requests
        still count: they are in its segment). A worker that joins meanwhile (a replacement
        that was starting) is stopped too. Nothing is replaced or recycled from here on.
        """
        if not self.scope.requested:
            self.request_stop("the run was stopped", StopKind.USER_CODE)
        assert self.scope.reason is not None
        logger.info("stopping: %s", self.scope.reason.message)
        self.state = STATE_STOPPING
        self.environment.events.test_stopping.fire(environment=self.environment)
        users_at_stop = self.user_count
        self.pool.stop_users(self._stop_limit(), self._forced)
        self._recoveries.join(timeout=RECOVERY_SETTLE_S)  # their events belong in the reports
        self._t_end = time.perf_counter()
        self.state = STATE_STOPPED
        for node in self.clients.values():
            if node.state != STATE_MISSING:
                node.state = STATE_STOPPED
        self.environment.events.test_stop.fire(environment=self.environment)
        return dataclasses.replace(
            self.snapshot(final=True),
            stop=self.scope.reason.record(),
            users_at_stop=users_at_stop,
        )

    def prepare_new_run(self) -> None:
        """Before another run on the same workers (web UI): statistics from zero, no stop."""
        if self.started_at is not None:
            self.reset_stats()
        for handle in self.pool.workers:
            handle.stopped.clear()
        self.scope.reset()
        self.dispatcher.forget()
        self.iterations_done.clear()
        self.started_at = self._t_start = self._t_end = None

    def close(self) -> None:
        """Quit every worker and the fork server, and release the segments."""
        self.greenlet.kill(block=True)
        self._recoveries.kill(block=True)
        self.environment.events.quitting.fire(environment=self.environment)
        self.pool.close()
        for segment in self.aggregator.segments:
            segment.close()
        self.fd_reserve.release(needed=False)

    # -- reading ---------------------------------------------------------------------------------
    def _tick_forever(self) -> None:
        """Once a second: remember the totals, for ``current_rps``."""
        while True:
            totals = self.aggregator.totals()
            self.rates.remember(int(totals[0]), int(totals[1]))
            for handle in self.pool.workers:
                node = self.clients.get(handle.client_id)
                if node is not None:
                    node.user_count = handle.user_count
            gevent.sleep(1.0)

    @property
    def user_count(self) -> int:
        """Users running now, over all workers."""
        return sum(h.user_count for h in self.pool.workers)

    @property
    def worker_count(self) -> int:
        """Workers alive now."""
        return len(self.pool.live())

    def elapsed(self) -> float:
        """Seconds since the load started (to the stop, once stopped)."""
        if self._t_start is None:
            return 0.0
        end = self._t_end if self._t_end is not None else time.perf_counter()
        return end - self._t_start

    def snapshot(self, final: bool = False, totals_only: bool = False) -> Snapshot:
        """Aggregate every segment now (with saturation figures, recovery events, lost hosts)."""
        snapshot = self.aggregator.snapshot(
            started_at=self.started_at or time.time(),
            duration_s=self.elapsed(),
            users=self.user_count,
            final=final,
            totals_only=totals_only,
        )
        return dataclasses.replace(
            snapshot,
            saturation=self.supervisor.summary(),
            recovery_events=tuple(self.supervisor.events),
            hosts_lost=self.supervisor.lost_hosts(),
        )

    @property
    def name_count(self) -> int:
        """The distinct request names so far (the live outputs' cost grows with it)."""
        return len(self.aggregator.row_names())

    def quit(self) -> None:
        """Stop the run (``runner.quit()`` from user code in the parent)."""
        self.request_stop("runner.quit() called")

    def stop(self) -> None:
        """Locust's ``runner.stop()``: end the run (the summary still prints)."""
        self.request_stop("runner.stop() called")

    def start(
        self,
        user_count: int,
        spawn_rate: float,
        wait: bool = False,
        user_classes: Sequence[type] | None = None,
    ) -> None:
        """Locust's ``runner.start()``: move to ``user_count`` users (same as set_target)."""
        self.set_target(user_count, spawn_rate, user_classes)


__all__ = ["Swarm", "WorkerHandle", "WorkerSpec"]
