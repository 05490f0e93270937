"""The parent's listeners cannot be starved: idle and slow connections, guessed passwords."""

from __future__ import annotations

import base64
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from mpswarm.web.listen import AUTH_FAILURES, MAX_CONNECTIONS


def _port(ui: Any) -> int:
    return int(ui.base.rsplit(":", 1)[1])


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_idle_and_slow_connections_never_starve_the_web_ui(web) -> None:
    """300 idle connections and 20 that trickle a request head a byte at a time: the page
    still answers at once (the waiting ones are closed to make room), the parent holds at
    most MAX_CONNECTIONS of them, and the run can still be driven (before: 1 100 idle
    connections took every descriptor; the UI stopped answering and could not stop the run)."""
    ui = web()
    port = _port(ui)
    before = _fds(ui.proc.pid)
    held: list[socket.socket] = []
    try:
        for _ in range(300):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for conn in held[:20]:
            conn.sendall(b"GET / HTTP/1.1\r\nHo")  # a head that never ends
        started = time.monotonic()
        status, _, _ = ui.request("/api/state")
        took = time.monotonic() - started
        assert status == 200 and took < 3.0, took
        bound = before + MAX_CONNECTIONS + 8
        deadline = time.monotonic() + 5  # the connections closed for room are closed by now
        while (held_now := _fds(ui.proc.pid)) > bound and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held_now <= bound, (before, held_now)
        closed = 0
        for conn in held:
            conn.settimeout(0.01)
            try:
                closed += conn.recv(1) == b""
            except (TimeoutError, BlockingIOError):
                pass
            except ConnectionError:
                closed += 1
        assert closed >= 300 - MAX_CONNECTIONS, closed  # the waiting ones made room
    finally:
        for conn in held:
            conn.close()
    status, _, _ = ui.request("/api/state")
    assert status == 200


def _get(port: int, auth: str | None, address: str = "127.0.0.1") -> int:
    """GET / from ``address`` with Basic ``auth`` (user:password): the status."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/")
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    handler = urllib.request.HTTPHandler()
    opener = urllib.request.build_opener(handler)
    if address != "127.0.0.1":  # connect from another loopback address

        class FromAddress(urllib.request.HTTPHandler):
            def http_open(self, req: Any) -> Any:
                import http.client

                return self.do_open(
                    lambda host, **kw: http.client.HTTPConnection(
                        host, source_address=(address, 0), **kw
                    ),
                    req,
                )

        opener = urllib.request.build_opener(FromAddress())
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_guessed_passwords_are_rate_limited_per_address(web) -> None:
    """--web-auth: AUTH_FAILURES wrong passwords from one address, then that address gets 429
    (the right password too) for the rest of the minute; another address is not affected."""
    ui = web("--web-auth", "ann:s3cret")
    port = _port(ui)
    assert _get(port, None) == 401  # a browser's first request: not a guess
    for attempt in range(AUTH_FAILURES):
        assert _get(port, f"ann:guess{attempt}") == 401
    assert _get(port, "ann:guess-more") == 429
    assert _get(port, "ann:s3cret") == 429
    assert _get(port, "ann:s3cret", address="127.0.0.2") == 200
