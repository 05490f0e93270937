"""A Socket.IO server on loopback (python-socketio, gevent) that counts what it received.

Run as ``python tests/compat/_socketio_server.py``: it prints its URL on the first line of
stdout, answers every ``echo`` call with its data, emits ``news`` back for every ``chat``
message, and serves its counts as JSON on ``GET /counts``. Ends on SIGTERM.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - after the patching, as gevent asks
import signal  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import socketio  # noqa: E402
from gevent import pywsgi  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

sio = socketio.Server(async_mode="gevent")
counts: Counter[str] = Counter()


@sio.on("chat")
def chat(sid: str, data: Any) -> None:
    counts["chat"] += 1
    sio.emit("news", data, to=sid)
    counts["news"] += 1


@sio.on("echo")
def echo(sid: str, data: Any) -> Any:
    counts["echo"] += 1
    return data


@sio.event
def connect(sid: str, environ: dict[str, Any]) -> None:
    counts["connect"] += 1


def app(environ: dict[str, Any], start_response: Any) -> Any:
    if environ.get("PATH_INFO") == "/counts":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(counts).encode()]
    return engine(environ, start_response)


engine = socketio.WSGIApp(sio)


def main() -> None:
    server = pywsgi.WSGIServer(("127.0.0.1", 0), app, handler_class=WebSocketHandler, log=None)
    server.start()
    print(f"http://127.0.0.1:{server.server_port}", flush=True)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
