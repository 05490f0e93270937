"""The fork server: a clean copy of the parent that forks workers on request.

The parent runs gevent greenlets (its pipe readers, user code's ``init`` listeners); a process
forked from it would inherit them all and run them. So, right after the locustfile is imported
and before any greenlet starts, the parent forks this server once. The server stays a plain
blocking loop with no gevent activity, and forks each worker (the first ones, and later
replacements) from that pristine state. Its imported modules are shared copy-on-write.

The parent passes each worker's descriptors (its pipe end and its shared-memory segment) over a
UNIX socket with SCM_RIGHTS. The server reaps workers and reports how each one ended.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, NoReturn

from gevent import monkey

from mpswarm.protocols import _grpc_gevent
from mpswarm.runner._proc import describe_exit, die_with_parent
from mpswarm.runner.fork_messages import Exited, Fork, Forked

logger = logging.getLogger(__name__)

# The server avoids gevent entirely: it uses the original blocking functions.
_fork: Callable[[], int] = monkey.get_original("os", "fork")
_waitpid: Callable[[int, int], tuple[int, int]] = monkey.get_original("os", "waitpid")
_select: Callable[..., Any] = monkey.get_original("select", "select")
_RealSocket: type[socket.socket] = monkey.get_original("socket", "socket")
# gevent's os.close defers closing a socket to its event loop, which never runs here.
_close: Callable[[int], None] = monkey.get_original("os", "close")
_signal: Callable[..., Any] = monkey.get_original("signal", "signal")

#: Called in each new worker with (slot, descriptors, fork server pid); never returns.
WorkerMain = Callable[[int, list[int], int], NoReturn]
_MAX_MESSAGE = 1 << 16


class ForkServer:
    """Parent-side handle of the fork server.

    Args:
        worker_main: run in each new worker; see ``WorkerMain``.
    """

    def __init__(self, worker_main: WorkerMain) -> None:
        self._worker_main = worker_main
        self.pid: int | None = None
        self.sock: socket.socket | None = None

    def start(self) -> None:
        """Fork the server process. Call before any greenlet or thread is started."""
        _drop_event_loop()
        # SEQPACKET keeps message boundaries, so each recv is exactly one message.
        parent_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent_pid = os.getpid()
        pid = _fork()
        if pid == 0:
            _close(parent_end.detach())
            code = 1
            try:
                _serve(server_end, parent_pid, self._worker_main)
                code = 0
            finally:
                os._exit(code)
        server_end.close()
        self.pid = pid
        self.sock = parent_end
        _grpc_gevent.rebind()  # the parent's own grpc calls (an init listener's) need it too

    def request_fork(self, slot: int, fds: list[int]) -> None:
        """Ask for a worker; ``fds`` are passed to it. The reply arrives through ``receive``."""
        assert self.sock is not None
        socket.send_fds(self.sock, [pickle.dumps(Fork(slot))], fds)

    def receive(self) -> Any:
        """Next record from the server (``fork_messages``): ``Forked`` (its id: the pid) or
        ``Exited``. Raises EOFError when the server is gone."""
        assert self.sock is not None
        data = self.sock.recv(_MAX_MESSAGE)
        if not data:
            raise EOFError("fork server gone")
        return pickle.loads(data)

    def kill(self, worker_id: int | None) -> None:
        """SIGKILL one worker (``worker_id``: the pid its ``Forked`` record gave)."""
        if worker_id is not None:
            try:
                os.kill(worker_id, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def reap(self, timeout: float = 1.0) -> str:
        """After the server's socket closed unasked: how it ended, in words (`` (signal 9
        (SIGKILL))``), or "" when not known (gevent's child watcher may have reaped it)."""
        import gevent

        deadline = time.monotonic() + timeout
        while self.pid is not None:
            try:
                pid, status = _waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                return f" ({describe_exit(status)})"
            if time.monotonic() > deadline:
                return " (its socket closed)"
            gevent.sleep(0.02)
        return ""

    def close(self, timeout: float = 5.0) -> None:
        """Stop the server (it kills any worker still running) and reap it.

        Call it after the greenlet reading ``receive`` was killed: gevent defers closing a
        socket that a greenlet still waits on.
        """
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.pid is None:
            return
        import gevent

        # Poll rather than block: gevent's blocking waitpid relies on a SIGCHLD watcher of
        # the default loop, which the fork server's start replaced.
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, _ = _waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                deadline = float("inf")
            gevent.sleep(0.02)
        self.pid = None


def _drop_event_loop() -> None:
    """Destroy this process's gevent hub and loop before forking (a new one is made on use).

    A forked child shares the loop's epoll and eventfd descriptors with its parent. libev
    rebuilds the epoll after a fork but, seen here, kept the shared eventfd: a worker then
    consumed the parent's wake-ups and the parent's greenlets stalled for good. With no loop
    at fork time there is nothing to share: the parent and each worker make their own.

    Where grpc runs in gevent mode (``protocols/_grpc_gevent``), the hub's thread pool is let go,
    not killed: a channel the locustfile left open keeps one of its threads in grpc, and
    killing the pool waited for that thread forever (the run never started). The thread is
    the parent's only and stays parked there; the fork copies no thread.
    """
    from gevent._hub_local import get_hub_if_exists

    hub = get_hub_if_exists()
    if hub is not None:
        if _grpc_gevent.used():
            del hub.threadpool
        hub.destroy(destroy_loop=True)


def _serve(sock: socket.socket, parent_pid: int, worker_main: WorkerMain) -> None:
    die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group: the parent alone decides how to stop.
    _signal(signal.SIGINT, signal.SIG_IGN)
    _signal(signal.SIGTERM, signal.SIG_DFL)
    # Objects that exist now are never collected in the workers: keep their pages shared.
    gc.collect()
    gc.freeze()
    raw = _RealSocket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=sock.detach())
    children: set[int] = set()
    server_pid = os.getpid()
    while True:
        readable, _, _ = _select([raw], [], [], 0.1)
        _reap(raw, children)
        if not readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(raw, _MAX_MESSAGE, 8)
        except OSError:
            data, fds = b"", []
        if not data:
            break
        # Fork is the one request a fork server gets (a kill needs no server: os.kill).
        request: Fork = pickle.loads(data)
        pid = _fork()
        if pid == 0:
            raw.close()
            worker_main(request.slot, fds, server_pid)
        for fd in fds:
            _close(fd)
        children.add(pid)
        _send(raw, Forked(request.slot, pid))
    # The parent is gone or asked us to stop: no worker may outlive it.
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in children:
        try:
            _waitpid(pid, 0)
        except ChildProcessError:
            pass


def _reap(sock: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = _waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _send(sock, Exited(pid, status))


def _send(sock: socket.socket, message: Any) -> None:
    try:
        sock.sendall(pickle.dumps(message))
    except OSError:
        pass
