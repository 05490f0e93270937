"""Recording servers on loopback for the proxy and TLS tests: an origin (plain or TLS, with or
without a required client certificate) and a forward proxy (absolute-form requests and CONNECT
tunnels, optional Basic proxy authentication, optionally itself behind TLS).

Every server runs one accepting thread and one thread per connection. ``close()`` shuts every
socket down, which wakes each thread from its blocking read, and joins them all: nothing
outlives a test, also one that failed. The proxy connects only to loopback addresses (a safety
rule of this project): any other destination is answered 403 and recorded in ``refused``.
"""

from __future__ import annotations

import base64
import ipaddress
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

_IO_TIMEOUT_S = 10.0  # a backstop: close() wakes every thread long before this
_JOIN_DEADLINE_S = 5.0
_MAX_HEAD = 65536


@dataclass
class Seen:
    """One request as a server received it.

    Attributes:
        method: the request's method (``CONNECT`` for a tunnel).
        version: the HTTP version of its request line (``HTTP/1.1``).
        target: the request target as sent: ``/path?q``, ``http://host:port/path`` (absolute
            form, to a proxy) or ``host:port`` (CONNECT).
        headers: (name, value) pairs in the order received, names as sent.
        tls: the request came over TLS.
        client_subject: the common name of the client certificate, if one was presented.
    """

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    tls: bool = False
    client_subject: str | None = None

    def header(self, name: str) -> str | None:
        """The value of the first header called ``name`` (any case), or None."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    def names(self) -> set[str]:
        """The header names, lower-cased."""
        return {key.lower() for key, _ in self.headers}


class BadRequest(Exception):
    """What the peer sent is not an HTTP/1.1 request this server understands."""


def read_head(conn: socket.socket, buffer: bytearray) -> bytes | None:
    """The next message head (up to the blank line) from ``conn``, consumed from ``buffer``;
    None when the peer closed the connection between messages."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            return head
        if len(buffer) > _MAX_HEAD:
            raise BadRequest("head too large")
        chunk = conn.recv(65536)
        if not chunk:
            if buffer:
                raise BadRequest("connection closed inside a head")
            return None
        buffer += chunk


def read_exact(conn: socket.socket, buffer: bytearray, size: int) -> bytes:
    """``size`` bytes: what ``buffer`` holds first, then from ``conn``."""
    while len(buffer) < size:
        chunk = conn.recv(65536)
        if not chunk:
            raise BadRequest("connection closed inside a body")
        buffer += chunk
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


def parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """(first line, header pairs) of a message head."""
    first, *lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise BadRequest(f"not a header line: {line!r}")
        headers.append((name.strip(), value.strip()))
    return first, headers


def body_length(headers: list[tuple[str, str]]) -> int:
    """The Content-Length of a message (0 if none; chunked bodies are not supported)."""
    for name, value in headers:
        if name.lower() == "transfer-encoding":
            raise BadRequest("chunked bodies are not supported by this test server")
        if name.lower() == "content-length":
            return int(value)
    return 0


def wants_close(version: str, headers: list[tuple[str, str]]) -> bool:
    """Whether the connection ends after this message (HTTP/1.0, or ``Connection: close``)."""
    connection = next((v.lower() for n, v in headers if n.lower() == "connection"), "")
    return "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)


def response_bytes(status: str, body: bytes, extra: list[str] | None = None) -> bytes:
    """A complete HTTP/1.1 response with a Content-Length."""
    lines = [f"HTTP/1.1 {status}", "Content-Type: text/plain", f"Content-Length: {len(body)}"]
    lines += extra or []
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ThreadedServer:
    """A TCP server on loopback: one thread accepting, one per connection, all joined on
    ``close()``.

    Args:
        host: the loopback address to listen on (127.0.0.1, 127.0.0.2 or ::1).
        tls: a server-side context; each connection's handshake runs in its own thread.
    """

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"test servers listen on loopback only, not {host}")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.tls = tls
        self.seen: list[Seen] = []  # every request received, in order
        self.errors: list[BaseException] = []  # what broke a connection, for a test to read
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        port = self._listener.getsockname()[1]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.address = f"{shown}:{port}"
        self.port = port
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._start(self._accept, "accept")

    @property
    def url(self) -> str:
        """``http://`` or ``https://`` and the address."""
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def _start(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(
            target=target, args=args, name=f"{type(self).__name__}-{name}", daemon=True
        )
        with self._lock:
            if self._closed:
                return
            self._threads.append(thread)
        thread.start()

    def track(self, sock: socket.socket) -> bool:
        """Register a socket for ``close()`` to shut down; False once closing (then the
        caller must close it itself)."""
        with self._lock:
            if self._closed:
                return False
            self._sockets.add(sock)
            return True

    def untrack(self, sock: socket.socket) -> None:
        """Close a socket and forget it."""
        with self._lock:
            self._sockets.discard(sock)
        sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # close() shut the listener down
            if not self.track(conn):
                conn.close()
                return
            self._start(self._connection, "connection", conn)

    def _connection(self, conn: socket.socket) -> None:
        current = conn
        try:
            conn.settimeout(_IO_TIMEOUT_S)
            if self.tls is not None:
                current = self.tls.wrap_socket(conn, server_side=True)
                with self._lock:  # the wrapped socket now owns the descriptor
                    self._sockets.discard(conn)
                    self._sockets.add(current)
                if self._closed:
                    return
            self.serve(current)
        except (OSError, BadRequest) as exc:
            if not self._closed:
                self.errors.append(exc)
        finally:
            self.untrack(current)

    def serve(self, conn: socket.socket) -> None:
        """Handle one accepted (and, with TLS, handshaken) connection until it ends."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop accepting, shut every connection down and join every thread.

        Raises:
            RuntimeError: a thread was still running after the deadline.
        """
        with self._lock:
            self._closed = True
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in (self._listener, *sockets):
            try:
                # socket.socket's own shutdown: SSLSocket.shutdown would drop its SSL object
                # under a thread reading from it. A shut-down socket wakes its reader.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        self._listener.close()
        deadline = time.monotonic() + _JOIN_DEADLINE_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        left = [thread.name for thread in threads if thread.is_alive()]
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
        if left:
            raise RuntimeError(f"{type(self).__name__} threads still running: {left}")


class Origin(ThreadedServer):
    """An HTTP/1.1 origin (keep-alive) answering every request ``200 OK`` with ``body``, and
    recording each in ``seen``.

    Args:
        host: the loopback address to listen on.
        tls: a server-side TLS context (see ``Pki.server_context``), or None for plain HTTP.
        body: the body of every answer.
    """

    def __init__(
        self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None, body: bytes = b"origin"
    ) -> None:
        self.body = body
        self.connections = 0
        super().__init__(host, tls)

    def serve(self, conn: socket.socket) -> None:
        self.connections += 1
        subject = None
        if isinstance(conn, ssl.SSLSocket):
            peer = conn.getpeercert()
            for rdn in peer.get("subject", ()) if peer else ():
                for pair in rdn:
                    if pair[0] == "commonName":
                        subject = str(pair[1])
        buffer = bytearray()
        while True:
            head = read_head(conn, buffer)
            if head is None:
                return
            first, headers = parse_head(head)
            method, target, version = first.split(" ", 2)
            read_exact(conn, buffer, body_length(headers))
            tls = isinstance(conn, ssl.SSLSocket)
            self.seen.append(Seen(method, target, version, headers, tls, subject))
            conn.sendall(response_bytes("200 OK", b"" if method == "HEAD" else self.body))
            if wants_close(version, headers):
                return


def basic(user: str, password: str) -> str:
    """The value of a Basic (proxy) authorization header."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class _Upstream:
    """The proxy's kept-alive connection to one origin, for one client connection."""

    key: tuple[str, int]
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)


class ForwardProxy(ThreadedServer):
    """A forward HTTP proxy: absolute-form requests are forwarded (keep-alive on both sides,
    ``Proxy-Authorization`` and ``Proxy-Connection`` removed, as proxies do), ``CONNECT``
    opens a byte tunnel.

    Args:
        host: the loopback address to listen on.
        tls: a server-side context: the proxy itself is reached over TLS (an https:// proxy).
        credentials: (user, password) the proxy requires (``407`` otherwise), or None.

    Attributes:
        seen: every request the proxy received (CONNECTs included), in order.
        refused: destinations refused because they are not loopback.
    """

    BODY_407 = b"proxy authentication required"

    def __init__(
        self,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.refused: list[str] = []
        self.required = basic(*credentials) if credentials else None
        super().__init__(host, tls)

    def url_with(self, user: str, password: str | None = None) -> str:
        """The proxy's URL with credentials in it (percent-encoded)."""
        scheme, address = self.url.split("://")
        secret = "" if password is None else ":" + quote(password, safe="")
        return f"{scheme}://{quote(user, safe='')}{secret}@{address}"

    def serve(self, conn: socket.socket) -> None:
        buffer = bytearray()
        upstream: _Upstream | None = None
        try:
            while True:
                head = read_head(conn, buffer)
                if head is None:
                    return
                first, headers = parse_head(head)
                method, target, version = first.split(" ", 2)
                body = read_exact(conn, buffer, body_length(headers))
                tls = isinstance(conn, ssl.SSLSocket)
                self.seen.append(Seen(method, target, version, headers, tls))
                if self.required is not None and self._credentials(headers) != self.required:
                    answer = response_bytes(
                        "407 Proxy Authentication Required",
                        self.BODY_407,
                        ['Proxy-Authenticate: Basic realm="mpswarm-test"'],
                    )
                    conn.sendall(answer)
                    if method == "CONNECT":
                        return  # a refused tunnel: the client starts over on a new connection
                    continue
                if method == "CONNECT":
                    self._tunnel(conn, target, buffer)
                    return
                upstream = self._forward(conn, method, target, version, headers, body, upstream)
                if upstream is None or wants_close(version, headers):
                    return
        finally:
            if upstream is not None:
                self.untrack(upstream.sock)

    @staticmethod
    def _credentials(headers: list[tuple[str, str]]) -> str | None:
        return next((v for n, v in headers if n.lower() == "proxy-authorization"), None)

    def _open(self, host: str, port: int) -> socket.socket | None:
        """A connection to ``host:port`` if every address it has is loopback, else None."""
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return None
        addresses = [info for info in found if ipaddress.ip_address(info[4][0]).is_loopback]
        if not addresses or len(addresses) != len(found):
            self.refused.append(f"{host}:{port}")
            return None
        for family, kind, proto, _, address in addresses:
            sock = socket.socket(family, kind, proto)
            if not self.track(sock):
                sock.close()
                return None
            try:
                sock.settimeout(_IO_TIMEOUT_S)
                sock.connect(address)  # the resolved loopback address, not the name again
                return sock
            except OSError:
                self.untrack(sock)
        return None

    def _forward(
        self,
        conn: socket.socket,
        method: str,
        target: str,
        version: str,
        headers: list[tuple[str, str]],
        body: bytes,
        upstream: _Upstream | None,
    ) -> _Upstream | None:
        """Forward one absolute-form request; returns the upstream connection to keep, or
        None when the client connection must end."""
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            conn.sendall(response_bytes("400 Bad Request", b"absolute http:// form expected"))
            return None
        key = (parts.hostname, parts.port or 80)
        if upstream is not None and upstream.key != key:
            self.untrack(upstream.sock)
            upstream = None
        if upstream is None:
            sock = self._open(*key)
            if sock is None:
                conn.sendall(response_bytes("403 Forbidden", b"only loopback destinations"))
                return None
            upstream = _Upstream(key, sock)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        hop = {"proxy-authorization", "proxy-connection"}
        kept = [(n, v) for n, v in headers if n.lower() not in hop]
        head = f"{method} {path} {version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in kept)
        upstream.sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        answer = read_head(upstream.sock, upstream.buffer)
        if answer is None:
            conn.sendall(response_bytes("502 Bad Gateway", b"the origin closed"))
            return None
        status, answer_headers = parse_head(answer)
        answer_body = b"" if method == "HEAD" else read_exact(
            upstream.sock, upstream.buffer, body_length(answer_headers)
        )  # fmt: skip
        conn.sendall(answer + b"\r\n\r\n" + answer_body)
        if wants_close(status.split(" ", 1)[0], answer_headers):
            self.untrack(upstream.sock)
            return None
        return upstream

    def _tunnel(self, conn: socket.socket, target: str, buffer: bytearray) -> None:
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        upstream = self._open(host, int(port)) if port.isdigit() and host else None
        if upstream is None:
            conn.sendall(response_bytes("403 Forbidden", b"only loopback destinations"))
            return
        try:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if buffer:
                upstream.sendall(bytes(buffer))  # bytes the client sent early
            self._pump(conn, upstream)
        finally:
            self.untrack(upstream)

    @staticmethod
    def _pump(conn: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes."""
        peer = {conn: upstream, upstream: conn}
        with selectors.DefaultSelector() as selector:
            for sock in peer:
                selector.register(sock, selectors.EVENT_READ)
            while True:
                events = selector.select(_IO_TIMEOUT_S)
                if not events:
                    return
                for key, _ in events:
                    ready = conn if key.fileobj is conn else upstream
                    data = ready.recv(65536)
                    if not data:
                        return
                    peer[ready].sendall(data)
                    # A TLS socket may hold decrypted bytes that select() cannot see.
                    while isinstance(ready, ssl.SSLSocket) and ready.pending():
                        peer[ready].sendall(ready.recv(ready.pending()))
