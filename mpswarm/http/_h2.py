"""FastHttpUser's HTTP/2 transport (``http2 = True``): the h2 library on gevent sockets.

One connection per origin per session (or per ``client_pool``): requests that the greenlets
of one user issue at once are streams multiplexed on it. h2c with prior knowledge on http://,
ALPN on https:// (offering h2 and http/1.1; a server that picks http/1.1, or none, gets the
lean HTTP/1.1 transport for that origin from then on). A request through a proxy goes over
HTTP/1.1 too (``_connect`` tunnels HTTP/1.1 only).

Reading is leader/follower: no greenlet per connection. A requester that waits for its
stream and finds nobody reading becomes the reader: it reads the socket, hands each event to
its stream and wakes that stream's waiter, and once its own stream is done it passes the role
to a waiter still waiting. An idle user so holds no reader greenlet (a greenlet with its stack
would cost every idle user kilobytes), and a lone request reads its own response without a
switch to another greenlet.

The session makes the HTTP/1.1 head as for the lean transport; the request's pseudo-headers
and header list are parsed back from it, once per head bytes (``_h2heads``).
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from gevent.event import Event
from gevent.lock import Semaphore
from requests.exceptions import RequestException

from mpswarm.http import _errors, _limits
from mpswarm.http._connect import connect
from mpswarm.http._connections import GeventConnection, readable
from mpswarm.http._errors import BadResponse, BodyTooLarge
from mpswarm.http._h2heads import REASONS, content_length, request_of, response_head
from mpswarm.http._h2stream import H2BodyStream
from mpswarm.http._headers import Headers
from mpswarm.http._inflate import decompress
from mpswarm.http._lean import LeanTransport
from mpswarm.http._limits import MAX_HEADER_SIZE
from mpswarm.http._transport import _IDEMPOTENT, Outgoing, shared, tls_context
from mpswarm.http.response import Response

_RECV = 65536
_now = time.perf_counter
_ALPN = ("h2", "http/1.1")
#: Each stream may have this much unread body in flight (a stream=True body is acknowledged
#: as it is read, so this is what an unread one holds); the connection all of them together.
_STREAM_WINDOW = 1 << 20
_CONNECTION_WINDOW = 16 << 20

_IDLE_READ_S = 0.05  # what an idle connection that polled readable may take to give its bytes
_GOAWAY = "BadResponse: the server closed the HTTP/2 connection (GOAWAY) before the request"
_CLOSED = "BadResponse: the server closed the connection without a response"
_PROTOCOL = "BadResponse: the server broke the HTTP/2 protocol"
_NO_BODY_STATUS = frozenset((204, 304))


def _reset_text(code: int) -> str:
    try:
        name = h2.errors.ErrorCodes(code).name
    except ValueError:
        name = str(code)
    return f"BadResponse: the server reset the HTTP/2 stream ({name})"


#: What a failed stream says of sending its request again (``_Stream.retry``).
_NO_RETRY = 0
#: A reused connection ended without a byte of the answer: maybe processed, maybe not; an
#: idempotent request is sent again, as KeepAlive does for HTTP/1.1.
_MAYBE_PROCESSED = 1
#: The server said it did not process the stream (past a GOAWAY's last stream, or
#: REFUSED_STREAM): any request whose body can be sent twice is sent again (RFC 9113
#: sections 6.8 and 8.7), a POST included.
_UNPROCESSED = 2


#: Most connections a request is tried on: a server that ends each connection after a few
#: requests (nginx's keepalive_requests) while a user's greenlets pile streams onto it leaves
#: some unprocessed several times in a row (3 tries failed 1.6 % of such requests).
_MOST_TRIES = 16


class _Retry(Exception):
    """A request that may go again on a new connection: never sent (``sent`` False), or
    ``why`` (``_MAYBE_PROCESSED``, ``_UNPROCESSED``); ``text``: its failure otherwise."""

    def __init__(self, sent: bool = True, why: int = _UNPROCESSED, text: str = _GOAWAY) -> None:
        super().__init__()
        self.sent = sent
        self.why = why
        self.text = text  # the failure, where it is not sent again


class _Stream:
    """One request's stream: what arrived for it, and the event its requester waits on."""

    __slots__ = (
        "data",
        "ended",
        "error",
        "event",
        "first_byte",
        "headers",
        "id",
        "retry",
        "sent",
        "size",
        "unacked",
        "waiting",
    )

    def __init__(self, stream_id: int) -> None:
        self.id = stream_id
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.data: list[bytes] = []
        self.size = 0  # bytes in ``data``
        self.unacked = 0  # flow-controlled bytes received and not acknowledged yet
        self.ended = False  # the server's side ended (END_STREAM)
        self.sent = False  # ours ended: the request was sent whole
        self.error: str | None = None
        self.retry = _NO_RETRY  # what the error says of sending the request again
        self.first_byte = 0.0
        self.event = Event()
        self.waiting = False


class _Values(list[Any]):
    """A setting's values, current first: the deque h2 keeps them in, as a list."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


class _Settings(h2.settings.Settings):
    """h2's settings, each setting's values in a list rather than a deque once acknowledged.

    h2 keeps every setting's values in a ``collections.deque``, 760 bytes even for the one
    value it holds between changes: 12 KB of the 18 KB an idle HTTP/2 connection held (two
    Settings of up to 8 settings). A list of one value is 64 bytes."""

    def acknowledge(self) -> Any:
        changed = super().acknowledge()
        values = getattr(self, "_settings", None)
        if isinstance(values, dict):  # (h2's private layout: left alone where it differs)
            for key, value in values.items():
                if type(value) is not _Values:
                    values[key] = _Values(value)
        return changed


class H2Connection:
    """One HTTP/2 connection and its streams.

    Args:
        connection: the socket, past TLS (ALPN said h2) or plain (h2c, prior knowledge).
        opened: (TCP connect, TLS handshake) in microseconds, for the first response.
    """

    def __init__(self, connection: GeventConnection, opened: tuple[int, int]) -> None:
        self.sock = connection
        self.opened = opened
        self.used = False
        # The header list is ours (_h2heads: names lower case, values stripped, checked by
        # requests, no connection headers): h2 checking and normalizing it again cost a tenth
        # of the transport's CPU (2 100 -> 2 370 messages per CPU-second, 3 runs each).
        # What the server sends is still checked.
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.remote_settings = _Settings(client=False)
        self.h2.local_settings = _Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_SIZE,
            },
        )
        self.streams: dict[int, _Stream] = {}
        self.reading = False  # a requester is the reader (the leader)
        self.closed: str | None = None  # why the connection ended, for streams still open
        self.goaway = False  # the server takes no new streams here
        self.settled = False  # the server's SETTINGS arrived
        self.retired = False  # no longer kept for new requests: closed after its last stream
        self.slot = Event()  # set when a stream ends: a requester waiting for one may go
        self._send_lock = Semaphore()
        self._left = 0  # bytes of the frame being read that are still to come
        self._carry = b""  # the start of a frame header, or of a GOAWAY frame
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_CONNECTION_WINDOW - 65535)

    # -- sending -----------------------------------------------------------------------------
    def flush(self, timeout: float | None) -> int:
        """Send what h2 has queued; returns the bytes sent."""
        with self._send_lock:
            data = self.h2.data_to_send()
            if data:
                try:
                    self.sock.sendall(data, timeout)
                except BaseException:
                    # Part of a frame may be on the wire (a timeout, a user stopped in the
                    # middle): nothing can follow it on this connection.
                    self.close_with(_CLOSED, retry=True)
                    raise
            return len(data)

    def usable(self) -> bool:
        """Whether a new stream may go on this connection."""
        if self.closed is not None or self.goaway:
            return False
        if not self.streams and not self.reading and readable(self.sock):
            # Frames that came while idle (a late RST_STREAM, WINDOW_UPDATE, PING, GOAWAY)
            # or the end of the connection: read them before choosing it.
            self.reading = True
            try:
                self._read_once(_IDLE_READ_S)
            except _errors.ReadTimedOut:
                pass  # a TLS record without data for us (a session ticket): still usable
            except RequestException:
                self.close_with(_CLOSED)
            finally:
                self.reading = False
        return self.closed is None and not self.goaway

    # -- reading (the leader) ----------------------------------------------------------------
    def wait(self, stream: _Stream | None, done: Callable[[], bool], timeout: float | None) -> None:
        """Until ``done()``: read as the leader when nobody reads, else wait to be woken.

        Raises:
            requests.RequestException: a read timeout, or the connection failing.
        """
        deadline = None if timeout is None else _now() + timeout
        leader = False
        try:
            while not done():
                if self.closed is not None and (stream is None or stream.error is None):
                    if stream is not None:
                        self._fail(stream, self.closed)
                    raise BadResponse(self.closed)
                if not leader and not self.reading:
                    self.reading = leader = True
                if leader:
                    self._read_once(timeout)
                    continue
                left = None if deadline is None else deadline - _now()
                if left is not None and left <= 0:
                    raise _errors.read_timeout(timeout)
                waiter = stream.event if stream is not None else self.slot
                waiter.clear()
                if stream is not None:
                    stream.waiting = True
                try:
                    if done() or not self.reading:
                        continue
                    waiter.wait(left)
                finally:
                    if stream is not None:
                        stream.waiting = False
        finally:
            if leader:
                self.reading = False
                self._hand_over()  # the next reader: a requester still waiting

    def _hand_over(self) -> None:
        """Wake a requester still waiting, so that one of them reads next."""
        for stream in self.streams.values():
            if stream.waiting:
                stream.event.set()
                return
        self.slot.set()

    def _read_once(self, timeout: float | None) -> None:
        try:
            chunk = self.sock.recv(_RECV, timeout)
        except TimeoutError:
            raise _errors.read_timeout(timeout) from None
        except OSError as exc:
            self.close_with(str(_errors.os_error(exc)))
            raise _errors.os_error(exc) from None
        if not chunk:
            self.close_with(_CLOSED, retry=True)
            return
        chunk = self._without_goaway(chunk)
        try:
            events = self.h2.receive_data(chunk)
        except h2.exceptions.ProtocolError:
            self.close_with(_PROTOCOL)
            return
        for event in events:
            self._dispatch(event)
        self.flush(timeout)  # acknowledgements, window updates, SETTINGS and PING acks

    def _without_goaway(self, data: bytes) -> bytes:
        """``data`` without its GOAWAY frames, which are handled here (``_goaway``).

        h2 closes its state machine on a GOAWAY and then rejects every frame after it
        (python-hyper/h2 issue 1181), while a server finishes the streams up to the GOAWAY's
        last stream after it (nginx sends the GOAWAY of ``keepalive_requests`` just before
        the last response): so h2 never sees one. The frames are walked by their 9-byte
        headers; a chunk inside a frame's payload costs one comparison.
        """
        if self._carry:
            data, self._carry = self._carry + data, b""
        n = len(data)
        i = self._left
        if i >= n:
            self._left = i - n
            return data
        kept: list[bytes] | None = None
        start = 0  # of the bytes not yet kept
        while i + 9 <= n:
            end = i + 9 + int.from_bytes(data[i : i + 3], "big")
            if data[i + 3] == 7:  # GOAWAY
                if end > n:
                    break  # the rest of it comes in the next read
                self._goaway(data[i + 9 : end])
                if kept is None:
                    kept = []
                kept.append(data[start:i])
                start = end
            i = end
        if i < n:
            self._carry = data[i:]  # a header (or a GOAWAY) cut by the read
            self._left = 0
            n = i
        else:
            self._left = i - n
        if kept is None:
            return data if n == len(data) else data[:n]
        kept.append(data[start:n])
        return b"".join(kept)

    def _goaway(self, payload: bytes) -> None:
        """The server takes no new stream; those past its last stream were not processed and
        fail to be sent again (RFC 9113 section 6.8); those up to it go on."""
        self.goaway = True
        last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
        for stream in list(self.streams.values()):
            if stream.id > last:
                self._fail(stream, _GOAWAY, _UNPROCESSED)
        self.slot.set()

    def _dispatch(self, event: Any) -> None:
        streams = self.streams
        kind = type(event)
        if kind is h2.events.DataReceived:
            stream = streams.get(event.stream_id)
            if stream is not None:
                stream.data.append(event.data)
                stream.size += len(event.data)
                stream.unacked += event.flow_controlled_length
                stream.event.set()
            elif event.flow_controlled_length:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif kind is h2.events.ResponseReceived or kind is h2.events.TrailersReceived:
            stream = streams.get(event.stream_id)
            if stream is not None and stream.headers is None:
                stream.headers = event.headers
                stream.first_byte = _now()
                stream.event.set()
        elif kind is h2.events.StreamEnded:
            stream = streams.get(event.stream_id)
            if stream is not None:
                stream.ended = True
                stream.event.set()
            self.slot.set()
        elif kind is h2.events.StreamReset:
            stream = streams.get(event.stream_id)
            if stream is not None and not stream.ended:
                refused = event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
                self._fail(stream, _reset_text(event.error_code), _UNPROCESSED * refused)
            elif stream is not None:
                stream.event.set()  # a sender still sending its body stops
            self.slot.set()
        elif kind is h2.events.RemoteSettingsChanged:
            self.settled = True
            self._wake_all()
        elif kind is h2.events.WindowUpdated:
            if event.stream_id:
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.event.set()
            else:
                self._wake_all()

    def _fail(self, stream: _Stream, text: str, retry: int = _NO_RETRY) -> None:
        if stream.error is None:
            stream.error = text
            stream.retry = retry
        stream.event.set()

    def _wake_all(self) -> None:
        for stream in self.streams.values():
            stream.event.set()
        self.slot.set()

    def retire(self) -> None:
        """Keep it for no new request: closed now, or once its open streams are done."""
        self.retired = True
        if not self.streams:
            self.close()

    def close_with(self, text: str, retry: bool = False) -> None:
        """End the connection: every open stream fails with ``text`` (``retry``: those that
        got no byte of an answer may be sent again, if the connection served before)."""
        if self.closed is None:
            self.closed = text
        for stream in list(self.streams.values()):
            if not stream.ended:
                maybe = retry and stream.headers is None and self.used
                self._fail(stream, text, _MAYBE_PROCESSED if maybe else _NO_RETRY)
        self.slot.set()
        self.sock.close()

    def close(self) -> None:
        """Close the socket (streams still open fail)."""
        self.close_with(_CLOSED)


class H2Transport:
    """FastHttpUser's HTTP/2 connections for one session (or every session sharing a
    ``client_pool``), and the lean transport for origins that answer in HTTP/1.1.

    Args:
        pool: Locust's ``client_pool``: sessions given the same object share connections.
        ssl_context_factory: makes the TLS context of each new https connection (ALPN is set
            on what it returns).
    """

    __slots__ = ("_conns", "_h1", "_opening", "_shared", "factory", "lean")

    def __init__(self, pool: Any = None, ssl_context_factory: Any = None) -> None:
        self.factory = ssl_context_factory
        self.lean = LeanTransport(pool, ssl_context_factory)
        self._shared = pool is not None
        self._conns: dict[Any, H2Connection] = {} if pool is None else shared(pool, dict)
        self._h1: set[Any] | None = None  # keys whose server chose HTTP/1.1
        self._opening: dict[Any, Event] | None = None  # connections being opened, by key

    def close(self) -> None:
        """Close this session's connections (not those shared with other sessions, as the
        lean transport's ``Idle``)."""
        self.lean.close()
        if self._shared:
            return
        conns = list(self._conns.values())
        self._conns.clear()
        for conn in conns:
            conn.close()

    def exchange(self, request: Outgoing, limit: int, stream: bool) -> Response:
        """Send ``request`` as a stream on the origin's connection; read its response."""
        key = request.key
        if request.options.proxy is not None or (self._h1 is not None and key in self._h1):
            return self.lean.exchange(request, limit, stream)
        body = request.body
        twice = body is None or type(body) is bytes  # (an iterator's pieces are gone)
        idempotent = request.method in _IDEMPOTENT
        maybe_once = True
        for _ in range(_MOST_TRIES):
            conn = self._connection(request)
            if not isinstance(conn, H2Connection):
                return self.lean._roundtrip(conn, key, request, limit, stream)
            try:
                return _roundtrip(conn, request, limit, stream)
            except _Retry as retry:
                failure = BadResponse(retry.text)
                if retry.why == _MAYBE_PROCESSED and retry.sent:
                    if not (twice and idempotent and maybe_once):
                        raise failure from None
                    maybe_once = False  # (a second such end: the server's doing, not chance)
                elif retry.sent and not twice:
                    raise failure from None
        raise failure

    def _connection(self, request: Outgoing) -> H2Connection | GeventConnection:
        """The origin's connection, or a new one. Requests that find none while one is being
        opened wait for it (the greenlets of a user starting at once share one connection);
        a GeventConnection: the server chose HTTP/1.1, for the lean transport."""
        key = request.key
        while True:
            conn = self._conns.get(key)
            if conn is not None:
                if conn.usable():
                    return conn
                if self._conns.get(key) is conn:
                    del self._conns[key]
                conn.retire()
                continue
            opening = self._opening.get(key) if self._opening is not None else None
            if opening is None:
                break
            opening.wait(request.options.connect_timeout)
            if self._h1 is not None and key in self._h1:
                return self._open(request)
            if not opening.ready():
                raise _errors.connect_timeout(request.options.connect_timeout)
            if self._conns.get(key) is None:
                break  # the one being opened failed: this request tries on its own
        if self._opening is None:
            self._opening = {}
        self._opening[key] = event = Event()
        try:
            opened = self._open(request)
            if isinstance(opened, H2Connection):
                self._keep(key, opened)
            return opened
        finally:
            if self._opening.get(key) is event:
                del self._opening[key]
            event.set()

    def _keep(self, key: Any, conn: H2Connection) -> None:
        conns = self._conns
        old = conns.get(key)
        if old is not None and old is not conn:
            old.retire()  # (another session sharing the pool opened one meanwhile)
        conns[key] = conn
        if len(conns) > _limits.MAX_ORIGINS:
            old_key = next(iter(conns))
            conns.pop(old_key).retire()

    def _open(self, request: Outgoing) -> H2Connection | GeventConnection:
        """A new connection: HTTP/2 with the server's SETTINGS in, or (the server chose
        HTTP/1.1 in ALPN) a connection for the lean transport."""
        tls = request.origin[0] == "https"
        factory = None
        if tls:
            factory = self._alpn_factory(request)
        sock, opened = connect(request, factory)
        connection = GeventConnection(sock)
        if tls and sock.selected_alpn_protocol() != "h2":  # type: ignore[attr-defined]
            if self._h1 is None:
                self._h1 = set()
            self._h1.add(request.key)
            connection.opened = opened
            return connection
        conn = H2Connection(connection, opened)
        timeout = request.options.connect_timeout
        try:
            conn.flush(timeout)
            # The server's SETTINGS first: its stream limit holds from the first request.
            conn.wait(None, lambda: conn.settled, timeout)
        except RequestException:
            conn.close()
            raise
        except OSError as exc:
            conn.close()
            raise _errors.os_error(exc) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _alpn_factory(self, request: Outgoing) -> Callable[[], ssl.SSLContext]:
        options = request.options
        given = self.factory

        def factory() -> ssl.SSLContext:
            if given is not None:
                context: ssl.SSLContext = given()
                context.set_alpn_protocols(list(_ALPN))
                return context
            try:
                return tls_context(options.verify, options.cert, _ALPN)
            except ssl.SSLError as exc:
                raise _errors.os_error(exc) from None

        return factory


# -- one exchange ----------------------------------------------------------------------------
def _roundtrip(conn: H2Connection, request: Outgoing, limit: int, stream: bool) -> Response:
    """One request as a stream on ``conn`` and its response.

    Raises:
        _Retry: the server did not process it.
        requests.RequestException: ``_errors``' kinds.
    """
    timeout = request.options.read_timeout
    method, headers, chunked = request_of(request)
    # Wait for a free stream under the server's limit (SETTINGS_MAX_CONCURRENT_STREAMS).
    h2conn = conn.h2
    conn.wait(
        None,
        lambda: (
            conn.closed is not None
            or conn.goaway
            or h2conn.open_outbound_streams < h2conn.remote_settings.max_concurrent_streams
        ),
        timeout,
    )
    if conn.closed is not None or conn.goaway:
        raise _Retry(sent=False)
    reused = conn.used
    conn.used = True
    stream_id = h2conn.get_next_available_stream_id()
    st = _Stream(stream_id)
    conn.streams[stream_id] = st
    body = request.body
    try:
        try:
            h2conn.send_headers(stream_id, headers, end_stream=body is None)
            st.sent = body is None
            sent_bytes = conn.flush(timeout)
            if body is not None:
                sent_bytes += _send_body(conn, st, body, chunked, timeout)
        except RequestException:
            raise
        except (h2.exceptions.StreamClosedError, OSError) as exc:
            if st.error is None:
                if isinstance(exc, OSError):
                    conn.close_with(str(_errors.os_error(exc)), retry=True)
                else:
                    conn._fail(st, _CLOSED)
        sent = _now()
        conn.wait(st, lambda: st.headers is not None or st.error is not None, timeout)
        if st.error is not None:
            if st.retry == _UNPROCESSED or (st.retry and reused):
                raise _Retry(why=st.retry, text=st.error)
            raise BadResponse(st.error)
        status, pairs, set_cookie, coding = response_head(st.headers or [])
        ttfb = int((st.first_byte - sent) * 1e6 + 0.5) if st.first_byte > sent else 0
        opened = (-1, -1) if reused else conn.opened
        phases = (opened[0], opened[1], ttfb, sent_bytes)
        head = Headers(pairs, set_cookie)
        reason = REASONS.get(status, "")
        no_body = method == b"HEAD" or status in _NO_BODY_STATUS
        if stream and not no_body:
            response = Response(status, reason, head, None, request.url)
            response.raw = H2BodyStream(
                conn, st, timeout, coding, functools.partial(_finish, conn, st, timeout)
            )
            response._limit = limit
            response._phases = phases
            st = None  # type: ignore[assignment]  # the body stream owns it now
            return response
        if not stream:
            announced = content_length(pairs)
            if announced > limit:
                raise BodyTooLarge(_limits.body_too_large(limit))
        content = _read_body(conn, st, limit, timeout, stream)
        if coding in ("gzip", "deflate") and content:
            content = decompress(content, coding, limit)
        response = Response(status, reason, head, content, request.url)
        response._phases = phases
        return response
    finally:
        if st is not None:
            _finish(conn, st, timeout)


def _read_body(
    conn: H2Connection, st: _Stream, limit: int, timeout: float | None, stream: bool
) -> bytes:
    """The whole body, acknowledged as it arrives so the server keeps sending; no more than
    ``limit`` is held (``stream``: the caller asked for no cap, but the body is read)."""
    h2conn = conn.h2
    while True:
        if st.unacked:
            h2conn.acknowledge_received_data(st.unacked, st.id)
            st.unacked = 0
            conn.flush(timeout)
        if st.size > limit and not stream:
            raise BodyTooLarge(_limits.body_too_large(limit))
        if st.ended:
            break
        if st.error is not None:
            raise (
                BadResponse(st.error)
                if st.headers is None
                else _errors.BodyIncomplete(f"{_limits.INCOMPLETE_BODY} ({st.error})")
            )
        conn.wait(st, lambda: bool(st.ended or st.error is not None or st.unacked), timeout)
    data = st.data
    st.data = []
    return data[0] if len(data) == 1 else b"".join(data)


def _finish(conn: H2Connection, st: _Stream, timeout: float | None) -> None:
    """The stream leaves the connection; a stream not ended is cancelled (RST_STREAM), and
    what it got unacknowledged is given back to the connection's window."""
    conn.streams.pop(st.id, None)
    if conn.closed is not None:
        return
    if (conn.retired or conn.goaway) and not conn.streams:
        conn.close()  # it takes no new stream: closed after its last
        return
    try:
        if st.error is None and not (st.ended and st.sent):
            conn.h2.reset_stream(st.id, h2.errors.ErrorCodes.CANCEL)
        if st.unacked:
            conn.h2.acknowledge_received_data(st.unacked, st.id)
            st.unacked = 0
        conn.flush(timeout)
    except (h2.exceptions.ProtocolError, OSError):  # (RequestException is an OSError)
        pass  # the stream or connection ended meanwhile: nothing left to tell the server
    conn.slot.set()
    if conn.reading is False:
        conn._hand_over()


def _send_body(
    conn: H2Connection, st: _Stream, body: Any, chunked: bool, timeout: float | None
) -> int:
    """Send the body as DATA frames within the flow-control windows (waiting for the
    server's WINDOW_UPDATE when they are spent); returns the bytes sent."""
    h2conn = conn.h2
    total = 0
    pieces: Iterator[bytes] = iter((body,)) if type(body) is bytes else iter(body)
    for piece in pieces:
        if chunked:
            piece = _unframed(piece)  # the session framed it for HTTP/1.1
        view = memoryview(piece)
        while view:
            if st.error is not None or st.ended:
                return total  # the server answered (or reset) without the rest: RFC 9113 8.1
            window = min(h2conn.local_flow_control_window(st.id), h2conn.max_outbound_frame_size)
            if window <= 0:
                conn.wait(
                    st,
                    lambda: (
                        st.error is not None
                        or st.ended
                        or h2conn.local_flow_control_window(st.id) > 0
                    ),
                    timeout,
                )
                continue
            h2conn.send_data(st.id, view[:window].tobytes())
            view = view[window:]
            total += conn.flush(timeout)
    h2conn.end_stream(st.id)
    st.sent = True
    return total + conn.flush(timeout)


def _unframed(piece: bytes) -> bytes:
    """The data of one chunk of HTTP/1.1 chunked framing (b"" for the last)."""
    start = piece.index(b"\r\n") + 2
    return piece[start:-2]


__all__ = ["H2Connection", "H2Transport"]
