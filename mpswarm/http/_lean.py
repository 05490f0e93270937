"""FastHttpUser's transport: a lean HTTP/1.1 client on gevent sockets and httptools (llhttp).

It sends the head and body the session made with one system call where it can, parses the
response with a parser of its own (``_fastparse``), keeps the connection while the server
keeps it alive, and holds no more of a response than the caps allow (``_limits``): the status
line and headers, the body as received and as decompressed. A body is gathered in one buffer
that becomes ``content`` without a copy, so a body of N bytes costs N bytes, not twice that.
"""

from __future__ import annotations

import time
from typing import Any

from httptools import HttpParserError, HttpResponseParser
from requests.exceptions import RequestException

from mpswarm.http import _errors, _limits
from mpswarm.http._connect import connect
from mpswarm.http._connections import Connection, GeventConnection, PlainConnection
from mpswarm.http._errors import BadResponse, BodyTooLarge
from mpswarm.http._fastparse import Parsed, content_length, truncation
from mpswarm.http._faststream import FastBodyStream
from mpswarm.http._headers import Headers
from mpswarm.http._inflate import decompress
from mpswarm.http._limits import MAX_HEADER_SIZE, MAX_HEADERS, body_too_large
from mpswarm.http._transport import KeepAlive, Outgoing, Stale
from mpswarm.http.response import Response

_RECV = 65536
_now = time.perf_counter
_NO_BODY_STATUS = frozenset((204, 304))


class LeanTransport(KeepAlive):
    """The lean client's connections for one session (or for every session sharing a
    ``client_pool``).

    Args:
        pool: Locust's ``client_pool``: sessions given the same object share their idle
            connections.
        ssl_context_factory: makes the TLS context of each new https connection (Locust's
            option); its errors are raised, as a bug of the locustfile.
    """

    __slots__ = ("factory",)

    def __init__(self, pool: Any = None, ssl_context_factory: Any = None) -> None:
        super().__init__(pool)
        self.factory = ssl_context_factory

    def _open(self, request: Outgoing) -> Connection:
        sock, opened = connect(request, self.factory)
        plain = request.origin[0] == "http"
        connection = PlainConnection(sock) if plain else GeventConnection(sock)
        connection.opened = opened
        return connection

    # -- one exchange ------------------------------------------------------------------------
    def _roundtrip(
        self, connection: Connection, key: Any, request: Outgoing, limit: int, stream: bool
    ) -> Response:
        """One request and its response, on ``connection``."""
        reused = connection.used
        connection.used = True
        read_timeout = request.options.read_timeout
        parsed = Parsed(stream)
        parser = parsed.parser = HttpResponseParser(parsed)
        got = 0  # bytes received
        try:
            if request.body is None:
                head = request.head
                connection.sendall(head, read_timeout)
                sent_bytes = len(head)
            else:
                sent_bytes = _send(connection, request, read_timeout)
            sent = _now()
            chunk = connection.recv(_RECV, read_timeout, True)
            if not chunk:
                if reused:
                    raise Stale()
                raise BadResponse(truncation(parsed))
            first_byte = _now()
            got = len(chunk)
            try:
                parser.feed_data(chunk)
            except HttpParserError as exc:
                parsed.failed(exc)
            if not parsed.complete:  # a longer response (most are in the first read)
                got = _receive(connection, parsed, parser, got, request, limit, stream)
            elif parsed.size > limit and not stream:
                raise BodyTooLarge(body_too_large(limit))
        except RequestException:
            connection.close()
            raise
        except TimeoutError:
            connection.close()
            raise _errors.read_timeout(read_timeout) from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            connection.close()
            if not got and reused:
                raise Stale() from None
            raise _errors.os_error(exc) from None
        except OSError as exc:
            connection.close()
            raise _errors.os_error(exc) from None
        except HttpParserError as exc:
            connection.close()
            raise BadResponse(_errors.parser_error_text(exc)) from None
        except BaseException:
            connection.close()
            raise
        finally:
            if not stream:
                parsed.parser = None  # (a stream keeps it until its body has ended)
        ttfb = int((first_byte - sent) * 1e6 + 0.5)
        if reused:
            phases = (-1, -1, ttfb, sent_bytes)
        else:
            opened = connection.opened
            phases = (opened[0], opened[1], ttfb, sent_bytes)
        status = parsed.status
        headers = Headers(parsed.headers, parsed.cookie)
        reason = parsed.reason.decode("latin-1")
        method = request.method
        if stream and not (method == "HEAD" or status in _NO_BODY_STATUS):
            response = Response(status, reason, headers, None, request.url)
            response.raw = self._stream(connection, key, parsed, parser, read_timeout, headers)
            response._limit = limit
            response._phases = phases
            return response
        if (
            parsed.keep_alive
            and not parsed.extra
            and (parsed.complete or method == "HEAD" or status in _NO_BODY_STATUS)
        ):
            if self._one is None and self._shared is None:  # (keep's common case, inline)
                self._one, self._key = connection, key
            else:
                self.keep(key, connection)
        else:
            connection.close()
        more = parsed.more
        content = parsed.body if more is None else more.getvalue()
        coding = parsed.coding
        if coding and content and coding in (b"gzip", b"deflate"):
            content = decompress(content, coding.decode(), limit)
        response = Response(status, reason, headers, content, request.url)
        response._phases = phases
        return response

    def _stream(
        self,
        connection: Connection,
        key: Any,
        parsed: Parsed,
        parser: Any,
        read_timeout: float | None,
        headers: Headers,
    ) -> FastBodyStream:
        """The body of a ``stream=True`` response, left on the wire for the user to read."""

        def done(keep: bool) -> None:
            if keep:
                self.keep(key, connection)
            else:
                connection.close()

        encoding = headers.get("Content-Encoding", "").lower()
        return FastBodyStream(connection, parsed, parser, read_timeout, encoding, done)


def _receive(
    connection: Connection,
    parsed: Parsed,
    parser: Any,
    got: int,
    request: Outgoing,
    limit: int,
    stream: bool,
) -> int:
    """The rest of a response the first read (``got`` bytes) did not complete, its body's
    caps checked as it arrives; returns the bytes received in all."""
    method = request.method
    read_timeout = request.options.read_timeout
    announced = False  # the Content-Length was checked against the cap
    while True:
        if parsed.headers_done:
            if method == "HEAD" or parsed.status in _NO_BODY_STATUS:
                return got
            if stream:
                return got  # the body is the user's to read
            if not announced:
                announced = True
                if content_length(parsed) > limit:  # fail now, not after the cap's worth
                    raise BodyTooLarge(body_too_large(limit))
            if parsed.size > limit:
                raise BodyTooLarge(body_too_large(limit))
        elif len(parsed.headers) > MAX_HEADERS:
            raise BadResponse(_limits.TOO_MANY_HEADERS)
        elif got > MAX_HEADER_SIZE * (parsed.interim + 1):
            raise BadResponse(_limits.HEADERS_TOO_LARGE)
        chunk = connection.recv(_RECV, read_timeout)
        if not chunk:
            if parsed.headers_done and parsed.close_delimited():
                return got  # the body ends with the connection
            error = BadResponse if not parsed.headers_done else _errors.BodyIncomplete
            raise error(truncation(parsed))
        got += len(chunk)
        try:
            parser.feed_data(chunk)
        except HttpParserError as exc:
            parsed.failed(exc)
        if parsed.complete:
            if parsed.size > limit and not stream:
                raise BodyTooLarge(body_too_large(limit))
            return got


def _send(connection: Connection, request: Outgoing, timeout: float | None) -> int:
    """Write the head and body; returns the bytes written."""
    body = request.body
    head = request.head
    if body is None:
        connection.sendall(head, timeout)
        return len(head)
    if isinstance(body, bytes):
        if len(body) <= _ONE_SEND:
            data = head + body  # one system call for a small request
            connection.sendall(data, timeout)
            return len(data)
        connection.sendall(head, timeout)
        connection.sendall(body, timeout)
        return len(head) + len(body)
    connection.sendall(head, timeout)
    total = len(head)
    for piece in body:
        connection.sendall(piece, timeout)
        total += len(piece)
    return total


_ONE_SEND = 65536  # a larger body is sent after the head, not copied onto it
