"""What listens in the parent (the web UI, the ``--prometheus`` endpoint): never starved.

A listener belongs to the run's supervisor process, so nobody may starve it, nor the parent,
of connections or descriptors:

- every socket operation times out after ``IO_TIMEOUT_S`` (a request head, a body, an idle
  kept-alive connection, a client that stops reading);
- at most ``MAX_CONNECTIONS`` connections are open per listener: past that, the connection
  that has waited longest without sending a whole request head is closed to make room (an
  idle or slow one, never one being answered); when none is waiting, the new connection gets
  ``503`` and is closed;
- HTTP Basic credentials (``--web-auth``) are checked in constant time, and a client address
  with ``AUTH_FAILURES`` wrong ones within ``AUTH_WINDOW_S`` gets ``429`` until the window has
  passed, whatever it sends.
"""

from __future__ import annotations

import base64
import collections
import hmac
import socket
import time
from typing import Any

from gevent.pywsgi import WSGIHandler, WSGIServer

from mpswarm.exceptions import UsageError

#: Seconds any read or write on a connection may take (head, body, idle keep-alive).
IO_TIMEOUT_S = 10.0
#: Open connections per listener.
MAX_CONNECTIONS = 64
#: Wrong credentials from one address within the window before it is refused for its rest.
AUTH_FAILURES = 10
AUTH_WINDOW_S = 60.0
#: Client addresses whose failures are remembered (the oldest is forgotten first).
_REMEMBERED = 4096
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Guard:
    """One listener's open connections, and those still waiting for a whole request head."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: set[Any] = set()
        self.waiting: collections.OrderedDict[Any, None] = collections.OrderedDict()

    def admit(self, handler: Any) -> bool:
        """Room for ``handler``'s connection (another closed for it if needed); False: none."""
        if len(self.open) >= self.limit:
            if not self.waiting:
                return False
            oldest, _ = self.waiting.popitem(last=False)
            try:
                oldest.socket.shutdown(socket.SHUT_RDWR)  # its read ends; its handler closes it
            except (AttributeError, OSError):
                pass
            self.open.discard(oldest)
        self.open.add(handler)
        return True

    def release(self, handler: Any) -> None:
        self.open.discard(handler)
        self.waiting.pop(handler, None)


class GuardedHandler(WSGIHandler):
    """gevent's handler with the timeouts and the connection cap, plus ``SERVER_ADDR`` (the
    address the connection arrived on, for the Host check)."""

    def handle(self) -> None:
        guard: _Guard = self.server.guard
        if not guard.admit(self):
            try:
                self.socket.sendall(_BUSY)
            except OSError:
                pass
            self.socket.close()
            return
        try:
            self.socket.settimeout(IO_TIMEOUT_S)
            super().handle()
        finally:
            guard.release(self)

    def handle_one_request(self) -> Any:
        self.server.guard.waiting[self] = None  # until its head has arrived
        return super().handle_one_request()

    def get_environ(self) -> dict[str, Any]:
        self.server.guard.waiting.pop(self, None)  # a whole request head: being answered
        environ: dict[str, Any] = super().get_environ()
        try:
            environ["SERVER_ADDR"] = str(self.socket.getsockname()[0])
        except (AttributeError, OSError, IndexError):
            pass  # no socket any more, or not an IP one: only the named hosts are accepted
        return environ


def listening_server(host: str, port: int, application: Any, what: str, hint: str) -> WSGIServer:
    """A bound (not yet serving) WSGI server with the guards above.

    Raises:
        UsageError: the address cannot be bound (``what`` names the listener, ``hint`` the
            option that changes it).
    """
    # SERVER_NAME given: gevent would otherwise look the bound address up in DNS.
    server = WSGIServer((host, port), application, log=None, handler_class=GuardedHandler,
                        environ={"SERVER_NAME": host})  # fmt: skip
    server.guard = _Guard(MAX_CONNECTIONS)
    try:
        server.init_socket()
    except OSError as exc:
        raise UsageError(f"cannot serve {what} on {host}:{port}: {exc.strerror} ({hint})") from None
    return server


class BasicAuth:
    """``--web-auth user:password``: the check, rate-limited per client address."""

    def __init__(self, credentials: str) -> None:
        user, _, password = credentials.partition(":")
        if not user or not password:
            raise UsageError("--web-auth must be user:password")
        self.pair = (user, password)
        self._expected = ("Basic " + base64.b64encode(credentials.encode()).decode()).encode()
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def refusal(self, environ: dict[str, Any]) -> tuple[str, bytes, list[tuple[str, str]]] | None:
        """None for the right credentials; else (status, body, headers) to answer with."""
        address = str(environ.get("REMOTE_ADDR", ""))
        now = time.monotonic()
        failures = self._failures.get(address)
        if failures is not None:
            while failures and now - failures[0] > AUTH_WINDOW_S:
                failures.popleft()
            if len(failures) >= AUTH_FAILURES:
                wait = max(1, int(AUTH_WINDOW_S - (now - failures[0])) + 1)
                return ("429 Too Many Requests", b"too many wrong credentials: wait\n",
                        [("Retry-After", str(wait))])  # fmt: skip
        given = str(environ.get("HTTP_AUTHORIZATION", "")).encode("latin-1", "replace")
        if hmac.compare_digest(given, self._expected):
            return None
        if given:  # a browser's first request carries none: not a guess
            if failures is None:
                failures = self._failures[address] = collections.deque(maxlen=AUTH_FAILURES)
                if len(self._failures) > _REMEMBERED:
                    self._failures.popitem(last=False)
            failures.append(now)
        return ("401 Unauthorized", b"authentication required\n",
                [("WWW-Authenticate", 'Basic realm="mpswarm"')])  # fmt: skip
