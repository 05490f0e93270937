"""The responses both clients return: requests' ``Response`` API, with Locust's additions.

Locust's HttpUser client is a ``requests.Session``, so a locustfile reads a response as
requests gives it: ``status_code``, ``headers``, ``content``, ``text`` (decoded with the
charset requests would pick), ``json()``, ``cookies``, ``history``, ``links``, ``request``,
``raise_for_status()``, ``iter_content()``... Where requests has a function for the rule
(``get_encoding_from_headers``, ``parse_header_links``, ``guess_json_utf``, ``iter_slices``),
it is called, not written again. What a load test never reads costs nothing: the encoding,
the cookies, ``elapsed`` and the ``PreparedRequest`` behind ``request`` are made on first use.

Locust's additions: ``request_meta``; after a failed request (no response) ``status_code`` is
0, ``error`` holds requests' exception, ``content`` is None and ``text`` is "" (None for
FastHttpUser, as Locust's); ``success()``/``failure()`` outside a ``catch_response=True``
block raise LocustError; and ``timings``, where a response's time went.
"""

from __future__ import annotations

import datetime
import io
import json as jsonlib
from collections.abc import Iterator
from typing import Any, Protocol

from gevent import GreenletExit
from requests.cookies import MockRequest, MockResponse, RequestsCookieJar
from requests.exceptions import JSONDecodeError as RequestsJSONDecodeError
from requests.exceptions import RequestException, StreamConsumedError
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    get_encoding_from_headers,
    guess_json_utf,
    iter_slices,
    parse_header_links,
    stream_decode_response_unicode,
)

from mpswarm._text import printable
from mpswarm.exceptions import CatchResponseError, LocustError, ResponseError
from mpswarm.http._errors import BodyTooLarge, StatusError
from mpswarm.http._headers import Headers
from mpswarm.http._limits import MAX_BODY_SIZE, READ_CHUNK, body_too_large, size_text

_NOT_CAUGHT = (
    "To decide a request's outcome, send it with catch_response=True and call success() or "
    "failure() inside its with-block: with self.client.get(url, catch_response=True) as response:"
)
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_UNSET: Any = object()


class BodyStream(Protocol):
    """The unread body of a ``stream=True`` response (``response.raw``)."""

    def read(self, amt: int | None = None) -> bytes:
        """Up to ``amt`` bytes of the decoded body (all the rest without ``amt``); b"" at its
        end."""
        ...

    def close(self) -> None:
        """Done with the body: the connection is closed unless the body was read to its end."""
        ...


class Later:
    """A value made when first asked for (``Response.raw`` of a body read already)."""

    __slots__ = ("make",)

    def __init__(self, make: Any) -> None:
        self.make = make


class Sent:
    """What a request sent, kept to build its ``requests.PreparedRequest`` when asked for."""

    __slots__ = ("body", "headers", "hooks", "method", "prepared", "url")

    def __init__(
        self,
        method: str,
        url: str,
        headers: Any,
        body: Any,
        prepared: Any = None,
        hooks: Any = None,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers  # a mapping, or (name, value) pairs
        self.body = body
        self.prepared: PreparedRequest | None = prepared
        self.hooks = hooks  # the request's hooks, where it was not prepared by requests

    def request(self) -> PreparedRequest:
        """The PreparedRequest, as requests made it, or a new one as requests would have made
        it (a Sent may serve many responses: each gets its own)."""
        prepared = self.prepared
        if prepared is None:
            prepared = PreparedRequest()
            prepared.method = self.method
            prepared.url = self.url
            headers = self.headers
            pairs = headers.items() if hasattr(headers, "items") else headers
            prepared.headers = CaseInsensitiveDict(dict(pairs))
            prepared.body = self.body
            prepared.prepare_cookies(RequestsCookieJar())  # sent already: no Cookie added
            if self.hooks is not None:
                prepared.hooks = self.hooks
        return prepared


class Response:
    """A finished HTTP exchange (requests' ``Response`` API), or a failed attempt.

    Attributes:
        status_code: the HTTP status, 0 when no response arrived.
        reason: the status line's reason phrase.
        headers: case-insensitive response headers.
        url: the final URL, after redirects.
        history: the redirect responses that led here, oldest first.
        encoding: the charset ``text`` decodes with (requests' rule; settable).
        error: requests' exception when the request failed without a response, else None.
        raw: the body of a ``stream=True`` response (``read(amt)``, ``close()``); for
            HttpUser, urllib3's response, as in requests.
        timings: where the time went, in ms: ``connect`` (TCP, on a new connection only),
            ``tls`` (the handshake of a new TLS connection) and ``ttfb`` (from the request
            sent to the first byte of the response); a phase that did not happen is None,
            and so is ``timings`` for a response no client sent.
        request_meta: the request event's arguments for this request, Locust's dict
            (``request_type``, ``name``, ``response_time``, ``response_length``, ``response``,
            ``context``, ``exception``, ``start_time``, ``url``); None for a response that was
            not sent by a client.
    """

    _raw: Any = None  # set on streamed responses (and HttpUser's): nothing per request
    _session: Any = None  # the session that sent it (for ``connection``)
    _limit = MAX_BODY_SIZE  # what ``content`` reads of a streamed body
    _recorder: Any = None  # the client's record of the request, for ``request_meta``
    _meta: dict[str, Any] | None = None  # request_meta, built on first use
    _sent: Sent | None = None  # what was sent, for ``request``
    _prepared: Any = None  # ``request``, once made
    _next: Any = None  # the redirect not followed (allow_redirects=False), for ``next``
    #: (connect, tls, ttfb) in integer microseconds, -1 for a phase that did not happen, and
    #: the request's bytes sent: set by the transports, read by the worker's recorder (see
    #: mpswarm.stats.recorder).
    _phases: tuple[int, int, int, int] | None = None
    _encoding: Any = _UNSET
    _cookies: RequestsCookieJar | None = None
    _elapsed: datetime.timedelta | None = None
    _consumed = False  # a streamed body was read to its end (or is being)
    _recorded_ms = 0.0  # the response time the request event got
    error: BaseException | None = None

    def __init__(
        self,
        status_code: int = 0,
        reason: str = "",
        headers: Any = None,
        content: bytes | None = b"",
        url: str = "",
        request: Any = None,
        error: BaseException | None = None,
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers if headers is not None else Headers()
        self._content = content  # None: a streamed body not read yet, or no response
        self.url = url
        if request is not None:
            self.request = request
        if error is not None:
            self.error = error
        self.history: list[Response] = []

    @property
    def raw(self) -> Any:
        """The body of a ``stream=True`` response (``read(amt)``, ``close()``); for HttpUser,
        urllib3's response, as in requests."""
        raw = self._raw
        if type(raw) is Later:
            raw = self._raw = raw.make()
        return raw

    @raw.setter
    def raw(self, value: Any) -> None:
        self._raw = value

    # -- what was sent -----------------------------------------------------------------------
    @property
    def request(self) -> PreparedRequest | None:
        """The last request sent, as requests' ``PreparedRequest``."""
        prepared = self._prepared
        if prepared is None:
            sent = self._sent
            if sent is None:
                return None
            prepared = self._prepared = sent.request()
        return prepared

    @request.setter
    def request(self, value: Any) -> None:
        if isinstance(value, Sent):
            self._sent, self._prepared = value, value.prepared
        else:
            self._sent, self._prepared = Sent("", "", {}, None, value), value

    # -- the body ----------------------------------------------------------------------------
    @property
    def content(self) -> Any:
        """The (decoded) body bytes; None when no response arrived (as in Locust). A streamed
        body is read now, up to ``max_body_size``.

        Raises:
            BodyTooLarge: a streamed body over the cap the request was sent with.
            RuntimeError: a streamed body already read through ``iter_content``.
        """
        content = self._content
        if content is None and self._raw is not None:
            content = self._content = self._read_rest()
        return content

    @content.setter
    def content(self, value: bytes) -> None:
        self._content = value

    def _read_rest(self) -> bytes:
        raw = self.raw
        if self._consumed:
            raise RuntimeError("The content for this response was already consumed")
        self._consumed = True
        limit = self._limit
        buffer = io.BytesIO()  # getvalue() hands over its buffer: one copy of the body, not two
        for piece in _streamed(raw, READ_CHUNK):
            if buffer.tell() + len(piece) > limit:
                raw.close()
                raise BodyTooLarge(body_too_large(limit))
            buffer.write(piece)
        return buffer.getvalue()

    def iter_content(self, chunk_size: int | None = 1, decode_unicode: bool = False) -> Any:
        """The body in pieces of at most ``chunk_size`` bytes (requests' ``iter_content``).

        After ``stream=True`` the pieces come from the connection as they are read, whatever
        the body's size; otherwise they are slices of ``content``.
        """
        if chunk_size is not None and not isinstance(chunk_size, int):
            raise TypeError(f"chunk_size must be an int, it is instead a {type(chunk_size)}.")
        if self._content is None and self._raw is not None:
            if self._consumed:
                raise StreamConsumedError()
            self._consumed = True
            chunks: Iterator[Any] = _streamed(self.raw, chunk_size)
        else:
            chunks = iter_slices(self.content or b"", chunk_size)
        if decode_unicode:
            chunks = stream_decode_response_unicode(chunks, self)  # type: ignore[arg-type]
        return chunks

    def iter_lines(
        self, chunk_size: int = 512, decode_unicode: bool = False, delimiter: Any = None
    ) -> Iterator[Any]:
        """The body line by line (requests' ``iter_lines``, its rules included); a line longer
        than ``max_body_size`` raises BodyTooLarge rather than being held."""
        pending: Any = None
        for chunk in self.iter_content(chunk_size=chunk_size, decode_unicode=decode_unicode):
            if pending is not None:
                chunk = pending + chunk
                if len(chunk) > self._limit:
                    raise BodyTooLarge(
                        f"BodyTooLarge: response line longer than {size_text(self._limit)} "
                        "(max_body_size)"
                    )
            lines = chunk.split(delimiter) if delimiter else chunk.splitlines()
            if lines and lines[-1] and chunk and lines[-1][-1] == chunk[-1]:
                pending = lines.pop()
            else:
                pending = None
            yield from lines
        if pending is not None:
            yield pending

    def __iter__(self) -> Iterator[Any]:
        return self.iter_content(128)

    @property
    def encoding(self) -> str | None:
        """The charset ``text`` decodes with: the Content-Type's, ISO-8859-1 for text/* without
        one, UTF-8 for JSON (requests' ``get_encoding_from_headers``); settable."""
        encoding = self._encoding
        if encoding is _UNSET:
            encoding = self._encoding = get_encoding_from_headers(self.headers)  # type: ignore[arg-type]
        return encoding

    @encoding.setter
    def encoding(self, value: str | None) -> None:
        self._encoding = value

    @property
    def apparent_encoding(self) -> str | None:
        """The charset the body looks like (charset_normalizer's guess, as requests)."""
        from requests.compat import chardet

        if chardet is None:
            return "utf-8"
        return chardet.detect(self.content or b"")["encoding"]

    @property
    def text(self) -> Any:
        """The body decoded with ``encoding`` (requests' rule; without one, UTF-8 where the body
        is valid UTF-8, else the apparent encoding); without a response "" from HttpUser's
        client and None from FastHttpUser's, as in Locust."""
        content = self.content
        if content is None:
            session = self._session
            return session._no_text if session is not None else ""
        if not content:
            return ""
        encoding = self.encoding
        if encoding is None:
            try:
                # charset_normalizer names valid UTF-8 (ASCII included) utf-8 or ascii: the
                # same text, without reading the whole body to guess.
                return content.decode("utf-8")
            except UnicodeDecodeError:
                encoding = self.apparent_encoding
        try:
            return str(content, encoding, errors="replace")  # type: ignore[arg-type]
        except (LookupError, TypeError):
            return str(content, errors="replace")

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON.

        Raises:
            requests.exceptions.JSONDecodeError: the body is not JSON.
        """
        content = self.content or b""
        if not self.encoding and len(content) > 3:
            encoding = guess_json_utf(content)
            if encoding is not None:
                try:
                    return jsonlib.loads(content.decode(encoding), **kwargs)
                except UnicodeDecodeError:
                    pass
                except jsonlib.JSONDecodeError as exc:
                    raise RequestsJSONDecodeError(exc.msg, exc.doc, exc.pos) from None
        try:
            return jsonlib.loads(self.text or "", **kwargs)
        except jsonlib.JSONDecodeError as exc:
            raise RequestsJSONDecodeError(exc.msg, exc.doc, exc.pos) from None

    # -- the rest of requests' API -----------------------------------------------------------
    @property
    def cookies(self) -> RequestsCookieJar:
        """The cookies this response set, as requests' jar (its acceptance rules applied)."""
        jar = self._cookies
        if jar is None:
            jar = self._cookies = RequestsCookieJar()
            request = self.request
            if request is not None and self.headers.get("Set-Cookie") is not None:
                jar.extract_cookies(
                    MockResponse(self.headers),  # type: ignore[arg-type]
                    MockRequest(request),  # type: ignore[arg-type]
                )
        return jar

    @cookies.setter
    def cookies(self, jar: RequestsCookieJar) -> None:
        self._cookies = jar

    @property
    def elapsed(self) -> datetime.timedelta:
        """From sending the request to the response's first byte, a new connection's opening
        included (what requests measures: to the headers)."""
        elapsed = self._elapsed
        if elapsed is None:
            phases = self._phases
            us = sum(max(phase, 0) for phase in phases[:3]) if phases is not None else 0
            elapsed = self._elapsed = datetime.timedelta(microseconds=us)
        return elapsed

    @elapsed.setter
    def elapsed(self, value: datetime.timedelta) -> None:
        self._elapsed = value

    @property
    def is_redirect(self) -> bool:
        """A redirect status with a Location: what a session would follow."""
        return self.status_code in _REDIRECTS and "location" in self.headers

    @property
    def is_permanent_redirect(self) -> bool:
        """A 301 or 308 with a Location."""
        return self.status_code in (301, 308) and "location" in self.headers

    @property
    def next(self) -> Any:
        """The PreparedRequest of the redirect not followed (``allow_redirects=False``)."""
        return self._next

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """The Link header's links, by ``rel`` (or URL)."""
        header = self.headers.get("link")
        found: dict[str, dict[str, str]] = {}
        if header:
            for link in parse_header_links(header):
                key = link.get("rel") or link.get("url")
                if key is not None:
                    found[key] = link
        return found

    @property
    def ok(self) -> bool:
        """A response arrived with a status below 400 (or of 600 and above, as requests)."""
        return self.error is None and self.status_code != 0 and not 400 <= self.status_code < 600

    def __bool__(self) -> bool:
        return self.ok

    def raise_for_status(self) -> None:
        """Raise the request's error, or requests' HTTPError for a 4xx or 5xx status."""
        if self.error is not None:
            raise self.error
        text = http_error_text(self.status_code, self.reason, self.url)
        if text is not None:
            raise StatusError(text, response=self)

    def close(self) -> None:
        """Release a streamed body: the connection is dropped unless it was read to its end."""
        raw = self._raw
        if raw is not None and self._content is None:
            raw.close()

    def __enter__(self) -> Response:
        """``with`` closes a streamed response (``stream=True``); a read one has nothing to
        close, and ``with`` on it means ``catch_response=True`` was forgotten (Locust raises).

        Raises:
            LocustError: a response that was not streamed.
        """
        if self._raw is None or self._content is not None:
            raise LocustError(f"the response is not a context manager. {_NOT_CAUGHT}")
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool | None:
        self.close()
        return None

    @property
    def connection(self) -> Any:
        """What sent the request, as requests' adapter: ``send(prepared, **kwargs)`` sends one
        more as it is (what HTTPDigestAuth answers a challenge with)."""
        session = self._session
        return None if session is None else _Adapter(session)

    @property
    def stream(self) -> Any:
        """``raw``, by the name FastHttpUser's responses give it in Locust."""
        return self.raw

    # -- Locust's ----------------------------------------------------------------------------
    @property
    def timings(self) -> dict[str, float | None] | None:
        """``connect``, ``tls`` and ``ttfb`` in ms (see the class docstring)."""
        if self._phases is None:
            return None
        pairs = zip(("connect", "tls", "ttfb"), self._phases[:3], strict=True)
        return {name: us / 1000.0 if us >= 0 else None for name, us in pairs}

    @property
    def request_meta(self) -> dict[str, Any] | None:
        """The request event's arguments for this request (see the class docstring)."""
        meta = self._meta
        if meta is None:
            recorder = self._recorder
            if recorder is None:
                return None
            meta = self._meta = recorder.meta(self, failure_of(self, recorder.name))
        return meta

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

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


def http_error_text(status: int, reason: Any, where: str) -> str | None:
    """requests' HTTPError text for a 4xx or 5xx status (None for others)."""
    if isinstance(reason, bytes):
        try:
            reason = reason.decode("utf-8")
        except UnicodeDecodeError:
            reason = reason.decode("iso-8859-1")
    if 400 <= status < 500:
        return f"{status} Client Error: {reason} for url: {where}"
    if 500 <= status < 600:
        return f"{status} Server Error: {reason} for url: {where}"
    return None


def failure_of(response: Response, name: str) -> BaseException | None:
    """What the request event records for ``response``: its error, or for a 4xx or 5xx status
    Locust's HTTPError, named by the request's name (its reason escaped and cut: garbage
    from a server must not flood the errors table)."""
    if response.error is not None:
        return response.error
    if not 400 <= response.status_code < 600:
        return None
    text = http_error_text(response.status_code, printable(str(response.reason), 120), name)
    return StatusError(text, response=response)


class _Adapter:
    """requests' adapter API over a session's transport (``Response.connection``)."""

    __slots__ = ("_session",)

    def __init__(self, session: Any) -> None:
        self._session = session

    def send(self, request: PreparedRequest, **kwargs: Any) -> Any:
        """Send ``request`` as it is: no hooks, cookies or redirects (requests' adapter)."""
        return self._session._adapter_send(request, **kwargs)

    def close(self) -> None:
        """Nothing to close: the session keeps its connections."""


def _streamed(raw: Any, size: int | None) -> Iterator[bytes]:
    """A streamed body's pieces as requests' ``iter_content`` reads them (``raw.stream``),
    a failure raised as the request's kind of error."""
    try:
        yield from raw.stream(size, decode_content=True)
    except RequestException:
        raise
    except Exception as exc:
        from mpswarm.http._errors import from_urllib3

        raise from_urllib3(exc) from None


class ResponseContextManager(Response):
    """The response of a ``catch_response=True`` request, used as a context manager.

    Inside the ``with`` block call ``success()`` or ``failure(message)``; the request is recorded
    when the block ends. Without either call, a 4xx/5xx status or connection error is a failure.
    """

    _reported: BaseException | None = None  # what the request was recorded with
    _manual: BaseException | bool | None = None
    _entered = False
    _report: Any = None

    @classmethod
    def wrap(cls, response: Response, report: Any) -> ResponseContextManager:
        """``response`` itself, made a context manager (its class changed, nothing copied)."""
        response.__class__ = cls
        caught: ResponseContextManager = response  # type: ignore[assignment]
        caught._report = report
        return caught

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

    def raise_for_status(self) -> None:
        """As Response's, but a ``failure()`` already called is what it raises (Locust)."""
        if isinstance(self._manual, BaseException):
            raise self._manual
        if self._manual is None:
            super().raise_for_status()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self._manual is True:
            self._record(None)
        elif isinstance(self._manual, BaseException):
            self._record(self._manual)
        elif exc is None or isinstance(exc, GreenletExit):
            # GreenletExit: the user was stopped; the request happened, so it is recorded.
            self._record(failure_of(self, self._report.name))
        elif isinstance(exc, ResponseError):
            self._record(exc)  # raised to fail the request: recorded so, and swallowed
            return True
        else:
            # Locust's rule: any other exception leaving an undecided block (a KeyError from
            # the body's JSON, StopUser, RescheduleTask...) records nothing for the request;
            # the exception goes on, to the user's exceptions as any task's would. A run
            # meant to match Locust's failure ratio depends on it (before: the request was
            # recorded as a failure naming it, 50 % failures where Locust showed none).
            return False
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
