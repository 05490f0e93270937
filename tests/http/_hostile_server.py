"""A hostile HTTP server for the memory-safety tests, run as its own process (its buffers must
not count in the client's RSS): ``python -m tests.http._hostile_server`` prints its port.

What it sends depends on the request path:

* ``/chunked``: a chunked body that never ends (stopped after ``ENDLESS`` bytes).
* ``/length``: ``Content-Length: 2147483648``, then zeros (stopped after ``ENDLESS`` bytes).
* ``/gzip`` and ``/gzip-chunked``: a gzip bomb, 1 GiB of zeros in about 1 MB, with a
  Content-Length or chunked.
* ``/headers``: header lines that never end; ``/longheader``: one header line that never ends.
* ``/garbage``: random bytes instead of a response, then close.
* ``/peer``: the client's port, to tell whether a connection was kept.
* ``/lines``: ``a\\nbb\\nccc\\n\\nd`` in chunks that split lines; ``/redirect/N``: a 302 to
  ``/bytes/N``.
* ``/bytes/N``, ``/chunked/N``, ``/gzipped/N``: a body of N bytes, with a Content-Length,
  chunked, or gzip-compressed; the connection is kept alive.

Every connection is bounded: at most ``ENDLESS`` bytes, and the process exits after ``LIFE_S``.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time
import zlib

ENDLESS = 256 * 1024 * 1024  # "forever": eight times the default body cap
LIFE_S = 300.0
_BLOCK = b"\0" * 65536


def gzip_bomb(size: int = 1 << 30) -> bytes:
    """``size`` zeros as one gzip member, built in about 0.3 s instead of compressing 1 GiB.

    After a full flush a deflate block does not refer to what came before, so every further
    MiB of zeros compresses to the same bytes: compress two, repeat the second.
    """
    mib = 1 << 20
    zeros = bytes(mib)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    repeat = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    end = packer.flush()[:-8]  # the final empty block, without the trailer of 2 MiB
    crc = 0
    for _ in range(size // mib):
        crc = zlib.crc32(zeros, crc)
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return first + repeat * (size // mib - 1) + end + trailer


_BOMB: list[bytes] = []
_BOMB_LOCK = threading.Lock()


def _bomb() -> bytes:
    with _BOMB_LOCK:
        if not _BOMB:
            _BOMB.append(gzip_bomb())
        return _BOMB[0]


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _endless(conn: socket.socket, head: bytes, piece: bytes) -> None:
    conn.sendall(head)
    sent = 0
    while sent < ENDLESS:
        conn.sendall(piece)
        sent += len(piece)


def _answer(conn: socket.socket, path: str) -> bool:
    """Answer one request; True to keep the connection for the next."""
    if path == "/chunked":
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        _endless(conn, head, _chunk(_BLOCK))
    elif path == "/length":
        _endless(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\n", _BLOCK)
    elif path == "/gzip":
        bomb = _bomb()
        head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
        conn.sendall(head.encode() + bomb)
        return True
    elif path == "/gzip-chunked":
        bomb = _bomb()
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for start in range(0, len(bomb), 65536):
            conn.sendall(_chunk(bomb[start : start + 65536]))
        conn.sendall(b"0\r\n\r\n")
        return True
    elif path == "/headers":
        _endless(
            conn, b"HTTP/1.1 200 OK\r\n", b"".join(b"X-Filler: %d\r\n" % i for i in range(4096))
        )
    elif path == "/longheader":
        _endless(conn, b"HTTP/1.1 200 OK\r\nX-Long: ", b"a" * 65536)
    elif path == "/peer":
        port = str(conn.getpeername()[1]).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(port), port))
        return True
    elif path == "/lines":
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for piece in (b"a\n", b"bb", b"\nc", b"cc", b"\n\n", b"d"):
            conn.sendall(_chunk(piece))
        conn.sendall(b"0\r\n\r\n")
        return True
    elif path.startswith("/redirect/"):
        target = path.replace("/redirect/", "/bytes/").encode()
        conn.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 5\r\n\r\nmoved" % target
        )
        return True
    elif path == "/garbage":
        size = int.from_bytes(os.urandom(2), "big") % 8192 + 1
        conn.sendall(bytes([0x80 | os.urandom(1)[0]]) + os.urandom(size))
    else:
        kind, _, number = path.strip("/").partition("/")
        size = int(number or 0)
        body = b"\0" * size
        if kind == "bytes":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (size, body))
        elif kind == "chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for start in range(0, size, 65536):
                conn.sendall(_chunk(body[start : start + 65536]))
            conn.sendall(b"0\r\n\r\n")
        elif kind == "gzipped":
            packed = zlib.compress(body, wbits=16 + zlib.MAX_WBITS)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                % (len(packed), packed)
            )
        else:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return True
    return False


def _connection(conn: socket.socket) -> None:
    try:
        conn.settimeout(30)
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data or len(buffer) > 65536:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
            if not _answer(conn, path):
                return
    except OSError:
        return  # the client gave up: what these tests expect
    finally:
        conn.close()


def main() -> None:
    """Serve on a free loopback port until killed or ``LIFE_S`` has passed."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    print(f"port {server.getsockname()[1]}", flush=True)
    deadline = time.monotonic() + LIFE_S
    server.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        threading.Thread(target=_connection, args=(conn,), daemon=True).start()
    sys.exit(0)


if __name__ == "__main__":
    main()
