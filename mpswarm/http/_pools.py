"""HttpUser's connections: urllib3 pools, one per origin, with what each exchange took.

urllib3 keeps HttpUser's requests-like semantics (its pools, its body decoding with a cap on
what it inflates, its errors); the pieces here replace the parts of it, and of the
http.client beneath it, that cost the most per request without changing what a user sees.
"""

from __future__ import annotations

import email.errors
import errno
import http.client
import re
import select
import time
from typing import Any

import urllib3
from gevent import monkey
from urllib3.connection import BaseSSLError, _ResponseOptions
from urllib3.exceptions import HeaderParsingError, ProtocolError, ReadTimeoutError, SSLError
from urllib3.util.response import assert_header_parsing
from urllib3.util.ssl_match_hostname import CertificateError
from urllib3.util.url import _encode_target

from mpswarm.http._transport import tls_context

# urllib3 checks every kept-alive connection before reuse with wait_for_read(timeout=0), which
# under gevent is gevent's select.poll emulation: new watchers and a Timeout for each request
# (about 15% of an HttpUser request's CPU). One poll(2) system call answers the same question.
_original_poll = monkey.get_original("select", "poll")


def _dropped(sock: Any) -> bool:
    """True when a kept-alive socket is closed or has unexpected data (urllib3's rule)."""
    if sock is None:
        return True
    poller = _original_poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class _Timed:
    """What opening a urllib3 connection and waiting for each response took.

    ``connect()`` times the TCP connect (urllib3's ``_new_conn``) and, for https, the TLS
    handshake (the rest of ``connect``); ``getresponse()`` times the wait for the status line
    and headers, which follows the request's last byte. Each response gets them as
    ``_phases`` (see ``Response.timings``), with the bytes ``send()`` wrote for its request;
    a connection's opening goes with its first.
    """

    _opened = (-1, -1)
    _tcp_us = -1
    _tls = False  # https: True
    _sent = 0  # bytes of the request being sent
    _host_header: str | None = None  # "Host: ..." of this connection, once made
    _response_options: _ResponseOptions | None  # urllib3's: set by request(), read here

    def send(self, data: Any) -> None:
        sock = self.sock  # type: ignore[attr-defined]
        if sock is not None and type(data) is bytes:
            # gevent's sendall asks the kernel for the send buffer's size (a getsockopt) on
            # every call; send() loops the same way on the socket's timeout.
            sent = sock.send(data)
            if sent < len(data):
                view = memoryview(data)
                while sent < len(data):
                    sent += sock.send(view[sent:])
        else:
            super().send(data)  # type: ignore[misc]  # (connects first when it must)
        self._sent += len(data) if isinstance(data, (bytes, bytearray, memoryview)) else 0

    def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Any = None,
        *,
        chunked: bool = False,
        preload_content: bool = True,
        decode_content: bool = True,
        enforce_content_length: bool = True,
    ) -> None:
        """urllib3's ``request``, with the request head built in one piece and sent with its
        body in one ``send``: http.client's ``putrequest``/``putheader``/``endheaders`` cost
        about a sixth of an HttpUser request. The same bytes go out, in the same order;
        anything but a connected socket, a bytes body and string headers takes urllib3's way.
        """
        head = None
        if not chunked and self.sock is not None and (body is None or type(body) is bytes):  # type: ignore[attr-defined]
            head = _request_head(self, method, url, body, headers or {})
        if head is None:
            super().request(  # type: ignore[misc]
                method,
                url,
                body,
                headers,
                chunked=chunked,
                preload_content=preload_content,
                decode_content=decode_content,
                enforce_content_length=enforce_content_length,
            )
            return
        self.sock.settimeout(self.timeout)  # type: ignore[attr-defined]
        self._response_options = _ResponseOptions(
            request_method=method,
            request_url=url,
            preload_content=preload_content,
            decode_content=decode_content,
            enforce_content_length=enforce_content_length,
        )
        # http.client's own state: a request sent, its response to be read (as endheaders).
        self._HTTPConnection__state = http.client._CS_REQ_SENT  # type: ignore[attr-defined]
        self._method = method
        if body and len(body) > _ONE_SEND:
            self.send(head)
            self.send(body)
        else:
            self.send(head + body if body else head)

    def _new_conn(self) -> Any:
        start = time.perf_counter()
        sock = super()._new_conn()  # type: ignore[misc]
        self._tcp_us = int((time.perf_counter() - start) * 1e6 + 0.5)
        return sock

    def connect(self) -> None:
        self._sent = 0  # what a failed exchange before it sent is not this request's
        start = time.perf_counter()
        super().connect()  # type: ignore[misc]
        took = int((time.perf_counter() - start) * 1e6 + 0.5)
        tcp = self._tcp_us
        self._opened = (tcp, took - tcp) if self._tls else (took, -1)

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        response = self._urllib3_response(*args, **kwargs)
        waited = int((time.perf_counter() - start) * 1e6 + 0.5)
        response._mpswarm_phases = (*self._opened, waited, self._sent)
        self._opened, self._sent = (-1, -1), 0
        return response

    def _urllib3_response(self, *args: Any, **kwargs: Any) -> Any:
        """urllib3's ``getresponse``, with the head ``_Response`` read: its headers go into
        the HTTPHeaderDict one by one (urllib3 passes them through ``extend``'s type checks,
        and through a fold-normalising step that ``_parse_head`` made needless: no value it
        returns holds a line break), and urllib3's check of the parsed head runs only where
        there is something to report (a defect, or a payload); the same response results."""
        options = self._response_options
        if options is None or args or kwargs or self.response_class is not _Response:  # type: ignore[attr-defined]
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        self._response_options = None
        sock = self.sock  # type: ignore[attr-defined]
        sock.settimeout(self.timeout)  # type: ignore[attr-defined]
        shutdown = getattr(sock, "shutdown", None)
        original = http.client.HTTPConnection.getresponse(self)  # type: ignore[arg-type]
        message = original.msg
        if message.defects or message._payload is not None:  # type: ignore[attr-defined]
            try:
                assert_header_parsing(message)
            except (HeaderParsingError, TypeError) as problem:
                urllib3.connection.log.warning(
                    "Failed to parse headers (url=%s): %s",
                    urllib3.connection._url_from_connection(self, options.request_url),  # type: ignore[arg-type]
                    problem,
                    exc_info=True,
                )
        headers = urllib3.HTTPHeaderDict()
        add = headers.add
        for name, value in message._headers:  # type: ignore[attr-defined]
            add(name, value)
        return urllib3.HTTPResponse(
            body=original,
            headers=headers,
            status=original.status,
            version=original.version,
            version_string=getattr(self, "_http_vsn_str", "HTTP/?"),
            reason=original.reason,
            preload_content=options.preload_content,
            decode_content=options.decode_content,
            original_response=original,
            enforce_content_length=options.enforce_content_length,
            request_method=options.request_method,
            request_url=options.request_url,
            sock_shutdown=shutdown,
        )


_ONE_SEND = 65536  # a larger body is sent after the head, not copied onto it
# Header names and values http.client refuses (``putheader``'s checks): no name with a colon
# or white space, no line break in a value that does not continue it.
_NAME = re.compile(r"[^:\s][^:\r\n]*")
_BAD_VALUE = re.compile(r"\n(?![ \t])|\r(?![ \t\n])")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")


def _request_head(
    connection: Any, method: str, url: str, body: bytes | None, headers: Any
) -> bytes | None:
    """The head urllib3 and http.client would send, or None where they must decide.

    Their order: the request line, ``Host`` and ``Accept-Encoding: identity`` unless given,
    the framing (``Content-Length`` of the body, 0 for a method that expects one), urllib3's
    ``User-Agent`` unless given, then the given headers as they are.
    """
    if _BAD_TARGET.search(method) or _BAD_TARGET.search(url) or url.startswith("http"):
        return None  # http.client's errors; an absolute target (a proxy's): its Host rule
    idle = http.client._CS_IDLE  # type: ignore[attr-defined]
    if connection._HTTPConnection__state != idle or connection._tunnel_host:
        return None
    lines = [f"{method} {url} HTTP/1.1"]
    keys = set()
    given = []
    for name, value in headers.items():
        if type(name) is not str or type(value) is not str or value == urllib3.util.SKIP_HEADER:
            return None
        if not _NAME.fullmatch(name) or _BAD_VALUE.search(value):
            return None  # http.client raises its ValueError
        keys.add(name.lower())
        given.append(f"{name}: {value}")
    if "transfer-encoding" in keys:
        return None
    if "host" not in keys:
        host = connection._host_header
        if host is None:
            host = connection._host_header = _host_header(
                connection.host, connection.port, connection.default_port
            )
            if host is None:
                return None
        lines.append(host)
    if "accept-encoding" not in keys:
        lines.append("Accept-Encoding: identity")
    if "content-length" not in keys:
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        elif method.upper() not in _NO_BODY_METHODS:
            lines.append("Content-Length: 0")
    if "user-agent" not in keys:
        lines.append(_USER_AGENT)
    lines.extend(given)
    lines.append("\r\n")
    try:
        return "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        return None  # a value outside Latin-1, a target outside ASCII: http.client's errors


def _host_header(host: str, port: int, default_port: int) -> str | None:
    """http.client's ``Host`` header for a connection, or None for a host it would encode."""
    if not host.isascii():
        return None
    if ":" in host:  # IPv6, without a zone
        host = f"[{host.split('%', 1)[0]}]"
    return f"Host: {host}" if port == default_port else f"Host: {host}:{port}"


_NO_BODY_METHODS = frozenset(("GET", "HEAD", "DELETE", "TRACE", "OPTIONS", "CONNECT"))
_USER_AGENT = f"User-Agent: python-urllib3/{urllib3.__version__}"


class _Message(http.client.HTTPMessage):
    """A response's headers as http.client's HTTPMessage, read without the email parser.

    http.client parses a response head with ``email.parser`` (about a quarter of an HttpUser
    request's CPU), and every ``get``/``items`` passes each value through the email policy.
    Values decoded from ISO-8859-1 carry no surrogates, so that policy returns them as they
    are: these lookups return them directly.
    """

    def get(self, name: str, failobj: Any = None) -> Any:
        name = name.lower()
        for key, value in self._headers:  # type: ignore[attr-defined]
            if key.lower() == name:
                return value
        return failobj

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def get_all(self, name: str, failobj: Any = None) -> Any:
        name = name.lower()
        found = [value for key, value in self._headers if key.lower() == name]  # type: ignore[attr-defined]
        return found or failobj

    def items(self) -> list[tuple[str, str]]:
        return list(self._headers)  # type: ignore[attr-defined]

    def values(self) -> list[str]:
        return [value for _, value in self._headers]  # type: ignore[attr-defined]


def _parse_head(lines: list[bytes]) -> _Message:
    """The header lines http.client read (``_read_headers``, with its limits) as a message.

    ``Name: value`` pairs in order, the value without the spaces before it; an obsolete
    folded line continues the value before it; a line that is no header is a defect, as the
    email parser records it (urllib3 then logs it), and is left out.
    """
    message = _Message()
    headers: list[tuple[str, str]] = message._headers  # type: ignore[attr-defined]
    for line in b"".join(lines).decode("iso-8859-1").split("\n"):  # (not splitlines: \x85)
        line = line.rstrip("\r")
        if not line:
            break
        if line[0] in " \t":
            if headers:
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            message.defects.append(email.errors.InvalidHeaderDefect(line[:100]))
            continue
        headers.append((name, value.lstrip(" \t")))
    return message


class _Response(http.client.HTTPResponse):
    """http.client's response with the head read by ``_parse_head``; the body as before."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        headers = _parse_head(http.client._read_headers(self.fp))
        self.headers = self.msg = headers
        coding = headers.get("transfer-encoding")
        self.chunked = bool(coding) and coding.lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (204, 304) or 100 <= status < 200 or self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class _HTTPConnection(_Timed, urllib3.connection.HTTPConnection):  # type: ignore[misc]
    response_class = _Response

    @property
    def is_connected(self) -> bool:
        return not _dropped(self.sock)


class _HTTPSConnection(_Timed, urllib3.connection.HTTPSConnection):  # type: ignore[misc]
    response_class = _Response
    _tls = True

    @property
    def is_connected(self) -> bool:
        return not _dropped(self.sock)


#: No timeout at all (what ``timeout=None`` asks): nothing to clone or start per request.
NO_TIMEOUT = urllib3.Timeout(connect=None, read=None)
#: Retries off, redirects left to the session: urllib3 raises the first error.
NO_RETRIES = urllib3.Retry(False, redirect=False)
_URLOPEN_ERRORS = (
    urllib3.exceptions.TimeoutError, http.client.HTTPException, OSError, ProtocolError,
    BaseSSLError, SSLError, CertificateError,
)  # fmt: skip


class _Exchange:
    """``exchange``: urllib3's ``urlopen`` for the one kind of call HttpSession makes.

    That call is ``urlopen(method, target, body=bytes or None, headers=..., redirect=False,
    retries=NO_RETRIES, timeout=..., preload_content=False, decode_content=True,
    assert_same_host=False)`` on a pool without a proxy, with a target ``OriginPools`` encoded
    once. For it, urllib3 takes a connection from the pool (a kept-alive one checked first),
    connects it if it must, sends the request, reads the response head and hands the
    connection to the response, which returns it to the pool once its body was read; on an
    error it closes the connection and raises the error as below. ``exchange`` does the same,
    in the same order, with the same exceptions, without the steps that are for other calls
    (the target's encoding, the retry and timeout objects made anew, the proxy's headers
    copied in, a body's file position, a debug line formatted): measured, urlopen spent about
    a seventh of an HttpUser request's CPU on itself.
    """

    def exchange(self, method: str, target: str, body: bytes | None, headers: Any,
                 timeout: Any) -> Any:  # fmt: skip
        pool: Any = self
        if timeout is NO_TIMEOUT:
            connect_timeout = read_timeout = None
        else:
            timeout = pool._get_timeout(timeout)
            timeout.start_connect()
            connect_timeout = urllib3.Timeout.resolve_default_timeout(timeout.connect_timeout)
        conn = None
        try:
            conn = pool._get_conn()
            pool.num_requests += 1
            conn.timeout = connect_timeout
            try:
                pool._validate_conn(conn)
            except (TimeoutError, BaseSSLError) as exc:  # socket.timeout is TimeoutError
                pool._raise_timeout(err=exc, url=target, timeout_value=connect_timeout)
                raise
            try:
                conn.request(method, target, body=body, headers=headers, chunked=False,
                             preload_content=False, decode_content=True,
                             enforce_content_length=True)  # fmt: skip
            except BrokenPipeError:
                pass  # the server may have answered before it closed: read it
            except OSError as exc:
                if exc.errno not in (errno.EPROTOTYPE, errno.ECONNRESET):
                    raise
            if timeout is not NO_TIMEOUT:
                read_timeout = timeout.read_timeout
                if read_timeout == 0 and not conn.is_closed:
                    raise ReadTimeoutError(
                        pool, target, f"Read timed out. (read timeout={read_timeout})"
                    )
            if not conn.is_closed:
                conn.timeout = read_timeout
            try:
                response = conn.getresponse()
            except (BaseSSLError, OSError) as exc:
                pool._raise_timeout(err=exc, url=target, timeout_value=read_timeout)
                raise
        except _URLOPEN_ERRORS as exc:
            if conn is not None:
                conn.close()
            pool._put_conn(None)
            if isinstance(exc, (BaseSSLError, CertificateError)):
                raise SSLError(exc)  # chained as urllib3 chains it: the context, no cause
            if isinstance(exc, (OSError, http.client.HTTPException)):
                raise ProtocolError("Connection aborted.", exc)
            raise
        except BaseException:
            if conn is not None:
                conn.close()
            pool._put_conn(None)
            raise
        response.retries = NO_RETRIES
        response._connection = conn  # the response returns it to the pool
        response._pool = pool
        return response


def read_announced(raw: Any) -> bytes:
    """``raw.read()`` for a urllib3 response whose body has an announced length and no
    content coding: http.client reads that length into one bytes object, and the response's
    books are kept as urllib3 keeps them (bytes read, length remaining, the connection back
    to the pool once the body is in). urllib3's ``read`` wraps the same read in its error
    handling, a generator-based context manager, and its decoder steps (measured: a sixth of
    an HttpUser request's CPU); here the error handling runs only when the read failed, on
    the exception it raised, so it is translated and the connection dropped exactly as there.
    """
    fp = raw._fp
    if fp is None or raw.length_remaining is None or raw._decoder is not None:
        return raw.read()  # nothing to read, or a case this is not for: urllib3's way
    try:
        data: bytes = fp.read()
    except BaseException as exc:
        with raw._error_catcher():  # urllib3's translation and clean-up of this very error
            raise exc
        raise  # (not reached: the catcher raises)
    if data:
        raw._fp_bytes_read += len(data)
        raw.length_remaining -= len(data)
    original = raw._original_response
    if original is not None and original.isclosed():
        raw.release_conn()
    return data


class _HTTPPool(_Exchange, urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_Exchange, urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection

    def _validate_conn(self, conn: Any) -> None:
        # urllib3's, without its InsecureRequestWarning on every request: an unverified
        # connection is what --insecure (or verify=False) asked for.
        if conn.is_closed:
            conn.connect()


class OriginPools:
    """HttpUser's urllib3 pools, one per origin (at most ``limit``), and each URL's route.

    urllib3's PoolManager parses the URL and normalises a pool key on every request (about 10%
    of an HttpUser request's CPU); a user sends to few URLs, so the pool and request target of
    each URL are looked up once.
    """

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._pools: dict[tuple[str, str, int, bool], Any] = {}
        self._routes: dict[tuple[str, bool], tuple[Any, str]] = {}

    def route(self, url: str, verify: bool) -> tuple[Any, str]:
        """The pool for ``url``'s origin and the request target to send it (encoded as
        urllib3's ``urlopen`` encodes it)."""
        found = self._routes.get((url, verify))
        if found is None:
            parts = urllib3.util.parse_url(url)
            scheme = (parts.scheme or "http").lower()
            if scheme not in ("http", "https"):
                raise urllib3.exceptions.URLSchemeUnknown(scheme)
            if not parts.host:
                raise urllib3.exceptions.LocationValueError("No host specified.")
            origin = (scheme, parts.host, parts.port or (443 if scheme == "https" else 80), verify)
            pool = self._pools.get(origin)
            if pool is None:
                if len(self._pools) >= self.limit:
                    self._pools.pop(next(iter(self._pools))).close()
                    self._routes.clear()
                pool = self._pools[origin] = _new_pool(*origin)
            found = (pool, _encode_target(parts.request_uri))
            if len(self._routes) >= 1024:  # unique URLs must not grow this without end
                self._routes.clear()
            self._routes[(url, verify)] = found
        return found

    def close(self) -> None:
        """Close every pool's connections."""
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._routes.clear()


def _new_pool(scheme: str, host: str, port: int, verify: bool) -> Any:
    # One greenlet per user, requests in sequence: one kept-alive connection per origin.
    if scheme == "https":
        return _HTTPSPool(
            host,
            port,
            maxsize=1,
            block=False,
            retries=False,
            cert_reqs=None if verify else "CERT_NONE",
            ssl_context=tls_context(verify),
        )
    return _HTTPPool(host, port, maxsize=1, block=False, retries=False)
