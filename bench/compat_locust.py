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
import json
import os
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


def run_locust(python: Path, args: argparse.Namespace, url: str) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "run")
        subprocess.run(
            [
                str(python),
                "-m",
                "locust",
                "-f",
                args.locustfile,
                "-H",
                url,
                "--headless",
                "-u",
                str(args.users),
                "-r",
                str(args.spawn_rate),
                "-t",
                args.run_time,
                "--processes",
                "2",
                "--csv",
                prefix,
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
        with open(f"{prefix}_stats.csv", newline="") as handle:
            return {
                f"{row['Type']} {row['Name']}": int(row["Request Count"])
                for row in csv.DictReader(handle)
                if row["Name"] != "Aggregated"
            }


def run_mpswarm(args: argparse.Namespace, url: str) -> dict[str, int]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpswarm",
            "-f",
            args.locustfile,
            "-H",
            url,
            "--headless",
            "-u",
            str(args.users),
            "-r",
            str(args.spawn_rate),
            "-t",
            args.run_time,
            "--processes",
            "2",
            "--loglevel",
            "WARNING",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    counts = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[0] in ("GET", "POST", "PUT", "DELETE") and parts[2].isdigit():
            counts[f"{parts[0]} {parts[1]}"] = int(parts[2])
    return counts


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
