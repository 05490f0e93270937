"""Run one locustfile under Locust and under mpswarm against the demo target; compare.

    python bench/compat_locust.py [--locustfile examples/locust_style.py] [--runs 3]

Locust is installed by this script into its own virtualenv (bench/.locust-venv). Both tools
run the same locustfile, unchanged, with the same users, spawn rate, run time and two worker
processes, against the built-in demo target on 127.0.0.1. The script prints, per endpoint,
what each tool and the server counted, and each endpoint's share of the requests (the task
ratios), as medians over the runs.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".locust-venv"


def locust_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "locust"], check=True)
    return python


def start_demo() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpswarm", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
    return proc, url


def server_counts(url: str, reset: bool = False) -> dict[str, int]:
    if reset:
        urllib.request.urlopen(urllib.request.Request(f"{url}/__reset", method="POST")).close()
        return {}
    with urllib.request.urlopen(f"{url}/__stats") as response:
        return json.loads(response.read())["routes"]


@dataclasses.dataclass(frozen=True)
class ToolRun:
    """What one run of a tool left: its exit code and its Locust-format CSV files' rows."""

    exit_code: int | None  # None: it ran past its timeout and was killed
    stats: list[dict[str, str]]
    failures: list[dict[str, str]]
    exceptions: list[dict[str, str]]
    output: str  # the end of its stdout and stderr, for a reader of the results

    def counts(self) -> dict[str, int]:
        """Requests per "TYPE name", without the Aggregated row."""
        return {
            f"{row['Type']} {row['Name']}": int(row["Request Count"])
            for row in self.stats
            if row["Name"] != "Aggregated"
        }


def run_tool(
    command: list[str], *, timeout: float, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> ToolRun:
    """Run `command` with ``--csv`` into a scratch directory and read the CSV files back.

    The tool runs in a session of its own, so that a run past `timeout` is ended with all
    its worker processes.
    """
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "run")
        proc = subprocess.Popen(
            [*command, "--csv", prefix],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        exit_code: int | None
        try:
            output, _ = proc.communicate(timeout=timeout)
            exit_code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            exit_code = None

        def rows(kind: str) -> list[dict[str, str]]:
            try:
                with open(f"{prefix}_{kind}.csv", newline="") as handle:
                    return list(csv.DictReader(handle))
            except FileNotFoundError:
                return []

        return ToolRun(
            exit_code, rows("stats"), rows("failures"), rows("exceptions"), output[-4000:]
        )


def load_args(args: argparse.Namespace) -> list[str]:
    """The options that both tools take alike: headless, users, spawn rate and run time."""
    return [
        "--headless",
        "-u",
        str(args.users),
        "-r",
        str(args.spawn_rate),
        "-t",
        args.run_time,
    ]


def run_locust(python: Path, args: argparse.Namespace, url: str) -> dict[str, int]:
    command = [str(python), "-m", "locust", "-f", args.locustfile, "-H", url]
    command += [*load_args(args), "--processes", "2", "--only-summary"]
    return run_tool(command, timeout=600).counts()


def run_mpswarm(args: argparse.Namespace, url: str) -> dict[str, int]:
    command = [sys.executable, "-m", "mpswarm", "-f", args.locustfile, "-H", url]
    command += [*load_args(args), "--processes", "2", "--only-summary"]
    return run_tool(command, timeout=600).counts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locustfile", default="examples/locust_style.py")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=20)
    parser.add_argument("--run-time", default="10s")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    python = locust_python()
    demo, url = start_demo()
    results: dict[str, list[dict[str, int]]] = {"locust": [], "mpswarm": []}
    served: dict[str, list[int]] = {"locust": [], "mpswarm": []}
    try:
        for _ in range(args.runs):
            for tool in ("locust", "mpswarm"):
                server_counts(url, reset=True)
                counts = (
                    run_locust(python, args, url) if tool == "locust" else run_mpswarm(args, url)
                )
                results[tool].append(counts)
                served[tool].append(sum(server_counts(url).values()))
    finally:
        demo.terminate()
        demo.wait()
    names = sorted({name for runs in results.values() for counts in runs for name in counts})
    print(
        f"{args.locustfile}: {args.users} users, {args.run_time}, 2 processes, "
        f"medians of {args.runs} runs"
    )
    print(f"{'endpoint':<24}{'locust':>10}{'share':>8}{'mpswarm':>10}{'share':>8}")
    for tool_totals in (results["locust"], results["mpswarm"]):
        for counts in tool_totals:
            counts["__total__"] = sum(counts.values())
    for name in names:
        row = [f"{name:<24}"]
        for tool in ("locust", "mpswarm"):
            count = statistics.median(c.get(name, 0) for c in results[tool])
            share = statistics.median(c.get(name, 0) / c["__total__"] for c in results[tool])
            row.append(f"{count:>10.0f}{share:>8.1%}")
        print("".join(row))
    for tool in ("locust", "mpswarm"):
        total = statistics.median(c["__total__"] for c in results[tool])
        print(
            f"{tool}: {total:.0f} requests reported, {statistics.median(served[tool]):.0f} "
            "served (median)"
        )


if __name__ == "__main__":
    main()
