"""The lean client's HTTP/1.1 behaviour against real servers on loopback: the demo WSGI app,
scripted raw-socket servers (chunked, gzip, close-delimited, truncated, malformed, slow), and
a TLS server with a self-signed certificate."""

from __future__ import annotations

import gzip
import shutil
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mpswarm.event import EventHook
from mpswarm.http.fast import FastHttpSession


class Recorded:
    def __init__(self) -> None:
        self.hook = EventHook()
        self.fired: list[dict] = []
        self.hook.add_listener(lambda **kw: self.fired.append(kw))

    @property
    def last_error(self) -> str:
        return str(self.fired[-1]["exception"])


Handler = Callable[[socket.socket, bytes], bool]  # returns True to keep the connection


class ScriptedServer:
    """A raw socket server on loopback answering each request with ``handler``."""

    def __init__(
        self, handler: Handler, family: int = socket.AF_INET, tls: ssl.SSLContext | None = None
    ):
        self.handler = handler
        self.sock = socket.socket(family)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.sock.listen(16)
        self.tls = tls
        port = self.sock.getsockname()[1]
        host = "[::1]" if family == socket.AF_INET6 else "127.0.0.1"
        self.url = f"{'https' if tls else 'http'}://{host}:{port}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(5)
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                if not self.handler(conn, head):
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def events() -> Recorded:
    return Recorded()


@pytest.fixture()
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(handler: Handler, **kwargs) -> ScriptedServer:
        server = ScriptedServer(handler, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


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


def reply(status: str, headers: list[str], body: bytes = b"", keep: bool = True) -> Handler:
    def handler(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(
            f"HTTP/1.1 {status}\r\n".encode()
            + "".join(f"{h}\r\n" for h in headers).encode()
            + b"\r\n"
            + body
        )
        return keep

    return handler


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
    assert len(session._connections) == 1  # one kept-alive connection for all of it
    assert all(e["exception"] is None for e in events.fired[1:])
    session.close()


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
    assert server.connections == 2 and not session._connections


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


@pytest.mark.parametrize(
    ("handler", "fragment"),
    [
        (
            reply("200 OK", ["Content-Length: 100"], b"short", keep=False),
            "IncompleteRead: the connection closed after 5 of 100 body bytes",
        ),
        (
            reply("200 OK", ["Transfer-Encoding: chunked"], b"5\r\nhel", keep=False),
            "IncompleteRead",
        ),
        (
            lambda conn, head: conn.sendall(b"this is not http\r\n\r\n") and False,
            "BadResponse: not valid HTTP",
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
    assert len(response.history) == 3 and "TooManyRedirects" in events.last_error
    assert response.history[-1].url.endswith("/loop")


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


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder: Path = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def test_tls_verifies_by_default(serve, events: Recorded, tls_context) -> None:
    server = serve(reply("200 OK", ["Content-Length: 3"], b"tls"), tls=tls_context)
    refused = client(server.url, events).get("/")
    assert refused.status_code == 0 and "SSLError" in events.last_error
    assert "CERTIFICATE_VERIFY_FAILED" in events.last_error
    trusting = client(server.url, events, insecure=True)
    assert trusting.get("/").content == b"tls"
    assert trusting.get("/").content == b"tls"  # kept alive over TLS
