"""The requests-like Response objects HttpUser's client returns."""

from __future__ import annotations

import codecs
import datetime
import io
import json as jsonlib
import re
from collections.abc import Iterator
from typing import Any, Protocol

from gevent import GreenletExit

from mpswarm._text import printable
from mpswarm.exceptions import CatchResponseError, HTTPError, LocustError, ResponseError
from mpswarm.http._limits import MAX_BODY_SIZE, READ_CHUNK, BodyTooLarge, body_too_large, size_text

_CHARSET = re.compile(r"charset=([\w.:-]+)", re.IGNORECASE)
_NOT_CAUGHT = (
    "To decide a request's outcome, send it with catch_response=True and call success() or "
    "failure() inside its with-block: with self.client.get(url, catch_response=True) as response:"
)


class Request:
    """What was sent: method, url, headers and body (``response.request``)."""

    def __init__(self, method: str, url: str, headers: dict[str, str], body: Any) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body

    @property
    def path_url(self) -> str:
        """Path and query of the URL, as requests names it."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class BodyStream(Protocol):
    """The unread body of a ``stream=True`` response (``response.raw``)."""

    def read(self, amt: int | None = None) -> bytes:
        """Up to ``amt`` bytes of the decoded body (all the rest without ``amt``); b"" at its
        end."""
        ...

    def close(self) -> None:
        """Done with the body: the connection is closed unless the body was read to its end."""
        ...


class Response:
    """A finished HTTP exchange, or a failed attempt (``status_code`` 0 and ``error`` set).

    A ``stream=True`` request returns once the headers are in: the body is then read through
    ``iter_content``, ``iter_lines`` or ``raw``, past ``max_body_size``, and ``close()`` (or
    leaving a ``with`` block) drops the connection unless the body was read to its end.

    Attributes:
        status_code: the HTTP status, 0 when no response arrived.
        reason: the status line's reason phrase.
        headers: case-insensitive response headers.
        content: the (decoded) body bytes (read on first use after ``stream=True``); None
            when no response arrived, as in Locust.
        url: the final URL, after redirects.
        history: the redirect responses that led here, oldest first.
        elapsed: time from sending the request to having the whole response (to the headers
            after ``stream=True``).
        error: the exception when the request failed before a response, else None.
        request: the last request sent.
        raw: the unread body of a ``stream=True`` response (``read(amt)``, ``close()``), else
            None.
        timings: where the time went, in ms: ``connect`` (TCP, on a new connection only),
            ``tls`` (the handshake of a new TLS connection) and ``ttfb`` (from the request
            sent to the first byte of the response); a phase that did not happen is None,
            and so is ``timings`` for a response no client sent.
        request_meta: the request event's arguments for this request, Locust's dict
            (``request_type``, ``name``, ``response_time``, ``response_length``, ``response``,
            ``context``, ``exception``, ``start_time``, ``url``); None for a response that was
            not sent by a client.
    """

    raw: BodyStream | None = None  # set on streamed responses only: nothing per request
    _limit = MAX_BODY_SIZE  # what ``content`` reads of a streamed body
    _consumed = False
    _no_text: str | None = ""  # ``text`` without a response: HttpUser's "", FastHttpUser's None
    _recorder: Any = None  # the client's record of the request, for ``request_meta``
    _meta: dict[str, Any] | None = None  # request_meta, built on first use
    #: (connect, tls, ttfb) in integer microseconds, -1 for a phase that did not happen, and
    #: the request's bytes sent: set by the clients, read by the worker's recorder (see
    #: mpswarm.stats.recorder).
    _phases: tuple[int, int, int, int] | None = None

    def __init__(
        self,
        status_code: int = 0,
        reason: str = "",
        headers: Any = None,
        content: bytes | None = b"",
        url: str = "",
        request: Request | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers if headers is not None else _empty_headers()
        self._content = content  # None: a streamed body not read yet
        self.url = url
        self.request = request
        self.error = error
        self.history: list[Response] = []
        self._elapsed_ms = 0.0
        self.encoding: str | None = None
        self._cookies: dict[str, str] | None = None

    @property
    def stream(self) -> Any:
        """``raw``, by the name FastHttpUser's responses give it in Locust."""
        return self.raw

    @property
    def content(self) -> Any:
        """The (decoded) body bytes, None when no response arrived (a connection error), as
        in Locust; a streamed body is read now, up to ``max_body_size``.

        Raises:
            BodyTooLarge: a streamed body over the cap the request was sent with.
            RuntimeError: a streamed body already read through ``iter_content``.
        """
        content = self._content
        if content is None and self.raw is not None:
            content = self._content = self._read_rest()
        return content

    @content.setter
    def content(self, value: bytes) -> None:
        self._content = value

    def _read_rest(self) -> bytes:
        raw = self.raw
        assert raw is not None
        if self._consumed:
            raise RuntimeError("the body of this response was already read (iter_content)")
        self._consumed = True
        limit = self._limit
        buffer = io.BytesIO()  # getvalue() hands over its buffer: one copy of the body, not two
        while True:
            piece = raw.read(READ_CHUNK)
            if not piece:
                return buffer.getvalue()
            if buffer.tell() + len(piece) > limit:
                raw.close()
                raise BodyTooLarge(body_too_large(limit))
            buffer.write(piece)

    def iter_content(
        self, chunk_size: int | None = 1, decode_unicode: bool = False
    ) -> Iterator[Any]:
        """The body in pieces of at most ``chunk_size`` bytes, as requests' ``iter_content``.

        After ``stream=True`` the pieces come from the connection as they are read, whatever
        the body's size; otherwise they are slices of ``content``.

        Args:
            chunk_size: most bytes per piece (None: as they arrive, or all of ``content``).
            decode_unicode: yield text decoded with the response's charset.
        """
        if self._content is None and self.raw is not None:
            if self._consumed:
                raise RuntimeError("the body of this response was already read")
            self._consumed = True
            pieces = _read_pieces(self.raw, chunk_size or READ_CHUNK)
        else:
            content = self.content or b""
            size = chunk_size or len(content) or 1
            pieces = (content[at : at + size] for at in range(0, len(content), size))
        if not decode_unicode:
            yield from pieces
            return
        decoder = codecs.getincrementaldecoder(self._charset())(errors="replace")
        for piece in pieces:
            text = decoder.decode(piece)
            if text:
                yield text
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest

    def iter_lines(
        self, chunk_size: int = 512, decode_unicode: bool = False, delimiter: Any = None
    ) -> Iterator[Any]:
        """The body line by line, as requests' ``iter_lines``; a line longer than
        ``max_body_size`` raises BodyTooLarge rather than being held."""
        pending: list[Any] = []
        held = 0
        for chunk in self.iter_content(chunk_size, decode_unicode):
            lines = chunk.split(delimiter) if delimiter else chunk.splitlines()
            if not lines:
                continue
            open_end = bool(lines[-1]) and lines[-1][-1:] == chunk[-1:]  # no break at the end
            if len(lines) == 1 and open_end:
                pending.append(chunk)  # no break in this piece: held, not joined each time
                held += len(chunk)
                if held > self._limit:
                    raise BodyTooLarge(
                        f"BodyTooLarge: response line longer than {size_text(self._limit)} "
                        "(max_body_size)"
                    )
                continue
            if pending:
                lines[0] = chunk[:0].join([*pending, lines[0]])
                pending, held = [], 0
            if open_end:
                pending, held = [lines[-1]], len(lines[-1])
                del lines[-1]
            yield from lines
        if pending:
            yield pending[0][:0].join(pending)

    def close(self) -> None:
        """Release a streamed body: the connection is dropped unless it was read to its end."""
        raw = self.raw
        if raw is not None:
            raw.close()

    def __enter__(self) -> Response:
        """``with`` closes a streamed response (``stream=True``); a read one has nothing to
        close, and ``with`` on it means ``catch_response=True`` was forgotten (Locust raises).

        Raises:
            LocustError: a response that was not streamed.
        """
        if self.raw is None:
            raise LocustError(f"the response is not a context manager. {_NOT_CAUGHT}")
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool | None:
        self.close()
        return None

    def _charset(self) -> str:
        if self.encoding is not None:
            return self.encoding
        match = _CHARSET.search(self.headers.get("Content-Type", ""))
        encoding = match.group(1) if match else "utf-8"
        try:
            codecs.lookup(encoding)
        except LookupError:
            return "utf-8"
        return encoding

    @property
    def elapsed(self) -> datetime.timedelta:
        """Time from sending the request to having the whole response."""
        return datetime.timedelta(milliseconds=self._elapsed_ms)

    @elapsed.setter
    def elapsed(self, value: datetime.timedelta) -> None:
        self._elapsed_ms = value.total_seconds() * 1000.0

    @property
    def timings(self) -> dict[str, float | None] | None:
        """``connect``, ``tls`` and ``ttfb`` in ms (see the class docstring)."""
        if self._phases is None:
            return None
        pairs = zip(("connect", "tls", "ttfb"), self._phases[:3], strict=True)
        return {name: us / 1000.0 if us >= 0 else None for name, us in pairs}

    @property
    def ok(self) -> bool:
        """True when a response arrived with a status below 400."""
        return self.error is None and 0 < self.status_code < 400

    @property
    def text(self) -> Any:
        """The body decoded with the declared charset (UTF-8 when none); without a response
        (a connection error) "" from HttpUser's client and None from FastHttpUser's, as in
        Locust."""
        content = self.content
        if content is None:
            return self._no_text
        return content.decode(self._charset(), errors="replace")

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.content or b"", **kwargs)

    @property
    def request_meta(self) -> dict[str, Any] | None:
        """The request event's arguments for this request (see the class docstring)."""
        meta = self._meta
        if meta is None:
            recorder = self._recorder
            if recorder is None:
                return None
            meta = self._meta = recorder.meta(self, self._fired_exception(), self._elapsed_ms)
        return meta

    def _fired_exception(self) -> BaseException | None:
        """The failure the request event got for this response (rebuilt, not kept: keeping
        it would cost every request an attribute)."""
        if self.error is not None:
            return self.error
        if self.status_code >= 400:
            return HTTPError(status_error_text(self, self._recorder.name), response=self)
        return None

    def success(self) -> None:
        """Locust's rule: only a ``catch_response=True`` request can be marked.

        Raises:
            LocustError: always; send the request with ``catch_response=True``.
        """
        raise LocustError(_NOT_CAUGHT)

    def failure(self, exc: Any) -> None:
        """Locust's rule: only a ``catch_response=True`` request can be marked.

        Raises:
            LocustError: always; send the request with ``catch_response=True``.
        """
        raise LocustError(_NOT_CAUGHT)

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies this response set, by name."""
        if self._cookies is None:
            found: dict[str, str] = {}
            for header in self.headers.getlist("Set-Cookie"):
                pair = header.split(";", 1)[0]
                if "=" in pair:
                    key, value = pair.split("=", 1)
                    found[key.strip()] = value.strip()
            self._cookies = found
        return self._cookies

    def raise_for_status(self) -> None:
        """Raise the connection error, or HTTPError for a 4xx/5xx status."""
        if self.error is not None:
            raise self.error
        if self.status_code >= 400:
            raise HTTPError(status_error_text(self), response=self)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


def status_error_text(response: Response, name: str | None = None) -> str:
    """Locust-style failure text for a 4xx/5xx response."""
    kind = "Client" if response.status_code < 500 else "Server"
    where = name if name is not None else response.url
    # The reason phrase is the server's: escaped and cut, so garbage cannot flood the errors.
    reason = printable(response.reason, 120)
    return f"{response.status_code} {kind} Error: {reason} for url: {where}"


def _read_pieces(raw: BodyStream, size: int) -> Iterator[bytes]:
    while True:
        piece = raw.read(size)
        if not piece:
            return
        yield piece


def _empty_headers() -> Any:
    from urllib3 import HTTPHeaderDict

    return HTTPHeaderDict()


class ResponseContextManager(Response):
    """The response of a ``catch_response=True`` request, used as a context manager.

    Inside the ``with`` block call ``success()`` or ``failure(message)``; the request is recorded
    when the block ends. Without either call, a 4xx/5xx status or connection error is a failure.
    """

    _reported: BaseException | None = None  # what the request was recorded with

    def __init__(self, response: Response, report: Any) -> None:
        self.__dict__.update(response.__dict__)
        self._report = report
        self._manual: BaseException | bool | None = None
        self._entered = False

    def __enter__(self) -> ResponseContextManager:
        self._entered = True
        return self

    def success(self) -> None:
        """Record this request as successful, whatever its status.

        Raises:
            LocustError: called outside the request's ``with`` block (as in Locust).
        """
        if not self._entered:
            raise LocustError(f"success() outside the with-block. {_NOT_CAUGHT}")
        self._manual = True

    def failure(self, exc: Any) -> None:
        """Record this request as failed with ``exc`` (an exception or a message).

        Raises:
            LocustError: called outside the request's ``with`` block (as in Locust).
        """
        if not self._entered:
            raise LocustError(f"failure() outside the with-block. {_NOT_CAUGHT}")
        if not isinstance(exc, BaseException):
            exc = CatchResponseError(str(exc))
        self._manual = exc

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self._manual is True:
            self._record(None)
        elif isinstance(self._manual, BaseException):
            self._record(self._manual)
        elif exc is None or isinstance(exc, GreenletExit):
            # GreenletExit: the user was stopped; the request happened, so it is recorded.
            self._record(self._default_failure())
        elif _is_control_flow(exc):
            # Locust's rule: steering the user (InterruptTaskSet, RescheduleTask, StopUser...)
            # out of an undecided block records nothing for the request.
            return False
        else:
            # An exception escaped the block: the request still happened and is recorded as a
            # failure naming it (Locust drops such a request; we never lose a sent request).
            self._record(exc)
            return isinstance(exc, ResponseError)
        return exc is None

    def _record(self, exception: BaseException | None) -> None:
        self._reported = exception
        self._report(exception, self._meta, self)

    @property
    def request_meta(self) -> dict[str, Any] | None:
        """The request event's arguments; changes made in the ``with`` block are what the
        request is recorded with, as in Locust (``exception`` is None until the block ends)."""
        meta = self._meta
        if meta is None:
            recorder = self._report.recorder
            meta = self._meta = recorder.meta(self, self._reported, self._report.elapsed_ms)
        return meta

    def _default_failure(self) -> BaseException | None:
        if self.error is not None:
            return self.error
        if self.status_code >= 400:
            return HTTPError(status_error_text(self, self._report.name), response=self)
        return None


def _is_control_flow(exc: BaseException) -> bool:
    from mpswarm.exceptions import (
        InterruptTaskSet,
        RescheduleTask,
        RescheduleTaskImmediately,
        StopTest,
        StopUser,
    )

    return isinstance(
        exc,
        (
            StopUser,
            StopTest,
            InterruptTaskSet,
            RescheduleTask,
            RescheduleTaskImmediately,
        ),
    )
