"""The body of a ``stream=True`` FastHttpUser response, read from the wire as the user asks."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Protocol

from mpswarm.http import _limits
from mpswarm.http._inflate import Inflater
from mpswarm.http._limits import READ_CHUNK, BadResponse
from mpswarm.http._transport import Connection

_RECV = 65536


class ParsedBody(Protocol):
    """What the stream needs of the client's parser state (``_fastparse.Parsed``)."""

    size: int
    complete: bool
    keep_alive: bool
    parser: Any

    def take(self) -> bytes: ...

    def close_delimited(self) -> bool: ...


class FastBodyStream:
    """The unread body of a ``stream=True`` FastHttpUser response (``response.raw``).

    Read from the connection as asked, decompressed as read, never held whole, and with no
    cap; ``done(keep)`` is called once the body has ended (keep: the connection may serve the
    next request). ``close()`` before the end closes the connection instead of draining it.

    Args:
        connection: the response's connection, past its headers.
        parsed: the parser state, holding what arrived with the headers.
        read_timeout: seconds to wait for each read.
        encoding: the Content-Encoding (gzip and deflate are inflated).
        done: called when the body has ended.
    """

    def __init__(
        self,
        connection: Connection,
        parsed: ParsedBody,
        read_timeout: float,
        encoding: str,
        done: Callable[[bool], None],
    ) -> None:
        self._connection = connection
        self._parsed: ParsedBody | None = parsed
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
                    self._parsed = None
                    self._done(parsed.keep_alive)
                    return b""
                chunk = self._connection.recv(_RECV, self._timeout)
                if not chunk:
                    if parsed.close_delimited():
                        self._parsed = None
                        self._done(False)
                        return b""
                    raise BadResponse(_limits.INCOMPLETE_BODY)
                parsed.parser.feed_data(chunk)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Done with the body: the connection is closed unless the body was read to its end."""
        if self._parsed is not None:
            self._parsed = None
            self._connection.close()
        self._pending = b""
        self._inflater = None
