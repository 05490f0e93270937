"""A request's URL, head and body as requests makes them, in the bytes a transport sends.

Locust's HttpUser client is a ``requests.Session``: what a call sends is what requests'
``PreparedRequest`` makes of it, and the session asks requests to prepare every request that
carries anything of its own (params, a body, headers, cookies, auth). A plain request, a URL
alone, is what a load test sends on most iterations: what requests makes of its URL is kept
per URL (once per process, ``route``), and the header lines of a session's headers once per
change of them (``header_lines``), so such a request costs a lookup and a join.

The head is written here for both transports, as http.client writes it for requests: the
request line, ``Host`` (unless given), the headers in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from http.cookiejar import CookieJar
from typing import Any

from requests.cookies import (
    RequestsCookieJar,
    cookiejar_from_dict,
    get_cookie_header,
    merge_cookies,
)
from requests.exceptions import InvalidSchema
from requests.models import PreparedRequest, Request
from requests.sessions import merge_hooks, merge_setting
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    check_header_validity,
    get_netrc_auth,
    to_native_string,
    urldefragauth,
)
from urllib3.util import parse_url

from mpswarm.http._transport import Origin

#: Locust's test for a URL that is not joined to the host: ``HttpSession._build_url``.
ABSOLUTE = re.compile(r"^https?://", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BLOCK = 16384  # what urllib3 reads of a file body at a time


class Route:
    """What requests makes of one URL, and where it sends it.

    Attributes:
        url: the URL as ``PreparedRequest.prepare_url`` makes it (quoted, IDNA, path "/").
        origin: (scheme, host, port) to connect to.
        target: the request target, path and query (``PreparedRequest.path_url``).
        host: the ``Host`` header line http.client would write.
        plain: no credentials in the URL: a request to it may take the plain path.
    """

    __slots__ = ("host", "origin", "plain", "target", "url")

    def __init__(self, url: str, origin: Origin, target: str, host: str, plain: bool) -> None:
        self.url = url
        self.origin = origin
        self.target = target
        self.host = host
        self.plain = plain


_ROUTES: dict[str, Route] = {}


def route(url: str) -> Route:
    """The Route of a full URL, made once per URL and process.

    Raises:
        MissingSchema, InvalidURL: as requests raises them for the URL.
        InvalidSchema: a scheme other than http or https (requests' text).
    """
    found = _ROUTES.get(url)
    if found is None:
        prepared = PreparedRequest()
        prepared.prepare_url(url, None)
        found = route_of(prepared.url)  # type: ignore[arg-type]
        if len(_ROUTES) < 4096:  # unique URLs must not grow this without end
            _ROUTES[url] = found
    return found


def route_of(prepared_url: str) -> Route:
    """The Route of a URL requests has prepared already."""
    if not prepared_url.lower().startswith(("http://", "https://")):
        raise InvalidSchema(f"No connection adapters were found for {prepared_url!r}")
    parts = parse_url(prepared_url)
    scheme = (parts.scheme or "http").lower()
    host = parts.host or ""
    port = parts.port or _DEFAULT_PORTS[scheme]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query is not None else "")
    return Route(
        prepared_url,
        (scheme, host, port),
        target,
        host_line(host, port, _DEFAULT_PORTS[scheme]),
        not parts.auth,
    )


def host_line(host: str, port: int, default_port: int) -> str:
    """http.client's ``Host`` header line for a connection (IPv6 in brackets, no zone)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host.split('%', 1)[0]}]"
    elif host.startswith("[") and "%" in host:
        host = host.split("%", 1)[0] + "]"
    return f"Host: {host}\r\n" if port == default_port else f"Host: {host}:{port}\r\n"


def proxy_target(url: str) -> tuple[str, str]:
    """The absolute-form target and Host line of a request sent through an HTTP proxy."""
    target = urldefragauth(url)
    netloc = parse_url(target).netloc or ""
    return target, f"Host: {netloc}\r\n"


def header_lines(headers: Mapping[Any, Any]) -> str:
    """The header lines of ``headers`` as http.client writes them, each checked as requests
    checks it (``InvalidHeader``); a header with a None value is left out."""
    lines = []
    for name, value in headers.items():
        if value is None:
            continue
        check_header_validity((name, value))
        name = to_native_string(name)
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


def session_lines(session: Any, headers: Any) -> str | None:
    """The header lines of a session's headers, made again only when they changed; None for
    headers naming a Cookie, a Content-Length or a Host (requests' preparation decides)."""
    version = getattr(headers, "version", None)
    cached = session._lines
    if cached is None or cached[0] is not headers or cached[1] != version or version is None:
        lines: str | None = None
        if not any(name in headers for name in ("cookie", "content-length", "host")):
            for name, value in headers.items():
                if value is None:  # requests sends the session's None, and refuses it
                    check_header_validity((name, value))  # type: ignore[arg-type]
            lines = header_lines(headers) + "".join(
                f"{name}: {value}\r\n"
                for name, value in session._wire_defaults
                if name not in headers
            )
        cached = session._lines = (headers, version, lines)
    return cached[2]


class Probe:
    """What requests' MockRequest reads of a request: its URL and headers."""

    __slots__ = ("headers", "url")

    def __init__(self, url: str, headers: Any) -> None:
        self.url = url
        self.headers = headers if isinstance(headers, Mapping) else dict(headers)


def cookie_header(jar: CookieJar, url: str, headers: Any) -> str | None:
    """The Cookie header ``jar`` gives a request to ``url`` (requests' ``get_cookie_header``)."""
    return get_cookie_header(jar, Probe(url, headers))  # type: ignore[arg-type]


def prepared(
    *,
    method: str,
    url: str,
    params: Any,
    data: Any,
    headers: Any,
    cookies: Any,
    files: Any,
    auth: Any,
    json: Any,
    hooks: Any,
    session_headers: Any,
    session_jar: Any,
    session_params: Any,
    session_auth: Any,
    session_hooks: Any,
    trust_env: bool,
) -> PreparedRequest:
    """``requests.Session.prepare_request`` on a session's settings, given as they are (an
    unset one as its default, so that preparing makes nothing for the session)."""
    request = Request(
        method=method,
        url=url,
        headers=headers,
        files=files,
        data=data or {},
        json=json,
        params=params or {},
        auth=auth,
        cookies=cookies,
        hooks=hooks,
    )
    cookies = request.cookies or {}
    if not isinstance(cookies, CookieJar):
        cookies = cookiejar_from_dict(cookies)
    merged = RequestsCookieJar()
    if session_jar is not None:
        merge_cookies(merged, session_jar)
    merge_cookies(merged, cookies)
    auth = request.auth
    if trust_env and not auth and not session_auth:
        auth = get_netrc_auth(url)
    result = PreparedRequest()
    result.prepare(
        method=method,
        url=url,
        files=request.files,
        data=request.data,
        json=request.json,
        headers=merge_setting(request.headers, session_headers, dict_class=CaseInsensitiveDict),
        params=merge_setting(request.params, session_params or {}),
        auth=merge_setting(auth, session_auth),
        cookies=merged,
        hooks=merge_hooks(request.hooks, session_hooks),
    )
    return result


#: Methods urllib3 sends no ``Content-Length: 0`` for when they have no body.
_NO_CONTENT_METHODS = frozenset(("GET", "HEAD", "DELETE", "TRACE", "OPTIONS", "CONNECT"))


def lines_of(
    request: PreparedRequest, wire_defaults: tuple[tuple[str, str], ...]
) -> tuple[str, Any]:
    """The header lines and body of a request requests prepared, with what the transport's
    library adds on the wire: urllib3's ``Content-Length: 0`` for a method that expects a
    body and has none, ``wire_defaults`` for headers the request lacks."""
    headers = request.headers
    framed = "Content-Length" in headers or "Transfer-Encoding" in headers
    chunked = request.body is not None and "Content-Length" not in headers
    lines = header_lines(headers)
    if request.body is None and not framed and request.method not in _NO_CONTENT_METHODS:
        lines += "Content-Length: 0\r\n"
    for name, value in wire_defaults:
        if name not in headers:
            lines += f"{name}: {value}\r\n"
    return lines, body_of(request.body, chunked)


def head(method: str, target: str, host: str, lines: str, extra: str = "") -> bytes:
    """A request's head: its line, ``Host`` (``host`` may be ""), the header lines, and the
    blank line; str values outside Latin-1 raise UnicodeEncodeError, as in http.client."""
    return f"{method} {target} HTTP/1.1\r\n{host}{lines}{extra}\r\n".encode("latin-1")


def plain_head(method: str, route: Route, lines: str) -> bytes:
    """The head of a plain request (no proxy, the Host http.client adds), the same bytes for
    every request of a method to a URL with the same header lines: made once."""
    key = (method, route.url, lines)
    found = _HEADS.get(key)
    if found is None:
        found = head(method, route.target, route.host, lines)
        if len(_HEADS) < 4096:  # unique URLs (or header lines) must not grow this without end
            _HEADS[key] = found
    return found


_HEADS: dict[tuple[str, str, str], bytes] = {}


def body_of(body: Any, chunked: bool) -> bytes | Iterator[bytes] | None:
    """What a transport sends after the head: the bytes of a str, bytes or bytes-like body
    (a str as UTF-8, as urllib3), else the pieces of a file or an iterable, framed when the
    request is chunked."""
    if body is None:
        return None
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body) if not chunked else _framed(iter((bytes(body),)))
    pieces = _read_blocks(body) if hasattr(body, "read") else _pieces(body)
    return _framed(pieces) if chunked else pieces


def _read_blocks(stream: Any) -> Iterator[bytes]:
    while True:
        block = stream.read(_BLOCK)
        if not block:
            return
        yield block.encode("utf-8") if isinstance(block, str) else block


def _pieces(body: Iterable[Any]) -> Iterator[bytes]:
    for piece in body:
        if piece:
            yield piece.encode("utf-8") if isinstance(piece, str) else bytes(piece)


def _framed(pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        if piece:
            yield b"%x\r\n%b\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


__all__ = [
    "ABSOLUTE",
    "Probe",
    "Route",
    "body_of",
    "cookie_header",
    "head",
    "header_lines",
    "lines_of",
    "prepared",
    "proxy_target",
    "route",
    "session_lines",
]
