"""Text that came from a server, made safe for a terminal, a log, a report or a web page.

A reason phrase, an error text or a URL echoed back by a server can carry terminal escape
sequences (``\\x1b[2J`` clears the screen, ``\\x1b]0;...\\x07`` sets the window title), bidi
overrides that reorder what a reader sees, or megabytes of garbage. Every such string passes
through :func:`printable` once, where it enters the statistics (error texts, request names,
exception messages) and where it is logged, so every reporter downstream gets text that shows
what was sent without acting on it. HTML escaping stays the job of the HTML writers.
"""

from __future__ import annotations

import logging
from typing import Any

#: Longest server-provided text kept (characters); the rest is counted, not kept.
MAX_TEXT = 500


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` with control and format characters escaped and its length capped.

    Letters of every script stay as they are; C0/C1 controls (escape sequences, newlines,
    carriage returns, bells), DEL, bidi overrides and other invisible format characters become
    ``\\xNN`` / ``\\uNNNN``. Past ``limit`` characters the text is cut and the cut is said.

    Args:
        text: the untrusted string.
        limit: most characters kept from ``text`` (before escaping).

    Returns:
        A string that prints as one line and does nothing to a terminal.
    """
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    if not text.isprintable():
        text = "".join(char if char.isprintable() else _escape(char) for char in text)
    if cut > 0:
        text = f"{text}... ({cut} more characters)"
    return text


def printable_bytes(data: bytes, limit: int = MAX_TEXT) -> str:
    """Bytes from the wire as :func:`printable` text (undecodable bytes escaped as ``\\xNN``)."""
    return printable(data[: limit * 4].decode("utf-8", "backslashreplace"), limit)


class PrintableFormatter(logging.Formatter):
    """A log formatter whose output cannot drive the terminal it is written to.

    A log message often quotes a server, or an exception that quotes one. Each line of the
    message, of a traceback (``-L DEBUG``) and of a stack is escaped; line breaks stay (texts
    that travel through the statistics were escaped whole before, newlines included).
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The record's line, with its message made printable (no length cap)."""
        message = record.message
        if not message.isprintable():
            record.message = printable_lines(message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        """The traceback, each of its lines made printable."""
        return printable_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        """The stack, each of its lines made printable."""
        return printable_lines(super().formatStack(stack_info))


def printable_lines(text: str) -> str:
    """Each line of ``text`` made :func:`printable` (no length cap); the line breaks stay."""
    return "\n".join(printable(line, limit=len(line)) for line in text.split("\n"))


def without_credentials(url: str) -> str:
    """``url`` as reports and logs show it: a ``user:password@`` part becomes ``***@``."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{path}"
