"""The lean transport's connections: plain TCP on the gevent loop without gevent's socket layer.

gevent's cooperative socket costs about 30 us per request on top of the system calls: a
``getsockopt`` in every ``sendall``, a new Timeout (a libev timer) for every wait, a Waiter.
A plain connection here keeps one non-blocking ``_socket`` with one read watcher, one write
watcher and one timer for its whole life and switches to the hub directly: a round trip on
loopback costs about 20 us of CPU instead of 50 (measured with 50 greenlets against nginx).
TLS connections keep gevent's SSL socket, whose buffering the plain path cannot reproduce.
"""

from __future__ import annotations

import _socket
import select
import socket
from typing import Any

from gevent import get_hub, monkey

from mpswarm._waits import wait_for


class Connection:
    """A connection to one origin, reused while the server keeps it alive.

    Attributes:
        used: a request was sent on it.
        opened: (TCP connect, TLS handshake) in microseconds, -1 for no TLS: what opening it
            took, reported with its first response.
    """

    __slots__ = ("opened", "used")

    def __init__(self) -> None:
        self.used = False
        self.opened = (-1, -1)

    def sendall(self, data: bytes, timeout: float | None) -> None:
        """Send all of ``data``, waiting at most ``timeout`` seconds at a time (None: for ever)."""
        raise NotImplementedError

    def recv(self, size: int, timeout: float | None, answer: bool = False) -> bytes:
        """Up to ``size`` bytes; ``answer``: the first read of a response."""
        raise NotImplementedError

    def fileno(self) -> int:
        raise NotImplementedError

    def dropped(self) -> bool:
        """Whether the server closed this idle connection, or sent something unasked
        (urllib3's rule before reusing a connection)."""
        return readable(self)

    def close(self) -> None:
        raise NotImplementedError


def readable(sock: Any) -> bool:
    """Whether an idle socket has something to read, its end included: one poll(2) without
    waiting (gevent's select.poll would make watchers and a Timeout to answer it). A closed
    socket counts as readable: it cannot be reused either."""
    try:
        poller = _original_poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


_original_poll = monkey.get_original("select", "poll")


class PlainConnection(Connection):
    """Plain TCP: system calls on a non-blocking socket, waits on watchers kept for its life."""

    __slots__ = ("_hub", "_read", "_sock", "_timer", "_timer_after", "_write")

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        family, kind, proto = sock.family, sock.type, sock.proto
        self._sock = _socket.socket(family, kind, proto, sock.detach())
        self._sock.setblocking(False)
        self._hub = get_hub()
        loop = self._hub.loop
        self._read = loop.io(self._sock.fileno(), 1)
        self._write: Any = None  # made when the send buffer first fills up
        self._timer: Any = None
        self._timer_after = -1.0

    def _wait(self, watcher: Any, timeout: float | None) -> None:
        if timeout is None:
            wait_for(self._hub, watcher)
            return
        # A timer counts from the loop's cached time, which is stale after code that ran
        # without yielding (a task computing, a gevent-free test): the timeout would end early.
        self._hub.loop.update_now()
        if self._timer_after != timeout:
            if self._timer is not None:
                self._timer.close()
            self._timer = self._hub.loop.timer(timeout)
            self._timer_after = timeout
        if wait_for(self._hub, watcher, self._timer) is self._timer:
            raise TimeoutError("timed out")

    def sendall(self, data: bytes, timeout: float | None) -> None:
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            try:
                view = view[self._sock.send(view) :]
            except BlockingIOError:
                if self._write is None:
                    self._write = self._hub.loop.io(self._sock.fileno(), 2)
                self._wait(self._write, timeout)

    def recv(self, size: int, timeout: float | None, answer: bool = False) -> bytes:
        if answer:  # the first read after a request: waiting first skips a failed recv()
            self._wait(self._read, timeout)
        while True:
            try:
                return self._sock.recv(size)
            except BlockingIOError:
                self._wait(self._read, timeout)

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        for watcher in (self._read, self._write, self._timer):
            if watcher is not None:
                watcher.close()
        self._timer = None
        try:
            self._sock.close()
        except OSError:
            pass


class GeventConnection(Connection):
    """Any gevent socket (TLS): its own waits, its timeout set only when it changes."""

    __slots__ = ("_sock", "_timeout")

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._timeout: float | None = -1.0

    def _set_timeout(self, timeout: float | None) -> None:
        if self._timeout != timeout:
            self._sock.settimeout(timeout)
            self._timeout = timeout

    def sendall(self, data: bytes, timeout: float | None) -> None:
        self._set_timeout(timeout)
        self._sock.sendall(data)

    def recv(self, size: int, timeout: float | None, answer: bool = False) -> bytes:
        self._set_timeout(timeout)
        return self._sock.recv(size)

    def fileno(self) -> int:
        return self._sock.fileno()

    def dropped(self) -> bool:
        pending = getattr(self._sock, "pending", None)
        if pending is not None and pending():
            return True  # TLS bytes already decrypted and waiting: something unasked
        return super().dropped()

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
