"""WebSocket round trips per CPU-second of the load generator: the libraries, mpswarm, Locust.

    python bench/protocols_websocket.py [--runs 3] [--seconds 10]

A websockets (asyncio) echo server on 127.0.0.1, started by this script, answers each message
with the same bytes and counts what it received. Each case sends a 16-byte message and waits
for the echo, one connection after another, for ``--seconds``; it counts the round trips the
server saw and the CPU time (user + sys) of the load generator's process tree only
(``benchmark.children_cpu``: the server is reaped only at the end, so its CPU is not in it).

- (a) each candidate library alone, one client process under gevent's monkey-patching (as a
  worker is): wsproto driving a gevent socket opened by mpswarm's ``http._connect``, the
  websockets sync client, websocket-client;
- (b) mpswarm's ``WebSocketUser`` (``self.ws.request``), ``--processes 1``, ``USERS`` users;
- (c) Locust 2.47 with wsproto on a gevent socket wired up by hand in a locustfile
  (``events.request.fire``), the baseline for (b);
- (d) Locust 2.47 running WebSocketUser's client (``WebSocketClient``) in a User of its own:
  against (c) the client's own cost, against (b) the run loops'. Two passes on 2026-12-07:
  (d) 6 678 and 6 364 round trips per CPU-second, (b) 6 707 and 5 523, (c) 7 256 and 8 520:
  the client cost 8 to 25 % more than the hand loop, mpswarm's run loop 0 to 13 % more than
  Locust's; both contribute, within this machine's noise.

Choice. Two runs of this script on 2026-12-07, on the 2-core development machine shared with
other engineers' tests (3 runs of 10 s each, medians in round trips per client CPU-second;
the runs of one case spread by up to 30 %): websocket-client 9 430 and 8 970, wsproto 9 020
and 7 910, the websockets sync client 6 380 and 5 870. The websockets sync client works under
monkey-patching, but it reads in a background thread, which there is a greenlet: each message
costs switches and a queue, two thirds of the others' rate. websocket-client is 5 to 13 %
cheaper than wsproto per message, within the noise of this machine; wsproto fits better:
it is sans-IO, so the socket is ours (``_connect``: the handshake's connect, TLS and
first-byte phases measured apart, TLS options as HTTP's), a message is counted against
``max_message_size`` as its bytes arrive (websocket-client reads a whole frame, whatever
length its header claims), and pings are answered as frames are read, with no thread.
``WebSocketUser`` is built on wsproto.

(b) against (c), same runs: with 10 users mpswarm 4 460 (runs 4 170 to 6 530) and Locust by
hand 5 400 (4 410 to 7 880); with 1 user (first run) mpswarm 5 370 and Locust 4 580. The
client's own cost is a few percent over the bare wsproto loop (case (a) against the client
alone in one process: 8 270 and 8 840); the rest is the process tree: mpswarm's parent (its
start and once-a-second aggregation, about 1 CPU-second of a 10 s run) beside the worker,
where Locust runs one process. On this machine the difference is within the noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import free_port, throughput, tool_command
from idle_users import wait_until

LIBRARIES = ("wsproto", "websockets", "websocket-client")
MESSAGE = b"0123456789abcdef"
#: Users of cases (b) and (c): a load test's many connections, each a round trip at a time.
USERS = 10


class EchoServer:
    """A websockets echo server in a subprocess, counting messages as nginx counts requests:
    ``served()`` counts its own query too (``benchmark.throughput`` subtracts it)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.port)], stderr=subprocess.DEVNULL
        )
        wait_until(self._up, 15, "the echo server")

    def _up(self) -> bool:
        try:
            self.served()
        except OSError:
            return False
        return True

    def served(self) -> int:
        """Messages received, plus the queries of this count."""
        url = f"http://127.0.0.1:{self.port}/__stats"
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(json.loads(response.read())["total"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def serve(port: int) -> None:
    """The echo server's process: echo every message, count them; GET /__stats says the count."""
    from http import HTTPStatus

    from websockets.asyncio.server import serve as ws_serve

    total = [0]

    async def echo(connection: Any) -> None:
        async for message in connection:
            total[0] += 1
            await connection.send(message)

    def stats(connection: Any, request: Any) -> Any:
        if request.path != "/__stats":
            return None
        total[0] += 1
        return connection.respond(HTTPStatus.OK, json.dumps({"total": total[0]}) + "\n")

    async def main() -> None:
        async with ws_serve(echo, "127.0.0.1", port, process_request=stats, max_size=None):
            await asyncio.get_running_loop().create_future()

    asyncio.run(main())


def client(library: str, url: str, seconds: float) -> None:
    """One library's client loop, in its own process under gevent: round trips for ``seconds``."""
    from gevent import monkey

    monkey.patch_all()
    round_trip = _open(library, url)
    round_trip()  # the first message, sent before counting
    start = _cpu()
    deadline = time.monotonic() + seconds
    done = 0
    while time.monotonic() < deadline:
        for _ in range(100):
            round_trip()
        done += 100
    print(json.dumps({"messages": done, "cpu_s": _cpu() - start}))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return usage.ru_utime + usage.ru_stime


def _open(library: str, url: str) -> Any:
    """A function doing one round trip over a new connection of ``library``."""
    if library == "websocket-client":
        import websocket

        connection = websocket.create_connection(url)

        def websocket_client() -> None:
            connection.send_bytes(MESSAGE)
            connection.recv()

        return websocket_client
    if library == "websockets":
        from websockets.sync.client import connect

        sync = connect(url).__enter__()  # closed with the process

        def websockets_sync() -> None:
            sync.send(MESSAGE)
            sync.recv()

        return websockets_sync
    return _wsproto(url)


def _wsproto(url: str) -> Any:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, BytesMessage, Request

    from mpswarm.http._connect import open_socket

    port = int(url.rsplit(":", 1)[1])
    sock = open_socket("127.0.0.1", port, 10)
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=f"127.0.0.1:{port}", target="/")))
    accepted = False
    while not accepted:
        ws.receive_data(sock.recv(65536))
        accepted = any(isinstance(event, AcceptConnection) for event in ws.events())

    def wsproto_gevent() -> None:
        sock.sendall(ws.send(BytesMessage(data=MESSAGE)))
        while True:
            ws.receive_data(sock.recv(65536))
            for event in ws.events():
                if isinstance(event, BytesMessage) and event.message_finished:
                    return

    return wsproto_gevent


def _library_run(server: EchoServer, library: str, seconds: float) -> float:
    command = [sys.executable, __file__, "--client", library, "--url", server.url]
    command += ["--seconds", str(seconds)]
    before = server.served()
    found = json.loads(subprocess.run(command, check=True, timeout=seconds + 60,
                                      capture_output=True, text=True).stdout)  # fmt: skip
    # the server's count: every message but the uncounted first, and this query
    assert server.served() - before - 2 == found["messages"], "the server saw other messages"
    return float(found["messages"] / found["cpu_s"])


_LOCUSTFILES = {"mpswarm": "ws_mpswarm.py", "locust": "ws_locust.py",
                "locust-client": "ws_client_in_locust.py"}  # fmt: skip


def _tool_run(server: EchoServer, tool: str, seconds: float) -> float:
    command = tool_command("mpswarm", _LOCUSTFILES[tool], server.url, USERS, int(seconds), 1)
    if tool != "mpswarm":  # the Locust of this environment (2.47), not benchmark.py's own venv
        command[:3] = [sys.executable, "-m", "locust"]
        at = command.index("--processes")  # Locust's would add a master: one process here
        del command[at : at + 2]
    return throughput(server, command, int(seconds))["req_per_cpu_s"]  # type: ignore[arg-type]


def measure(runs: int, seconds: float) -> list[dict[str, Any]]:
    """Round trips per CPU-second of every case, runs alternated (see the module docstring).

    Returns:
        One dict a case: ``protocol``, ``case``, ``messages_per_cpu_s`` (median), ``runs``,
        ``baseline`` (the case compared with, or None).
    """
    cases: dict[str, Any] = {f"{library} alone": library for library in LIBRARIES}
    cases["mpswarm WebSocketUser --processes 1"] = "mpswarm"
    cases["Locust 2.47 + wsproto by hand"] = "locust"
    cases["Locust 2.47 + WebSocketUser's client"] = "locust-client"
    values: dict[str, list[float]] = {case: [] for case in cases}
    server = EchoServer()
    try:
        for _ in range(runs):
            for case, what in cases.items():
                if what in LIBRARIES:
                    values[case].append(_library_run(server, what, seconds))
                else:
                    values[case].append(_tool_run(server, what, seconds))
    finally:
        server.close()
    baselines = {
        "mpswarm WebSocketUser --processes 1": "Locust 2.47 + wsproto by hand",
        "Locust 2.47 + WebSocketUser's client": "Locust 2.47 + wsproto by hand",
    }
    return [
        {
            "protocol": "websocket",
            "case": case,
            "messages_per_cpu_s": statistics.median(found),
            "runs": found,
            "baseline": baselines.get(case),
        }
        for case, found in values.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.client:
        client(args.client, args.url, args.seconds)
        return
    for row in measure(args.runs, args.seconds):
        runs = ", ".join(f"{value:,.0f}" for value in row["runs"])
        print(f"{row['case']:40} {row['messages_per_cpu_s']:10,.0f} /CPU-s   ({runs})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
