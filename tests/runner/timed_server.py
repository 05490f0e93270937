"""A gevent WSGI target for the open-model tests, run as ``python timed_server.py``.

It prints its URL, then serves:
- ``/fast``: answers at once and notes the arrival time;
- ``/stall``: answers at once, except that every 10 s, from 4 s to 6 s after the first
  request, it holds every request until the 2 s stall ends;
- ``/slow``: answers after 100 ms;
- ``/__times``: the arrival times (seconds since the first request) of every request, as JSON.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

STALL_PERIOD_S = 10.0
STALL_FROM_S = 4.0
STALL_S = 2.0
arrivals: list[float] = []
first: list[float] = []


def app(environ, start_response):  # type: ignore[no-untyped-def]
    path = environ["PATH_INFO"]
    now = time.monotonic()
    if path == "/__times":
        body = json.dumps(arrivals).encode()
    else:
        if not first:
            first.append(now)
        arrivals.append(now - first[0])
        if path == "/stall":
            phase = (now - first[0]) % STALL_PERIOD_S
            if STALL_FROM_S <= phase < STALL_FROM_S + STALL_S:
                gevent.sleep(STALL_FROM_S + STALL_S - phase)
        elif path == "/slow":
            gevent.sleep(0.1)
        body = b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


class NoDelayServer(WSGIServer):
    # pywsgi sends headers and body apart: without TCP_NODELAY, Nagle holds the body until
    # the client's delayed ACK, and every answer takes 40 ms.
    def handle(self, sock, address):  # type: ignore[no-untyped-def]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle(sock, address)


def main() -> None:
    server = NoDelayServer(("127.0.0.1", 0), app, log=None)
    server.start()
    print(f"serving on http://127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
