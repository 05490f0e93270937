"""The lean client's HTTP/1.1 behaviour against real servers on loopback: the demo WSGI app,
scripted raw-socket servers (chunked, gzip, close-delimited, truncated, malformed, slow), and
a TLS server with a self-signed certificate."""

from __future__ import annotations

import gzip
import socket
import time
import zlib
from collections.abc import Iterator

import pytest

from mpswarm.event import EventHook
from mpswarm.http.fast import FastHttpSession
from tests.http.conftest import reply


class Recorded:
    def __init__(self) -> None:
        self.hook = EventHook()
        self.fired: list[dict] = []
        self.hook.add_listener(lambda **kw: self.fired.append(kw))

    @property
    def last_error(self) -> str:
        return str(self.fired[-1]["exception"])


@pytest.fixture()
def events() -> Recorded:
    return Recorded()


_OPEN: list[FastHttpSession] = []


@pytest.fixture(autouse=True)
def _close_sessions() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def client(url: str, events: Recorded, **kwargs) -> FastHttpSession:
    session = FastHttpSession(base_url=url, request_event=events.hook, **kwargs)
    _OPEN.append(session)
    return session


def test_demo_app_keep_alive_cookies_redirects_json(demo, events: Recorded) -> None:
    session = client(demo.url, events)
    assert session.get("/cart").status_code == 401
    assert session.post("/login", data={"username": "x"}).ok
    assert session.get("/cart").json() == {"items": []}
    redirected = session.get("/redirect/2")
    assert redirected.status_code == 200 and [r.status_code for r in redirected.history] == [
        302,
        302,
    ]
    echo = session.post("/echo", json={"a": 1}, auth=("u", "p"), params={"q": "1 2"}).json()
    assert echo["query"] == "q=1+2" and echo["headers"]["Authorization"] == "Basic dTpw"
    assert session.head("/").status_code == 200 and session.head("/").content == b""
    assert session.get("/").ok  # the connection is still in step after HEAD
    assert _kept(session) == 1  # one kept-alive connection
    assert all(e["exception"] is None for e in events.fired[1:])
    session.close()


def _kept(session: FastHttpSession) -> int:
    """How many idle connections the session keeps."""
    idle = session._transport
    return (idle._one is not None) + len(idle._more or {})


def test_one_kept_alive_connection_per_origin(serve, events: Recorded) -> None:
    first = serve(reply("200 OK", ["Content-Length: 1"], b"1"))
    second = serve(reply("200 OK", ["Content-Length: 1"], b"2"))
    third = serve(reply("200 OK", ["Content-Length: 1"], b"3"))
    session = client(first.url, events)
    for _ in range(3):
        assert session.get("/").content == b"1"
        assert session.get(f"{second.url}/").content == b"2"
        assert session.get(f"{third.url}/").content == b"3"
    assert (first.connections, second.connections, third.connections) == (1, 1, 1)
    session.close()
    assert _kept(session) == 0


def test_chunked_gzip_and_deflate_bodies(serve, events: Recorded) -> None:
    chunked = serve(
        reply("200 OK", ["Transfer-Encoding: chunked"], b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    )
    assert client(chunked.url, events).get("/").content == b"hello world"
    packed = gzip.compress(b"z" * 1000)
    gz = serve(
        reply("200 OK", ["Content-Encoding: gzip", f"Content-Length: {len(packed)}"], packed)
    )
    response = client(gz.url, events).get("/")
    assert response.content == b"z" * 1000 and events.fired[-1]["response_length"] == 1000
    raw = zlib.compress(b"deflated")[2:-4]  # raw deflate, as some servers send it
    df = serve(reply("200 OK", ["Content-Encoding: deflate", f"Content-Length: {len(raw)}"], raw))
    assert client(df.url, events).get("/").content == b"deflated"


def test_close_delimited_body_and_connection_close(serve, events: Recorded) -> None:
    server = serve(reply("200 OK", ["Connection: close"], b"until the end", keep=False))
    session = client(server.url, events)
    assert session.get("/").content == b"until the end"
    assert session.get("/").content == b"until the end"
    assert server.connections == 2 and _kept(session) == 0


def test_no_body_statuses(serve, events: Recorded) -> None:
    server = serve(
        lambda conn, head: reply("304 Not Modified" if b"/304" in head else "204 No Content", [])(
            conn, head
        )
    )
    session = client(server.url, events)
    assert session.get("/204").status_code == 204
    assert session.get("/304").status_code == 304 and session.get("/304").content == b""
    assert server.connections == 1


def test_head_then_get_on_one_connection(serve, events: Recorded) -> None:
    """A HEAD answer announces a body it does not send: the next answer must parse cleanly."""

    def handler(conn: socket.socket, head: bytes) -> bool:
        body = b"" if head.startswith(b"HEAD") else b"hello"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + body)
        return True

    server = serve(handler)
    session = client(server.url, events)
    for _ in range(3):
        assert session.head("/").status_code == 200
        assert session.get("/").content == b"hello"
    assert server.connections == 1
    assert all(e["exception"] is None for e in events.fired)


@pytest.mark.parametrize(
    ("handler", "fragment"),
    [
        (
            reply("200 OK", ["Content-Length: 100"], b"short", keep=False),
            "IncompleteRead: the connection closed before the end of the body",
        ),
        (
            reply("200 OK", ["Transfer-Encoding: chunked"], b"5\r\nhel", keep=False),
            "IncompleteRead",
        ),
        (
            lambda conn, head: conn.sendall(b"this is not http\r\n\r\n") and False,
            "BadResponse: invalid HTTP response from server (not HTTP/1.x)",
        ),
        (
            lambda conn, head: False,
            "BadResponse: the connection closed before a complete response header",
        ),
        (
            reply("200 OK", ["Content-Encoding: gzip", "Content-Length: 4"], b"nope"),
            "cannot decode the gzip body",
        ),
    ],
    ids=["truncated", "truncated-chunked", "garbage", "closed", "bad-gzip"],
)
def test_bad_responses_are_failures(serve, events: Recorded, handler, fragment: str) -> None:
    server = serve(handler)
    response = client(server.url, events).get("/x")
    assert response.status_code == 0 and not response.ok
    assert fragment in events.last_error


def test_read_timeout(serve, events: Recorded) -> None:
    def slow(conn: socket.socket, head: bytes) -> bool:
        time.sleep(1.0)
        return reply("200 OK", ["Content-Length: 0"])(conn, head)

    server = serve(slow)
    response = client(server.url, events, network_timeout=0.2).get("/")
    assert response.status_code == 0 and "ReadTimeout" in events.last_error
    assert client(server.url, events).get("/", timeout=3).status_code == 200


def test_idle_connection_closed_by_server_is_retried(serve, events: Recorded) -> None:
    server = serve(reply("200 OK", ["Content-Length: 2"], b"ok", keep=False))
    session = client(server.url, events)
    assert session.get("/").content == b"ok"  # the server closes after answering,
    assert session.get("/").content == b"ok"  # without saying so: the client retries once
    assert all(e["exception"] is None for e in events.fired)


def test_redirect_limit_and_relative_location(serve, events: Recorded) -> None:
    server = serve(
        lambda conn, head: reply("302 Found", ["Location: ../loop", "Content-Length: 0"])(
            conn, head
        )
    )
    response = client(server.url, events, max_redirects=3).get("/a/b")
    # requests' rule: the first request and 3 redirects sent, the 4th redirect an error
    assert response.status_code == 0 and "TooManyRedirects" in events.last_error
    assert server.connections == 1 and response.error.response.url.endswith("/loop")


def test_connection_refused(events: Recorded) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    response = client(f"http://127.0.0.1:{port}", events).get("/")
    assert response.status_code == 0
    assert events.last_error == "ConnectionRefusedError: [Errno 111] Connection refused"


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback here")
def test_ipv6_literal(serve, events: Recorded) -> None:
    seen: list[bytes] = []

    def handler(conn: socket.socket, head: bytes) -> bool:
        seen.append(head)
        return reply("200 OK", ["Content-Length: 2"], b"v6")(conn, head)

    server = serve(handler, family=socket.AF_INET6)
    assert client(server.url, events).get("/").content == b"v6"
    assert b"Host: [::1]:" in seen[0]


def test_tls_verifies_by_default(serve, events: Recorded, tls_context) -> None:
    server = serve(reply("200 OK", ["Content-Length: 3"], b"tls"), tls=tls_context)
    refused = client(server.url, events).get("/")
    assert refused.status_code == 0 and "SSLError" in events.last_error
    assert "CERTIFICATE_VERIFY_FAILED" in events.last_error
    trusting = client(server.url, events, insecure=True)
    first = trusting.get("/")
    assert first.content == b"tls"
    second = trusting.get("/")
    assert second.content == b"tls"  # kept alive over TLS
    # The breakdown: a new connection's connect and handshake go with its first response.
    opened = first.timings
    assert opened is not None and opened["connect"] is not None and opened["tls"] is not None
    assert opened["tls"] > 0 and 0 < opened["ttfb"] <= first.elapsed.total_seconds() * 1000
    assert second.timings is not None and second.timings["connect"] is None
    assert second.timings["tls"] is None and second.timings["ttfb"] > 0
    assert refused.timings is None  # no response: no breakdown


def test_large_body_waits_for_the_send_buffer(serve, events: Recorded) -> None:
    """A body larger than the socket buffers: the client must wait to write, not fail."""
    sizes: list[int] = []

    def handler(conn: socket.socket, head: bytes) -> bool:
        sizes.append(int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]))
        return reply("200 OK", ["Content-Length: 3"], b"got")(conn, head)

    server = serve(handler)
    body = b"x" * (8 * 1024 * 1024)
    response = client(server.url, events).post("/upload", data=body)
    assert response.status_code == 200 and response.content == b"got"
    assert sizes == [len(body)]
