"""HTTP/2 messages per CPU-second of the load generator (issue 34, item 4).

    python bench/protocols_http2.py [--runs 3] [--seconds 5] [--users 10]

Target: nginx on 127.0.0.1 with ``listen ... http2`` (h2c, prior knowledge), counted by its
``stub_status`` on a plain port of its own; a response is ``ok``. CPU is the load generator's
process tree only (user + sys of the children this script waits for, ``bench/benchmark.py``'s
``throughput``), never nginx's. Cases, their runs taken in turn:

(a) the candidate libraries alone, ``--users`` greenlets each with a connection of its own,
    GET / in a loop: ``h2 on gevent sockets`` (mpswarm's ``_h2`` transport without the
    session layer: h2 for the framing, the lean client's gevent connection, leader/follower
    reading) and ``httpcore`` (httpx's transport: its HTTP/2 connection on h2, sync, on
    gevent-patched sockets);
(b) ``mpswarm FastHttpUser http2=True``, ``--processes 1``;
(c) ``Locust 2.47 + httpx http2=True``: what a Locust user does today, httpx's client with
    ``http2=True`` in a locustfile firing ``events.request`` (baseline of (b)).

The choice (2-core development machine shared with other test runs, load average 4; 3 runs
of 5 s, 10 users; medians, the runs in brackets; on the final code): h2 on gevent sockets
2 379 messages per CPU-second [2 379, 2 530, 2 157] against httpcore's 1 854 [1 377, 1 866,
1 854], 1.28x (an earlier pass: 1 968 against 1 526, 1.29x). The framing and HPACK are h2's
in both (most of the cost: h2's state machines and hpack are pure Python); what httpcore
adds (its pool, locks, request and response models) costs a quarter more CPU per message,
so mpswarm drives h2 with its own connection code and does not use httpcore.
(b) mpswarm FastHttpUser http2=True 1 722 [1 704, 1 967, 1 722] against (c) Locust with
httpx 693 [650, 906, 693]: 2.48x (an earlier pass: 1 611 against 842, 1.91x). A third
pass on a quieter machine (load 2): 2 306 against 1 818 (1.27x); 1 710 against 894 (1.91x).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import LOCUSTFILES, Target, free_port, throughput

PROTOCOL = "http2"
LIBRARY_CASES = ("h2 on gevent sockets", "httpcore")
MPSWARM_CASE = "mpswarm FastHttpUser http2=True"
LOCUST_CASE = "Locust 2.47 + httpx http2=True"


class H2Target(Target):
    """bench/benchmark.py's nginx target with an h2c server block (``h2_url``) beside it."""

    def __init__(self) -> None:
        if shutil.which("nginx") is None:
            raise SystemExit("nginx is needed (apt-get install nginx-light): it serves h2c")
        port = free_port()
        self.h2_url = f"http://127.0.0.1:{port}"
        super().__init__(
            f"  server {{ listen 127.0.0.1:{port} http2;\n"
            '    location / { return 200 "ok\\n"; } }\n'
        )
        self.label = "nginx 1 worker, h2c, 3-byte body"


# -- (a): a library alone, in a child process ------------------------------------------------------
def _client(library: str, url: str, users: int, seconds: float) -> None:
    """GET / from ``users`` greenlets for ``seconds`` (run as this script's ``--client``)."""
    from gevent import monkey

    monkey.patch_all()
    import gevent

    deadline = time.monotonic() + seconds
    if library == "httpcore":
        import httpcore

        def loop() -> None:
            with httpcore.ConnectionPool(http1=False, http2=True) as pool:
                while time.monotonic() < deadline:
                    pool.request("GET", url + "/").read()

    else:
        from mpswarm.http._h2 import H2Transport
        from mpswarm.http._prepare import head
        from mpswarm.http._transport import Options, Outgoing

        host, port = url.split("//")[1].split(":")
        outgoing = Outgoing(
            "GET",
            url + "/",
            ("http", host, int(port)),
            head("GET", "/", f"Host: {host}:{port}\r\n", "User-Agent: bench\r\n"),
            None,
            Options(60.0, 60.0),
        )

        def loop() -> None:
            transport = H2Transport()
            while time.monotonic() < deadline:
                transport.exchange(outgoing, 1 << 20, False)
            transport.close()

    gevent.joinall([gevent.spawn(loop) for _ in range(users)])


def _command(case: str, target: H2Target, users: int, seconds: float) -> list[str]:
    if case in LIBRARY_CASES:
        library = "httpcore" if case == "httpcore" else "h2"
        return [sys.executable, __file__, "--client", library, "--url", target.h2_url,
                "--users", str(users), "--seconds", str(seconds)]  # fmt: skip
    module, locustfile = (
        ("mpswarm", "http2_mpswarm.py") if case == MPSWARM_CASE else
        ("locust", "http2_locust_httpx.py")
    )  # fmt: skip
    return [sys.executable, "-m", module, "-f", str(LOCUSTFILES / locustfile),
            "-H", target.h2_url, "--headless", "-u", str(users), "-r", str(max(users, 100)),
            "-t", f"{int(seconds)}s", "--only-summary", "--loglevel", "ERROR"] + (
        ["--processes", "1"] if module == "mpswarm" else []
    )  # fmt: skip


def measure(runs: int, seconds: float, users: int = 10) -> list[dict[str, Any]]:
    """Each case's messages per CPU-second of the load generator, medians over ``runs``.

    Returns:
        One dict per case: ``protocol``, ``case``, ``messages_per_cpu_s`` (median),
        ``runs`` (each run's value), ``baseline`` (the case it is compared with, or None).
    """
    cases = [*LIBRARY_CASES, MPSWARM_CASE, LOCUST_CASE]
    values: dict[str, list[float]] = {case: [] for case in cases}
    target = H2Target()
    try:
        for _ in range(runs):
            for case in cases:  # alternated: a drift of the machine hits every case alike
                run = throughput(target, _command(case, target, users, seconds), int(seconds))
                values[case].append(round(run["req_per_cpu_s"], 1))
    finally:
        target.close()
    baselines = {LIBRARY_CASES[0]: LIBRARY_CASES[1], MPSWARM_CASE: LOCUST_CASE}
    return [
        {
            "protocol": PROTOCOL,
            "case": case,
            "messages_per_cpu_s": statistics.median(values[case]),
            "runs": values[case],
            "baseline": baselines.get(case),
        }
        for case in cases
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--client", choices=("h2", "httpcore"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        _client(args.client, args.url, args.users, args.seconds)
        return
    results = measure(args.runs, args.seconds, args.users)
    by_case = {row["case"]: row for row in results}
    for row in results:
        line = f"{row['case']:<34} {row['messages_per_cpu_s']:>9.0f} msg/CPU-s  runs {row['runs']}"
        if row["baseline"]:
            ratio = row["messages_per_cpu_s"] / by_case[row["baseline"]]["messages_per_cpu_s"]
            line += f"  {ratio:.2f}x {row['baseline']}"
        print(line)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
