"""What gevent's hub costs per switch, and whether its other event loop (libuv) does better.

    python bench/loop_cost.py [--runs 5] [--seconds 4] [--users 50]

Two parts, both printed as medians of ``--runs``:

- **Switches**, in this process, on the default loop (libev): a greenlet switch alone
  (``greenlet.switch`` back and forth), a round trip through the hub (``gevent.sleep(0)``: a
  callback scheduled, the hub's loop run once, the greenlet switched back in), and a wait on a
  socket (two greenlets passing a byte over a socketpair: each pass is a ``send``, a ``recv``
  that finds nothing, an I/O watcher started, the hub polling, the watcher firing, a switch
  back), CPU per operation.
- **Loops**: ``bench/request_cost.py``'s layers "python ceiling" and "fast: + recorder" (50
  greenlets against nginx, CPU per request) run under ``GEVENT_LOOP=libev-cext`` (gevent's
  default) and ``GEVENT_LOOP=libuv-cffi``, in turn. libuv needs ``cffi``
  (``pip install cffi``); without it that loop is reported as unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchmark import Target  # noqa: E402

LOOPS = ("libev-cext", "libuv-cffi")
LAYERS = ("python ceiling", "fast: + recorder")


def _cpu() -> float:
    return time.process_time()  # user + system CPU of this process, to the microsecond


def switches(count: int) -> dict[str, float]:
    """CPU per operation (µs) of a greenlet switch, a hub round trip, a socket wait."""
    import socket

    import gevent
    import greenlet

    main = greenlet.getcurrent()

    def bounce() -> None:
        while True:
            main.switch()

    other = greenlet.greenlet(bounce)
    start = _cpu()
    for _ in range(count):
        other.switch()
    switch_us = (_cpu() - start) / count * 1e6

    start = _cpu()
    for _ in range(count):
        gevent.sleep(0)
    hub_us = (_cpu() - start) / count * 1e6

    left, right = socket.socketpair()  # gevent's sockets: the caller has monkey-patched

    def echo() -> None:
        for _ in range(count):
            right.sendall(right.recv(1))

    server = gevent.spawn(echo)
    start = _cpu()
    for _ in range(count):
        left.sendall(b"x")
        left.recv(1)
    io_us = (_cpu() - start) / count * 1e6
    server.join()
    left.close()
    right.close()
    # One pass is two sends, two recvs, and the reader waiting on the hub each time.
    return {"greenlet switch, there and back": switch_us, "hub round trip (sleep(0))": hub_us,
            "socketpair ping-pong, per pass": io_us}  # fmt: skip


def _layer(loop: str, layer: str, url: str, users: int, seconds: float) -> float | None:
    child = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "request_cost.py"), "--layer", layer, "--url", url,
         "--users", str(users), "--seconds", str(seconds)],
        capture_output=True, text=True, timeout=seconds + 60,
        env={**os.environ, "GEVENT_LOOP": loop},
    )  # fmt: skip
    if child.returncode != 0:
        return None
    return float(json.loads(child.stdout.strip().splitlines()[-1])["us"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--switches", type=int, default=200_000)
    parser.add_argument("--only-switches", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only_switches:
        from gevent import monkey

        monkey.patch_all()
        print(json.dumps(switches(args.switches)))
        return
    runs: dict[str, list[float]] = {}
    for _ in range(args.runs):
        child = subprocess.run(
            [sys.executable, __file__, "--only-switches", "--switches", str(args.switches)],
            capture_output=True, text=True, check=True, timeout=300,
        )  # fmt: skip
        for name, value in json.loads(child.stdout.strip().splitlines()[-1]).items():
            runs.setdefault(name, []).append(value)
    target = Target()
    loops: dict[tuple[str, str], list[float]] = {}
    missing: set[str] = set()
    try:
        for _ in range(args.runs):  # in turn: the machine's noise hits both loops alike
            for layer in LAYERS:
                for loop in LOOPS:
                    if loop in missing:
                        continue
                    us = _layer(loop, layer, target.url, args.users, args.seconds)
                    if us is None:
                        missing.add(loop)
                    else:
                        loops.setdefault((layer, loop), []).append(us)
    finally:
        target.close()
    print(f"gevent's costs, CPU per operation in us (medians of {args.runs} runs)")
    medians: dict[str, float] = {}
    for name, values in runs.items():
        medians[name] = statistics.median(values)
        print(f"  {name:32s} {medians[name]:7.2f}")
    print(f"CPU per request in us by event loop (target: {target.label})")
    by_loop: dict[str, dict[str, float]] = {}
    for (layer, loop), values in loops.items():
        by_loop.setdefault(layer, {})[loop] = statistics.median(values)
    for layer, found in by_loop.items():
        line = "  ".join(f"{loop} {found.get(loop, float('nan')):7.2f}" for loop in LOOPS)
        print(f"  {layer:20s} {line}")
    for loop in sorted(missing):
        print(f"  {loop}: unavailable here (libuv needs cffi: pip install cffi)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = {"date": stamp, "cpus": os.cpu_count(), "target": target.label, "runs": args.runs,
           "switches_us": medians, "request_us_by_loop": by_loop,
           "unavailable": sorted(missing)}  # fmt: skip
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"loop-cost-{stamp}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
