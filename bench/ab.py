"""Two installs of mpswarm (or Locust) side by side: requests per CPU-second, runs alternating.

    python bench/ab.py --tool before=/path/to/old/venv/bin/python --tool after=.venv/bin/python
        [--tool locust=bench/.locust-venv/bin/python] [--user FastHttpUser] [--runs 5]
        [--seconds 8] [--users 50] [--pin]

A tool whose name starts with "locust" runs Locust on Locust's locustfile.

Each tool runs the same trivial locustfile (``GET /``, no wait, ``--users`` users,
``--processes 1``) against nginx on 127.0.0.1 (``benchmark.Target``), in turn, ``--runs``
times; the requests nginx served over the generator's CPU (user + sys of the whole process
tree) is each run's figure, and the medians are printed with each tool's ratio to the first.
A change's effect is measured this way against the code before it, in the same minutes: the
machine's speed drifts, and not evenly between tools. ``--pin`` puts the generator on core 0
and nginx on core 1 (``taskset``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchmark import LOCUSTFILES, Target, throughput  # noqa: E402


def command(name: str, python: str, user: str, url: str, users: int, seconds: int) -> list[str]:
    """The run of one tool: Locust's (a tool named locust...) or mpswarm's."""
    kind = "fast" if user == "FastHttpUser" else "http"
    tool = "locust" if name.startswith("locust") else "mpswarm"
    return [
        python, "-m", tool, "-f", str(LOCUSTFILES / f"{kind}_{tool}.py"), "-H", url,
        "--headless", "-u", str(users), "-r", str(max(users, 100)), "-t", f"{seconds}s",
        "--processes", "1", "--only-summary", "--loglevel", "ERROR",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", action="append", required=True, help="NAME=PYTHON")
    parser.add_argument("--user", default="FastHttpUser", choices=["FastHttpUser", "HttpUser"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--pin", action="store_true")
    args = parser.parse_args()
    tools = {name: str(Path(python).absolute()) for name, python in
             (item.split("=", 1) for item in args.tool)}  # fmt: skip
    # Each tool imports its own install: not this checkout's, which `python -m` would find
    # first from the working directory.
    os.chdir(tempfile.gettempdir())
    target = Target()
    if args.pin:
        subprocess.run(["taskset", "-a", "-p", "-c", "1", str(target.proc.pid)], check=False,
                       capture_output=True)  # fmt: skip
    results: dict[str, list[float]] = {name: [] for name in tools}
    try:
        for run in range(args.runs):
            for name, python in tools.items():
                cmd = command(name, python, args.user, target.url, args.users, args.seconds)
                if args.pin:
                    cmd = ["taskset", "-c", "0", *cmd]
                figure = throughput(target, cmd, args.seconds)["req_per_cpu_s"]
                results[name].append(figure)
                print(f"run {run + 1} {name}: {figure:,.0f} req per CPU-second", flush=True)
                time.sleep(1)
    finally:
        target.close()
    first = statistics.median(results[next(iter(tools))])
    summary = {}
    for name, figures in results.items():
        median = statistics.median(figures)
        summary[name] = {"median": median, "runs": figures, "ratio": median / first}
        print(f"{name}: median {median:,.0f} req per CPU-second, {median / first:.3f}x")
    print(json.dumps({"user": args.user, "target": target.label, "results": summary}))


if __name__ == "__main__":
    main()
