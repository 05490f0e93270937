"""The demo target's WebSocket echo (``GET /ws/echo``), for trying ``WebSocketUser``.

It needs wsproto, from the websocket extra (``pip install 'mpswarm[websocket]'``); without it
the route answers 501 saying so, and the rest of the demo works as before. The handshake's
answer is made here (RFC 6455, section 4.2.2: one SHA-1 of the key); gevent's WSGI server
then hands over its raw socket (the input of an upgraded request is the socket's reader, and
after a 101 the ``write`` callable writes to it unframed), and wsproto frames the messages.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from typing import Any

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's, for Sec-WebSocket-Accept
#: The largest message echoed: past it the connection is closed with 1009 (too big).
MAX_MESSAGE = 10 * 1024 * 1024
MISSING = "the WebSocket echo needs wsproto: pip install 'mpswarm[websocket]'"


def available() -> bool:
    """Whether the echo can run (wsproto is installed)."""
    try:
        import wsproto  # noqa: F401
    except ImportError:
        return False
    return True


def echo(environ: dict[str, Any], start_response: Callable[..., Any], count: Callable[[], None]
         ) -> Iterable[bytes]:  # fmt: skip
    """Answer the handshake, then send every message back until the client closes.

    Args:
        environ: the upgrade request's (``wsgi.input`` is the socket's reader).
        start_response: the WSGI callable (its ``write`` sends on the socket).
        count: called once for each message received.
    """
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage

    key = environ["HTTP_SEC_WEBSOCKET_KEY"].encode()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    write = start_response("101 Switching Protocols", [*headers, ("Sec-WebSocket-Accept", accept)])
    write(b"")  # the head goes now: the client speaks only once it has it
    connection = Connection(ConnectionType.SERVER)
    reader = environ["wsgi.input"]
    parts: list[Any] = []
    size = 0
    while True:
        data = reader.read1(65536)
        connection.receive_data(data or None)
        out = []
        for event in connection.events():
            if isinstance(event, Message):
                parts.append(event.data)
                size += len(event.data)
                if size > MAX_MESSAGE:
                    write(connection.send(CloseConnection(1009, "message too big")))
                    return []
                if event.message_finished:
                    count()
                    kind = TextMessage if isinstance(event, TextMessage) else BytesMessage
                    out.append(connection.send(kind(data=parts[0][:0].join(parts))))
                    parts, size = [], 0
            elif isinstance(event, Ping):
                out.append(connection.send(event.response()))
            elif isinstance(event, CloseConnection):
                if data:  # a close frame (not the end of the stream): answer it
                    write(b"".join(out) + connection.send(event.response()))
                return []
        if out:
            write(b"".join(out))
        if not data:
            return []
