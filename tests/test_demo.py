"""The demo target speaks correct HTTP/1.1, so that mpswarm's own numbers can be trusted."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit


def raw_exchange(url: str, request: bytes, settle: float = 0.3) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as conn:
        conn.sendall(request)
        time.sleep(settle)  # anything the server sends arrives by now
        conn.setblocking(False)
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except BlockingIOError:
            pass
        return data


def test_head_has_headers_and_no_body(demo) -> None:
    data = raw_exchange(demo.url, b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head
    assert rest == b""  # a body here would be read as the start of the next response


def test_keep_alive_and_counts(demo) -> None:
    request = b"GET /items/4 HTTP/1.1\r\nHost: t\r\n\r\n"
    data = raw_exchange(demo.url, request * 3)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert demo.stats()["paths"] == {"GET /items/4": 3}
    assert demo.stats()["routes"] == {"GET /items/<id>": 3}


def test_a_taken_port_is_one_line_naming_the_option(run_cli) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), timeout=30)
    finally:
        taken.close()
    assert result.code == 2, result
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"mpswarm: error: cannot listen on 127.0.0.1:{port}: "), line
    assert line.endswith("(--port changes it; 0 picks a free one)"), line


def test_the_websocket_echo_wants_a_handshake(demo) -> None:
    data = raw_exchange(demo.url, b"GET /ws/echo HTTP/1.1\r\nHost: t\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 426 Upgrade Required"), data[:80]
