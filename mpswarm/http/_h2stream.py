"""The body of a ``stream=True`` HTTP/2 response (``_h2``), read from its stream as asked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mpswarm.http import _errors, _limits
from mpswarm.http._inflate import Inflater
from mpswarm.http._limits import READ_CHUNK


class H2BodyStream:
    """The unread body of a ``stream=True`` HTTP/2 response (``response.raw``): acknowledged
    as it is read (so an unread body holds at most the stream's window), decoded as read,
    with no cap. ``close()`` before the end cancels the stream.
    """

    def __init__(
        self, conn: Any, st: Any, timeout: float | None, coding: str, finish: Callable[[], None]
    ) -> None:
        self._conn = conn
        self._st: Any = st
        self._finish = finish
        self._timeout = timeout
        self._inflater = Inflater(coding) if coding in ("gzip", "deflate") else None
        self._pending = b""

    def _piece(self) -> bytes:
        """The next piece of the body as received; b"" at its end."""
        st = self._st
        if st is None:
            return b""
        conn = self._conn
        try:
            while not st.data:
                if st.ended:
                    self.close()
                    return b""
                if st.error is not None:
                    raise _errors.BodyIncomplete(f"{_limits.INCOMPLETE_BODY} ({st.error})")
                conn.wait(st, lambda: bool(st.data or st.ended or st.error is not None),
                          self._timeout)  # fmt: skip
            piece = st.data.pop(0)
            st.size -= len(piece)
            if st.unacked:
                conn.h2.acknowledge_received_data(st.unacked, st.id)
                st.unacked = 0
                conn.flush(self._timeout)
            return piece
        except BaseException:
            self.close()
            raise

    def read(self, amt: int | None = None) -> bytes:
        """Up to ``amt`` bytes of the decoded body (all the rest without it); b"" at the end."""
        if amt == 0:
            return b""
        if amt is None or amt < 0:
            return b"".join(self.stream(None))
        while not self._pending:
            piece = self._next_decoded(amt)
            if not piece:
                return b""
            self._pending = piece
        pending = self._pending
        self._pending = pending[amt:]
        return pending[:amt]

    def _next_decoded(self, amt: int) -> bytes:
        inflater = self._inflater
        while True:
            if inflater is not None and inflater.tail:
                return inflater.inflate(b"", amt)
            piece = self._piece()
            if not piece:
                if inflater is not None:
                    self._inflater = None
                    return inflater.finish()
                return b""
            if inflater is None:
                return piece
            data = inflater.inflate(piece, amt)
            if data:
                return data

    def stream(self, amt: int | None = 2**16, decode_content: bool = True) -> Iterator[bytes]:
        """The body in decoded pieces of at most ``amt`` bytes (urllib3's ``stream``)."""
        step = amt or READ_CHUNK
        if self._pending:
            pending, self._pending = self._pending, b""
            yield pending
        if not decode_content:
            self._inflater = None
        while piece := self._next_decoded(step):
            if amt and len(piece) > amt:
                for start in range(0, len(piece), amt):
                    yield piece[start : start + amt]
            else:
                yield piece

    def close(self) -> None:
        """Cancel the stream if its body has not ended (the connection stays)."""
        st, self._st = self._st, None
        if st is not None:
            self._finish()
