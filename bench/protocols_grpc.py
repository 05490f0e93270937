"""gRPC: unary calls per CPU-second of the load generator, on a loopback grpcio server.

    python bench/protocols_grpc.py [--runs 3] [--seconds 5] [--users 10]

The target is tests/protocols/_grpc_server.py (its stubs generated from echo.proto into a
temporary folder), counting the calls it answered; each case calls its ``Say`` with no wait
for --seconds, and the CPU is that of the case's whole process tree (bench/benchmark.py's
``children_cpu``: every reaped descendant; the server, still running, is not one). Medians
of --runs runs, the cases taken in turn.

- (a) the library alone, --users callers in one process, nothing recorded: grpcio's blocking
  API on gevent greenlets (``init_gevent()``), the same on threads, and grpcio's asyncio API
  (``grpc.aio``). grpcio is the only client here: it is Google's C-core binding, what Locust's
  example uses, and its blocking API cooperates with gevent; grpclib and purerpc (not
  installed here, not measured) are pure-Python asyncio clients, which a gevent worker's
  greenlets cannot call.
- (b) mpswarm's GrpcUser (bench/locustfiles/grpc_mpswarm.py), --processes 1;
- (c) Locust 2.47 with grpcio wired up by hand as its documented example does
  (bench/locustfiles/grpc_locust.py): the baseline of (b).

Chosen: grpcio's blocking API on gevent, the way mpswarm's workers run (a user's task is a
greenlet that must not block its worker). Measured here, 2026-12-07, on 2 cores shared with
other benchmarks (10 callers, 3 alternating runs of 10 s, medians, calls per CPU-second):

    grpcio, gevent greenlets     2402   (runs 2402, 2057, 2594)
    grpcio, threads              3254   (2815, 3254, 3974)
    grpcio.aio, asyncio tasks    3257   (3257, 2896, 3555)
    mpswarm GrpcUser             1522   (1522, 1299, 1816)
    Locust 2.47 + grpcio by hand 1759   (1759, 1792, 1740)   mpswarm / Locust 0.87x

(runs of 5 s: 1392 / 1530, 0.91x). grpc's gevent mode itself costs a third more CPU a call
than its threads or asyncio. A GrpcUser call costs about what Locust's hand-wired one does:
read with psutil over 5 s of the steady state (after 3 s), mpswarm's tree made 2330 and 1925
calls per CPU-second, Locust 2113 and 2039, while one mpswarm worker made 2256 and 1759 calls
a second to Locust's 1496 and 1415 (it used more of its core). The whole-run gap is within
this machine's noise: the same hand-wired locustfile under mpswarm measured 1366 and 1588
beside GrpcUser's 1402 and 1308 in an A/B.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from benchmark import LOCUSTFILES, children_cpu  # noqa: E402 - a sibling script

from tests.protocols import _grpc_server  # noqa: E402 - the tests' server and its stubs

LOCUST_CASE = "Locust 2.47 + grpcio by hand"
MPSWARM_CASE = "mpswarm GrpcUser"
ALONE = {
    "grpcio, gevent greenlets": "gevent",
    "grpcio, threads": "threads",
    "grpcio.aio, asyncio tasks": "aio",
}


def _alone(how: str, target: str, stubs: str, users: int, seconds: float) -> None:
    """Case (a), in this (child) process: ``users`` callers for ``seconds``."""
    if how == "gevent":
        from gevent import monkey

        monkey.patch_all()
    import grpc
    import grpc.experimental.gevent

    sys.path.insert(0, stubs)
    import echo_pb2
    import echo_pb2_grpc

    note = echo_pb2.Note(text="hi")
    deadline = time.monotonic() + seconds
    if how == "aio":

        async def caller(stub: Any) -> None:
            while time.monotonic() < deadline:
                await stub.Say(note)

        async def main() -> None:
            async with grpc.aio.insecure_channel(target) as channel:
                stub = echo_pb2_grpc.EchoStub(channel)
                await asyncio.gather(*(caller(stub) for _ in range(users)))

        asyncio.run(main())
        return
    if how == "gevent":
        grpc.experimental.gevent.init_gevent()

    def call_on(channel: Any) -> None:
        stub = echo_pb2_grpc.EchoStub(channel)
        while time.monotonic() < deadline:
            stub.Say(note)

    # One channel per caller, as each user has its own.
    channels = [grpc.insecure_channel(target) for _ in range(users)]
    callers = [threading.Thread(target=call_on, args=(channel,)) for channel in channels]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()


def _calls(server: _grpc_server.Server) -> int:
    return int(server.counts().get(_grpc_server.SERVICE + "/Say", {}).get("OK", 0))


def _command(case: str, target: str, stubs: str, users: int, seconds: float) -> list[str]:
    if case in ALONE:
        how = ALONE[case]
        return [sys.executable, __file__, "--alone", how, target, stubs, str(users), str(seconds)]
    module, locustfile = ("mpswarm", "grpc_mpswarm.py")
    if case == LOCUST_CASE:
        module, locustfile = ("locust", "grpc_locust.py")
    command = [sys.executable, "-m", module, "-f", str(LOCUSTFILES / locustfile), "-H", target,
               "--headless", "-u", str(users), "-r", str(max(users, 100)),
               "-t", f"{seconds:g}s", "--only-summary", "--loglevel", "ERROR"]  # fmt: skip
    return [*command, "--processes", "1"] if module == "mpswarm" else command


def _one_run(server: _grpc_server.Server, command: list[str], env: dict[str, str]) -> float:
    """Calls the server answered per CPU-second of ``command``'s process tree."""
    calls, cpu = _calls(server), children_cpu()
    subprocess.run(command, env=env, check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    spent = children_cpu() - cpu
    return (_calls(server) - calls) / spent if spent else 0.0


def measure(runs: int, seconds: float, users: int = 10) -> list[dict[str, Any]]:
    """Each case's calls per CPU-second (see the module docstring), medians of ``runs``."""
    cases = [*ALONE, MPSWARM_CASE, LOCUST_CASE]
    values: dict[str, list[float]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as folder:
        stubs = _grpc_server.generate(Path(folder) / "stubs")
        env = {**os.environ, "GRPC_STUBS": str(stubs), "PYTHONPATH": str(ROOT)}
        server = _grpc_server.Server(stubs)
        try:
            target = server.url.removeprefix("grpc://")
            for _ in range(runs):  # the cases in turn: drift moves them alike
                for case in cases:
                    command = _command(case, target, str(stubs), users, seconds)
                    values[case].append(_one_run(server, command, env))
        finally:
            server.close()
    return [
        {
            "protocol": "grpc",
            "case": case,
            "messages_per_cpu_s": statistics.median(values[case]),
            "runs": values[case],
            "baseline": LOCUST_CASE if case == MPSWARM_CASE else None,
        }
        for case in cases
    ]


def main() -> None:
    if sys.argv[1:2] == ["--alone"]:
        how, target, stubs, users, seconds = sys.argv[2:7]
        _alone(how, target, stubs, int(users), float(seconds))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--users", type=int, default=10)
    args = parser.parse_args()
    results = measure(args.runs, args.seconds, args.users)
    for row in results:
        print(f"{row['case']:32} {row['messages_per_cpu_s']:8.0f} calls/CPU-s  "
              f"runs {[round(value) for value in row['runs']]}")  # fmt: skip
    by_case = {row["case"]: row["messages_per_cpu_s"] for row in results}
    print(f"mpswarm / Locust: {by_case[MPSWARM_CASE] / by_case[LOCUST_CASE]:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
