"""HttpUser's own request head and response-head parsing (mpswarm/http/_pools.py) against
urllib3 and http.client themselves: the same bytes on the wire, the same response read back,
from the same raw socket server on loopback."""

from __future__ import annotations

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
                 response.data, response.headers.getlist("Set-Cookie"))
            )  # fmt: skip
        pool.close()
        seen.append((got, server.connections))
    assert seen[0] == seen[1]
