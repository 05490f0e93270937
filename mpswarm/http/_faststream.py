"""The body of a ``stream=True`` FastHttpUser response, read from the wire as the user asks."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import httptools
from requests.exceptions import RequestException

from mpswarm.http import _errors, _limits
from mpswarm.http._connections import Connection
from mpswarm.http._inflate import Inflater
from mpswarm.http._limits import READ_CHUNK

_RECV = 65536


class ParsedBody(Protocol):
    """What the stream needs of the client's parser state (``_fastparse.Parsed``)."""

    size: int
    complete: bool
    keep_alive: bool
    extra: bool
    ends: list[int] | None

    parser: Any

    def feed(self, parser: Any, data: bytes) -> None: ...

    def take(self) -> bytes: ...

    def take_prefix(self, size: int) -> bytes: ...

    def close_delimited(self) -> bool: ...


class FastBodyStream:
    """The unread body of a ``stream=True`` FastHttpUser response (``response.raw``).

    Read from the connection as asked, decompressed as read, never held whole, and with no
    cap; ``done(keep)`` is called once the body has ended (keep: the connection may serve the
    next request). ``close()`` before the end closes the connection instead of draining it.

    Args:
        connection: the response's connection, past its headers.
        parsed: the parser state, holding what arrived with the headers.
        parser: the response's parser.
        read_timeout: seconds to wait for each read.
        encoding: the Content-Encoding (gzip and deflate are inflated).
        done: called when the body has ended.
    """

    def __init__(
        self,
        connection: Connection,
        parsed: ParsedBody,
        parser: Any,
        read_timeout: float | None,
        encoding: str,
        done: Callable[[bool], None],
    ) -> None:
        self._connection = connection
        self._parsed: ParsedBody | None = parsed
        self._parser = parser
        self._done = done
        self._timeout = read_timeout
        self._inflater = Inflater(encoding) if encoding in ("gzip", "deflate") else None
        self._pending = b""  # decoded bytes not yet returned

    def read(self, amt: int | None = None) -> bytes:
        """Up to ``amt`` bytes of the decoded body (all the rest without it); b"" at the end."""
        if amt == 0:
            return b""  # and zlib would read 0 as "no limit"
        if amt is None or amt < 0:
            buffer = io.BytesIO()
            while piece := self.read(READ_CHUNK):
                buffer.write(piece)
            return buffer.getvalue()
        while not self._pending:
            inflater = self._inflater
            if inflater is not None and inflater.tail:
                self._pending = inflater.inflate(b"", amt)
                continue
            data = self._receive()
            if not data:
                if inflater is not None:
                    self._pending = inflater.finish()
                    self._inflater = None
                    continue
                return b""
            self._pending = data if inflater is None else inflater.inflate(data, amt)
        pending = self._pending
        if len(pending) <= amt:
            self._pending = b""
            return pending
        self._pending = pending[amt:]
        return pending[:amt]

    def stream(self, amt: int | None = 2**16, decode_content: bool = True) -> Iterator[bytes]:
        """The body in pieces of at most ``amt`` bytes (all of each chunk without ``amt``), as
        urllib3's ``stream``: a piece holds ``amt`` bytes unless a chunk of a chunked body, or
        the body, ends first; it never spans two chunks. Decoded as it goes."""
        inflater = self._inflater if decode_content else None
        step = amt or _limits.READ_CHUNK  # decoded pieces of at most this: a bomb costs a step
        while True:
            piece = self._piece(amt)
            if not piece:
                break
            if inflater is None:
                yield piece
                continue
            data = inflater.inflate(piece, step)
            while True:
                if data:
                    yield data
                if not inflater.tail:
                    break
                data = inflater.inflate(b"", step)
        if inflater is not None:
            rest = inflater.finish()
            self._inflater = None
            if rest:
                yield rest

    def _piece(self, amt: int | None) -> bytes:
        """The next piece of the body as received (see ``stream``); b"" at its end."""
        parsed = self._parsed
        if parsed is None:
            return b""
        try:
            while True:
                ends = parsed.ends
                if ends:
                    return parsed.take_prefix(min(ends[0], amt or ends[0]))
                if amt and parsed.size >= amt:
                    return parsed.take_prefix(amt)
                if parsed.complete:
                    piece = parsed.take()
                    self._release()
                    self._done(parsed.keep_alive and not parsed.extra)
                    return piece
                if not self._more(parsed):
                    piece = parsed.take()
                    self._release()
                    self._done(False)
                    return piece
        except BaseException:
            self.close()
            raise

    def _more(self, parsed: ParsedBody) -> bool:
        """Receive and parse more of the body; False when the connection ended it."""
        try:
            chunk = self._connection.recv(_RECV, self._timeout)
        except RequestException:
            raise
        except TimeoutError:
            raise _errors.read_timeout(self._timeout) from None
        except OSError as exc:
            raise _errors.os_error(exc) from None
        if not chunk:
            if parsed.close_delimited():
                return False
            raise _errors.BodyIncomplete(_limits.INCOMPLETE_BODY)
        try:
            parsed.feed(self._parser, chunk)
        except httptools.HttpParserError as exc:
            raise _errors.BadResponse(_errors.parser_error_text(exc)) from None
        return True

    def _receive(self) -> bytes:
        """The next body bytes from the wire, b"" once the body has ended."""
        parsed = self._parsed
        if parsed is None:
            return b""
        try:
            while True:
                if parsed.size:
                    return parsed.take()
                if parsed.complete:
                    self._release()
                    self._done(parsed.keep_alive and not parsed.extra)
                    return b""
                if not self._more(parsed):
                    self._release()
                    self._done(False)
                    return b""
        except BaseException:
            self.close()
            raise

    def _release(self) -> None:
        """Drop the parser and its state (they point at each other)."""
        if self._parsed is not None:
            self._parsed.parser = None
        self._parsed = self._parser = None

    def close(self) -> None:
        """Done with the body: the connection is closed unless the body was read to its end."""
        if self._parsed is not None:
            self._release()
            self._connection.close()
        self._pending = b""
        self._inflater = None
