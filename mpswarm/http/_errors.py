"""The errors a request can end in: requests' exception types, each with one stable text.

A locustfile catches what requests raises (``except requests.ConnectionError``), so each
failure is an instance of the requests class requests would raise for it: a refused or reset
connection and a response that is no HTTP are a ``ConnectionError``, a slow server a
``ConnectTimeout`` or ``ReadTimeout``, a body cut short a ``ChunkedEncodingError``. The
classes here are subclasses of those, defined in this module, so the statistics show their
text alone: one line per kind, without the memory addresses, ports and byte counts urllib3's
texts carry (each would make a row of its own), and without what a server sent.

Both transports raise these and only these; the session records them.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl

import requests.exceptions as rx
import urllib3

from mpswarm._text import printable
from mpswarm.http import _limits


class BadResponse(rx.ConnectionError):
    """The server's answer is not valid HTTP/1.1 (requests: a ConnectionError)."""


class ConnectionFailed(rx.ConnectionError):
    """No connection, or the connection broke (refused, reset, no such host)."""


class ConnectTimedOut(rx.ConnectTimeout):
    """The connection was not made in time."""


class ReadTimedOut(rx.ReadTimeout):
    """The server sent nothing for longer than the read timeout."""


class TLSFailed(rx.SSLError):
    """The TLS handshake failed (a certificate that does not verify, a protocol error)."""


class ProxyFailed(rx.ProxyError):
    """The proxy refused the tunnel or could not be reached."""


class BodyIncomplete(rx.ChunkedEncodingError):
    """The connection closed before the end of the body."""


class BodyUndecodable(rx.ContentDecodingError):
    """A gzip, deflate, br or zstd body that does not decode."""


class BodyTooLarge(rx.RequestException):
    """A response body (or a line of it) over its cap (``max_body_size``)."""


class RedirectLimit(rx.TooManyRedirects):
    """More redirects than ``max_redirects`` (requests' text)."""


class StatusError(rx.HTTPError):
    """A 4xx or 5xx status, recorded as a failure (Locust's text)."""


class Interrupted(rx.RequestException):
    """A request cut off because its user was stopped."""

    def __str__(self) -> str:
        return "request interrupted: user stopped while it was in flight"


_ADDRESS = re.compile(r"<[^<>]* (?:object )?at 0x[0-9a-fA-F]+>(?::\s*)?|\s*at 0x[0-9a-fA-F]+")
_READ_TIMEOUT = re.compile(r"read timeout=([0-9.]+)")
_CONNECT_TIMEOUT = re.compile(r"connect timeout=([0-9.]+)")


def os_error(exc: OSError) -> rx.RequestException:
    """The error of a failed system call on a connection (refused, reset, unreachable); its
    ``original`` is that OSError (Locust's FastHttpUser reports it as it is)."""
    error = _os_error(exc)
    error.original = scrubbed(exc)  # type: ignore[attr-defined]
    return error


def _os_error(exc: OSError) -> rx.RequestException:
    if isinstance(exc, socket.gaierror):
        return ConnectionFailed(f"NameResolutionError: {exc.strerror or exc}")
    if isinstance(exc, ssl.SSLError):
        return TLSFailed(f"SSLError: {printable(str(exc.reason or exc), 200)}")
    if isinstance(exc, ssl.CertificateError):
        return TLSFailed(f"SSLError: {printable(str(exc), 200)}")
    if exc.strerror and exc.errno:
        return ConnectionFailed(f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}")
    text = printable(_ADDRESS.sub("", str(exc)).strip())
    return ConnectionFailed(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def read_timeout(seconds: float | None) -> ReadTimedOut:
    """The error of a read that waited longer than ``seconds``."""
    after = f" after {seconds:g} s" if seconds is not None else ""
    return ReadTimedOut(f"ReadTimeout: read timed out{after}")


def connect_timeout(seconds: float | None) -> ConnectTimedOut:
    """The error of a connection not made within ``seconds``."""
    after = f" after {seconds:g} s" if seconds is not None else ""
    return ConnectTimedOut(f"ConnectTimeout: connect timed out{after}")


def from_urllib3(exc: BaseException) -> rx.RequestException:
    """The error for what urllib3 or http.client raised (HttpUser's transport).

    urllib3 wraps the interesting cause (refused, reset, bad status line) in layers: they are
    unwrapped, so the errors table reads ``ConnectionRefusedError: ...`` rather than
    ``MaxRetryError``.
    """
    if isinstance(exc, rx.RequestException):
        return exc
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        seconds = _READ_TIMEOUT.search(str(exc))
        return read_timeout(float(seconds.group(1)) if seconds else None)
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        seconds = _CONNECT_TIMEOUT.search(str(exc))
        return connect_timeout(float(seconds.group(1)) if seconds else None)
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return undecodable(exc)
    if isinstance(exc, urllib3.exceptions.ProxyError):
        original = exc.original_error
        if isinstance(original, BaseException) and original is not exc:
            return ProxyFailed(f"ProxyError: {from_urllib3(original)}")
        return ProxyFailed("ProxyError")
    cause = _innermost(exc)
    if isinstance(cause, (http.client.IncompleteRead, urllib3.exceptions.IncompleteRead)):
        return BodyIncomplete(_limits.INCOMPLETE_BODY)  # without its byte counts, which vary
    if isinstance(cause, urllib3.exceptions.InvalidChunkLength):
        return BodyIncomplete("BadResponse: not valid HTTP (invalid chunk length)")
    known = _server_error_text(cause)
    if known is not None:
        return BadResponse(known)
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return read_timeout(None)
    if isinstance(cause, (urllib3.exceptions.SSLError, ssl.SSLError, ssl.CertificateError)):
        inner: BaseException = cause
        if cause.args and isinstance(cause.args[0], Exception):
            inner = cause.args[0]
        if isinstance(inner, (ssl.SSLError, ssl.CertificateError)):
            return os_error(inner)
        return TLSFailed(f"SSLError: {printable(_ADDRESS.sub('', str(inner)), 200)}")
    if isinstance(cause, OSError):
        return os_error(cause)
    text = printable(_ADDRESS.sub("", str(cause)).strip())
    name = type(cause).__name__
    return ConnectionFailed(f"{name}: {text}" if text else name)


def _innermost(exc: BaseException) -> BaseException:
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
    return cause


def _server_error_text(cause: BaseException) -> str | None:
    """The stable text of an error caused by what the server sent, None for other errors."""
    if isinstance(cause, http.client.RemoteDisconnected):
        return "BadResponse: the connection closed before a complete response header"
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
    if isinstance(cause, BadResponse):
        return str(cause)
    return None


def parser_error_text(exc: BaseException) -> str:
    """The text of what llhttp refused (the lean transport's parser)."""
    import httptools

    if isinstance(exc, httptools.HttpParserInvalidStatusError):
        return _limits.BAD_STATUS_LINE
    text = str(exc)
    if text.startswith("Expected HTTP/"):
        return _limits.NOT_HTTP  # not even a status line: garbage, one error kind
    return f"BadResponse: not valid HTTP ({printable(text, 100)})"


def undecodable(exc: BaseException, encoding: str = "") -> BodyUndecodable:
    """The error of a compressed body that does not decode."""
    encoding = encoding.strip().lower()
    name = encoding if encoding in ("gzip", "x-gzip", "deflate", "br", "zstd") else "compressed"
    cause = exc.args[1] if len(exc.args) > 1 else exc.__cause__ or exc.__context__
    detail = f": {printable(str(cause), 100)}" if isinstance(cause, Exception) else ""
    return BodyUndecodable(f"BadResponse: cannot decode the {name} body{detail}")


def scrubbed(exc: BaseException) -> BaseException:
    """``exc`` without its traceback, context and cause: a failed request's error lives as long
    as its response, and the frames of a traceback would keep what they held (a body of up to
    the cap) alive with it."""
    exc.__traceback__ = None
    exc.__context__ = None
    exc.__cause__ = None
    return exc


__all__ = [
    "BadResponse",
    "BodyIncomplete",
    "BodyTooLarge",
    "BodyUndecodable",
    "ConnectTimedOut",
    "ConnectionFailed",
    "Interrupted",
    "ProxyFailed",
    "ReadTimedOut",
    "RedirectLimit",
    "StatusError",
    "TLSFailed",
]
