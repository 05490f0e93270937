"""HttpUser's own request head and response-head parsing (mpswarm/http/_pools.py) against
urllib3 and http.client themselves: the same bytes on the wire, the same response read back,
from the same raw socket server on loopback."""

from __future__ import annotations

import functools
import socket
from typing import Any

import pytest
import urllib3

from mpswarm.http._pools import _HTTPPool
from tests.http.conftest import ScriptedServer

REQUESTS: list[tuple[str, str, bytes | None, dict[str, str]]] = [
    ("GET", "/a?x=1", None, {}),
    ("POST", "/p", b"k=v", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("POST", "/empty", None, {}),
    ("PUT", "/j", b'{"a": 1}', {"X-Custom": "yes", "user-agent": "me"}),
    ("DELETE", "/d", None, {"Accept-Encoding": "gzip"}),
    ("HEAD", "/h", None, {}),
    ("OPTIONS", "/o", b"raw", {"Content-Length": "3"}),
    ("GET", "/b", None, {"Host": "example.test", "X-Folded": "a\r\n b"}),
    ("PATCH", "/big", b"x" * 70_000, {"X-Latin": "caf\xe9"}),
]


def _record(heads: list[bytes]):  # type: ignore[no-untyped-def]
    def handler(conn: socket.socket, head: bytes) -> bool:
        heads.append(head)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    return handler


def _send_all(pool: Any) -> None:
    for method, url, body, headers in REQUESTS * 2:  # the second round on a kept connection
        response = pool.urlopen(method, url, body=body, headers=headers, retries=False)
        assert response.status == 200 and response.data == (b"" if method == "HEAD" else b"ok")


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_a_request_head_is_the_bytes_urllib3_sends(serve, family: int) -> None:
    ours: list[bytes] = []
    theirs: list[bytes] = []
    for heads, make in ((ours, _HTTPPool), (theirs, urllib3.HTTPConnectionPool)):
        server: ScriptedServer = serve(_record(heads), family=family)
        port = int(server.url.rsplit(":", 1)[1])
        pool = make("::1" if family == socket.AF_INET6 else "127.0.0.1", port, maxsize=1)
        _send_all(pool)
        pool.close()
        # (Each server saw its own port in Host: the same text either way.)
        heads[:] = [head.replace(str(port).encode(), b"PORT") for head in heads]
    assert len(ours) == 2 * len(REQUESTS)
    assert ours == theirs


@pytest.mark.parametrize("bad", [{"X-Bad": "a\r\nInjected: 1"}, {"Bad:Name": "x"}, {" Lead": "x"}])
def test_a_header_http_client_refuses_is_still_refused(serve, bad: dict[str, str]) -> None:
    heads: list[bytes] = []
    server: ScriptedServer = serve(_record(heads))
    pool = _HTTPPool("127.0.0.1", int(server.url.rsplit(":", 1)[1]), maxsize=1)
    assert pool.urlopen("GET", "/", retries=False).data == b"ok"  # connected: the own path
    with pytest.raises(ValueError):
        pool.urlopen("GET", "/", headers=bad, retries=False)
    pool.close()
    assert len(heads) == 1


HEADS = {
    "/folded": b"HTTP/1.1 200 OK\r\nX-A:  spaced \r\nX-B: v\r\n  folded\r\nContent-Length: 2\r\n"
    b"\r\nok",
    "/dup": b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    "/latin": b"HTTP/1.1 200 OK\r\nX-L: \x85caf\xe9\x0b\r\nContent-Length: 1\r\n\r\nx",
    "/continue": b"HTTP/1.1 100 Continue\r\nX-Skip: 1\r\n\r\nHTTP/1.1 201 Created\r\n"
    b"Content-Length: 2\r\n\r\nok",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "/nolength": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil close",
    "/http10": b"HTTP/1.0 200 Fine Thanks\r\nContent-Length: 3\r\n\r\nabc",
    "/badlength": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\nConnection: close\r\n\r\nabc",
    "/nocontent": b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
}


def _heads(conn: socket.socket, head: bytes) -> bool:
    path = head.split(b" ", 2)[1].decode()
    conn.sendall(HEADS[path])
    return path not in ("/nolength", "/badlength")


@pytest.mark.parametrize("path", sorted(HEADS))
def test_a_response_head_is_read_as_http_client_reads_it(serve, path: str) -> None:
    seen = []
    for make in (_HTTPPool, urllib3.HTTPConnectionPool):
        server: ScriptedServer = serve(_heads)
        pool = make("127.0.0.1", int(server.url.rsplit(":", 1)[1]), maxsize=1)
        got = []
        for _ in range(2):  # a new connection, then (where kept) the same one again
            response = pool.urlopen("GET", path, retries=False)
            got.append(
                (response.status, response.reason, response.version, list(response.headers.items()),
                 response.version_string, response.length_remaining, type(response.headers),
                 response._sock_shutdown is not None, response.data,
                 response.headers.getlist("Set-Cookie"))
            )  # fmt: skip
        pool.close()
        seen.append((got, server.connections))
    assert seen[0] == seen[1]


def _answer(data: bytes, close: bool = False):  # type: ignore[no-untyped-def]
    def handler(conn: socket.socket, head: bytes) -> bool:
        if data:
            conn.sendall(data)
        return not close

    return handler


def _silent(conn: socket.socket, head: bytes) -> bool:
    conn.recv(1)  # no answer: the client's read timeout ends it
    return False


def _reset(conn: socket.socket, head: bytes) -> bool:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return False  # closed with an RST


OUTCOMES = {
    "kept": _answer(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok"),
    "closed": _answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye", close=True),
    "no answer": _answer(b"", close=True),
    "garbage": _answer(b"SPAM\r\n\r\n", close=True),
    "bad version": _answer(b"HTTP/9.9 200 OK\r\n\r\n", close=True),
    "reset": _reset,
    "read timeout": _silent,
    "refused": None,
}


def _outcome(pool: Any, call: Any) -> tuple[Any, ...]:
    """What one request came to, as a user of the pool sees it, and the pool after it."""
    from mpswarm.http._errors import error_text

    try:
        response = call()
        got: tuple[Any, ...] = ("ok", response.status, list(response.headers.items()),
                                response.read(), response.retries)  # fmt: skip
    except Exception as exc:
        inner = exc.args[1] if len(exc.args) > 1 else exc.__context__
        got = ("error", type(exc), error_text(exc), type(inner))
    return (*got, pool.num_requests, pool.pool.qsize(), [c is None for c in pool.pool.queue])


@pytest.mark.parametrize("case", sorted(OUTCOMES))
def test_exchange_is_urlopen_for_every_outcome(serve, case: str) -> None:
    """``_Exchange.exchange`` against urllib3's own ``urlopen`` with HttpSession's arguments:
    the same response or the same error, the same connection kept or dropped."""
    from mpswarm.http._pools import NO_RETRIES, NO_TIMEOUT

    handler = OUTCOMES[case]
    timeout = urllib3.Timeout(connect=2.0, read=0.3) if case == "read timeout" else NO_TIMEOUT
    seen = []
    for way in ("urlopen", "exchange"):
        if handler is None:  # a port nobody listens on
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            probe.close()
        else:
            port = int(serve(handler).url.rsplit(":", 1)[1])
        pool = _HTTPPool("127.0.0.1", port, maxsize=1, block=False, retries=False)
        got = []
        for body in (None, b"k=v"):  # twice: on the kept connection where there is one
            if way == "urlopen":
                call = functools.partial(
                    pool.urlopen, "POST", "/x", body=body, headers={"X-T": "1"}, redirect=False,
                    retries=NO_RETRIES, timeout=timeout, preload_content=False,
                    decode_content=True, assert_same_host=False,
                )  # fmt: skip
            else:
                call = functools.partial(pool.exchange, "POST", "/x", body, {"X-T": "1"}, timeout)
            got.append(_outcome(pool, call))
        pool.close()
        seen.append(got)
    assert seen[0] == seen[1]
    assert seen[0][0][0] == ("ok" if case in ("kept", "closed") else "error"), seen[0]


def _then(data: bytes, end: str = "keep"):  # type: ignore[no-untyped-def]
    """Send ``data``, then keep the connection, close it, reset it, or go silent."""

    def handler(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(data)
        if end == "silent":
            conn.recv(1)  # nothing more: the client's read timeout ends it
        elif end == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01" + b"\x00" * 7)
        return end == "keep"

    return handler


OK = b"Content-Length: 2\r\n\r\nok"
BODIES = {
    "whole": ("GET", _then(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")),
    "large": ("GET", _then(b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + b"x" * 300_000)),
    "empty": ("GET", _then(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")),
    "head": ("HEAD", _then(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n")),
    "no content": ("GET", _then(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n")),
    "then close": ("GET", _then(b"HTTP/1.1 200 OK\r\nConnection: close\r\n" + OK, "close")),
    "short, closed": ("GET", _then(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "close")),
    "short, reset": ("GET", _then(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "reset")),
    "short, silent": ("GET", _then(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "silent")),
}


@pytest.mark.parametrize("case", sorted(BODIES))
def test_read_announced_is_urllib3s_read_for_every_outcome(serve, case: str) -> None:
    """``read_announced`` against urllib3's own ``read()`` of a body of announced length: the
    same bytes or the same error, the same books kept, the same connection kept or dropped."""
    from mpswarm.http._errors import error_text
    from mpswarm.http._pools import read_announced

    method, handler = BODIES[case]
    timeout = urllib3.Timeout(connect=2.0, read=0.3)
    seen = []
    for read in (lambda raw: raw.read(), read_announced):
        server: ScriptedServer = serve(handler)
        pool = _HTTPPool("127.0.0.1", int(server.url.rsplit(":", 1)[1]), maxsize=1, block=False)
        got = []
        for _ in range(2):  # twice: on the kept connection where there is one
            raw = pool.exchange(method, "/x", None, {}, timeout)
            try:
                outcome: tuple[Any, ...] = ("ok", read(raw))
            except Exception as exc:
                inner = exc.args[1] if len(exc.args) > 1 else exc.__context__
                outcome = ("error", type(exc), error_text(exc), type(inner))
            books = (raw.tell(), raw.length_remaining, raw.isclosed(), raw._connection is None)
            got.append((*outcome, books, pool.pool.qsize(), [c is None for c in pool.pool.queue]))
        pool.close()
        seen.append((got, server.connections))
    assert seen[0] == seen[1]
    assert (seen[0][0][0][0] == "ok") == (not case.startswith("short")), seen[0]


def test_a_head_with_a_line_that_is_no_header_is_logged_as_urllib3_logs_it(serve, caplog) -> None:
    head = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nno header here\r\nContent-Length: 2\r\n\r\nok"
    logged = []
    for make in (_HTTPPool, urllib3.HTTPConnectionPool):
        server: ScriptedServer = serve(_answer(head, close=True))
        pool = make("127.0.0.1", int(server.url.rsplit(":", 1)[1]), maxsize=1)
        caplog.clear()
        with caplog.at_level("WARNING", logger="urllib3.connection"):
            assert pool.urlopen("GET", "/h", retries=False).status == 200
        pool.close()
        logged.append([r.getMessage().split(":")[0] for r in caplog.records])
    assert logged[0] == logged[1] == ["Failed to parse headers (url=http"], logged
