"""FastHttpUser's transport: a lean HTTP/1.1 client on gevent sockets and httptools (llhttp).

One kept-alive connection per origin and user, requests written with one ``sendall``,
responses parsed by llhttp. Everything else (events, cookies, bodies, catch_response, the
errors a user sees) is HttpSession's: only ``_send`` differs.

What a server can make it hold is capped (``_limits``): the status line and headers, the body
as received and as decompressed. A body is gathered in one buffer that becomes ``content``
without a copy, so a body of N bytes costs N bytes, not twice that.
"""

from __future__ import annotations

import http.cookiejar
import ipaddress
import socket
import ssl
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import httptools

from mpswarm._text import printable
from mpswarm.exceptions import RequestError
from mpswarm.http import _limits
from mpswarm.http._cookies import CookieRequest, CookieResponse
from mpswarm.http._fastparse import Headers, Parsed, content_length, truncation
from mpswarm.http._faststream import FastBodyStream
from mpswarm.http._inflate import decompress
from mpswarm.http._limits import (
    MAX_HEADER_SIZE,
    MAX_HEADERS,
    BadResponse,
    BodyTooLarge,
    body_too_large,
    check_body_size,
)
from mpswarm.http._transport import (
    Connection,
    GeventConnection,
    PlainConnection,
    SharedConnections,
    shared,
    tls_context,
)
from mpswarm.http.response import Request, Response
from mpswarm.http.session import HttpSession, _origin, split_credentials

_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_RECV = 65536
_DEFAULT_TIMEOUT_S = 60.0
_NO_BODY_STATUS = frozenset((204, 304))
# Parsers are reused (a new one costs about 1 us) from a free list shared by the process: one
# per request in flight, not one per connection (600 bytes for each idle user).
_PARSERS: list[Parsed] = []
_SPARE_PARSERS = 1024
# (origin key, request target, Host header) of each URL, shared by every user of the process.
_TARGETS: dict[str, tuple[tuple[str, str, int], str, str]] = {}
# The bytes of a request without headers or body, by (method, target, Host header).
_HEADS: dict[tuple[str, str, str], bytes] = {}


class FastHttpSession(HttpSession):
    """HttpSession API on the lean client; Locust's FastHttpSession options.

    Args:
        base_url: the user's host (credentials in it are sent as basic auth).
        request_event: fired once per request.
        user: the owning user.
        insecure: skip TLS certificate verification.
        connection_timeout: seconds to connect.
        network_timeout: seconds to wait for each read.
        max_redirects: redirects followed before giving up.
        max_body_size: the cap on a response body (default ``max_body_size``, 32 MiB).
    """

    #: Idle connections shared with other sessions (a ``client_pool``), or None.
    _shared: SharedConnections | None = None
    #: Makes the TLS context of each new https connection (Locust's option); its errors are
    #: raised, as a bug of the locustfile, not counted as failed requests.
    ssl_context_factory: Any = None

    def __init__(
        self,
        base_url: str,
        request_event: Any,
        user: Any = None,
        insecure: bool = False,
        connection_timeout: float = _DEFAULT_TIMEOUT_S,
        network_timeout: float = _DEFAULT_TIMEOUT_S,
        max_redirects: int = 5,
        max_body_size: int | None = None,
        client_pool: Any = None,
        ssl_context_factory: Any = None,
    ) -> None:
        if max_body_size is not None and max_body_size != self.max_body_size:
            self.max_body_size = check_body_size(max_body_size, type(self).__name__)
        base_url, self.auth = split_credentials(base_url)
        self.base_url = base_url
        self._origin = _origin(base_url)
        self.request_event = request_event
        self.user = user
        self.headers: dict[str, str] = {}
        self._jar: http.cookiejar.CookieJar | None = None
        self.verify = not insecure
        self.connection_timeout = connection_timeout
        self.network_timeout = network_timeout
        self.max_redirects = max_redirects
        # Kept-alive connections: most users talk to one origin, so one (key, connection)
        # pair, and a dict only for further origins (a dict per idle user cost 220 bytes).
        self._idle: tuple[tuple[str, str, int], Connection] | None = None
        self._more: dict[tuple[str, str, int], Connection] | None = None
        # Sessions given the same client_pool (Locust's FastHttpUser.client_pool) keep their
        # idle connections in one place, and take them from there.
        # (Set only when given: the class's None costs an idle user nothing.)
        if client_pool is not None:
            self._shared = shared(client_pool, SharedConnections)
        if ssl_context_factory is not None:
            self.ssl_context_factory = ssl_context_factory

    def close(self) -> None:
        """Close every kept-alive connection (not those shared through a client_pool)."""
        if self._idle is not None:
            self._idle[1].close()
            self._idle = None
        for connection in (self._more or {}).values():
            connection.close()
        self._more = None

    def _take(self, key: tuple[str, str, int]) -> Connection | None:
        if self._shared is not None:
            return self._shared.take(key)
        idle = self._idle
        if idle is not None and idle[0] == key:
            self._idle = None
            return idle[1]
        return self._more.pop(key, None) if self._more else None

    def _keep(self, key: tuple[str, str, int], connection: Connection) -> None:
        if self._shared is not None:
            self._shared.keep(key, connection)
            return
        if self._idle is None:
            self._idle = (key, connection)
            return
        if self._more is None:
            self._more = {}
        spare = self._more.get(key)  # a second one to this origin (a stream read to its end
        if spare is not None:  # after a newer request, greenlets sharing the client): closed
            spare.close()
        self._more[key] = connection

    # -- transport -----------------------------------------------------------------------------
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
        connect_timeout, read_timeout = self._timeouts(timeout)
        history: list[Response] = []
        while True:
            sent = self._with_cookies(url, headers, extra_cookies)
            request = Request(method, url, sent, body)
            try:
                response = self._exchange(
                    method,
                    url,
                    sent,
                    body,
                    verify,
                    connect_timeout,
                    read_timeout,
                    limit,
                    stream,
                    allow_redirects,
                )
            except _FactoryFailed as exc:
                raise exc.__cause__ from None  # type: ignore[misc]
            except (
                OSError,
                BadResponse,
                BodyTooLarge,
                httptools.HttpParserError,
                ValueError,
            ) as exc:
                error = RequestError(_describe(exc))
                error.original = exc  # what the transport raised (Locust's attribute)
                failed = Response(content=None, url=url, request=request, error=error)
                failed._no_text = None  # Locust's FastHttpUser: no response, no text
                failed.history = history
                return failed
            response.request = request
            if response.headers.get("Set-Cookie"):
                self.cookies.extract_cookies(
                    CookieResponse(response.headers),  # type: ignore[arg-type]
                    CookieRequest(url, sent),  # type: ignore[arg-type]
                )
            location = response.headers.get("Location")
            if not (allow_redirects and response.status_code in _REDIRECTS and location):
                response.history = history
                return response
            if len(history) >= self.max_redirects:
                response.history = history
                response.error = RequestError(f"TooManyRedirects: over {self.max_redirects}")
                return response
            history.append(response)
            url = urljoin(url, location)
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method not in ("GET", "HEAD")
            ):
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}

    def _timeouts(self, timeout: Any) -> tuple[float, float]:
        if isinstance(timeout, tuple):
            return float(timeout[0]), float(timeout[1])
        if timeout is not None:
            return float(timeout), float(timeout)
        return self.connection_timeout, self.network_timeout

    def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Any,
        verify: bool,
        connect_timeout: float,
        read_timeout: float,
        limit: int,
        stream: bool,
        follow: bool,
    ) -> Response:
        key, target, host_header = self._target(url)
        scheme, host, port = key
        payload = self._serialize(method, target, host_header, headers, body)
        connection = self._take(key)
        if connection is not None:
            try:
                return self._roundtrip(
                    connection, key, method, url, payload, read_timeout, limit, stream, follow
                )
            except _StaleConnection:
                pass  # the server closed the idle connection: one retry on a fresh one
        connection = self._connect(scheme, host, port, verify, connect_timeout)
        try:
            return self._roundtrip(
                connection, key, method, url, payload, read_timeout, limit, stream, follow
            )
        except _StaleConnection as exc:
            raise BadResponse("the server closed the connection without a response") from exc

    def _target(self, url: str) -> tuple[tuple[str, str, int], str, str]:
        """(origin key, request target, Host header) of a URL, parsed once per URL."""
        found = _TARGETS.get(url)
        if found is None:
            parts = urlsplit(url)
            scheme = parts.scheme or "http"
            host = parts.hostname or ""
            port = parts.port or (443 if scheme == "https" else 80)
            shown = f"[{host}]" if ":" in host else host
            if port != (443 if scheme == "https" else 80):
                shown = f"{shown}:{port}"
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            found = ((scheme, host, port), target, shown)
            if len(_TARGETS) < 4096:  # unique URLs must not grow this without end
                _TARGETS[url] = found
        return found

    @staticmethod
    def _serialize(
        method: str, target: str, host_header: str, headers: dict[str, str], body: Any
    ) -> bytes:
        if not headers and not body:  # the same bytes for every plain request to a URL
            key = (method, target, host_header)
            payload = _HEADS.get(key)
            if payload is None:
                payload = _request_bytes(method, target, host_header, {}, b"")
                if len(_HEADS) < 4096:  # unique URLs must not grow this without end
                    _HEADS[key] = payload
            return payload
        data = body if isinstance(body, bytes) else (body.encode() if body else b"")
        return _request_bytes(method, target, host_header, headers, data)

    def _connect(
        self, scheme: str, host: str, port: int, verify: bool, timeout: float
    ) -> Connection:
        context = None
        if scheme == "https":
            factory = self.ssl_context_factory
            context = tls_context(verify) if factory is None else _user_context(factory)
        start = time.perf_counter()
        sock = _open_socket(host, port, timeout)
        connected = time.perf_counter()
        connection: Connection
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if context is None:
                connection = PlainConnection(sock)
                connection.opened = (_us(connected - start), -1)
                return connection
            connection = GeventConnection(context.wrap_socket(sock, server_hostname=host))
        except BaseException:  # a failed handshake: the socket goes now, not at collection
            sock.close()
            raise
        connection.opened = (_us(connected - start), _us(time.perf_counter() - connected))
        return connection

    def _roundtrip(
        self,
        connection: Connection,
        key: tuple[str, str, int],
        method: str,
        url: str,
        payload: bytes,
        read_timeout: float,
        limit: int,
        stream: bool,
        follow: bool,
    ) -> Response:
        """One request and its response, on ``connection``.

        Args:
            limit: the cap on the body (``max_body_size``).
            stream: return at the headers, the body left to ``FastBodyStream``; a redirect
                about to be followed (``follow``) is read whole all the same.
        """
        reused = connection.used
        connection.used = True
        if _PARSERS:
            parsed = _PARSERS.pop()
        else:
            parsed = Parsed()
            parsed.parser = httptools.HttpResponseParser(parsed)
        parser = parsed.parser
        got = 0  # bytes received
        announced = False  # the Content-Length was checked against the cap
        first_byte = 0.0
        try:
            connection.sendall(payload, read_timeout)
            sent = time.perf_counter()
            while not parsed.complete:
                chunk = connection.recv(_RECV, read_timeout, not got)
                if not chunk:
                    if not got and reused:
                        raise _StaleConnection()
                    if parsed.headers_done and parsed.close_delimited():
                        break  # the body ends with the connection
                    raise BadResponse(truncation(parsed))
                if not got:
                    first_byte = time.perf_counter()
                got += len(chunk)
                parser.feed_data(chunk)
                if parsed.complete:
                    break  # most responses: all in the first read
                if parsed.headers_done:
                    # A longer body: the checks cost nothing on the common path above.
                    if method == "HEAD" or parsed.status in _NO_BODY_STATUS:
                        break
                    if stream and not (follow and parsed.status in _REDIRECTS):
                        break  # the body is the user's to read
                    if not announced:
                        announced = True
                        if content_length(parsed) > limit:  # fail now, not after the cap's worth
                            raise BodyTooLarge(body_too_large(limit))
                    if parsed.size > limit:
                        raise BodyTooLarge(body_too_large(limit))
                elif len(parsed.headers) > MAX_HEADERS:
                    raise BadResponse(_limits.TOO_MANY_HEADERS)
                elif got > MAX_HEADER_SIZE:
                    raise BadResponse(_limits.HEADERS_TOO_LARGE)
            if parsed.size > limit and not stream:
                raise BodyTooLarge(body_too_large(limit))
        except TimeoutError as exc:
            connection.close()
            raise TimeoutError(f"read timed out after {read_timeout:g} s") from exc
        except ConnectionResetError:
            connection.close()
            if not got and reused:
                raise _StaleConnection() from None
            raise
        except BaseException:
            connection.close()
            raise
        opened = (-1, -1) if reused else connection.opened
        phases = (*opened, _us(first_byte - sent) if got else -1, len(payload))
        if stream and _streams(parsed, method, follow):
            streamed = self._streamed(connection, key, url, parsed, read_timeout, limit)
            streamed._phases = phases
            return streamed
        status = parsed.status
        headers = Headers(parsed.headers)
        finished = parsed.complete or (
            parsed.headers_done and (method == "HEAD" or status in _NO_BODY_STATUS)
        )
        if finished and parsed.keep_alive:
            self._keep(key, connection)
        else:
            connection.close()
        more = parsed.more
        content = parsed.body if more is None else more.getvalue()
        reason = parsed.reason.decode("latin-1")
        if parsed.complete and len(_PARSERS) < _SPARE_PARSERS:
            # Back to the free list, at a message boundary (a HEAD answer is not: llhttp
            # would wait for the body its Content-Length announced).
            parsed.reset()
            _PARSERS.append(parsed)
        encoding = headers.get("Content-Encoding", "").lower()
        if content and encoding in ("gzip", "deflate"):
            content = decompress(content, encoding, limit)
        response = Response(status, reason, headers, content, url)
        response._phases = phases
        return response

    def _streamed(
        self,
        connection: Connection,
        key: tuple[str, str, int],
        url: str,
        parsed: Parsed,
        read_timeout: float,
        limit: int,
    ) -> Response:
        """A ``stream=True`` response, returned at its headers; its body stays on the wire."""
        headers = Headers(parsed.headers)
        encoding = headers.get("Content-Encoding", "").lower()

        def done(keep: bool) -> None:
            if keep:
                self._keep(key, connection)
            else:
                connection.close()
            if parsed.complete and len(_PARSERS) < _SPARE_PARSERS:  # at a message boundary
                parsed.reset()
                _PARSERS.append(parsed)

        body = FastBodyStream(connection, parsed, read_timeout, encoding, done)
        response = Response(parsed.status, parsed.reason.decode("latin-1"), headers, None, url)
        response.raw = body
        response._limit = limit
        return response


def _request_bytes(
    method: str, target: str, host_header: str, headers: dict[str, str], data: bytes
) -> bytes:
    """A request's bytes: its head (the given headers after the defaults), then ``data``."""
    head = f"{method} {target} HTTP/1.1\r\nHost: {host_header}\r\n"
    if headers:
        lowered = {name.lower() for name in headers}
        if "accept-encoding" not in lowered:
            head += "Accept-Encoding: gzip, deflate\r\n"
        if "user-agent" not in lowered:
            head += "User-Agent: mpswarm\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    else:
        head += "Accept-Encoding: gzip, deflate\r\nUser-Agent: mpswarm\r\n"
    if data or method in ("POST", "PUT", "PATCH"):
        head += f"Content-Length: {len(data)}\r\n"
    return (head + "\r\n").encode("latin-1") + data


def _us(seconds: float) -> int:
    return int(seconds * 1e6 + 0.5)


def _open_socket(host: str, port: int, timeout: float) -> socket.socket:
    """A connected socket; an IP literal skips getaddrinfo, which gevent runs in a thread."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.create_connection((host, port), timeout=timeout)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _StaleConnection(Exception):
    """A reused connection was closed by the server before it answered."""


def _streams(parsed: Parsed, method: str, follow: bool) -> bool:
    """Whether a ``stream=True`` response is returned as a stream: one with a body that is
    not a redirect about to be followed."""
    status = parsed.status
    return not (method == "HEAD" or status in _NO_BODY_STATUS or (follow and status in _REDIRECTS))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httptools.HttpParserCallbackError) and isinstance(
        exc.__context__, BadResponse
    ):
        exc = exc.__context__  # raised in a callback (too many headers)
    if isinstance(exc, httptools.HttpParserInvalidStatusError):
        return _limits.BAD_STATUS_LINE
    if isinstance(exc, httptools.HttpParserError):
        text = str(exc)
        if text.startswith("Expected HTTP/"):
            return _limits.NOT_HTTP  # not even a status line: garbage, one error kind
        return f"BadResponse: not valid HTTP ({printable(text, 100)})"
    if isinstance(exc, BodyTooLarge):
        return str(exc)
    if isinstance(exc, BadResponse):
        text = str(exc)
        return text if text.split(":", 1)[0].isidentifier() else f"BadResponse: {text}"
    if isinstance(exc, TimeoutError):
        return f"ReadTimeout: {exc}"
    if isinstance(exc, ssl.SSLError):
        return f"SSLError: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"NameResolutionError: {exc.strerror}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
    return f"{type(exc).__name__}: {printable(str(exc))}"


class _FactoryFailed(Exception):
    """An ``ssl_context_factory`` raised (its exception is the cause)."""


def _user_context(factory: Any) -> Any:
    try:
        return factory()
    except Exception as exc:
        raise _FactoryFailed() from exc
