"""The fast client's connections: plain TCP on the gevent loop without gevent's socket layer.

gevent's cooperative socket costs about 30 us per request on top of the system calls: a
``getsockopt`` in every ``sendall``, a new Timeout (a libev timer) for every wait, a Waiter.
A plain connection here keeps one non-blocking ``_socket`` with one read watcher, one write
watcher and one timer for its whole life and switches to the hub directly: a round trip on
loopback costs about 20 us of CPU instead of 50 (measured with 50 greenlets against nginx).
TLS connections keep gevent's SSL socket, whose buffering the plain path cannot reproduce.
"""

from __future__ import annotations

import _socket
import socket
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from gevent import get_hub

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

    def sendall(self, data: bytes, timeout: float) -> None:
        raise NotImplementedError

    def recv(self, size: int, timeout: float, answer: bool = False) -> bytes:
        """Up to ``size`` bytes; ``answer``: the first read of a response."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


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

    def _wait(self, watcher: Any, timeout: float) -> None:
        if self._timer_after != timeout:
            if self._timer is not None:
                self._timer.close()
            self._timer = self._hub.loop.timer(timeout)
            self._timer_after = timeout
        if wait_for(self._hub, watcher, self._timer) is self._timer:
            raise TimeoutError("timed out")

    def sendall(self, data: bytes, timeout: float) -> None:
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

    def recv(self, size: int, timeout: float, answer: bool = False) -> bytes:
        if answer:  # the first read after a request: waiting first skips a failed recv()
            self._wait(self._read, timeout)
        while True:
            try:
                return self._sock.recv(size)
            except BlockingIOError:
                self._wait(self._read, timeout)

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
        self._timeout: float | None = None

    def _set_timeout(self, timeout: float) -> None:
        if self._timeout != timeout:
            self._sock.settimeout(timeout)
            self._timeout = timeout

    def sendall(self, data: bytes, timeout: float) -> None:
        self._set_timeout(timeout)
        self._sock.sendall(data)

    def recv(self, size: int, timeout: float, answer: bool = False) -> bytes:
        self._set_timeout(timeout)
        return self._sock.recv(size)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


def tls_context(verify: bool) -> ssl.SSLContext:
    """The process's TLS context for verifying or not (loading the CA store once, not per user)."""
    context = _TLS_CONTEXTS.get(verify)
    if context is None:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _TLS_CONTEXTS[verify] = context
    return context


_TLS_CONTEXTS: dict[bool, ssl.SSLContext] = {}


#: (id(owner), make) -> (owner, what make() made); the owner is kept, so its id stays its
#: own (it is a class attribute, which lives as long anyway).
_SHARED: dict[tuple[int, Any], tuple[Any, Any]] = {}
T = TypeVar("T")


def shared(owner: Any, make: Callable[[], T]) -> T:
    """One ``make()`` for every session given the same ``owner`` object (any object): the
    connections of users whose classes share a ``pool_manager`` / ``client_pool``."""
    key = (id(owner), make)
    found = _SHARED.get(key)
    if found is None:
        found = _SHARED[key] = (owner, make())
    return found[1]


class SharedConnections:
    """Idle connections of every session sharing one ``client_pool``, by origin."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}

    def take(self, key: tuple[str, str, int]) -> Connection | None:
        """An idle connection to ``key``'s origin, or None."""
        idle = self._idle.get(key)
        return idle.pop() if idle else None

    def keep(self, key: tuple[str, str, int], connection: Connection) -> None:
        """Keep ``connection`` for the next request to its origin."""
        self._idle.setdefault(key, []).append(connection)

    def close(self) -> None:
        """Close every idle connection."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
