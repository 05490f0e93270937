"""Where a request's CPU goes: the layers of mpswarm's request path, each measured alone.

    python bench/request_cost.py [--runs 5] [--seconds 4] [--users 50] [--strace]

Against nginx on 127.0.0.1 (``benchmark.Target``), each layer runs in its own process for
``--seconds`` with ``--users`` greenlets requesting ``GET /`` without a pause, and reports its
CPU (user and system time, from ``getrusage``) per request; medians of ``--runs``:

- ``python ceiling``: a bare gevent socket loop parsing with httptools, no mpswarm;
- ``fast: exchange``: FastHttpSession's transport alone (connection, parser, Response);
- ``fast: request``: its whole ``request`` (URL, name, headers, cookies, the event with no
  listener), then ``+ recorder`` with the worker's Recorder listening on a real segment;
- ``http: request`` and ``http: + recorder``: the same for HttpSession (urllib3);
- ``fast: whole run``: the CLI with ``--processes 1`` and a FastHttpUser (parent, worker,
  user loop, recording); per request in the steady state ((CPU of a long run - CPU of a 1 s
  run) / (requests of one - of the other)), and the start-up cost (what a run costs beyond);
- ``user loop``: the CLI running a task that does nothing, per iteration (``-i``).

``--strace`` also counts a whole run's system calls per request (``strace -c -f``; slow,
counts only). The differences between the lines are the layers' costs; docs/performance.md
quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchmark import Target  # noqa: E402

LAYERS = ("python ceiling", "fast: exchange", "fast: request", "fast: + recorder",
          "http: request", "http: + recorder")  # fmt: skip

NOOP = """
from mpswarm import FastHttpUser, task

class Noop(FastHttpUser):
    @task
    def nothing(self):
        pass
"""


def layer(name: str, url: str, users: int, seconds: float) -> dict[str, float]:
    """Run one layer in this process (monkey-patched by the caller); CPU per request."""
    import socket

    import gevent
    import httptools

    host, port = url.rsplit("/", 1)[-1].split(":")
    counts = [0]

    def bare() -> None:
        sock = socket.create_connection((host, int(port)))  # (gevent's: monkey-patched)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        done = [False]

        class Callbacks:
            def on_message_complete(self) -> None:
                done[0] = True

        parser = httptools.HttpResponseParser(Callbacks())
        request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bare\r\n\r\n".encode()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sock.sendall(request)
            done[0] = False
            while not done[0]:
                parser.feed_data(sock.recv(65536))
            counts[0] += 1

    def session_loop() -> None:
        from mpswarm.event import Events
        from mpswarm.http.fastclient import FastHttpSession
        from mpswarm.http.session import HttpSession

        events = Events()
        if name.endswith("+ recorder"):
            events.request.add_listener(recorder.on_request)
        kind = FastHttpSession if name.startswith("fast") else HttpSession
        session = kind(url, events.request)
        end = time.monotonic() + seconds
        if name == "fast: exchange":  # the transport alone, on the request's plan made once
            outgoing = session._plan("GET", f"{url}/")[3]  # type: ignore[index]
            exchange = session._transport.exchange
            while time.monotonic() < end:
                exchange(outgoing, 1 << 25, False)
                counts[0] += 1
        while time.monotonic() < end:
            session.get("/")
            counts[0] += 1

    segment = recorder = None
    if name.endswith("+ recorder"):
        from mpswarm.stats.recorder import Recorder
        from mpswarm.stats.segment import Segment

        segment = Segment.create(1000, 100)
        recorder = Recorder(segment, lambda message: None)
    try:
        before = resource.getrusage(resource.RUSAGE_SELF)
        run = bare if name == "python ceiling" else session_loop
        gevent.joinall([gevent.spawn(run) for _ in range(users)], raise_error=True)
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        if segment is not None:
            del recorder
            segment.close()
    n = counts[0]
    user_s, sys_s = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"requests": n, "user_us": 1e6 * user_s / n, "sys_us": 1e6 * sys_s / n,
            "us": 1e6 * (user_s + sys_s) / n}  # fmt: skip


def _layer_process(name: str, url: str, users: int, seconds: float) -> dict[str, float]:
    child = subprocess.run(
        [sys.executable, __file__, "--layer", name, "--url", url, "--users", str(users),
         "--seconds", str(seconds)],
        check=True, capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    return dict(json.loads(child.stdout.strip().splitlines()[-1]))


def _cli_cpu(target: Target, locustfile: str, users: int, extra: list[str]) -> tuple[float, int]:
    """(CPU seconds of the whole process tree, requests nginx served) of one CLI run."""
    before_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = target.served()
    subprocess.run(
        [sys.executable, "-m", "mpswarm", "-f", locustfile, "-H", target.url, "--headless",
         "-u", str(users), "-r", str(max(users, 100)), "--processes", "1", "--only-summary",
         "--loglevel", "ERROR", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False,
    )  # fmt: skip
    after_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after_cpu.ru_utime - before_cpu.ru_utime) + (after_cpu.ru_stime - before_cpu.ru_stime)
    return cpu, target.served() - before - 1


def whole_run(target: Target, users: int, seconds: float) -> dict[str, float]:
    fast = str(ROOT / "bench" / "locustfiles" / "fast_mpswarm.py")
    short_cpu, short_n = _cli_cpu(target, fast, users, ["-t", "1s"])
    long_cpu, long_n = _cli_cpu(target, fast, users, ["-t", f"{max(seconds * 2, 4):g}s"])
    steady = (long_cpu - short_cpu) / max(long_n - short_n, 1)
    return {"us": 1e6 * steady, "startup_s": short_cpu - short_n * steady}


def user_loop(target: Target, users: int, tmp: str) -> dict[str, float]:
    noop = Path(tmp) / "noop.py"
    noop.write_text(NOOP)
    few_cpu, _ = _cli_cpu(target, str(noop), users, ["-i", "100000"])
    many_cpu, _ = _cli_cpu(target, str(noop), users, ["-i", "600000"])
    return {"us": 1e6 * (many_cpu - few_cpu) / 500_000}


def syscalls(target: Target, users: int) -> dict[str, float]:
    """System calls per request of a whole run (``--processes 1``, FastHttpUser), counted by
    ``strace -c -f`` over the process tree (slow under strace: only the counts mean much)."""
    fast = str(ROOT / "bench" / "locustfiles" / "fast_mpswarm.py")
    with tempfile.NamedTemporaryFile(suffix=".txt") as out:
        before = target.served()
        subprocess.run(
            ["strace", "-c", "-f", "-o", out.name, sys.executable, "-m", "mpswarm", "-f", fast,
             "-H", target.url, "--headless", "-u", str(users), "-r", str(max(users, 100)),
             "-t", "4s", "--processes", "1", "--only-summary", "--loglevel", "ERROR"],
            check=False, capture_output=True, timeout=120,
        )  # fmt: skip
        served = target.served() - before - 1
        counts: dict[str, float] = {}
        for line in Path(out.name).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[-1] in {"sendto", "recvfrom", "epoll_ctl", "epoll_wait"}:
                counts[parts[-1]] = int(parts[3]) / max(served, 1)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--layer", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.layer:
        from gevent import monkey

        monkey.patch_all()
        print(json.dumps(layer(args.layer, args.url, args.users, args.seconds)))
        return
    target = Target()
    runs: dict[str, list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="mpswarm-bench-") as tmp:
            for _ in range(args.runs):  # in turn: the machine's noise hits every layer alike
                for name in LAYERS:
                    runs.setdefault(name, []).append(
                        _layer_process(name, target.url, args.users, args.seconds)
                    )
                runs.setdefault("fast: whole run", []).append(
                    whole_run(target, args.users, args.seconds)
                )
                runs.setdefault("user loop (no request)", []).append(
                    user_loop(target, args.users, tmp)
                )
            calls = syscalls(target, args.users) if args.strace and shutil.which("strace") else {}
    finally:
        target.close()
    print(f"CPU per request, us (medians of {args.runs} runs; target: {target.label})")
    medians: dict[str, dict[str, float]] = {}
    for name, values in runs.items():
        medians[name] = {key: statistics.median(v[key] for v in values) for key in values[0]}
        line = "  ".join(f"{key} {value:8.2f}" for key, value in medians[name].items()
                         if key != "requests")  # fmt: skip
        print(f"  {name:24s} {line}")
    if calls:
        print("  system calls per request: "
              + ", ".join(f"{name} {n:.2f}" for name, n in sorted(calls.items())))  # fmt: skip
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = {"date": stamp, "cpus": os.cpu_count(), "target": target.label, "runs": args.runs,
           "medians": medians, "syscalls_per_request": calls}  # fmt: skip
    (results / f"request-cost-{stamp}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
