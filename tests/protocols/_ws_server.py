"""A websockets server on 127.0.0.1 for the WebSocket tests, counting what it saw.

    python tests/protocols/_ws_server.py [CERT KEY]   # prints "ws://127.0.0.1:PORT" (wss://)

Paths (what a connection to each does with a message):
- /echo: sends it back;
- /drop: drops the TCP connection, no close frame;
- /big: answers with as many bytes as the message says (b"2000" -> 2 000 bytes);
- /fragments: answers b"N SIZE" with one message of N fragments of SIZE bytes (b"x"), "N SIZE
  text" with one text message of N fragments of SIZE "é" (2 bytes each in UTF-8);
- /ping: pings the client, waits for the pong (5 s at most), then sends back b"pong seen";
- /close: closes with code 1011 and a reason holding a terminal escape.

GET /__stats answers the counts as JSON: ``connections`` (``tokens``: those whose handshake
had ``X-Token: t``), ``received`` and ``sent`` messages, ``pongs`` received.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections import Counter
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import serve

counts: Counter[str] = Counter()


async def handler(connection: Any) -> None:
    path = connection.request.path
    counts["connections"] += 1
    counts["tokens"] += connection.request.headers.get("X-Token") == "t"
    async for message in connection:
        counts["received"] += 1
        if path == "/drop":
            connection.transport.abort()
            return
        if path == "/close":
            await connection.close(1011, "bye\x1b[2J")
            return
        if path == "/big":
            reply: Any = b"x" * int(message)
        elif path == "/fragments":
            count, size, *text = message.split()
            fragment = "é" * int(size) if text else b"x" * int(size)
            reply = [fragment] * int(count)  # a list: sent as one fragmented message
        elif path == "/ping":
            await asyncio.wait_for(await connection.ping(), 5)
            counts["pongs"] += 1
            reply = b"pong seen"
        else:
            reply = message
        await connection.send(reply)
        counts["sent"] += 1


def stats(connection: Any, request: Any) -> Any:
    if request.path != "/__stats":
        return None
    return connection.respond(HTTPStatus.OK, json.dumps(counts) + "\n")


async def main() -> None:
    context = None
    if len(sys.argv) == 3:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[1], sys.argv[2])
    async with serve(handler, "127.0.0.1", 0, process_request=stats, ssl=context,
                     max_size=None, ping_interval=None) as server:  # fmt: skip
        port = server.sockets[0].getsockname()[1]
        print(f"{'wss' if context else 'ws'}://127.0.0.1:{port}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main())
