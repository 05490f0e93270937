"""``HttpSession``: HttpUser's client, a requests-like API on urllib3 with per-user cookies.

Every request fires the ``request`` event exactly once, with Locust's argument names; the
worker's recorder is a listener of that event. Connection errors, timeouts and garbage from the
server never raise into user code: they come back as a response with ``status_code`` 0 and are
recorded as failures with a readable error text.
"""

from __future__ import annotations

import functools
import http.client
import http.cookiejar
import io
import json as jsonlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlencode, urljoin, urlsplit, urlunsplit

import urllib3
from gevent import GreenletExit

from mpswarm._text import printable
from mpswarm.exceptions import InvalidSchema, InvalidURL, MissingSchema, RequestError
from mpswarm.http._cookies import CookieRequest, CookieResponse
from mpswarm.http._errors import Interrupted, error_text
from mpswarm.http._limits import (
    MAX_BODY_SIZE,
    READ_CHUNK,
    BodyTooLarge,
    body_too_large,
    check_body_size,
)
from mpswarm.http._pools import NO_TIMEOUT, OriginPools, read_announced
from mpswarm.http._transport import shared
from mpswarm.http.response import Request, Response, ResponseContextManager, status_error_text

_REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))
_MAX_REDIRECTS = 30  # requests' default


class _Recorder:
    """Fires the request event once for one request (callable by ResponseContextManager)."""

    __slots__ = ("context", "event", "length", "meta_url", "method", "name", "start", "wall")

    def __init__(self, event: Any, method: str, name: str, url: str, context: Any) -> None:
        self.event = event
        self.method = method
        self.name = name
        self.meta_url = url
        self.context = context
        self.wall = time.time()
        self.start = time.perf_counter()
        self.length = 0

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000.0

    def meta(
        self, response: Response, exception: BaseException | None, ms: float
    ) -> dict[str, Any]:
        """The request event's arguments, as a dict (``response.request_meta``)."""
        return {
            "request_type": self.method,
            "name": self.name,
            "response_time": ms,
            "response_length": self.length,
            "response": response,
            "context": self.context,
            "exception": exception,
            "start_time": self.wall,
            "url": self.meta_url,
        }

    def fire(self, response: Response | None, exception: BaseException | None, ms: float) -> None:
        # The listeners are called directly, not through EventHook.fire: its **kwargs cost a
        # dict per request (the recorder is the first listener of every worker).
        for handler in self.event._handlers:
            handler(
                request_type=self.method,
                name=self.name,
                response_time=ms,
                response_length=self.length,
                response=response,
                context=self.context,
                exception=exception,
                start_time=self.wall,
                url=self.meta_url,
            )


class HttpSession:
    """A user's HTTP session: connection reuse, cookies, and one request event per request.

    Args:
        base_url: the user's host; relative URLs are joined to it. Credentials in it
            (``http://user:password@host``) are sent as basic auth, as Locust does, and left
            out of the URLs the session requests and reports.
        request_event: the event hook fired for every request.
        user: the User owning the session (for its context and stop handling), or None.
        max_body_size: the cap on a response body (default ``max_body_size``, 32 MiB).

    Attributes:
        max_body_size: the cap on a (decoded) response body in bytes; a larger body is a
            failed request. One request can pass its own; ``stream=True`` reads past it.
    """

    max_body_size = MAX_BODY_SIZE  # a class default: nothing per idle user

    #: False when the pools are shared with other sessions (a ``pool_manager``).
    _own_pools = True

    def __init__(
        self,
        base_url: str,
        request_event: Any,
        user: Any = None,
        max_body_size: int | None = None,
        pool_manager: Any = None,
    ) -> None:
        if max_body_size is not None and max_body_size != self.max_body_size:
            self.max_body_size = check_body_size(max_body_size, type(self).__name__)
        base_url, self.auth = split_credentials(base_url)
        self.base_url = base_url
        self._origin = _origin(base_url)
        self.request_event = request_event
        self.user = user
        self.headers: dict[str, str] = {}
        self._jar: http.cookiejar.CookieJar | None = None  # made when a cookie arrives
        self.verify = True
        # Sessions given the same pool_manager (Locust's HttpUser.pool_manager) share their
        # connections; the pools then outlive this session.
        if pool_manager is None:
            self._pools = OriginPools()
        else:
            self._pools, self._own_pools = shared(pool_manager, OriginPools), False

    @property
    def cookies(self) -> http.cookiejar.CookieJar:
        """The user's cookie jar (created on first use: an idle user without cookies has none)."""
        if self._jar is None:
            self._jar = http.cookiejar.CookieJar()
        return self._jar

    @cookies.setter
    def cookies(self, jar: http.cookiejar.CookieJar) -> None:
        self._jar = jar

    # -- requests-like verbs ------------------------------------------------------------------
    def get(self, url: str, **kwargs: Any) -> Any:
        """Send a GET request."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: Any = None, json: Any = None, **kwargs: Any) -> Any:
        """Send a POST request."""
        return self.request("POST", url, data=data, json=json, **kwargs)

    def put(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        """Send a PUT request."""
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url: str, data: Any = None, **kwargs: Any) -> Any:
        """Send a PATCH request."""
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        """Send a DELETE request."""
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Any:
        """Send a HEAD request (redirects not followed unless asked, as in requests)."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Any:
        """Send an OPTIONS request."""
        return self.request("OPTIONS", url, **kwargs)

    def close(self) -> None:
        """Close the session's connections (not those it shares through a pool_manager)."""
        if self._own_pools:
            self._pools.close()

    # -- the one request path -----------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        name: str | None = None,
        catch_response: bool = False,
        context: Mapping[str, Any] | None = None,
        *,
        params: Any = None,
        data: Any = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        files: Any = None,
        auth: tuple[str, str] | None = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        verify: bool | None = None,
        stream: bool = False,
        max_body_size: int | None = None,
        **_ignored: Any,
    ) -> Any:
        """Send a request and record it; see the module docstring for error handling.

        Args:
            method: HTTP method.
            url: absolute URL, or a path joined to ``base_url``.
            name: the name the request is recorded under (default: its path and query).
            catch_response: return a context manager that decides success or failure.
            context: extra data passed to request event listeners.
            params: query parameters (dict or list of pairs) added to the URL.
            data: form dict, str or bytes body.
            json: object sent as a JSON body.
            headers: request headers, over the session's.
            cookies: extra cookies for this request.
            files: ``{field: file | (filename, content[, content_type])}`` for multipart.
            auth: ``(user, password)`` for basic authentication.
            timeout: seconds, or ``(connect, read)``; None waits forever.
            allow_redirects: follow 3xx responses.
            verify: False skips TLS certificate verification.
            stream: return once the headers are in and leave the body to
                ``iter_content``/``iter_lines``/``raw`` (no size cap), as requests does;
                the response time then ends at the headers. Close the response when done.
            max_body_size: the cap on this response's body (default: the session's).

        Returns:
            A Response (or ResponseContextManager with ``catch_response``).

        Raises:
            MissingSchema: ``url`` has no scheme and there is no host to join it to.
            InvalidSchema: the URL's scheme is not http or https.
        """
        method = method.upper()
        full_url = self._full_url(url, params)
        if "@" in full_url:  # credentials in a full URL: basic auth, as requests sends them
            full_url, url_auth = split_credentials(full_url)
            auth = auth or url_auth
        if name is None and not params and self._origin and _plain_path(url):
            name = url  # a path and query on the host: its own name, without urlsplit
        if name is None:
            parts = urlsplit(full_url)
            name = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        user = self.user
        ctx = {**user.context(), **(context or {})} if user is not None else dict(context or {})
        recorder = _Recorder(self.request_event, method, name, full_url, ctx)
        send_headers, body = self._encode(headers, data, json, files, auth)
        if user is not None:
            if user._stop_after_request:
                raise GreenletExit()  # being stopped: send nothing new
            user._in_request += 1
        try:
            response = self._send(
                method,
                full_url,
                send_headers,
                body,
                cookies,
                timeout,
                allow_redirects,
                self.verify if verify is None else verify,
                stream,
                self.max_body_size if max_body_size is None else max_body_size,
            )
        except GreenletExit:
            # Killed mid-request (a stop past its grace time): the request was sent, so it is
            # recorded, as a failure, before the user goes away.
            recorder.fire(None, Interrupted(), recorder.elapsed_ms())
            raise
        finally:
            if user is not None:
                user._in_request -= 1
        elapsed_ms = recorder.elapsed_ms()
        response._elapsed_ms = elapsed_ms
        content = response._content
        recorder.length = len(content) if content is not None else _announced(response)
        if catch_response:
            return ResponseContextManager(response, _CatchReport(recorder, elapsed_ms, user))
        response._recorder = recorder  # for request_meta: one attribute, built only when read
        if response.error is not None:
            failure: BaseException | None = response.error
        elif response.status_code >= 400:
            failure = _StatusError(status_error_text(response, name))
        else:
            failure = None
        recorder.fire(response, failure, elapsed_ms)
        if user is not None and user._stop_after_request:
            raise GreenletExit()
        return response

    def _full_url(self, url: str, params: Any) -> str:
        if url.startswith("/") and not url.startswith("//") and self._origin:
            url = self._origin + url  # the common case, without urljoin's parsing (~30 us)
        elif not url.startswith(("http://", "https://")):
            url = urljoin(self.base_url, url) if self.base_url else url
            if not url.startswith(("http://", "https://")):
                # Raises, unless the scheme is only in capitals. Without a scheme of its own
                # the URL names the host's (urljoin leaves a telnet:// host out).
                _check_scheme(url if urlsplit(url).scheme else (self.base_url or url))
        if params:
            query = urlencode(params, doseq=True) if not isinstance(params, str) else params
            url = f"{url}{'&' if '?' in url else '?'}{query}"
        return url

    def _encode(
        self, headers: Any, data: Any, json: Any, files: Any, auth: Any
    ) -> tuple[dict[str, str], Any]:
        if (
            data is None
            and json is None
            and not (headers or self.headers or files or auth or self.auth)
        ):
            return {}, None  # a plain GET: nothing to merge or encode
        send = {**self.headers, **(headers or {})}
        lowered = {key.lower() for key in send}
        body: Any = None
        if files:
            fields: list[tuple[str, Any]] = list(_pairs(data)) if data else []
            for field, value in files.items() if isinstance(files, Mapping) else files:
                fields.append((field, _file_field(field, value)))
            body, content_type = urllib3.encode_multipart_formdata(fields)
            send["Content-Type"] = content_type
        elif json is not None:
            body = jsonlib.dumps(json).encode()
            if "content-type" not in lowered:
                send["Content-Type"] = "application/json"
        elif data is not None:
            if isinstance(data, (Mapping, list, tuple)):
                body = urlencode(list(_pairs(data)), doseq=True)
                if "content-type" not in lowered:
                    send["Content-Type"] = "application/x-www-form-urlencoded"
            elif hasattr(data, "read"):
                body = data.read()
            else:
                body = data
        if isinstance(body, str):
            body = body.encode()
        auth = auth or self.auth
        if auth is not None:
            send.update(urllib3.make_headers(basic_auth=f"{auth[0]}:{auth[1]}"))
        return send, body

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Any,
        extra_cookies: Any,
        timeout: Any,
        allow_redirects: bool,
        verify: bool,
        stream: bool,
        limit: int,
    ) -> Response:
        history: list[Response] = []
        if isinstance(timeout, tuple):
            timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        elif timeout is None:
            timeout = NO_TIMEOUT
        while True:
            sent = self._with_cookies(url, headers, extra_cookies)
            request = Request(method, url, sent, body)
            try:
                pool, target = self._pools.route(url, verify)
                raw = pool.exchange(method, target, body, sent, timeout)  # the body below
                location = raw.headers.get("Location")
                follow = allow_redirects and raw.status in _REDIRECT_STATUSES and location
                content = None if stream and not follow else _read_body(raw, limit)
            except (BodyTooLarge, RequestError) as exc:
                error = RequestError(str(exc))
                response = Response(content=None, url=url, request=request, error=error)
                response.history = history
                return response
            except urllib3.exceptions.LocationParseError as exc:  # raised, as by requests
                raise InvalidURL(f"Invalid URL {printable(url, 200)!r}: {exc}") from None
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                error = RequestError(error_text(exc))
                response = Response(content=None, url=url, request=request, error=error)
                response.history = history
                return response
            response = Response(raw.status, raw.reason or "", raw.headers, content, url, request)
            response._phases = getattr(raw, "_mpswarm_phases", None)
            if content is None:
                response.raw = raw  # urllib3's, as in requests
                response._limit = limit
            if raw.headers.get("Set-Cookie"):
                self.cookies.extract_cookies(
                    CookieResponse(raw.headers),  # type: ignore[arg-type]
                    CookieRequest(url, sent),  # type: ignore[arg-type]
                )
            if not follow:
                response.history = history
                return response
            if len(history) >= _MAX_REDIRECTS:
                response.history = history
                response.error = RequestError(f"TooManyRedirects: over {_MAX_REDIRECTS}")
                return response
            history.append(response)
            url = urljoin(url, location)
            if raw.status == 303 or (raw.status in (301, 302) and method == "POST"):
                method, body = ("GET" if method != "HEAD" else "HEAD"), None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}

    def _with_cookies(self, url: str, headers: dict[str, str], extra: Any) -> dict[str, str]:
        jar = self._jar
        if not extra and (jar is None or not jar._cookies):  # type: ignore[attr-defined]
            return headers
        probe = CookieRequest(url, headers)
        self.cookies.add_cookie_header(probe)  # type: ignore[arg-type]
        sent = {**headers, **probe.added}
        if extra:
            pairs = "; ".join(f"{key}={value}" for key, value in extra.items())
            existing = sent.get("Cookie")
            sent["Cookie"] = f"{existing}; {pairs}" if existing else pairs
        return sent


def _read_body(raw: Any, limit: int) -> bytes:
    """The whole decoded body of a urllib3 response, or BodyTooLarge past ``limit`` bytes.

    urllib3 (2.6 and later) decompresses at most what ``read(amt)`` asks for, so a gzip bomb
    is counted as it inflates, never inflated whole. The connection goes back to the pool
    when the body was read to its end, and is closed otherwise.
    """
    try:
        length = raw.length_remaining  # the Content-Length still to come, None if unknown
        if length is not None and length > limit:
            raise BodyTooLarge(body_too_large(limit))
        coded = raw.headers.get("Content-Encoding")
        if length is not None and not coded:
            return read_announced(raw)  # the announced size, read into one bytes object
        first = raw.read(READ_CHUNK)
        total = len(first)
        buffer: io.BytesIO | None = None
        while first:
            piece = raw.read(READ_CHUNK)
            if not piece:
                break
            total += len(piece)
            if total > limit or raw.tell() > limit:  # decoded, or as sent
                raise BodyTooLarge(body_too_large(limit, bool(coded) and total > limit))
            if buffer is None:
                buffer = io.BytesIO()  # getvalue() hands over its buffer: no second copy
                buffer.write(first)
            buffer.write(piece)
        if total > limit:
            raise BodyTooLarge(body_too_large(limit, bool(coded)))
        return buffer.getvalue() if buffer is not None else first
    except urllib3.exceptions.DecodeError as exc:
        raw.close()
        encoding = str(raw.headers.get("Content-Encoding", "")).strip().lower()
        name = encoding if encoding in ("gzip", "x-gzip", "deflate", "br", "zstd") else "compressed"
        cause = exc.args[1] if len(exc.args) > 1 else None
        detail = f": {printable(str(cause), 100)}" if isinstance(cause, Exception) else ""
        raise RequestError(f"BadResponse: cannot decode the {name} body{detail}") from exc
    except BaseException:
        raw.close()  # not read to its end: the connection must not be reused
        raise


def _announced(response: Response) -> int:
    """The Content-Length of a streamed response (0 if none or not a number), as Locust."""
    try:
        return max(int(response.headers.get("Content-Length") or 0), 0)
    except ValueError:
        return 0


class _StatusError(Exception):
    """A 4xx/5xx status recorded as a failure (the text is Locust's HTTPError wording)."""


class _CatchReport:
    """Records a catch_response request when its ``with`` block ends."""

    def __init__(self, recorder: _Recorder, elapsed_ms: float, user: Any) -> None:
        self.recorder = recorder
        self.elapsed_ms = elapsed_ms
        self.user = user
        self.name = recorder.name

    def __call__(
        self,
        exception: BaseException | None,
        meta: dict[str, Any] | None = None,
        response: Response | None = None,
    ) -> None:
        """Fire the request event, from ``meta`` (the block's ``request_meta``) if it was read:
        what the block changed in it is what is recorded, as in Locust."""
        if meta is None:
            self.recorder.fire(response, exception, self.elapsed_ms)
        else:
            meta["exception"] = exception
            for handler in self.recorder.event._handlers:
                handler(**meta)
        if self.user is not None and self.user._stop_after_request:
            raise GreenletExit()


@functools.lru_cache(maxsize=64)  # once per host, not per user
def split_credentials(base_url: str) -> tuple[str, tuple[str, str] | None]:
    """A host URL without its ``user:password@`` part, and those credentials (or None).

    As Locust's clients, both a user name and a password are needed; they are percent-decoded
    (``p%40ss`` is ``p@ss``), as requests and curl read them.
    """
    if not base_url or "@" not in base_url:
        return base_url, None
    parts = urlsplit(base_url)
    if not (parts.username and parts.password):
        return base_url, None
    host = parts.netloc.rsplit("@", 1)[1]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username), unquote(parts.password))


def _check_scheme(url: str) -> None:
    """Raise as requests does (and so Locust's HttpUser) for a URL that is not http(s)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return
    if not scheme:
        raise MissingSchema(
            f"Invalid URL {printable(url, 200)!r}: no scheme supplied; give the user a host "
            "(-H http://host:port or the class's host) or request a full http(s) URL"
        )
    raise InvalidSchema(
        f"No connection adapters were found for {printable(url, 200)!r}: "
        "only http:// and https:// URLs can be requested"
    )


def _plain_path(url: str) -> bool:
    """A URL that is a path (and query) on the user's host, with no fragment."""
    return url.startswith("/") and not url.startswith("//") and "#" not in url


@functools.lru_cache(maxsize=64)  # one string shared by every user of a host
def _origin(base_url: str) -> str:
    """``scheme://host:port`` of a base URL with no path, or "" when a path must be joined."""
    parts = urlsplit(base_url or "")
    if parts.scheme in ("http", "https") and parts.netloc and parts.path in ("", "/"):
        return f"{parts.scheme}://{parts.netloc}"
    return ""


def _pairs(data: Any) -> list[tuple[str, Any]]:
    return list(data.items()) if isinstance(data, Mapping) else list(data)


def _file_field(field: str, value: Any) -> Any:
    if isinstance(value, tuple):
        filename, content, *rest = value
        if hasattr(content, "read"):
            content = content.read()
        return (filename, content, *rest)
    if hasattr(value, "read"):
        filename = getattr(value, "name", field)
        return (str(filename).rsplit("/", 1)[-1], value.read())
    return (field, value)
