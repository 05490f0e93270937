"""How mpswarm's throughput scales with --processes on a many-core machine.

    python bench/scaling.py [--processes 1 2 4 8] [--seconds 8] [--responders 4]

The target is a minimal keep-alive HTTP responder on 127.0.0.1 (asyncio, uvloop when
installed), started here as --responders processes sharing one port (SO_REUSEPORT), so that
it is not the bottleneck on a machine without nginx. For each --processes value mpswarm runs
FastHttpUser (GET /, no wait, 64 users per process); the script reports req/s, the
generator's CPU seconds and requests per CPU-second, and saves JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"


class _Responder(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * count)  # type: ignore[attr-defined]


def _serve(port: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(loop.create_server(_Responder, sock=sock))
    loop.run_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--responders", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers = [
        multiprocessing.Process(target=_serve, args=(port,), daemon=True)
        for _ in range(args.responders)
    ]
    for server in servers:
        server.start()
    time.sleep(1)
    locustfile = ROOT / "bench" / "locustfiles" / "fast_mpswarm.py"
    rows = []
    try:
        for processes in args.processes:
            with tempfile.TemporaryDirectory() as tmp:
                report = Path(tmp) / "r.json"
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "mpswarm",
                        "-f",
                        str(locustfile),
                        "-H",
                        f"http://127.0.0.1:{port}",
                        "--headless",
                        "-u",
                        str(64 * processes),
                        "-r",
                        str(64 * processes),
                        "-t",
                        f"{args.seconds}s",
                        "--processes",
                        str(processes),
                        "--only-summary",
                        "--json-file",
                        str(report),
                        "--loglevel",
                        "ERROR",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                    timeout=args.seconds + 120,
                )
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                data = json.loads(report.read_text())
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            requests = data["total"]["requests"]
            row = {
                "processes": processes,
                "requests": requests,
                "rps": requests / data["duration_s"],
                "cpu_s": cpu,
                "req_per_cpu_s": requests / cpu if cpu else 0.0,
                "saturated_share": (data.get("saturation") or {}).get("share"),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        for server in servers:
            server.terminate()
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "responders": args.responders,
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
