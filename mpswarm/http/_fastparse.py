"""The lean transport's response parsing: one httptools (llhttp) parser per response.

``Parsed`` gathers one response from llhttp's callbacks: status, reason, headers and body
under the caps of ``_limits``, skipping interim (1xx) responses as RFC 9110 section 15.2 asks.
A parser serves one response and is dropped with it: llhttp keeps state between the messages
of a connection (a ``Connection: close`` it saw makes it refuse what follows), so a parser
taken from a shared free list once failed the next connection's request. A new one costs
0.6 us.

``Parsed.parser`` points back at the parser only while its response is read (the transport
clears it, whatever happens): a failed body must be freed with its response, not wait for the
cyclic garbage collector (a cycle through the parser held failed bodies of 32 MiB until a
collection: 800 MB for one user against an endless body).
"""

from __future__ import annotations

import io
from typing import Any

import httptools

from mpswarm.http import _limits
from mpswarm.http._errors import BadResponse
from mpswarm.http._limits import MAX_HEADERS, MAX_INTERIM

# (What the class reads of the parser: ``get_status_code`` and ``should_keep_alive`` when the
# headers are complete, through ``parser``, which the transport sets and clears.)


class Parsed:
    """httptools callbacks collecting one response (the final one, after any 1xx).

    Its fields are class defaults that a response overwrites as it arrives: a Parsed costs
    no more than the fields one response sets (each callback is a Python call, and a
    response of nginx's makes nine of them).

    Attributes:
        parser: the response's parser while the response is read; set to None afterwards
            (the two point at each other).
        ends: where each chunk of a chunked body ended, in the bytes received and not yet
            taken (kept for a stream, whose pieces never span two chunks, as urllib3's), or
            None.
    """

    parser: Any = None
    ends: list[int] | None = None
    keep_alive = False
    status = 0
    coding = b""  # the Content-Encoding, lower-case
    cookie = False  # a Set-Cookie line is among the headers
    # The body: its first piece as llhttp gave it (most bodies have one), then a buffer.
    body = b""
    more: io.BytesIO | None = None
    size = 0  # body bytes received (of this response, or since a stream's last read)
    headers_done = False
    complete = False
    reason = b""
    interim = 0  # 1xx responses skipped
    skipping = False  # inside a 1xx response
    extra = False  # bytes came after the response: the connection cannot be reused

    def __init__(self, chunks: bool = False) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        if chunks:
            self.ends = []

    def failed(self, exc: httptools.HttpParserError) -> None:
        """What a parser error means: nothing after the response (bytes that followed it:
        its connection is not reused), else what a callback raised (a cap, a bound on 1xx
        responses), else the parser's own error."""
        if self.complete:
            self.extra = True
            return
        error = exc.__context__
        exc.__context__ = None
        if isinstance(error, BadResponse):
            raise error
        raise exc

    def feed(self, parser: Any, data: bytes) -> None:
        """Parse ``data`` with ``parser`` (whose callbacks are this object's)."""
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.failed(exc)

    def on_status(self, status: bytes) -> None:
        if self.complete:
            # Bytes after the response: nothing was asked for them (requests are not
            # pipelined). The response stands; its connection is closed.
            raise _AfterResponse()
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))  # decoded only if the response's headers are read
        size = len(name)
        if size == 10:
            if name.lower() == b"set-cookie":
                self.cookie = True
        elif size == 16 and name.lower() == b"content-encoding":
            self.coding = value.lower()

    def on_headers_complete(self) -> None:
        if len(self.headers) > MAX_HEADERS:
            raise BadResponse(_limits.TOO_MANY_HEADERS)
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101:
                raise BadResponse(_limits.UNASKED_UPGRADE)
            self.interim += 1
            if self.interim > MAX_INTERIM:
                raise BadResponse(_limits.TOO_MANY_INTERIM)
            self.skipping = True  # an interim response: its message ends with its headers
            return
        # Read these now: llhttp resets its flags once the message is complete.
        self.keep_alive = self.parser.should_keep_alive()
        self.status = status
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if self.size:
            more = self.more
            if more is None:
                # io.BytesIO: getvalue() hands over its buffer, where b"".join of a list of
                # pieces (or bytes() of a bytearray) would hold the body twice.
                more = self.more = io.BytesIO()
                more.write(self.body)
            more.write(body)
        else:
            self.body = body
        self.size += len(body)

    def on_chunk_complete(self) -> None:
        ends = self.ends
        if ends is not None and self.size and (not ends or ends[-1] != self.size):
            ends.append(self.size)

    def take_prefix(self, size: int) -> bytes:
        """The first ``size`` bytes of the body received so far, no longer held here."""
        data = self.content()
        piece, rest = data[:size], data[size:]
        self.body, self.more, self.size = rest, None, len(rest)
        ends = self.ends
        if ends:
            self.ends = [end - size for end in ends if end > size]
        return piece

    def on_message_complete(self) -> None:
        if self.skipping:  # an interim response ended: the next message is the answer
            self.skipping = False
            self.reason = b""
            self.headers = []
            self.coding = b""
            self.cookie = False
            return
        self.complete = True

    def close_delimited(self) -> bool:
        """Whether the body ends with the connection (no Content-Length, not chunked)."""
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def take(self) -> bytes:
        """The body received so far, no longer held here (for a stream)."""
        more = self.more
        body = self.body if more is None else more.getvalue()
        self.body = b""
        self.more = None
        self.size = 0
        if self.ends:
            self.ends = []
        return body

    def content(self) -> bytes:
        """The whole body received."""
        more = self.more
        return self.body if more is None else more.getvalue()


class _AfterResponse(Exception):
    """Raised in a callback to stop llhttp at bytes that follow the response."""


def new_parser(parsed: Parsed) -> Any:
    """A parser for one response, calling back ``parsed``."""
    return httptools.HttpResponseParser(parsed)


def truncation(parsed: Parsed) -> str:
    """Why a response ended early, for its error text."""
    if not parsed.headers_done:
        return "BadResponse: the connection closed before a complete response header"
    return _limits.INCOMPLETE_BODY  # without byte counts: they vary, the error kind does not


def content_length(parsed: Parsed) -> int:
    """The response's Content-Length, 0 when it has none (llhttp has checked the number)."""
    for name, value in parsed.headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
