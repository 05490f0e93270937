"""The processes of a run: the fork server and the workers it forks, owned by one pool.

The pool spawns, replaces, retires and kills workers, reads each one's pipe (handing every
record to its owner's router), and watches the fork server, which is one of its processes: a
fork server that dies takes its workers with it (they die with their parent, by design), and
a new one cannot be forked from the running parent (it would inherit the parent's greenlets,
see ``_zygote``), so its loss is reported to the owner, which stops the run (exit 4) instead
of pretending to restore anything.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from collections.abc import Iterable
from functools import partial
from typing import Any, Protocol

import gevent
from gevent.event import Event

from mpswarm.exceptions import WorkerError
from mpswarm.runner._channel import Channel
from mpswarm.runner._handle import WorkerHandle
from mpswarm.runner._proc import describe_exit
from mpswarm.runner._zygote import ForkServer
from mpswarm.runner.fork_messages import Exited, Forked, HostLost
from mpswarm.runner.messages import Quit, Router, StopUsers
from mpswarm.runner.worker import WorkerSpec, worker_main
from mpswarm.stats.segment import Segment

logger = logging.getLogger(__name__)

#: Seconds a new worker gets to answer Ready.
START_TIMEOUT_S = 30.0
#: Seconds a worker gets to exit after Quit before it is killed.
QUIT_TIMEOUT_S = 5.0
#: Seconds the fork server gets to say how a worker that died while starting ended.
EXIT_REPORT_WAIT_S = 2.0


class PoolOwner(Protocol):
    """What the pool tells the part that runs it (the Swarm)."""

    def on_message(self, handle: WorkerHandle, message: Any) -> None:
        """A record arrived from ``handle``'s worker."""

    def on_worker_added(self, handle: WorkerHandle) -> None:
        """A worker was forked (not ready yet): its segment is to be summed."""

    def on_worker_lost(self, handle: WorkerHandle) -> None:
        """A worker's pipe closed, and the pool did not ask for it."""

    def on_host_lost(self, event: dict[str, Any]) -> None:
        """Under ``--ray``: a host's agent died (``event``: host, name, at, cause, action)."""

    def on_server_lost(self, how: str) -> None:
        """The fork server died (``how``: `` (its exit status)`` or ""); its workers too."""


class WorkerPool:
    """The fork server and the workers of a run.

    Args:
        spec: what every worker runs.
        processes: the number of worker slots.
        owner: told of messages, new workers and losses.
        server: a started fork server with ``ForkServer``'s interface (``RemoteForkServer``
            under ``--ray``); by default the pool forks its own.
    """

    def __init__(
        self, spec: WorkerSpec, processes: int, owner: PoolOwner, server: Any = None
    ) -> None:
        self.spec = spec
        self.processes = processes
        self._owner = owner
        self._server = server if server is not None else ForkServer(partial(worker_main, spec))
        self._server_reader: gevent.Greenlet | None = None
        self._generations: dict[int, int] = {}
        #: The worker of each slot now (a replacement takes its predecessor's place).
        self.workers: list[WorkerHandle] = []
        #: Every worker ever forked, in order (replacements and retired ones included).
        self.spawned: list[WorkerHandle] = []
        self.server_lost: str | None = None
        self._closing = False

    # -- starting ------------------------------------------------------------------------------
    def start_server(self) -> None:
        """Fork the fork server. Call before any greenlet runs (see ``_zygote``)."""
        if self._server.pid is None:
            self._server.start()

    @property
    def server_pid(self) -> int | None:
        """The fork server's pid (for memory accounting)."""
        return self._server.pid

    def start(self) -> None:
        """Fork a worker per slot and wait until each is ready.

        Raises:
            WorkerError: a worker did not come up.
        """
        self.start_server()
        self._server_reader = gevent.spawn(self._read_server)
        self.workers = [self._spawn(slot) for slot in range(self.processes)]
        deadline = time.monotonic() + START_TIMEOUT_S
        for handle in self.workers:
            if not self._wait_ready(handle, deadline - time.monotonic()):
                why = handle.exit_description or self.server_lost or "no answer"
                raise WorkerError(f"worker {handle.slot} did not start ({why})")

    def _spawn(self, slot: int) -> WorkerHandle:
        if self.server_lost is not None:
            raise WorkerError(f"no worker can be started: the fork server {self.server_lost}")
        generation = self._generations.get(slot, -1) + 1
        self._generations[slot] = generation
        segment = Segment.create(
            self.spec.max_endpoints, self.spec.max_errors, label=f"mpswarm-w{slot}"
        )
        parent_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        handle = WorkerHandle(slot, generation, Channel(parent_end), segment)
        handle.remote = getattr(self._server, "remote", False)
        self.spawned.append(handle)
        self._owner.on_worker_added(handle)
        try:
            self._server.request_fork(slot, [segment.fd, worker_end.fileno()])
        except OSError:
            handle.gone.set()
            raise WorkerError("no worker can be started: the fork server is gone") from None
        finally:
            worker_end.close()
        handle.reader = gevent.spawn(self._read_worker, handle)
        return handle

    @staticmethod
    def _wait_ready(handle: WorkerHandle, timeout: float) -> bool:
        gevent.wait([handle.ready, handle.gone], timeout=max(0.0, timeout), count=1)
        return handle.ready.is_set()

    # -- reading -------------------------------------------------------------------------------
    def _read_worker(self, handle: WorkerHandle) -> None:
        while True:
            try:
                message = handle.channel.recv()
            except (EOFError, OSError):
                break
            self._owner.on_message(handle, message)
        lost = handle.segment.settle()
        if lost:
            logger.warning("worker %d (pid %s) ended with %d request(s) in flight: counted as "
                           "lost, never recorded", handle.slot, handle.pid, lost)  # fmt: skip
        if handle.stopped_at is None:
            handle.stopped_at = time.time()
        handle.gone.set()
        if not (self._closing or handle.retiring):
            self._owner.on_worker_lost(handle)

    def _read_server(self) -> None:
        route = Router(
            {
                Forked: self._forked,
                Exited: self._exited,
                HostLost: lambda server, msg: self._owner.on_host_lost(dataclasses.asdict(msg)),
            },
            "the pool",
        )
        while True:
            try:
                message = self._server.receive()
            except (EOFError, OSError):
                break
            route(self._server, message)
        if self._closing:
            return
        how = self._server.reap()
        self.server_lost = f"(pid {self._server.pid}) died{how}"
        for handle in self.spawned:  # its workers die with it (PR_SET_PDEATHSIG)
            if not handle.exited.is_set():
                handle.exit_description = "killed with the fork server"
                handle.exited.set()
        self._owner.on_server_lost(how)

    def _forked(self, server: Any, msg: Forked) -> None:
        for handle in reversed(self.spawned):
            if handle.slot == msg.slot and handle.server_id is None:
                handle.server_id = msg.worker_id
                break

    def _exited(self, server: Any, msg: Exited) -> None:
        for handle in self.spawned:
            if handle.server_id == msg.worker_id:
                handle.exit_description = msg.lost or describe_exit(msg.status)
                handle.lost_with_host = msg.lost
                handle.exited.set()
                logger.debug("worker %d (%s) ended: %s", handle.slot, msg.worker_id,
                             handle.exit_description)  # fmt: skip

    # -- talking -------------------------------------------------------------------------------
    def live(self) -> list[WorkerHandle]:
        """The current workers whose pipe is open."""
        return [handle for handle in self.workers if handle.alive]

    @staticmethod
    def send(handle: WorkerHandle, message: Any) -> bool:
        """Send one record; False when the worker is gone (its reader notices and reports)."""
        if not handle.alive:
            return False
        try:
            handle.channel.send(message)
        except OSError:
            return False
        return True

    def broadcast(self, message: Any, handles: Iterable[WorkerHandle] | None = None) -> None:
        """Send one record to every live worker (or to ``handles``)."""
        for handle in self.live() if handles is None else handles:
            self.send(handle, message)

    # -- replacing -----------------------------------------------------------------------------
    def swap_in(self, old: WorkerHandle) -> WorkerHandle:
        """Fork a fresh worker for ``old``'s slot; it takes ``old``'s place once ready.

        Raises:
            WorkerError: it could not be forked or did not start.
        """
        new = self._spawn(old.slot)
        if not self._wait_ready(new, START_TIMEOUT_S):
            if new.gone.is_set():  # it died: how, once the fork server has said
                new.exited.wait(timeout=EXIT_REPORT_WAIT_S)
            why = new.exit_description or self.server_lost or "no answer"
            raise WorkerError(f"the replacement of worker {old.slot} did not start ({why})")
        self.workers[self.workers.index(old)] = new
        return new

    def retire(self, handle: WorkerHandle, stop_limit: float) -> None:
        """End a live worker on purpose: its users stop as at the end of a run (their requests
        in flight finish within ``stop_limit`` seconds), then it quits."""
        handle.retiring = True
        handle.stopped_at = time.time()
        if self.send(handle, StopUsers()):
            gevent.wait([handle.stopped, handle.gone], timeout=stop_limit, count=1)
        self.send(handle, Quit())
        gevent.wait([handle.gone], timeout=QUIT_TIMEOUT_S)
        if handle.alive:
            self.kill(handle)

    def stop_users(self, limit: float, forced: Event) -> None:
        """Stop every worker's users, killing the workers that do not confirm in ``limit``
        seconds (or at once when ``forced`` is set). A worker that joins meanwhile (a
        replacement that was starting) is stopped too."""
        deadline = time.monotonic() + limit
        asked: set[int] = set()
        while not forced.is_set():
            pending = [h for h in self.live() if not h.stopped.is_set()]
            if not pending or time.monotonic() >= deadline:
                break
            for handle in pending:
                if id(handle) not in asked:
                    asked.add(id(handle))
                    self.send(handle, StopUsers())
            waits = [e for h in pending for e in (h.stopped, h.gone)]
            gevent.wait([*waits, forced], timeout=deadline - time.monotonic(), count=1)
        for handle in self.live():
            if not handle.stopped.is_set():
                if not forced.is_set():
                    logger.warning("worker %d did not stop in time: killing it", handle.slot)
                self.kill(handle)

    def kill(self, handle: WorkerHandle) -> None:
        """SIGKILL one worker and wait (briefly) for its pipe to close."""
        self._server.kill(_worker_id(handle))
        gevent.wait([handle.gone], timeout=2.0)

    def kill_all(self) -> None:
        """SIGKILL every worker now (what they recorded stays: it is in their segments)."""
        for handle in self.live():
            self._server.kill(_worker_id(handle))

    def close(self) -> None:
        """Quit every worker and the fork server; close the pipes."""
        self._closing = True
        self.broadcast(Quit())
        gevent.wait([h.gone for h in self.workers], timeout=QUIT_TIMEOUT_S)
        for handle in self.live():
            self.kill(handle)
        if self._server_reader is not None:
            self._server_reader.kill(block=True)
        self._server.close()
        for handle in self.spawned:
            if handle.reader is not None:
                handle.reader.kill(block=True)
            handle.channel.close()


def _worker_id(handle: WorkerHandle) -> Any:
    """What the fork server knows the worker by (its pid, until its ``Forked`` is read)."""
    if handle.server_id is not None:
        return handle.server_id
    return None if handle.remote else handle.pid


__all__ = ["PoolOwner", "WorkerPool"]
