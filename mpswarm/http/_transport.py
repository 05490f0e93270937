"""The seam between the session and its transports, and what the transports share.

The session (``_session``) decides everything a request is: its URL, its headers and body,
cookies, auth, redirects, caps, and the bytes of its head. A transport only moves it: it
connects (TLS, a proxy's tunnel), sends the head and body the session made, reads the response
under the caps and keeps the connection for the next request. Three implement ``Transport``:
urllib3's connections and response for HttpUser (``_urllib3``), the lean httptools client for
FastHttpUser (``_lean``), and h2's HTTP/2 for FastHttpUser with ``http2 = True`` (``_h2``).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

import urllib3
from requests.utils import DEFAULT_CA_BUNDLE_PATH, extract_zipped_paths

from mpswarm.http._errors import BadResponse
from mpswarm.http._limits import MAX_ORIGINS

#: (scheme, host, port) of a URL: where a request goes.
Origin = tuple[str, str, int]


class Options:
    """How requests are sent, beside their bytes; one object serves every request alike.

    Attributes:
        connect_timeout: seconds to connect (None: no limit).
        read_timeout: seconds to wait for each read (None: no limit).
        verify: False, True (requests' CA bundle), or the path of a CA bundle file or folder.
        cert: the client certificate: a PEM file holding it and its key, or (cert, key).
        proxy: the proxy URL to go through, or None.
        proxy_headers: headers for the proxy (``Proxy-Authorization``), sent on a CONNECT.
        key: what connections made with these options differ in from plain ones (None: in
            nothing), for keeping them apart.
    """

    __slots__ = (
        "cert",
        "connect_timeout",
        "key",
        "proxy",
        "proxy_headers",
        "read_timeout",
        "verify",
    )

    def __init__(
        self,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxy: str | None = None,
        proxy_headers: dict[str, str] | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.verify = verify
        self.cert = cert
        self.proxy = proxy
        self.proxy_headers = proxy_headers
        plain = verify is True and cert is None and proxy is None
        self.key = None if plain else (verify, cert, proxy)


class Outgoing:
    """One request as the session made it, for a transport to send (the same object serves
    every plain request of a method to a URL, made once).

    Attributes:
        method: the request's method.
        url: the URL as requests prepared it (the response's ``url``).
        origin: where it goes, (scheme, host, port) of ``url``.
        head: the request line and header lines, up to the blank line.
        body: bytes, or an iterable of chunks (sent chunked: the head says so), or None.
        options: timeouts, TLS and proxy.
    """

    __slots__ = ("body", "head", "key", "method", "options", "origin", "url")

    def __init__(
        self,
        method: str,
        url: str,
        origin: Origin,
        head: bytes,
        body: bytes | Iterable[bytes] | None,
        options: Options,
    ) -> None:
        self.method = method
        self.url = url
        self.origin = origin
        self.head = head
        self.body = body
        self.options = options
        #: What connections for it are kept under: its origin, and its options where they
        #: are not plain (a connection made with other TLS settings or proxy is not reused).
        self.key = origin if options.key is None else (origin, options.key)


class Transport(Protocol):
    """What moves a request's bytes (urllib3's ``BaseHTTPConnection`` is the model)."""

    def exchange(self, request: Outgoing, limit: int, stream: bool) -> Any:
        """Send ``request`` and read its response.

        Args:
            request: what to send.
            limit: the cap on the response body (``max_body_size``).
            stream: return once the headers are in, the body left on the wire.

        Returns:
            A ``mpswarm.http.response.Response`` with status, reason, headers and, unless
            ``stream``, the body (decoded, within ``limit``); after ``stream``, ``raw``
            reads the body.

        Raises:
            requests.RequestException: one of ``mpswarm.http._errors``' kinds, and only those.
        """
        ...

    def close(self) -> None:
        """Close the connections kept for later requests (not those shared with others)."""
        ...


class Idle:
    """A session's idle connections, kept for its next requests, by origin and options.

    Most users talk to one origin: one connection is kept in a slot and a dict is made only
    for more (a dict per idle user cost 220 bytes). At most ``MAX_ORIGINS`` are kept: past
    that the oldest is closed, so a redirect to a new origin on every request holds no socket
    for each. Sessions given the same pool object (Locust's ``pool_manager`` or
    ``client_pool``) keep theirs together instead (``SharedIdle``).
    """

    __slots__ = ("_key", "_more", "_one", "_shared")

    def __init__(self, pool: Any = None) -> None:
        self._one: Any = None  # the one connection kept, and its key (two slots: no tuple)
        self._key: Any = None
        self._more: dict[Any, Any] | None = None
        # Set only when given: None costs an idle user nothing.
        self._shared: SharedIdle | None = None if pool is None else shared(pool, SharedIdle)

    def take(self, key: Any) -> Any:
        """An idle connection for ``key``, no longer kept here, or None."""
        if self._shared is not None:
            return self._shared.take(key)
        one = self._one
        if one is not None and self._key == key:
            self._one = self._key = None
            return one
        return self._more.pop(key, None) if self._more else None

    def keep(self, key: Any, connection: Any) -> None:
        """Keep ``connection`` for the next request with ``key``."""
        if self._shared is not None:
            self._shared.keep(key, connection)
            return
        if self._one is None:
            self._one, self._key = connection, key
            return
        more = self._more
        if more is None:
            more = self._more = {}
        spare = more.pop(key, None)  # a second one for this key (a stream read to its end
        if spare is not None:  # after a newer request, greenlets sharing the client): closed
            spare.close()
        more[key] = connection
        if len(more) >= MAX_ORIGINS:
            more.pop(next(iter(more))).close()

    def close(self) -> None:
        """Close every connection kept (not those shared with other sessions)."""
        one, more = self._one, self._more
        self._one = self._key = self._more = None
        if one is not None:
            one.close()
        for connection in (more or {}).values():
            connection.close()


class KeepAlive(Idle):
    """What both transports do with their connections: reuse a kept-alive one where the
    server left it open (``Idle``), and open a new one otherwise (the subclass's ``_open``).

    A request that may be sent again (an idempotent method, RFC 9110 section 9.2.2, with a
    body that can be sent twice) goes out on a kept-alive connection without a check first:
    if the server turns out to have closed it (no byte of an answer, the connection ended),
    the request is sent once more on a new connection. Any other request goes out on a
    kept-alive connection only once a poll(2) found it open and quiet (urllib3's rule), and
    fails if the server closes it all the same.
    """

    __slots__ = ()

    def exchange(self, request: Outgoing, limit: int, stream: bool) -> Any:
        """Send ``request`` on a kept-alive connection or a new one; read its response."""
        key = request.key
        connection = self._one
        if connection is not None and self._key == key:  # (take's common case, inline)
            self._one = self._key = None
        else:
            connection = self.take(key)
        if connection is not None:
            body = request.body
            replay = request.method in _IDEMPOTENT and (body is None or type(body) is bytes)
            if not replay and connection.dropped():
                connection.close()  # closed (or spoken on) while idle
            else:
                try:
                    return self._roundtrip(connection, key, request, limit, stream)
                except Stale:
                    if not replay:
                        raise BadResponse(_CLOSED) from None
        try:
            return self._roundtrip(self._open(request), key, request, limit, stream)
        except Stale:
            raise BadResponse(_CLOSED) from None

    def _open(self, request: Outgoing) -> Any:
        """A new connection for ``request`` (with ``used``, ``dropped()`` and ``close()``)."""
        raise NotImplementedError

    def _roundtrip(
        self, connection: Any, key: Any, request: Outgoing, limit: int, stream: bool
    ) -> Any:
        """One request and its response on ``connection``; ``Stale`` when a connection used
        before ended without a byte of an answer."""
        raise NotImplementedError


class Stale(Exception):
    """A reused connection was closed by the server before it answered."""


_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))
_CLOSED = "BadResponse: the server closed the connection without a response"


class SharedIdle:
    """Idle connections of every session sharing one pool object, by key (at most
    ``MAX_ORIGINS`` keys, the oldest closed first)."""

    def __init__(self) -> None:
        self._idle: dict[Any, list[Any]] = {}

    def take(self, key: Any) -> Any:
        """An idle connection for ``key``, or None."""
        idle = self._idle.get(key)
        return idle.pop() if idle else None

    def keep(self, key: Any, connection: Any) -> None:
        """Keep ``connection`` for the next request with ``key``."""
        idle = self._idle.get(key)
        if idle is None:
            if len(self._idle) >= MAX_ORIGINS:
                for old in self._idle.pop(next(iter(self._idle))):
                    old.close()
            idle = self._idle[key] = []
        idle.append(connection)

    def close(self) -> None:
        """Close every idle connection."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


#: (id(owner), make) -> (owner, what make() made); the owner is kept, so its id stays its
#: own (it is a class attribute, which lives as long anyway).
_SHARED: dict[tuple[int, Any], tuple[Any, Any]] = {}
T = TypeVar("T")


def shared(owner: Any, make: Callable[[], T]) -> T:
    """One ``make()`` for every session given the same ``owner`` object (any object): the
    connections of users whose classes share a ``pool_manager`` / ``client_pool``."""
    key = (id(owner), make)
    found = _SHARED.get(key)
    if found is None:
        found = _SHARED[key] = (owner, make())
    return found[1]


def tls_context(
    verify: bool | str, cert: str | tuple[str, str] | None = None, alpn: tuple[str, ...] = ()
) -> ssl.SSLContext:
    """The process's TLS context for ``verify``, ``cert`` and the ALPN protocols offered
    (``alpn``, HTTP/2's), made once (loading a CA bundle takes milliseconds: once per
    connection it would be a load test of its own).

    ``verify=True`` trusts requests' CA bundle (certifi's), as requests does; a path trusts
    the CA bundle file or the folder of hashed certificates it names; False verifies nothing.

    Raises:
        OSError: a path that does not exist (requests' error and text).
    """
    key = (verify, cert, alpn)
    context = _TLS_CONTEXTS.get(key)
    if context is None:
        context = _make_context(verify, cert)
        if alpn:
            context.set_alpn_protocols(list(alpn))
        if len(_TLS_CONTEXTS) < 64:
            _TLS_CONTEXTS[key] = context
    return context


def _make_context(verify: bool | str, cert: str | tuple[str, str] | None) -> ssl.SSLContext:
    if verify is False:
        context = urllib3.util.create_urllib3_context(cert_reqs=ssl.CERT_NONE)
    else:
        context = urllib3.util.create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
        where = extract_zipped_paths(DEFAULT_CA_BUNDLE_PATH) if verify is True else verify
        if not where or not os.path.exists(where):
            raise OSError(
                f"Could not find a suitable TLS CA certificate bundle, invalid path: {where}"
            )
        if os.path.isdir(where):
            context.load_verify_locations(capath=where)
        else:
            context.load_verify_locations(cafile=where)
    if cert:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else (cert[0], cert[1])
        if not os.path.exists(certfile):
            raise OSError(f"Could not find the TLS certificate file, invalid path: {certfile}")
        if keyfile and not os.path.exists(keyfile):
            raise OSError(f"Could not find the TLS key file, invalid path: {keyfile}")
        context.load_cert_chain(certfile, keyfile)
    return context


_TLS_CONTEXTS: dict[Any, ssl.SSLContext] = {}
