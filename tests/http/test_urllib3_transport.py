"""HttpUser's transport reads a response head itself (mpswarm/http/_urllib3.py): here against
urllib3 (over http.client) reading the same bytes from the same raw socket server, and where
RFC 9110 asks for more than http.client does (interim responses other than 100 Continue)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import urllib3

from mpswarm.event import EventHook
from mpswarm.http.session import HttpSession
from tests.http.conftest import ScriptedServer

HEADS = {
    "/dup": b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    "/spaces": b"HTTP/1.1 200 OK\r\nX-A:  spaced \r\nX-B:\tv\r\nContent-Length: 2\r\n\r\nok",
    "/latin": b"HTTP/1.1 200 OK\r\nX-L: \x85caf\xe9\x0b\r\nContent-Length: 1\r\n\r\nx",
    "/continue": b"HTTP/1.1 100 Continue\r\nX-Skip: 1\r\n\r\nHTTP/1.1 201 Created\r\n"
    b"Content-Length: 2\r\n\r\nok",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "/nolength": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil close",
    "/http10": b"HTTP/1.0 200 Fine Thanks\r\nContent-Length: 3\r\n\r\nabc",
    "/http10-keep": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc",
    "/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
    "/badlength": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\nConnection: close\r\n\r\nabc",
    "/nocontent": b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
    "/noreason": b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n",
}
_CLOSING = ("/nolength", "/badlength", "/close", "/http10")


def _answer(conn: socket.socket, head: bytes) -> bool:
    path = head.split(b" ", 2)[1].decode()
    conn.sendall(HEADS[path])
    return path not in _CLOSING


def _theirs(url: str, path: str) -> list[Any]:
    pool = urllib3.connection_from_url(url, maxsize=1)
    seen = []
    for _ in range(2):  # a new connection, then (where kept) the same one again
        response = pool.urlopen("GET", path, retries=False)
        seen.append(
            (response.status, response.reason, response.version, list(response.headers.items()),
             response.data)
        )  # fmt: skip
    pool.close()
    return seen


def _ours(url: str, path: str) -> list[Any]:
    client = HttpSession(url, EventHook())
    seen = []
    for _ in range(2):
        response = client.get(path)
        raw = response.raw
        seen.append(
            (response.status_code, response.reason, raw.version, list(raw.headers.items()),
             response.content)
        )  # fmt: skip
        assert raw.read() == b""  # read already, as requests' raw is
    client.close()
    return seen


@pytest.mark.parametrize("path", sorted(HEADS))
def test_a_response_is_read_as_urllib3_reads_it(serve, path: str) -> None:
    seen = []
    for read in (_theirs, _ours):
        server: ScriptedServer = serve(_answer)
        seen.append((read(server.url, path), server.connections))
    assert seen[0] == seen[1]


def test_an_obsolete_fold_is_one_space(serve) -> None:
    folded = b"HTTP/1.1 200 OK\r\nX-B: v\r\n  folded\r\nContent-Length: 0\r\n\r\n"
    server: ScriptedServer = serve(lambda conn, head: conn.sendall(folded) or True)
    client = HttpSession(server.url, EventHook())
    assert client.get("/").headers["X-B"] == "v folded"
    client.close()


def test_interim_responses_are_skipped_and_an_unasked_upgrade_refused(serve) -> None:
    answers = {
        b"/hints": b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
        b"/upgrade": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        b"/endless": b"HTTP/1.1 103 Early Hints\r\n\r\n" * 100,
    }

    def handler(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(answers[head.split(b" ", 2)[1]])
        return False

    server: ScriptedServer = serve(handler)
    client = HttpSession(server.url, EventHook())
    hinted = client.get("/hints")
    assert (hinted.status_code, hinted.reason, hinted.content) == (500, "Oops", b"no")
    assert "101" in str(client.get("/upgrade").error)
    assert "interim" in str(client.get("/endless").error)
    client.close()
