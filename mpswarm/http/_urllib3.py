"""HttpUser's transport: http.client reads the response, urllib3's ``HTTPResponse`` decodes it.

A response is what requests' adapter makes of urllib3's: http.client reads the body (its
framing: Content-Length, chunked, to the close), urllib3's ``HTTPResponse`` decodes gzip,
deflate, br and zstd (no more than each read asks for, so a gzip bomb costs the cap) and is
``response.raw``, as in requests. Only public APIs of both are used. The head is read here,
into http.client's response (its public attributes, as ``begin`` sets them): http.client's own
``begin`` goes through the email parser (a quarter of a request's CPU) and takes a 103 Early
Hints for the final answer, where RFC 9110 section 15.2 has interim responses skipped.

Connections are opened as the lean transport opens them (``_connect``); a kept-alive one is
checked before reuse as urllib3 checks it (closed by the server, or with bytes nobody asked
for: a new one is opened).
"""

from __future__ import annotations

import http.client
import io
import time
from typing import Any

import urllib3
from requests.exceptions import RequestException

from mpswarm.http import _errors, _limits
from mpswarm.http._connect import connect
from mpswarm.http._connections import readable
from mpswarm.http._errors import BadResponse, BodyTooLarge
from mpswarm.http._headers import Headers
from mpswarm.http._limits import (
    MAX_HEADER_SIZE,
    MAX_HEADERS,
    MAX_INTERIM,
    READ_CHUNK,
    body_too_large,
)
from mpswarm.http._transport import KeepAlive, Outgoing, Stale
from mpswarm.http.response import Later, Response

_ONE_SEND = 65536  # a larger body is sent after the head, not copied onto it


class _Connection:
    """A kept-alive socket and what opening it took (reported with its first response)."""

    __slots__ = ("opened", "sock", "used")

    def __init__(self, sock: Any, opened: tuple[int, int]) -> None:
        self.sock = sock
        self.opened = opened
        self.used = False

    def dropped(self) -> bool:
        """urllib3's check before reuse: closed by the server, or unasked bytes waiting."""
        return readable(self.sock)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Urllib3Transport(KeepAlive):
    """HttpUser's connections for one session (or for every session sharing a
    ``pool_manager``: Locust's attribute; sessions given the same object share their idle
    connections)."""

    __slots__ = ()

    def _open(self, request: Outgoing) -> _Connection:
        return _Connection(*connect(request))

    def _roundtrip(
        self, connection: _Connection, key: Any, request: Outgoing, limit: int, stream: bool
    ) -> Response:
        reused = connection.used
        connection.used = True
        sock = connection.sock
        options = request.options
        head: _Head | None = None
        try:
            sock.settimeout(options.read_timeout)
            sent_bytes = _send(sock, request)
            sent = time.perf_counter()
            head = _Head(sock, method=request.method)
            head.begin()
        except RequestException:
            connection.close()
            raise
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            connection.close()
            if reused and (head is None or not head.answered):
                raise Stale() from None
            raise _errors.from_urllib3(exc) from None
        except TimeoutError:
            connection.close()
            raise _errors.read_timeout(options.read_timeout) from None
        except (http.client.HTTPException, OSError) as exc:
            connection.close()
            raise _errors.from_urllib3(exc) from None
        except BaseException:
            connection.close()
            raise
        opened = (-1, -1) if reused else connection.opened
        response = Response(head.status, head.reason, head.headers, None, request.url)
        response._phases = (*opened, _us(head.first_byte - sent), sent_bytes)
        idle = self

        def done(raw: _Raw | None = None) -> None:
            """The body ended, or its reading stopped: keep the connection for the next
            request only when the body was read to its end (by http.client, or by urllib3's
            chunked reading, which ends at the last chunk: ``chunk_left`` 0)."""
            complete = head.complete or (
                raw is not None and raw.chunked and raw.chunk_left == 0 and head.isclosed()
            )
            if complete and not head.will_close:
                idle.keep(key, connection)
            else:
                head.close()
                connection.close()

        if stream:
            response.raw = _Raw(head, request, done)
            response._limit = limit
            return response
        coded = head.headers.get("Content-Encoding")
        raw: _Raw | None = None
        try:
            if coded is None and head.length is not None:
                response._content = _read_announced(head, limit, options.read_timeout)
            else:
                raw = response.raw = _Raw(head, request, done)
                response._content = _read_coded(raw, limit, coded)
        except BaseException:
            # ``done`` runs once: a connection whose body was all read is kept (a body over
            # the cap once decoded, say), any other closed.
            if raw is not None:
                raw.close()
            else:
                done()
            raise
        if raw is None:
            done()
            response.raw = Later(lambda: _Raw(head, request, None, io.BytesIO()))
        else:
            raw.release_conn()  # (urllib3 has, where the body ended: done runs once)
        return response


def _send(sock: Any, request: Outgoing) -> int:
    """Write the head and body with ``send`` (gevent's ``sendall`` asks the kernel for the
    send buffer's size on every call); returns the bytes written."""
    body = request.body
    head = request.head
    if body is None:
        return _send_all(sock, head)
    if isinstance(body, bytes):
        if len(body) <= _ONE_SEND:
            return _send_all(sock, head + body)
        return _send_all(sock, head) + _send_all(sock, body)
    total = _send_all(sock, head)
    for piece in body:
        total += _send_all(sock, piece)
    return total


def _send_all(sock: Any, data: bytes) -> int:
    sent = sock.send(data)
    if sent < len(data):
        view = memoryview(data)
        while sent < len(data):
            sent += sock.send(view[sent:])
    return len(data)


class _Head(http.client.HTTPResponse):
    """http.client's response, its status line and headers read here.

    As http.client reads them (its limits: a line of at most 64 KiB, at most 100 headers),
    into the attributes ``begin`` sets; interim (1xx) responses are skipped, at most
    ``MAX_INTERIM`` of them, and a 101 to a request that asked for no upgrade is refused.
    ``headers`` (and ``msg``) are a ``Headers`` mapping, which answers ``get``,
    ``get_all`` and ``items`` as http.client's message does.
    """

    first_byte = 0.0
    answered = False  # a byte of the answer arrived
    complete = False  # the body was read to its end (not cut short by an error or a close)
    set_cookie = False  # a Set-Cookie line is among the headers

    def __init__(self, sock: Any, method: str) -> None:
        super().__init__(sock, method=method)
        self.request_method = method

    def read(self, amt: int | None = None) -> bytes:
        data = super().read(amt)
        if self.fp is None:  # http.client closes itself once the body has ended
            self.complete = True
        return data

    def read1(self, n: int = -1) -> bytes:
        data = super().read1(n)
        if self.fp is None:
            self.complete = True
        return data

    def begin(self) -> None:
        if self.headers is not None:
            return
        interim = 0
        while True:
            version, status, reason = self._status_line()
            pairs = self._header_lines()
            if status >= 200:
                break
            if status == 101:
                raise BadResponse(_limits.UNASKED_UPGRADE)
            interim += 1
            if interim > MAX_INTERIM:
                raise BadResponse(_limits.TOO_MANY_INTERIM)
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        headers = Headers(pairs, self.set_cookie)
        self.headers = self.msg = headers
        coding = headers.get("transfer-encoding")
        self.chunked = bool(coding) and coding.lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._closes(headers)
        self.length = None
        length = headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (204, 304) or self.request_method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True

    def _status_line(self) -> tuple[str, int, str]:
        line = self.fp.readline(MAX_HEADER_SIZE + 1)
        if not self.answered:
            self.first_byte = time.perf_counter()
            self.answered = bool(line)
        if len(line) > MAX_HEADER_SIZE:
            raise http.client.LineTooLong("status line")
        if not line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        text = str(line, "iso-8859-1")
        parts = text.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise http.client.BadStatusLine(text)
        try:
            status = int(parts[1])
        except ValueError:
            raise http.client.BadStatusLine(text) from None
        if not 100 <= status <= 999:
            raise http.client.BadStatusLine(text)
        return parts[0], status, parts[2] if len(parts) > 2 else ""

    def _header_lines(self) -> list[tuple[str, str]]:
        """``Name: value`` pairs in order, the value without the spaces before it (as
        http.client's); an obsolete folded line continues the value before it after one space
        (RFC 9112 section 5.2, as urllib3 2.8 replaces the fold); a line that is no header is
        left out (the email parser records it as a defect, urllib3 logs it)."""
        pairs: list[tuple[str, str]] = []
        count = 0
        while True:
            line = self.fp.readline(MAX_HEADER_SIZE + 1)
            if len(line) > MAX_HEADER_SIZE:
                raise http.client.LineTooLong("header line")
            if line in (b"\r\n", b"\n", b""):
                return pairs
            count += 1
            if count > MAX_HEADERS:
                raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
            text = str(line, "iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t"):
                if pairs:
                    name, value = pairs[-1]
                    pairs[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if colon and name and name == name.strip():
                pairs.append((name, value.lstrip(" \t")))
                if len(name) == 10 and name.lower() == "set-cookie":
                    self.set_cookie = True

    def _closes(self, headers: Headers) -> bool:
        """Whether the server closes the connection after this response (http.client's rule:
        HTTP/1.1 unless ``Connection: close``, HTTP/1.0 only with a keep-alive)."""
        connection = headers.get("connection")
        if self.version == 11:
            return bool(connection) and "close" in connection.lower()
        if headers.get("keep-alive"):
            return False
        if connection and "keep-alive" in connection.lower():
            return False
        proxy = headers.get("proxy-connection")
        return not (proxy and "keep-alive" in proxy.lower())


class _Raw(urllib3.HTTPResponse):
    """urllib3's response over http.client's (``response.raw``, as in requests), calling
    ``done`` once its body has ended or it was closed (urllib3 calls ``release_conn`` then)."""

    def __init__(self, head: _Head, request: Outgoing, done: Any, body: Any = None) -> None:
        headers = urllib3.HTTPHeaderDict()
        for name, value in head.headers.pairs():  # type: ignore[attr-defined]
            headers.add(name, value)
        super().__init__(
            body=head if body is None else body,
            headers=headers,
            status=head.status,
            version=head.version,
            version_string="HTTP/1.1" if head.version == 11 else "HTTP/1.0",
            reason=head.reason,
            preload_content=False,
            decode_content=True,
            original_response=head,
            enforce_content_length=True,
            request_method=request.method,
            request_url=request.url,
        )
        self._mpswarm_done = done

    def release_conn(self) -> None:
        self._finish()
        super().release_conn()

    def close(self) -> None:
        super().close()
        self._finish()

    def _finish(self) -> None:
        done = self._mpswarm_done
        if done is not None:
            self._mpswarm_done = None
            done(self)


def _read_announced(head: _Head, limit: int, timeout: float | None) -> bytes:
    """A body of announced length and no coding, read by http.client in one piece."""
    if head.length is not None and head.length > limit:
        raise BodyTooLarge(body_too_large(limit))
    try:
        return head.read()
    except RequestException:
        raise
    except http.client.IncompleteRead:
        raise _errors.BodyIncomplete(_limits.INCOMPLETE_BODY) from None
    except TimeoutError:
        raise _errors.read_timeout(timeout) from None
    except (http.client.HTTPException, OSError) as exc:
        raise _errors.from_urllib3(exc) from None


def _read_coded(raw: Any, limit: int, coded: str | None) -> bytes:
    """The whole decoded body of a urllib3 response, or BodyTooLarge past ``limit`` bytes.

    urllib3 (2.6 and later) decompresses at most what ``read(amt)`` asks for, so a gzip bomb
    is counted as it inflates, never inflated whole.
    """
    try:
        length = raw.length_remaining  # the Content-Length still to come, None if unknown
        if length is not None and length > limit:
            raise BodyTooLarge(body_too_large(limit))
        first = raw.read(READ_CHUNK)
        total = len(first)
        buffer: io.BytesIO | None = None
        while first:
            piece = raw.read(READ_CHUNK)
            if not piece:
                break
            total += len(piece)
            if total > limit or raw.tell() > limit:  # decoded, or as sent
                raise BodyTooLarge(body_too_large(limit, bool(coded) and total > limit))
            if buffer is None:
                buffer = io.BytesIO()  # getvalue() hands over its buffer: no second copy
                buffer.write(first)
            buffer.write(piece)
        if total > limit:
            raise BodyTooLarge(body_too_large(limit, bool(coded)))
        return buffer.getvalue() if buffer is not None else first
    except RequestException:
        raise
    except urllib3.exceptions.DecodeError as exc:
        raise _errors.undecodable(exc, str(coded or "")) from None
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        raise _errors.from_urllib3(exc) from None


def _us(seconds: float) -> int:
    return int(seconds * 1e6 + 0.5)
