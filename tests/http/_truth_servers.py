"""Raw-socket HTTP/1.1 servers on loopback that count what they answered, for the server-truth
tests (``test_server_truth.py``).

A ``TruthServer`` reads each request (its head, and a body of announced length) and hands it to
an ``Answer``, which writes whatever bytes the test wants and says whether the connection
stays open. The server counts, per path, the responses it finished sending: the truth that
mpswarm's records are compared with. Everything is bounded: connections time out when idle,
endless bodies stop when the client goes away, after ``ENDLESS`` bytes or at ``close()``, and
``close()`` waits for every thread it started.
"""

from __future__ import annotations

import collections
import selectors
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

#: "Forever" for an endless body: 4 GiB, far past every cap, and still a bound.
ENDLESS = 4 << 30
_MIB = 1 << 20
_BLOCK = b"\0" * 65536


@dataclass
class Request:
    """One request as the server read it."""

    method: str
    target: str
    headers: dict[str, str]  # names lowercased; a repeated name keeps its last value
    index: int  # 1 for the first request on its connection
    server: TruthServer
    local_port: int  # the port it arrived on (a server may listen on several)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


#: Writes the answer to a request; returns True to keep the connection for the next one.
Answer = Callable[[socket.socket, Request], bool]


@dataclass
class Tally:
    """What a server saw, by path."""

    received: collections.Counter[str] = field(default_factory=collections.Counter)
    answered: collections.Counter[str] = field(default_factory=collections.Counter)
    connections: int = 0
    reused: int = 0  # requests that arrived on a connection that had answered before


class TruthServer:
    """A threaded raw HTTP/1.1 server on ``host``, one listening port or ``ports`` of them.

    Args:
        answer: writes each response.
        host: the loopback address to listen on.
        ports: how many listening ports (a redirect spray needs many origins).
        idle_s: an idle connection is closed by the server after this long.
    """

    def __init__(
        self, answer: Answer, host: str = "127.0.0.1", ports: int = 1, idle_s: float = 10.0
    ) -> None:
        self.answer = answer
        self.idle_s = idle_s
        self.tally = Tally()
        self.requests: list[Request] = []  # every request, in arrival order (for headers)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._selector = selectors.DefaultSelector()
        self.listeners: list[socket.socket] = []
        try:
            for _ in range(ports):
                listener = socket.socket()
                self.listeners.append(listener)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((host, 0))
                listener.listen(128)
                listener.setblocking(False)
                self._selector.register(listener, selectors.EVENT_READ)
        except BaseException:
            self._close_listeners()
            raise
        self.ports = [listener.getsockname()[1] for listener in self.listeners]
        self.host = host
        self.url = f"http://{host}:{self.ports[0]}"
        self._start(self._accept)

    def origin(self, index: int) -> str:
        """The URL of listening port ``index``."""
        return f"http://{self.host}:{self.ports[index % len(self.ports)]}"

    def answered(self, path: str | None = None) -> int:
        """Responses this server finished sending (to ``path``, or in all)."""
        with self._lock:
            if path is None:
                return sum(self.tally.answered.values())
            return self.tally.answered[path]

    def quiet(self, within: float = 5.0) -> Tally:
        """The counts once no connection is open (after the client went away, each of its
        connections ends; a response is counted after its last byte left, so the client may
        have recorded it a moment before), or as they are after ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            with self._lock:
                if not self._open or time.monotonic() > deadline:
                    break
            time.sleep(0.01)
        return self.snapshot()

    def snapshot(self) -> Tally:
        """A copy of the counts."""
        with self._lock:
            return Tally(
                collections.Counter(self.tally.received),
                collections.Counter(self.tally.answered),
                self.tally.connections,
                self.tally.reused,
            )

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:  # the accept loop stays first; finished threads are dropped
            self._threads = [*self._threads[:1], *(t for t in self._threads[1:] if t.is_alive())]
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                except (BlockingIOError, OSError):
                    continue
                conn.setblocking(True)
                with self._lock:
                    if self._stopping.is_set():
                        conn.close()
                        return
                    self.tally.connections += 1
                    self._open.add(conn)
                self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            local_port = conn.getsockname()[1]
            buffer = b""
            index = 0
            while not self._stopping.is_set():
                conn.settimeout(self.idle_s)
                head, buffer = _read_head(conn, buffer)
                if head is None:
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    more = conn.recv(65536)
                    if not more:
                        return
                    buffer += more
                buffer = buffer[length:]
                index += 1
                request = Request(method, target, headers, index, self, local_port)
                with self._lock:
                    self.tally.received[request.path] += 1
                    self.tally.reused += index > 1
                    self.requests.append(request)
                conn.settimeout(30)  # a client that stops reading an endless body
                keep = self.answer(conn, request)
                with self._lock:
                    self.tally.answered[request.path] += 1
                if not keep:
                    return
        except (OSError, ValueError):
            return  # the client went away, or the server is closing: what these tests expect
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def close(self) -> None:
        """Stop listening, cut every connection and wait for every thread of this server."""
        self._stopping.set()
        deadline = time.monotonic() + 10
        self._threads[0].join(10)  # the accept loop first: then no connection thread starts
        with self._lock:
            for conn in self._open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._close_listeners()
        alive = [t for t in threads if t.is_alive()]
        assert not alive, f"{len(alive)} server thread(s) still running"

    def _close_listeners(self) -> None:
        self._selector.close()
        for listener in self.listeners:
            listener.close()


def _read_head(conn: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes]:
    """The next request head and what follows it; None at the end of the connection."""
    while b"\r\n\r\n" not in buffer:
        try:
            data = conn.recv(65536)
        except TimeoutError:
            return None, b""  # idle too long: closed by the server
        if not data or len(buffer) > 65536:
            return None, b""
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


# -- answers -------------------------------------------------------------------------------------


def response(
    status: str = "200 OK",
    body: bytes = b"ok",
    headers: Iterable[str] = (),
    version: str = "HTTP/1.1",
    length: bool = True,
) -> bytes:
    """The bytes of a response; ``length=False`` leaves out the Content-Length."""
    lines = [f"{version} {status}", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def send_endless(conn: socket.socket, head: bytes, piece: bytes, server: TruthServer) -> None:
    """``head``, then ``piece`` again and again until the client goes away (an OSError), the
    server closes, or ``ENDLESS`` bytes were sent."""
    conn.sendall(head)
    sent = 0
    while sent < ENDLESS and not server._stopping.is_set():
        conn.sendall(piece)
        sent += len(piece)


def endless_chunked(conn: socket.socket, request: Request) -> bool:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    send_endless(conn, head, chunk(_BLOCK), request.server)
    return False


def endless_close_delimited(conn: socket.socket, request: Request) -> bool:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
    send_endless(conn, head, _BLOCK, request.server)
    return False


class GzipBomb:
    """``size`` zeros as one gzip member of about size / 1000 bytes, sent as it is made.

    After a full flush a deflate block does not refer to what came before, so every further MiB
    of zeros compresses to the same bytes: compress two, send the second again and again
    (``tests/http/_hostile_server.gzip_bomb``'s trick, streamed instead of held).
    """

    def __init__(self, size: int = ENDLESS) -> None:
        self.mibs = size // _MIB
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        zeros = bytes(_MIB)
        self.first = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
        self.repeat = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
        self.end = packer.flush()[:-8]  # the final empty block, without the 2 MiB trailer
        # The trailer's CRC is not worth 4 GiB of crc32: no client under test reaches it (a
        # client that did would fail on the CRC, which the test counts as a failure as well).
        self.trailer = struct.pack("<II", 0, (self.mibs * _MIB) & 0xFFFFFFFF)
        self.length = (
            len(self.first) + len(self.repeat) * (self.mibs - 1) + len(self.end) + len(self.trailer)
        )

    def pieces(self) -> Iterator[bytes]:
        yield self.first
        batch = 64  # 64 repeats per send
        left = self.mibs - 1
        block = self.repeat * batch
        while left >= batch:
            yield block
            left -= batch
        yield self.repeat * left + self.end + self.trailer

    def __call__(self, conn: socket.socket, request: Request) -> bool:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % self.length
        )
        for piece in self.pieces():
            if request.server._stopping.is_set():
                return False
            conn.sendall(piece)
        return True
