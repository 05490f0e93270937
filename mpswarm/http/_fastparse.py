"""FastHttpUser's response parsing: httptools (llhttp) callbacks and the headers they collect.

``Parsed`` gathers one response (status, headers, body under the caps of ``_limits``) for
``fastclient``; ``Headers`` is the case-insensitive view a response gives of them.
"""

from __future__ import annotations

import io
from typing import Any

from mpswarm.http import _limits
from mpswarm.http._limits import MAX_HEADERS, BadResponse


class Parsed:
    """httptools callbacks collecting one response."""

    __slots__ = (
        "body",
        "complete",
        "headers",
        "headers_done",
        "keep_alive",
        "more",
        "parser",
        "reason",
        "size",
        "status",
    )

    def __init__(self) -> None:
        self.parser: Any = None
        self.reset()

    def reset(self) -> None:
        """Ready for the next response on the same connection (one parser per connection)."""
        self.keep_alive = False
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        # The body: its first piece as llhttp gave it (most bodies have one), then a buffer.
        self.body = b""
        self.more: io.BytesIO | None = None
        self.size = 0  # body bytes received (of this response, or since a stream's last read)
        self.headers_done = False
        self.complete = False
        self.reason = b""

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if len(self.headers) > MAX_HEADERS:
            raise BadResponse(_limits.TOO_MANY_HEADERS)
        # Read these now: llhttp resets its flags once the message is complete.
        self.keep_alive = self.parser.should_keep_alive()
        self.status = self.parser.get_status_code()
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

    def close_delimited(self) -> bool:
        """Whether the body ends with the connection (no Content-Length, not chunked)."""
        names = {name.lower() for name, _ in self.headers}
        return "content-length" not in names and "transfer-encoding" not in names

    def take(self) -> bytes:
        """The body received so far, no longer held here (for a stream)."""
        more = self.more
        body = self.body if more is None else more.getvalue()
        self.body = b""
        self.more = None
        self.size = 0
        return body

    def on_message_complete(self) -> None:
        self.complete = True


class Headers:
    """Case-insensitive response headers, built lazily (cheaper than a full mapping)."""

    __slots__ = ("_index", "_pairs")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._index: dict[str, str] | None = None

    def _lookup(self) -> dict[str, str]:
        if self._index is None:
            index: dict[str, str] = {}
            for name, value in self._pairs:
                key = name.lower()
                index[key] = f"{index[key]}, {value}" if key in index else value
            self._index = index
        return self._index

    def get(self, name: str, default: Any = None) -> Any:
        return self._lookup().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._lookup()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def getlist(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self._pairs if key.lower() == lowered]

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def keys(self) -> list[str]:
        return [key for key, _ in self._pairs]

    def __iter__(self) -> Any:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


def truncation(parsed: Parsed) -> str:
    """Why a response ended early, for its error text."""
    if not parsed.headers_done:
        return "the connection closed before a complete response header"
    return _limits.INCOMPLETE_BODY  # without byte counts: they vary, the error kind does not


def content_length(parsed: Parsed) -> int:
    """The response's Content-Length, 0 when it has none (llhttp has checked the number)."""
    for name, value in parsed.headers:
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
