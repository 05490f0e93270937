"""A recording HTTP/1.1 server on loopback, for the requests-parity tests.

Each ``RecordingServer`` keeps, per request, what arrived on the wire: the method, the request
target exactly as sent, every header line in order and original case, and the body bytes (a
chunked body de-chunked, with a flag that it was chunked). It is recorded before it is answered,
so a client holding its response knows its request is on the record.

What it answers is driven by the request target, so scenarios need no server code:

==============================  ================================================================
``/status/<code>``              that status, its standard reason (``reason=`` overrides), a short
                                text body (none for 1xx, 204, 304)
``/redirect/<code>?to=<loc>``   that status with ``Location: <loc>`` (sent as UTF-8)
``/redirect-chain/<n>``         302 to ``/redirect-chain/<n-1>`` ... ``/redirect-chain/0``: 200
``/loop``                       302 to ``/loop``
``/body?ct=&b=`` / ``hex=``     ``b`` (UTF-8) or ``hex`` bytes, Content-Type ``ct`` (none if absent)
``/gzip?enc=&b=``               ``b`` compressed with ``enc`` (gzip or deflate)
``/echo``                       JSON: method, target, body (latin-1; not a multipart one, whose
                                boundary is random), chunked; no headers (the User-Agent
                                differs between clients by design)
``/digest-auth/<user>/<pass>``  Digest (MD5, qop=auth) challenge; 200 once answered correctly
``/stream?n=<lines>``           a chunked text body of ``n`` lines
``/stall``                      recorded, never answered (until the client or server closes)
``/hangup``                     recorded, then the connection is closed without an answer
anything else                   200, ``text/plain``, ``ok``
==============================  ================================================================

Any route takes ``sc=<Set-Cookie value>`` and ``h=<Name: value>`` (each repeatable) to add
response headers, and ``close=1`` to close the connection after answering.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http
import json
import re
import select
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

DIGEST_REALM = "parity@loopback"
DIGEST_NONCE = "6b1f3c0a9d2e4f58"
DIGEST_OPAQUE = "0a1b2c3d"
_DIGEST_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')


@dataclass
class Received:
    """One request as it arrived: nothing normalised."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]  # in order, original case, values as latin-1 text
    body: bytes
    chunked: bool

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


@dataclass
class Reply:
    """What a route answers."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    reason: str | None = None
    chunks: list[bytes] | None = None  # a chunked body instead of ``body``
    close: bool = False


class RecordingServer:
    """A threaded HTTP/1.1 server (keep-alive) on ``host``, recording every request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.netloc = f"{host}:{self.port}"
        self.connections = 0
        self._received: list[Received] = []
        self._busy = 0  # connections reading a request that is not recorded yet
        self._state = threading.Condition()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        # Wakes the /stall handlers when the server closes (select on it with the client).
        self._wake_read, self._wake_write = socket.socketpair()
        self._closed = False
        acceptor = threading.Thread(target=self._accept, name=f"recording {self.url}")
        acceptor.start()
        self._threads.append(acceptor)

    # -- the record ------------------------------------------------------------------------------
    def take(self, timeout: float = 5.0) -> list[Received]:
        """Every request recorded since the last ``take``, once nothing is arriving: no request
        being read, no connection waiting to be accepted, no connection with unread bytes (or an
        end not yet seen). A client that gave up before its request was read would otherwise
        leave it to the next scenario's record.

        Raises:
            TimeoutError: something was still arriving after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._state:
            while True:
                if not self._busy:
                    watched = [self._listener, *self._open]
                    if not select.select(watched, [], [], 0)[0]:
                        taken, self._received = self._received, []
                        return taken
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.url}: a request still arriving after {timeout} s")
                # Every change notifies (accepted, recorded, ended) but bytes arriving, which
                # the connection's thread turns into a notified change: the timeout is a spare.
                self._state.wait(min(left, 0.1))

    # -- serving -----------------------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._state:
                if self._closed:
                    conn.close()
                    return
                self.connections += 1
                self._open.add(conn)
                self._state.notify_all()
                worker = threading.Thread(target=self._connection, args=(conn,), daemon=True)
                self._threads.append(worker)
            worker.start()

    def _connection(self, conn: socket.socket) -> None:
        # The clients never pipeline: each request is read from an empty buffer, so waiting
        # for the socket to be readable is waiting for the next request (or the end).
        reader = conn.makefile("rb")
        try:
            while True:
                select.select([conn], [], [])
                with self._state:
                    self._busy += (
                        1  # before the bytes leave the socket: take() sees one or the other
                    )
                try:
                    received = self._read_request(reader)
                    reply = route(received) if received is not None else None
                    if received is not None:
                        with self._state:
                            self._received.append(received)
                finally:
                    with self._state:
                        self._busy -= 1
                        self._state.notify_all()
                if received is None:
                    return
                if reply is None:  # /stall: wait for the client (or the server) to close
                    self._stall(conn)
                    return
                if reply.status < 0:  # /hangup
                    return
                conn.sendall(_serialize(reply, received.method))
                if reply.close or (received.header("Connection") or "").lower() == "close":
                    return
        except OSError:
            return
        finally:
            reader.close()
            with self._state:
                self._open.discard(conn)
                self._state.notify_all()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _read_request(self, reader) -> Received | None:
        line = reader.readline(65537)
        while line in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112 2.2)
            line = reader.readline(65537)
        if not line:
            return None
        method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while True:
            raw = reader.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").rstrip("\r\n").partition(":")
            headers.append((name, value.strip(" \t")))
        received = Received(method, target, version, headers, b"", False)
        if "chunked" in (received.header("Transfer-Encoding") or "").lower():
            received.body, received.chunked = _read_chunked(reader), True
        else:
            received.body = reader.read(int(received.header("Content-Length") or 0))
        return received

    def _stall(self, conn: socket.socket) -> None:
        while True:
            ready, _, _ = select.select([conn, self._wake_read], [], [])
            if self._wake_read in ready:
                return
            if not conn.recv(65536):  # the client gave up and closed
                return

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection and join every thread."""
        with self._state:
            self._closed = True
            connections = list(self._open)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        self._listener.close()
        self._wake_write.send(b"x")
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.01))
        alive = [thread for thread in self._threads if thread.is_alive()]
        self._wake_read.close()
        self._wake_write.close()
        if alive:
            raise RuntimeError(f"{self.url}: {len(alive)} server threads still running")


def _read_chunked(reader) -> bytes:
    body = b""
    while True:
        size = int(reader.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return body
        body += reader.read(size)
        reader.readline(3)  # the CRLF after the chunk


def _serialize(reply: Reply, method: str) -> bytes:
    reason = reply.reason
    if reason is None:
        try:
            reason = http.HTTPStatus(reply.status).phrase
        except ValueError:
            reason = "Unknown"
    head = [f"HTTP/1.1 {reply.status} {reason}"]
    head += [f"{name}: {value}" for name, value in reply.headers]
    no_body = reply.status in (204, 304) or 100 <= reply.status < 200
    payload = b""
    if reply.chunks is not None:
        head.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in reply.chunks) + b"0\r\n\r\n"
    elif not no_body:
        head.append(f"Content-Length: {len(reply.body)}")
        payload = reply.body
    if reply.close:
        head.append("Connection: close")
    if method == "HEAD" or no_body:
        payload = b""
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + payload


def route(request: Received) -> Reply | None:
    """The reply to ``request`` (None: never answer; status -1: hang up)."""
    parts = urlsplit(request.target)
    query = parse_qsl(parts.query, keep_blank_values=True)
    args: dict[str, str] = dict(query)
    path = parts.path
    text = [("Content-Type", "text/plain")]
    if path == "/stall":
        return None
    if path == "/hangup":
        return Reply(-1, [])
    number = path.rsplit("/", 1)[1]
    code = int(number) if number.isdigit() else None
    if path.startswith("/status/") and code is not None:
        reply = Reply(code, list(text), f"status {code}".encode(), reason=args.get("reason"))
    elif path.startswith("/redirect/") and code is not None:
        reply = Reply(code, [*text, ("Location", args.get("to", "/"))], b"redirecting")
    elif path.startswith("/redirect-chain/") and code is not None:
        if code > 0:
            reply = Reply(302, [*text, ("Location", f"/redirect-chain/{code - 1}")], b"next")
        else:
            reply = Reply(200, list(text), b"done")
    elif path == "/loop":
        reply = Reply(302, [*text, ("Location", "/loop")], b"again")
    elif path == "/body":
        body = bytes.fromhex(args["hex"]) if "hex" in args else args.get("b", "").encode()
        reply = Reply(200, [("Content-Type", args["ct"])] if "ct" in args else [], body)
    elif path == "/gzip":
        encoding = args.get("enc", "gzip")
        plain = args.get("b", "compressed body").encode()
        coded = gzip.compress(plain) if encoding == "gzip" else zlib.compress(plain)
        reply = Reply(200, [*text, ("Content-Encoding", encoding)], coded)
    elif path == "/echo":
        multipart = (request.header("Content-Type") or "").lower().startswith("multipart/")
        echoed = {
            "method": request.method,
            "target": request.target,
            # A multipart body's boundary is random: its parts are compared from the record.
            "body": "<multipart>" if multipart else request.body.decode("latin-1"),
            "chunked": request.chunked,
        }
        reply = Reply(200, [("Content-Type", "application/json")], json.dumps(echoed).encode())
    elif path.startswith("/digest-auth/"):
        reply = _digest(request, *path.split("/")[2:4])
    elif path == "/stream":
        lines = [f"line {n}\n".encode() for n in range(int(args.get("n", "3")))]
        reply = Reply(200, list(text), chunks=lines)
    else:
        reply = Reply(200, list(text), b"ok")
    for name, value in query:
        if name == "sc":
            reply.headers.append(("Set-Cookie", value))
        elif name == "h":
            key, _, val = value.partition(":")
            reply.headers.append((key.strip(), val.strip()))
    reply.close = args.get("close") == "1"
    return reply


def _digest(request: Received, user: str, password: str) -> Reply:
    given = request.header("Authorization") or ""
    if given.startswith("Digest "):
        params = {m[0]: m[1] or m[2] for m in _DIGEST_PARAM.findall(given[7:])}

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{user}:{DIGEST_REALM}:{password}")
        ha2 = md5(f"{request.method}:{params.get('uri', '')}")
        expected = md5(
            f"{ha1}:{DIGEST_NONCE}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}"
        )
        if (
            params.get("response") == expected
            and params.get("username") == user
            and params.get("uri") == request.target
            and params.get("opaque") == DIGEST_OPAQUE
        ):
            return Reply(200, [("Content-Type", "text/plain")], b"authenticated")
    challenge = (
        f'Digest realm="{DIGEST_REALM}", qop="auth", nonce="{DIGEST_NONCE}", '
        f'opaque="{DIGEST_OPAQUE}", algorithm=MD5'
    )
    return Reply(401, [("Content-Type", "text/plain"), ("WWW-Authenticate", challenge)], b"denied")


class Origins:
    """Three recording servers: ``a`` and ``b`` on 127.0.0.1 (two ports), ``c`` on 127.0.0.2,
    and ``refused``, a port on 127.0.0.1 that refuses connections (bound, not listening)."""

    def __init__(self) -> None:
        self.servers: dict[str, RecordingServer] = {}
        self._refuser = socket.socket()
        try:
            for name, host in (("a", "127.0.0.1"), ("b", "127.0.0.1"), ("c", "127.0.0.2")):
                self.servers[name] = RecordingServer(host)
            self._refuser.bind(("127.0.0.1", 0))  # never listen(): connecting is refused
        except BaseException:
            self.close()
            raise
        self.refused = f"http://127.0.0.1:{self._refuser.getsockname()[1]}"

    def __getitem__(self, name: str) -> RecordingServer:
        return self.servers[name]

    def take(self) -> dict[str, list[Received]]:
        """Each origin's requests since the last ``take``."""
        return {name: server.take() for name, server in self.servers.items()}

    def close(self) -> None:
        """Close every server (and the refusing socket)."""
        errors = []
        for server in self.servers.values():
            try:
                server.close()
            except RuntimeError as exc:
                errors.append(str(exc))
        self._refuser.close()
        if errors:
            raise RuntimeError("; ".join(errors))
