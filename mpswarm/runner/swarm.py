"""The parent's orchestrator: starts workers, sends them targets, stops them, sums their stats.

One ``Swarm`` per run. It forks the fork server, asks it for one worker per slot, gives each
worker a pipe and a shared-memory segment, and reads each pipe in a greenlet. Request counts
never travel through the pipes: ``snapshot()`` sums the segments.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import socket
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import gevent
from gevent.event import Event

from mpswarm.env import Environment
from mpswarm.exceptions import WorkerError
from mpswarm.runner._channel import Channel
from mpswarm.runner._handle import WorkerHandle
from mpswarm.runner._proc import describe_exit
from mpswarm.runner._zygote import ForkServer
from mpswarm.runner.arrivals import worker_shares
from mpswarm.runner.base import (
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
    MasterRunner,
    WorkerNode,
)
from mpswarm.runner.dispatch import class_counts, dispatch_users, split_evenly, split_spawn_rate
from mpswarm.runner.supervisor import Supervisor
from mpswarm.runner.usage import UsageMonitor
from mpswarm.runner.worker import HARD_STOP_GRACE_S, WorkerSpec, worker_main
from mpswarm.stats.aggregate import Aggregator
from mpswarm.stats.locust_view import CURRENT_WINDOW_S, RequestStats
from mpswarm.stats.segment import H_ITERATIONS, Segment
from mpswarm.stats.snapshot import Snapshot

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0
_QUIT_TIMEOUT_S = 5.0


class Swarm(MasterRunner):
    """Runs users across worker processes and aggregates their statistics.

    It is also ``environment.runner`` in the parent: Locust's MasterRunner API (``stats``,
    ``user_count``, ``clients``, ``send_message``, ``quit()``...).

    Args:
        spec: what every worker runs.
        processes: number of workers.
        environment: the parent's Environment (its ``runner`` becomes this Swarm).
    """

    def __init__(
        self,
        spec: WorkerSpec,
        processes: int,
        environment: Environment,
        supervision: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(environment)
        self.spec = spec
        self.processes = processes
        # The caps on names and error rows are the run's: the parent folds past them.
        self.aggregator = Aggregator(spec.max_endpoints, spec.max_errors)
        self.workers: list[WorkerHandle] = []
        self._server = ForkServer(partial(worker_main, spec))
        self._generations: dict[int, int] = {}
        self._stop_event = Event()
        self.stop_reason: str | None = None
        self.started_at: float | None = None
        self._t_start: float | None = None
        self._t_end: float | None = None
        self.target_user_count = 0
        self._closing = False
        self._overflow_warned = False
        self._errors_warned = False
        # The run-wide caps reached, as told to the workers (a replacement is told at start).
        self._caps_sent: dict[str, tuple[Any, ...]] = {}
        self._spawned: list[WorkerHandle] = []  # every worker started, replacements included
        self._server_reader: gevent.Greenlet | None = None
        self.clients: dict[str, WorkerNode] = {}
        self.stats = RequestStats(self._recent_snapshot, self._current_rates)
        self._snapshot_cache: tuple[float, Snapshot] | None = None
        self._history: collections.deque[tuple[float, int, int]] = collections.deque(
            maxlen=int(CURRENT_WINDOW_S) + 2
        )
        self._iterations_done: set[int] = set()
        self._reset_done = False
        self.retired: list[WorkerHandle] = []
        self.fatal_reason: str | None = None
        self._last_rate = 1.0
        self._last_classes: list[type] | None = None
        #: Open model: the last set_arrival() arguments (for a replaced worker), else None.
        self.arrival: dict[str, Any] | None = None
        self.supervisor = Supervisor(self, **(supervision or {}))

    # -- lifecycle -------------------------------------------------------------------------------
    def start_fork_server(self) -> None:
        """Fork the fork server. Call before any greenlet runs (see ``_zygote``)."""
        self._server.start()

    def start_workers(self) -> None:
        """Start the workers and wait until each is ready.

        Raises:
            WorkerError: a worker did not come up.
        """
        if self._server.pid is None:
            self.start_fork_server()
        self._server_reader = gevent.spawn(self._read_server)
        for slot in range(self.processes):
            self.workers.append(self._spawn_worker(slot))
        deadline = time.monotonic() + _START_TIMEOUT_S
        for handle in self.workers:
            gevent.wait(
                [handle.ready, handle.gone], timeout=max(0, deadline - time.monotonic()), count=1
            )
            if not handle.ready.is_set():
                why = handle.exit_description or "no answer"
                raise WorkerError(f"worker {handle.slot} did not start ({why})")
        self.greenlet.spawn(self._tick_forever)
        self.greenlet.spawn(UsageMonitor(self.environment).run_forever)
        self.greenlet.spawn(self.supervisor.run_forever)

    def _tick_forever(self) -> None:
        """Once a second: remember the totals, for ``current_rps``."""
        while True:
            totals = self.aggregator.totals()
            self._history.append((time.monotonic(), int(totals[0]), int(totals[1])))
            for handle in self.workers:
                node = self.clients.get(handle.client_id)
                if node is not None:
                    node.user_count = handle.user_count
            gevent.sleep(1.0)

    def _current_rates(self) -> tuple[float, float]:
        if len(self._history) < 2:
            return (0.0, 0.0)
        t0, r0, f0 = self._history[0]
        t1, r1, f1 = self._history[-1]
        span = t1 - t0
        return ((r1 - r0) / span, (f1 - f0) / span) if span > 0 else (0.0, 0.0)

    def _recent_snapshot(self) -> Snapshot:
        # user code may read runner.stats in a loop: aggregate at most every 0.2 s
        now = time.monotonic()
        if self._snapshot_cache is None or now - self._snapshot_cache[0] > 0.2:
            self._snapshot_cache = (now, self.snapshot())
        return self._snapshot_cache[1]

    def _spawn_worker(self, slot: int) -> WorkerHandle:
        generation = self._generations.get(slot, -1) + 1
        self._generations[slot] = generation
        segment = Segment.create(
            self.spec.max_endpoints, self.spec.max_errors, label=f"mpswarm-w{slot}"
        )
        parent_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        handle = WorkerHandle(slot, generation, Channel(parent_end), segment)
        self._spawned.append(handle)
        self.clients[handle.client_id] = WorkerNode(id=handle.client_id, index=slot)
        self.aggregator.add_segment(handle.source_id, segment)
        self._server.request_fork(slot, [segment.fd, worker_end.fileno()])
        worker_end.close()
        handle.reader = gevent.spawn(self._read_worker, handle)
        return handle

    def _read_server(self) -> None:
        while True:
            try:
                message = self._server.receive()
            except (EOFError, OSError):
                return
            if message[0] == "exited":
                _, pid, status = message
                for handle in [*self.workers, *self.retired]:
                    if handle.pid == pid:
                        handle.exit_description = describe_exit(status)
                        handle.exited.set()
                        logger.debug("worker %d (pid %d) ended: %s", handle.slot, pid,
                                     handle.exit_description)  # fmt: skip

    def _read_worker(self, handle: WorkerHandle) -> None:
        aggregator = self.aggregator
        while True:
            try:
                message = handle.channel.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "row":
                aggregator.on_row(handle.source_id, *message[1:])
                self._after_row()
            elif kind == "error":
                aggregator.on_error(handle.source_id, *message[1:])
                self._after_error()
            elif kind == "exceptions":
                aggregator.on_exceptions(message[1], handle.client_id)
            elif kind == "ready":
                handle.pid = message[1]
                self.clients[handle.client_id].pid = handle.pid
                self._tell_caps(handle)
                handle.ready.set()
            elif kind == "spawned":
                handle.spawned.set()
                self._check_spawning_complete()
            elif kind == "stopped":
                handle.stopped.set()
            elif kind == "msg":
                self._deliver(message[1], message[2], handle.client_id)
            elif kind == "report":
                self.environment.events.worker_report.fire(
                    client_id=handle.client_id, data=message[1]
                )
            elif kind == "usage":
                node = self.clients[handle.client_id]
                node.cpu_usage, node.memory_usage = message[1], message[2]
            elif kind == "iterations_done":
                self._iterations_done.add(handle.slot)
                if all(h.slot in self._iterations_done for h in self.workers if h.alive):
                    self.request_stop("the requested iterations are done")
            elif kind == "overflow":
                self._warn_overflow(message[1], message[2])
            elif kind == "stop_test":
                logger.info("stopping the test: %s", message[1])
                self.request_stop(message[1])
        handle.gone.set()
        if handle.retiring:
            return
        self.clients[handle.client_id].state = "missing"
        if not self._closing and handle.ready.is_set() and self.started_at is not None:
            self.greenlet.spawn(self.supervisor.on_worker_lost, handle)
        elif not self._closing and not any(h.alive for h in self.workers):
            self.request_stop("every worker exited")

    def _after_row(self) -> None:
        """After a row announcement: warn once when names fold, tell workers the cap is hit."""
        aggregator = self.aggregator
        if aggregator.first_folded_name is not None:
            self._warn_overflow(*aggregator.first_folded_name)
        if aggregator.names_full and "names" not in self._caps_sent:
            self._broadcast_cap("names", ("names_full", aggregator.row_names()))

    def _after_error(self) -> None:
        aggregator = self.aggregator
        if aggregator.errors_folded and not self._errors_warned:
            self._errors_warned = True
            logger.warning(
                "more than %d distinct errors (method, name and text) in this run: further "
                "ones are counted in one 'other errors' row",
                self.spec.max_errors,
            )
        if aggregator.errors_full and "errors" not in self._caps_sent:
            self._broadcast_cap("errors", ("errors_full", aggregator.error_keys()))

    def _broadcast_cap(self, kind: str, message: tuple[Any, ...]) -> None:
        """Tell every worker the run reached a cap: it folds names the run does not know.

        Sent once (up to --max-endpoints names, ~40 bytes each); until a worker reads it, the
        parent folds what that worker announces, so nothing depends on its timing.
        """
        self._caps_sent[kind] = message
        for handle in self._spawned:  # one not ready yet is told when it is (_tell_caps)
            if handle.alive and handle.ready.is_set():
                self._tell(handle, message)

    def _tell_caps(self, handle: WorkerHandle) -> None:
        """A worker that just started learns the caps already reached, before any target."""
        told = 0
        while told < len(self._caps_sent):  # a send may switch greenlets: a cap may be added
            self._tell(handle, list(self._caps_sent.values())[told])
            told += 1

    def _tell(self, handle: WorkerHandle, message: tuple[Any, ...]) -> None:
        try:
            handle.channel.send(message)
        except OSError:
            pass  # it died: its reader notices

    def _warn_overflow(self, method: str, name: str) -> None:
        """Once per run: names folded into the overflow row (the first one named)."""
        if self._overflow_warned:
            return
        self._overflow_warned = True
        logger.warning(
            "more than %d distinct request names in this run: further names are counted in one "
            "'other names' row (first one: %s %s). Group URLs with name=, e.g. "
            "self.client.get(f'/items/{id}', name='/items/[id]')",
            self.spec.max_endpoints,
            method,
            name,
        )

    def _check_spawning_complete(self) -> None:
        live = [h for h in self.workers if h.alive]
        if live and all(h.spawned.is_set() for h in live):
            self.state = STATE_RUNNING
            for handle in live:
                self.clients[handle.client_id].state = STATE_RUNNING
            self.environment.events.spawning_complete.fire(user_count=self.user_count)
            if self.spec.reset_stats_after_spawn and not self._reset_done:
                self._reset_done = True
                self.reset_stats()

    def reset_stats(self) -> None:
        """Start the statistics afresh: every worker zeroes its segment (``--reset-stats``).

        Segments of workers that are gone are zeroed here, since nobody writes them any more.
        """
        for handle in self.workers:
            if handle.alive:
                try:
                    handle.channel.send(("reset",))
                    continue
                except OSError:
                    pass
            handle.segment.reset_counts()
        self.aggregator.reset_exceptions()
        self.started_at = time.time()
        self._t_start = time.perf_counter()
        self._history.clear()
        self.environment.events.reset_stats.fire()

    # -- steering --------------------------------------------------------------------------------
    def set_target(
        self,
        users: int,
        spawn_rate: float,
        user_classes: Sequence[type] | None = None,
        host: str | None = None,
    ) -> None:
        """Move to ``users`` users in total, started at ``spawn_rate`` per second overall
        (with ``host``: users started from now on send there)."""
        classes = list(user_classes or self.spec.user_classes)
        live = [h for h in self.workers if h.alive]
        if not live:
            raise WorkerError("no worker is running")
        counts = class_counts(classes, users)
        for cls in self.spec.user_classes:
            counts.setdefault(cls.__name__, 0)
        shares = dispatch_users(counts, len(live))
        rates = split_spawn_rate(spawn_rate, shares)
        if self.started_at is None:
            self.started_at = time.time()
            self._t_start = time.perf_counter()
            self.environment.events.test_start.fire(environment=self.environment)
        self.target_user_count = users
        self._last_rate = spawn_rate
        self._last_classes = list(user_classes) if user_classes else None
        self.state = STATE_SPAWNING
        for handle, share, rate in zip(live, shares, rates, strict=True):
            handle.target = share
            handle.spawned.clear()
            try:
                handle.channel.send(("target", share, rate, host))
            except OSError:
                pass  # it died: its reader notices

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
        classes = list(user_classes or self.spec.user_classes)
        live = [h for h in self.workers if h.alive]
        if not live:
            raise WorkerError("no worker is running")
        if self.started_at is None:
            self.started_at = time.time()
            self._t_start = time.perf_counter()
            self.environment.events.test_start.fire(environment=self.environment)
        self.aggregator.open_model = True
        self.arrival = {
            "rate": rate,
            "max_users": max_users,
            "kind": kind,
            "prealloc": prealloc,
            "user_classes": user_classes,
            "host": host,
        }
        self.target_user_count = max_users
        self.state = STATE_RUNNING
        shares = worker_shares(rate, max_users, kind, prealloc, classes, len(live), host)
        for handle, settings in zip(live, shares, strict=True):
            try:
                handle.channel.send(("arrival", settings))
            except OSError:
                pass  # it died: its reader notices

    # -- recovery ------------------------------------------------------------------------------
    @property
    def fork_server_pid(self) -> int | None:
        """The fork server's pid (for memory accounting)."""
        return self._server.pid

    def fail(self, reason: str) -> None:
        """Stop the run because of a resource failure (exit code 4)."""
        if self.fatal_reason is None:
            self.fatal_reason = reason
            logger.error("stopping the run: %s", reason)
        self.request_stop(reason)

    def _swap_in(self, old: WorkerHandle) -> WorkerHandle | None:
        """Fork a fresh worker for ``old``'s slot and put it in ``old``'s place once ready."""
        new = self._spawn_worker(old.slot)
        gevent.wait([new.ready, new.gone], timeout=_START_TIMEOUT_S, count=1)
        if not new.ready.is_set():
            self.fail(f"the replacement of worker {old.slot} did not start")
            return None
        self.workers[self.workers.index(old)] = new
        self.retired.append(old)
        return new

    def replace_worker(self, old: WorkerHandle) -> None:
        """Replace a dead worker and give the new one its users back."""
        new = self._swap_in(old)
        if new is not None:
            self._hand_over_iterations(old, new)
            self._redispatch()

    def recycle_worker(self, old: WorkerHandle) -> None:
        """Replace a live worker: start a fresh one, stop the old one, move the users over.

        The old worker's users stop as at the end of a run (their requests in flight finish),
        so nothing it recorded is lost; then the new worker starts them at the spawn rate.
        """
        old.retiring = True
        new = self._swap_in(old)
        if new is None:
            return
        try:
            old.channel.send(("stop",))
        except OSError:
            pass
        limit = self.spec.stop_timeout + HARD_STOP_GRACE_S + 5.0
        gevent.wait([old.stopped, old.gone], timeout=limit, count=1)
        try:
            old.channel.send(("quit",))
        except OSError:
            pass
        gevent.wait([old.gone], timeout=_QUIT_TIMEOUT_S)
        if old.alive:
            self._kill(old)
        self._hand_over_iterations(old, new)
        self._redispatch()

    def _redispatch(self) -> None:
        if self.started_at is None or self.stop_requested:
            return
        if self.arrival is not None:
            self.set_arrival(**self.arrival)
        else:
            self.set_target(self.target_user_count, self._last_rate, self._last_classes)

    def prepare_new_run(self) -> None:
        """Before another run on the same workers (web UI): statistics from zero, no stop."""
        if self.started_at is not None:
            self.reset_stats()
        for handle in self.workers:
            handle.stopped.clear()
        self._stop_event.clear()
        self.stop_reason = None
        self.started_at = self._t_start = self._t_end = None

    def request_stop(self, reason: str | None = None) -> None:
        """Ask ``wait()`` to return (a signal, StopTest, a failed check)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop_event.set()

    @property
    def stop_requested(self) -> bool:
        """True once something asked the run to end."""
        return self._stop_event.is_set()

    def wait(self, timeout: float | None) -> None:
        """Block until ``timeout`` seconds pass or a stop is requested."""
        self._stop_event.wait(timeout=timeout)

    def start(
        self,
        user_count: int,
        spawn_rate: float,
        wait: bool = False,
        user_classes: Sequence[type] | None = None,
    ) -> None:
        """Locust's ``runner.start()``: move to ``user_count`` users (same as set_target)."""
        self.set_target(user_count, spawn_rate, user_classes)

    def stop(self) -> None:
        """Locust's ``runner.stop()``: end the run (the summary still prints)."""
        self.request_stop("runner.stop() called")

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        """Send a custom message to every worker, or to the one with ``client_id``."""
        for handle in self.workers:
            if handle.alive and client_id in (None, handle.client_id):
                try:
                    handle.channel.send(("msg", msg_type, data))
                except OSError:
                    pass

    def set_iterations(self, total: int) -> None:
        """Run exactly ``total`` task iterations over all workers, then stop."""
        live = [h for h in self.workers if h.alive]
        for handle, share in zip(live, split_evenly(total, len(live)), strict=True):
            handle.iterations = share
            handle.channel.send(("iterations", share))

    def _hand_over_iterations(self, old: WorkerHandle, new: WorkerHandle) -> None:
        """-i: a replacement runs what is left of its predecessor's share (the predecessor
        counts the iterations it took in its segment, which outlives it)."""
        if old.iterations is None:
            return
        new.iterations = max(0, old.iterations - int(old.segment.header[H_ITERATIONS]))
        try:
            new.channel.send(("iterations", new.iterations))
        except OSError:
            pass

    def stop_all(self, force: bool = False) -> Snapshot:
        """Stop every user and return the exact final Snapshot.

        Users get ``stop_timeout`` to finish their task, then a grace period to finish the
        request in flight; a worker that does not confirm in time is killed (its recorded
        requests still count: they are in its segment).
        """
        self.state = STATE_STOPPING
        self.environment.events.test_stopping.fire(environment=self.environment)
        live = [h for h in self.workers if h.alive]
        for handle in live:
            try:
                handle.channel.send(("stop",))
            except OSError:
                pass
        limit = 0.0 if force else self.spec.stop_timeout + HARD_STOP_GRACE_S + 5.0
        deadline = time.monotonic() + limit
        for handle in live:
            gevent.wait(
                [handle.stopped, handle.gone],
                timeout=max(0.0, deadline - time.monotonic()),
                count=1,
            )
            if not (handle.stopped.is_set() or handle.gone.is_set()):
                logger.warning("worker %d did not stop in time: killing it", handle.slot)
                self._kill(handle)
        self._t_end = time.perf_counter()
        self.state = STATE_STOPPED
        self.environment.events.test_stop.fire(environment=self.environment)
        return self.snapshot(final=True)

    def close(self) -> None:
        """Quit every worker and the fork server, and release the segments."""
        self._closing = True
        self.greenlet.kill(block=True)
        self.environment.events.quitting.fire(environment=self.environment)
        for handle in self.workers:
            if handle.alive:
                try:
                    handle.channel.send(("quit",))
                except OSError:
                    pass
        gevent.wait([h.gone for h in self.workers], timeout=_QUIT_TIMEOUT_S)
        for handle in self.workers:
            if handle.alive:
                self._kill(handle)
        if self._server_reader is not None:
            self._server_reader.kill(block=True)
        self._server.close()
        for handle in self.workers:
            if handle.reader is not None:
                handle.reader.kill(block=True)
            handle.channel.close()
        for segment in self.aggregator.segments:
            segment.close()

    def _kill(self, handle: WorkerHandle) -> None:
        if handle.pid is not None:
            try:
                os.kill(handle.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        gevent.wait([handle.gone], timeout=2.0)

    # -- reading ---------------------------------------------------------------------------------
    def worker_cpu(self) -> list[tuple[int, float]]:
        """(slot, CPU % of one core) of every live worker, as the supervisor last sampled it.

        Read from the supervisor's sample: a second ``cpu_percent()`` caller would split the
        measuring interval between the two and skew both figures.
        """
        return [
            (handle.slot, self.clients[handle.client_id].cpu_usage)
            for handle in self.workers
            if handle.alive and handle.pid is not None
        ]

    @property
    def user_count(self) -> int:
        """Users running now, over all workers."""
        return sum(h.user_count for h in self.workers)

    @property
    def worker_count(self) -> int:
        """Workers alive now."""
        return sum(1 for h in self.workers if h.alive)

    def elapsed(self) -> float:
        """Seconds since the load started (to the stop, once stopped)."""
        if self._t_start is None:
            return 0.0
        end = self._t_end if self._t_end is not None else time.perf_counter()
        return end - self._t_start

    def snapshot(self, final: bool = False, totals_only: bool = False) -> Snapshot:
        """Aggregate every segment now (with saturation figures and recovery events)."""
        snapshot = self.aggregator.snapshot(
            started_at=self.started_at or time.time(),
            duration_s=self.elapsed(),
            users=self.user_count,
            final=final,
            totals_only=totals_only,
        )
        snapshot.extra["saturation"] = self.supervisor.summary()
        snapshot.extra["recovery_events"] = [e.as_dict() for e in self.supervisor.events]
        return snapshot

    def quit(self) -> None:
        """Stop the run (``runner.quit()`` from user code in the parent)."""
        self.request_stop("runner.quit() called")


__all__ = ["Swarm", "WorkerHandle", "WorkerSpec"]
