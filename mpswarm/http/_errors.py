"""HttpUser's error texts: what urllib3 and http.client raise, as one stable line per kind.

urllib3 wraps the interesting cause (refused, reset, bad status line) in layers, and its
texts carry memory addresses, ports and byte counts that make every failure a row of its
own; what a server sent stays out of the text, so a broken server makes one row of errors,
the same one FastHttpUser's client reports (``_limits``).
"""

from __future__ import annotations

import http.client
import re

import urllib3

from mpswarm._text import printable
from mpswarm.http import _limits

_ADDRESS = re.compile(r"<[^<>]* (?:object )?at 0x[0-9a-fA-F]+>(?::\s*)?|\s*at 0x[0-9a-fA-F]+")
_READ_TIMEOUT = re.compile(r"read timeout=([0-9.]+)")


class Interrupted(Exception):
    """A request cut off because its user was stopped."""

    def __str__(self) -> str:
        return "request interrupted: user stopped while it was in flight"


def error_text(exc: BaseException) -> str:
    """A short, stable description of a request error, without memory addresses.

    urllib3 wraps the interesting cause (refused, reset, bad status line) in layers; unwrap it
    so the errors table reads ``ConnectionRefusedError: ...`` rather than ``MaxRetryError``.
    What a server sent (a garbage status line, byte counts) stays out of the text, so a
    broken server makes one row of errors, the same one FastHttpUser's client reports.
    """
    cause: BaseException = exc
    for _ in range(5):
        inner = getattr(cause, "reason", None)
        if isinstance(cause, urllib3.exceptions.ProtocolError) and len(cause.args) > 1:
            inner = cause.args[1]
        if (
            inner is None
            and isinstance(cause, urllib3.exceptions.NewConnectionError)
            and not isinstance(cause, urllib3.exceptions.NameResolutionError)  # names the host
        ):
            inner = cause.__cause__ or cause.__context__  # the OSError behind it: refused...
        if not isinstance(inner, BaseException):
            break
        cause = inner
    known = _server_error_text(cause)
    if known is not None:
        return known
    if isinstance(cause, OSError) and cause.strerror and cause.errno:
        return f"{type(cause).__name__}: [Errno {cause.errno}] {cause.strerror}"
    text = printable(_ADDRESS.sub("", str(cause)).strip())
    name = type(cause).__name__
    return f"{name}: {text}" if text else name


def _server_error_text(cause: BaseException) -> str | None:
    """The stable text of an error caused by what the server sent, None for other errors."""
    if isinstance(cause, http.client.RemoteDisconnected):
        return None  # a BadStatusLine too, but one with a fixed text
    if isinstance(cause, (http.client.BadStatusLine, http.client.UnknownProtocol)):
        line = str(cause.args[0]) if cause.args else ""
        return _limits.BAD_STATUS_LINE if line.startswith("HTTP/1.") else _limits.NOT_HTTP
    if isinstance(cause, http.client.LineTooLong):
        what = str(cause).rsplit("reading ", 1)[-1]  # header line, status line, chunk size...
        if what == "header line":
            return _limits.HEADER_LINE_TOO_LONG
        return f"BadResponse: {what} longer than {_limits.size_text(_limits.MAX_HEADER_SIZE)}"
    if isinstance(cause, http.client.HTTPException) and "more than" in str(cause):
        return _limits.TOO_MANY_HEADERS  # http.client's "got more than 100 headers"
    if isinstance(cause, urllib3.exceptions.InvalidChunkLength):
        return "BadResponse: not valid HTTP (invalid chunk length)"
    if isinstance(cause, http.client.IncompleteRead):
        return _limits.INCOMPLETE_BODY  # without its byte counts, which vary
    if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
        seconds = _READ_TIMEOUT.search(str(cause))
        after = f" after {float(seconds.group(1)):g} s" if seconds else ""
        return f"ReadTimeout: read timed out{after}"  # without the pool's host and port
    if isinstance(cause, urllib3.exceptions.DecodeError):
        return "BadResponse: cannot decode the compressed body"
    return None


__all__ = ["error_text"]
