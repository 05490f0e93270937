"""WebSocketUser: a user with ``self.ws``, one WebSocket connection whose calls are recorded.

wsproto frames the messages on a socket that mpswarm's HTTP clients open
(``http._connect``: TCP, TLS with the same verification, the connect and TLS times apart), so
there is no thread and the bytes read are under our control; bench/protocols_websocket.py
has the measurements that chose it. Every call goes through ``user._calls.Call``:

=================  ==============  ===============================================
call               method column   name column (``name=`` replaces it)
=================  ==============  ===============================================
``connect(path)``  ``WS-CONNECT``  the path (its phases: connect, TLS, first byte)
``send(data)``     ``WS-SEND``     the path of the connection
``recv()``         ``WS-RECV``     the path of the connection
``request(data)``  ``WS-REQUEST``  the path of the connection: send, then the next
                                   message, one round trip
=================  ==============  ===============================================

A call that fails is recorded as a failure and does not raise, as HttpUser's failed requests
do not: ``recv`` and ``request`` return None, ``connect`` returns False (``self.ws.connected``
says whether the connection is open). A dropped connection, a close from the server, a
message over ``max_message_size`` (reading stops once the bytes read of it pass the cap, at
most one read of 64 KiB later, and the connection is closed) fail the call in flight and
every later one until ``connect()`` opens a new connection. A ``recv`` past its timeout
fails, and the connection stays open. Only a call made before any ``connect()`` raises
(``RuntimeError``): that is a locustfile's mistake, not the server's.

Pings are answered whenever frames are read, that is during ``connect``, ``recv`` and
``request``: a user that only sends leaves them waiting in the socket. No extension (no
permessage-deflate) is offered, so what a message costs in memory is what came on the wire.
"""

from __future__ import annotations

import io
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from requests import RequestException

from mpswarm.protocols import missing_extra

try:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (
        AcceptConnection,
        BytesMessage,
        CloseConnection,
        Event,
        Message,
        Ping,
        RejectConnection,
        Request,
        TextMessage,
    )
    from wsproto.utilities import LocalProtocolError, RemoteProtocolError
except ModuleNotFoundError as exc:  # the one line a locustfile's import error shows
    raise missing_extra("WebSocketUser", "wsproto", "websocket", exc) from None

from mpswarm._text import printable
from mpswarm.http._connect import connect as open_connection
from mpswarm.http._limits import MAX_BODY_SIZE, check_body_size
from mpswarm.http._transport import Options, Outgoing
from mpswarm.user._calls import Call
from mpswarm.user.users import User

#: Bytes asked of the socket at a time: a message over the cap is found within one read.
READ_SIZE = 65536
_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
_now = time.perf_counter


class WebSocketError(ConnectionError):
    """Why a WebSocket call failed (the errors table's text): the connection was refused,
    dropped or closed, a message was too large, or no message came in time."""


class WebSocketClient:
    """One WebSocket connection at a time, each call recorded (``WebSocketUser.ws``).

    Args:
        user: the user whose calls these are (None: outside a run).
        base_url: the host a path given to ``connect`` is joined to (``ws(s)://`` or
            ``http(s)://``, which means the same).
        event: the request event.
        max_message_size: the largest message taken, in bytes.
        insecure: skip TLS certificate verification.
        connection_timeout: seconds to connect (TCP and TLS).
        network_timeout: seconds to wait for the handshake's answer, and ``recv``'s default.
        ssl_context_factory: makes the ``ssl.SSLContext`` of each wss connection.
    """

    def __init__(
        self,
        user: Any,
        base_url: str,
        event: Any,
        max_message_size: int = MAX_BODY_SIZE,
        insecure: bool = False,
        connection_timeout: float = 60.0,
        network_timeout: float = 60.0,
        ssl_context_factory: Any = None,
    ) -> None:
        self._user = user
        self._base = base_url.rstrip("/")
        self._event = event
        self._cap = max_message_size
        self._options = Options(connection_timeout, network_timeout, verify=not insecure)
        self._timeout = network_timeout
        self._factory = ssl_context_factory
        self._sock: Any = None
        self._ws: WSConnection | None = None
        self._url = ""
        self._name = ""
        #: Why no connection is open (None: one is, or none was ever asked for).
        self._closed: str | None = None
        self._messages: deque[str | bytes] = deque()  # whole messages read ahead of a recv
        self._buffer: Any = None  # the fragments of the message being read, if several
        self._size = 0

    @property
    def connected(self) -> bool:
        """Whether a connection is open."""
        return self._sock is not None

    def connect(
        self,
        path_or_url: str = "/",
        name: str | None = None,
        headers: dict[str, str] | None = None,
        subprotocols: list[str] | None = None,
    ) -> bool:
        """Open a connection (closing the one open): the handshake is the call recorded.

        Args:
            path_or_url: a path joined to the host, or a ``ws(s)://`` / ``http(s)://`` URL.
            name: the statistics' name (default: the path); later calls default to it too.
            headers: extra headers of the handshake request.
            subprotocols: the subprotocols offered.

        Returns:
            Whether the connection is open (a failure is recorded, not raised).
        """
        self.close()
        if "://" in path_or_url:
            url = path_or_url
        else:  # joined as HttpUser joins a path to its host: "chat" is "/chat"
            url = f"{self._base}{'' if path_or_url.startswith('/') else '/'}{path_or_url}"
        parts = urlsplit(url)
        scheme = _SCHEMES.get(parts.scheme)
        if scheme is None or not parts.hostname:
            raise ValueError(f"self.ws.connect({path_or_url!r}): not a ws:// or wss:// URL")
        target = parts.path or "/"
        self._url, self._name = url, name or target
        self._closed = "no connection: connect() failed"
        with Call(self._user, "WS-CONNECT", self._name, url, self._event) as call:
            port = parts.port or (443 if scheme == "https" else 80)
            outgoing = Outgoing("GET", url, (scheme, parts.hostname, port), b"", None,
                                self._options)  # fmt: skip
            try:
                sock, (tcp_us, tls_us) = open_connection(outgoing, self._factory)
            except (RequestException, OSError) as exc:
                call.fail(exc)
                return False
            ws = WSConnection(ConnectionType.CLIENT)
            request = Request(
                host=parts.netloc.rpartition("@")[2],
                target=target + (f"?{parts.query}" if parts.query else ""),
                extra_headers=[(k.encode(), v.encode()) for k, v in (headers or {}).items()],
                subprotocols=subprotocols or [],
            )
            self._sock, self._ws, self._closed = sock, ws, None
            handshake = ws.send(request)
            try:
                first_us = self._handshake(handshake)
            except WebSocketError as exc:
                self._shut(str(exc))
                call.fail(exc)
                return False
            call.phases = (tcp_us, tls_us, first_us, len(handshake))
        return self._sock is not None  # a close may have come with the handshake's answer

    def _handshake(self, request: bytes) -> int:
        """Send the upgrade request, read until the answer; microseconds to its first byte."""
        sock = self._sock
        sock.settimeout(self._timeout)
        start = _now()
        first = -1
        try:
            sock.sendall(request)
            while True:
                data = sock.recv(READ_SIZE)
                if first < 0:
                    first = int((_now() - start) * 1e6)
                if not data:
                    raise WebSocketError("the server closed the connection during the handshake")
                assert self._ws is not None
                self._ws.receive_data(data)
                for event in self._ws.events():
                    if isinstance(event, AcceptConnection):
                        self._handle_rest()
                        return first
                    if isinstance(event, RejectConnection):
                        raise WebSocketError(
                            f"the server refused the handshake: HTTP {event.status_code}"
                        )
        except TimeoutError:
            raise WebSocketError(f"no handshake answer within {self._timeout:g} s") from None
        except RemoteProtocolError as exc:
            raise WebSocketError(f"not a WebSocket handshake answer: {exc}") from None
        except OSError as exc:
            raise WebSocketError(f"the connection broke during the handshake: {exc}") from None

    def send(self, data: str | bytes, name: str | None = None) -> None:
        """Send one message (text for a ``str``, binary for ``bytes``); recorded as ``WS-SEND``.

        Raises:
            RuntimeError: no ``connect()`` was ever called.
        """
        with self._call("WS-SEND", name) as call:
            try:
                call.phases = (-1, -1, -1, self._send(data))
            except WebSocketError as exc:
                call.fail(exc)

    def recv(self, timeout: float | None = None, name: str | None = None) -> str | bytes | None:
        """The next message (``str`` or ``bytes`` as sent), or None when the call failed.

        Args:
            timeout: seconds to wait (default: ``network_timeout``); past it the call fails
                and the connection stays open.
            name: the statistics' name.

        Raises:
            RuntimeError: no ``connect()`` was ever called.
        """
        return self._exchange("WS-RECV", None, name, timeout)

    def request(
        self, data: str | bytes, name: str | None = None, timeout: float | None = None
    ) -> str | bytes | None:
        """Send ``data``, then wait for the next message: one call, ``WS-REQUEST``.

        Returns:
            The message, or None when the call failed.

        Raises:
            RuntimeError: no ``connect()`` was ever called.
        """
        return self._exchange("WS-REQUEST", data, name, timeout)

    def _exchange(
        self, kind: str, data: str | bytes | None, name: str | None, timeout: float | None
    ) -> str | bytes | None:
        """One recorded call: send ``data`` (unless None), then read the next message."""
        with self._call(kind, name) as call:
            try:
                if data is not None:
                    call.phases = (-1, -1, -1, self._send(data))
                message = self._receive(timeout)
            except WebSocketError as exc:
                call.fail(exc)
                return None
            call.length = _length(message)
            return message

    def _call(self, kind: str, name: str | None) -> Call:
        if self._ws is None and self._closed is None:
            raise RuntimeError(
                "a WebSocket call before self.ws.connect(): connect first (e.g. in on_start)"
            )
        return Call(self._user, kind, name or self._name, self._url, self._event)

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Send a close frame and close the connection (not recorded; nothing if none is open)."""
        if self._sock is None or self._ws is None:
            return
        try:
            self._sock.sendall(self._ws.send(CloseConnection(code, reason)))
        except (OSError, LocalProtocolError):
            pass  # closing anyway
        self._shut("the connection was closed by self.ws.close()")

    def _send(self, data: str | bytes) -> int:
        """Bytes sent for one message."""
        if self._sock is None or self._ws is None:
            raise WebSocketError(self._closed or "no connection")
        event = TextMessage(data) if isinstance(data, str) else BytesMessage(data)
        try:
            frame = self._ws.send(event)
            self._sock.settimeout(self._timeout)
            self._sock.sendall(frame)
        except LocalProtocolError:
            self._shut("the connection is closing")
            raise WebSocketError("the connection is closing") from None
        except TimeoutError:
            self._shut(f"a send blocked for {self._timeout:g} s: the connection was closed")
            raise WebSocketError(self._closed) from None
        except OSError as exc:
            self._shut(f"the connection broke: {exc}")
            raise WebSocketError(self._closed) from None
        return len(frame)

    def _receive(self, timeout: float | None) -> str | bytes:
        """The next whole message; reads frames (answering pings) until there is one."""
        wait = self._timeout if timeout is None else timeout
        while not self._messages:
            sock = self._sock
            if sock is None:
                raise WebSocketError(self._closed or "no connection")
            sock.settimeout(wait)
            try:
                data = sock.recv(READ_SIZE)
            except TimeoutError:
                raise WebSocketError(f"no message within {wait:g} s") from None
            except OSError as exc:
                self._shut(f"the connection broke: {exc}")
                continue
            assert self._ws is not None
            try:
                self._ws.receive_data(data or None)
                self._handle_rest()
            except RemoteProtocolError as exc:
                self._shut(f"the server broke the protocol: {exc}")
            except OSError as exc:  # sending a pong
                self._shut(f"the connection broke: {exc}")
        return self._messages.popleft()

    def _handle_rest(self) -> None:
        """Act on the events read: keep messages, answer pings, see closes."""
        assert self._ws is not None
        for event in self._ws.events():
            if isinstance(event, Message):
                self._take(event)
            elif isinstance(event, Ping):
                self._sock.sendall(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._server_closed(event)
            if self._sock is None:
                return

    def _take(self, event: Event) -> None:
        data = event.data  # type: ignore[attr-defined]
        # the cap is in bytes; wsproto hands text over decoded (isascii: a fast C scan)
        size = len(data) if isinstance(data, bytes) or data.isascii() else len(data.encode())
        self._size += size
        if self._size > self._cap:
            self.close(1009, "message too big")
            self._closed = (
                f"a message over max_message_size ({self._cap} bytes): the connection was closed"
            )
            return
        buffer = self._buffer
        if buffer is None:
            if event.message_finished:  # type: ignore[attr-defined]
                self._messages.append(data)  # one frame, the usual message: no copy
                self._size = 0
                return
            # A fragmented message: in a growing buffer, not a list of fragments (a server
            # sending one-byte fragments would make the list many times the cap).
            buffer = self._buffer = io.StringIO() if isinstance(data, str) else io.BytesIO()
        buffer.write(data)
        if event.message_finished:  # type: ignore[attr-defined]
            self._messages.append(buffer.getvalue())
            self._buffer, self._size = None, 0

    def _server_closed(self, event: CloseConnection) -> None:
        assert self._ws is not None
        try:
            self._sock.sendall(self._ws.send(event.response()))
        except (OSError, LocalProtocolError):
            pass  # it is gone already
        if event.code == 1006:  # wsproto's code for a connection that ended with no close frame
            self._shut("the server dropped the connection (no close frame)")
            return
        reason = f" {printable(event.reason, 100)!r}" if event.reason else ""
        self._shut(f"the server closed the connection ({event.code}{reason})")

    def _shut(self, why: str) -> None:
        """Close the socket; later calls fail with ``why``."""
        sock, self._sock, self._ws = self._sock, None, None
        self._closed = why
        self._messages.clear()
        self._buffer, self._size = None, 0
        if sock is not None:
            sock.close()


def _length(message: str | bytes) -> int:
    return len(message) if isinstance(message, bytes) else len(message.encode())


class WebSocketUser(User):
    """A user with ``self.ws``, a WebSocket client whose calls are recorded (module docstring).

    Class attributes: ``max_message_size`` (bytes, 32 MiB by default, HttpUser's body cap),
    ``insecure`` (skip TLS verification; also ``--insecure``), ``connection_timeout`` and
    ``network_timeout`` (seconds, 60), ``ssl_context_factory`` (a function returning the
    ``ssl.SSLContext`` of each wss connection), as FastHttpUser's. The host is ``ws://`` or
    ``wss://`` (``http://`` and ``https://`` mean the same).
    """

    abstract = True
    _host_schemes = ("ws", "wss", "http", "https")
    max_message_size: int = MAX_BODY_SIZE
    insecure = False
    connection_timeout = 60.0
    network_timeout = 60.0
    ssl_context_factory: Any = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        cls = type(self)
        if not self.host:
            raise ValueError(f"{cls.__name__} has no host: set host on the class or pass -H/--host")
        check_body_size(self.max_message_size, cls.__name__, "max_message_size")
        insecure = bool(getattr(environment.parsed_options, "insecure", False))
        self.ws = WebSocketClient(
            self,
            self.host,
            environment.events.request,
            max_message_size=self.max_message_size,
            insecure=self.insecure or insecure,
            connection_timeout=self.connection_timeout,
            network_timeout=self.network_timeout,
            ssl_context_factory=cls.ssl_context_factory,  # from the class: not a bound method
        )

    def _ended(self, error: Exception | None) -> None:
        try:
            super()._ended(error)
        finally:
            self.ws.close()  # the server sees a close frame, not a dropped connection


__all__ = ["WebSocketClient", "WebSocketError", "WebSocketUser"]
