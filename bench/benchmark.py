"""mpswarm against Locust on the same machine, same target, same run: the numbers of issue 6.

    python bench/benchmark.py [--runs 3] [--seconds 8] [--users 50]

Target: nginx on 127.0.0.1 (installed from the OS packages when missing and when this runs as
root; otherwise the demo server, clearly labelled). Locust is installed by the script in its own
virtualenv (bench/.locust-venv). For each tool and user class it runs the same trivial
locustfile (GET / with no wait time) and measures, from the target's own request counter and
the CPU time (user + sys) of the whole load generator, parent and workers included:

- requests per CPU-second, at --processes 1;
- requests per second at --processes 1 and --processes -1;
- RSS per idle user with 10 000 users;
- the parent's CPU share with 2 workers and 1 000 distinct request names.

Medians of --runs runs, the tools' runs taken in turn; the ratios mpswarm / Locust are
printed and everything is saved as JSON under bench/results/. wrk runs too when installed, as
a reference ceiling, and so does the ceiling of a Python client on gevent: a bare socket loop
parsing with httptools (``bench/request_cost.py``'s first layer).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle_users import settled_rss, wait_until  # a sibling script

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LOCUSTFILES = BENCH / "locustfiles"
RESULTS = BENCH / "results"
VENV = BENCH / ".locust-venv"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Target:
    """nginx (or the demo server) on loopback, with a request counter.

    Args:
        servers: more nginx ``server`` blocks (``bench/protocols_http2.py``'s h2c one),
            counted by the same counter.
    """

    def __init__(self, servers: str = "") -> None:
        self.tmp = tempfile.mkdtemp(prefix="mpswarm-bench-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        nginx = shutil.which("nginx") or self._install_nginx()
        if nginx:
            conf = Path(self.tmp) / "nginx.conf"
            conf.write_text(
                "worker_processes 1; daemon off; pid nginx.pid; error_log error.log;\n"
                "events { worker_connections 16384; }\n"
                "http { access_log off; keepalive_requests 1000000;\n"
                f"  server {{ listen 127.0.0.1:{self.port};\n"
                "    location = /nginx_status { stub_status; }\n"
                '    location / { return 200 "ok\\n"; } }\n'
                f"{servers}}}\n"
            )
            self.proc = subprocess.Popen(
                [nginx, "-p", self.tmp, "-c", str(conf)], stderr=subprocess.DEVNULL
            )
            self.label = "nginx 1 worker, 3-byte body"
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mpswarm", "serve", "--port", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.label = "FALLBACK: mpswarm demo server (gevent WSGI), not nginx"
        deadline = time.monotonic() + 10
        while True:
            try:
                self.served()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @staticmethod
    def _install_nginx() -> str | None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return None
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "nginx-light"],
            check=False,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        return shutil.which("nginx")

    def served(self) -> int:
        if "nginx" in self.label and "FALLBACK" not in self.label:
            with urllib.request.urlopen(f"{self.url}/nginx_status", timeout=5) as response:
                return int(response.read().decode().splitlines()[2].split()[2])
        with urllib.request.urlopen(f"{self.url}/__stats", timeout=5) as response:
            return int(json.loads(response.read())["total"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def locust_python() -> str:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "locust"], check=True)
    return str(python)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tool_command(
    tool: str,
    locustfile: str,
    url: str,
    users: int,
    seconds: int,
    processes: int,
    extra: list[str] | None = None,
) -> list[str]:
    python = sys.executable if tool == "mpswarm" else locust_python()
    module = "mpswarm" if tool == "mpswarm" else "locust"
    return [
        python,
        "-m",
        module,
        "-f",
        str(LOCUSTFILES / locustfile),
        "-H",
        url,
        "--headless",
        "-u",
        str(users),
        "-r",
        str(max(users, 100)),
        "-t",
        f"{seconds}s",
        "--processes",
        str(processes),
        "--only-summary",
        "--loglevel",
        "ERROR",
        *(extra or []),
    ]


def throughput(target: Target, command: list[str], seconds: int) -> dict[str, float]:
    """Requests the target served, and the generator's CPU, for one run."""
    before_served, before_cpu = target.served(), children_cpu()
    started = time.monotonic()
    subprocess.run(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=seconds + 120,
        check=False,
    )
    wall = time.monotonic() - started
    requests = target.served() - before_served - 1
    cpu = children_cpu() - before_cpu
    return {
        "requests": requests,
        "cpu_s": cpu,
        "wall_s": wall,
        "rps": requests / seconds,
        "req_per_cpu_s": requests / cpu if cpu else 0.0,
    }


def rss_per_user(target: Target, tool: str, user_class: str, users: int) -> float:
    """(RSS with ``users`` idle users - RSS with 1) / (users - 1), whole process tree.

    Each reading is taken once the target served every user's request and the tree's RSS
    settled (``idle_users.settled_rss``), not after a fixed sleep: a start a second slower
    than the sleep allowed measured a tree still growing (2.85 KB where bench/idle_users.py,
    which waits for its conditions, measured 2.15 KB of the same code)."""
    sizes = [idle_rss(target, tool, user_class, count) for count in (1, users)]
    return (sizes[1] - sizes[0]) / (users - 1)


def idle_rss(target: Target, tool: str, user_class: str, count: int) -> int:
    """The settled RSS of a run of ``count`` idle users, once each one's request was served."""
    command = tool_command(tool, f"idle_{tool}.py", target.url, count, 3600, 1, [user_class])
    command[command.index("-r") + 1] = str(max(count, 1))
    served0, polls = target.served(), 0
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def all_served() -> bool:
        nonlocal polls
        if proc.poll() is not None:
            raise RuntimeError(f"{tool} exited with {proc.returncode}")
        if target.label.startswith("nginx"):
            polls += 1  # nginx counts each status request it answers
        return target.served() - served0 - polls >= count

    try:
        wait_until(all_served, 60 + count / 200, f"{count} idle users")
        return settled_rss(proc.pid)[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def parent_cpu_share(target: Target, tool: str, seconds: int) -> dict[str, float]:
    """CPU of the parent (Locust: master) / wall time, with 2 workers and 1 000 names."""
    command = tool_command(tool, "names.py", target.url, 20, seconds, 2)
    before_served = target.served()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    time.sleep(3)  # past start-up
    start_cpu = sum(parent.cpu_times()[:2])
    start = time.monotonic()
    time.sleep(seconds - 4)
    cpu = sum(parent.cpu_times()[:2]) - start_cpu
    wall = time.monotonic() - start
    proc.wait(timeout=120)
    served = target.served() - before_served
    return {"parent_cpu_percent": 100 * cpu / wall, "rps": served / seconds}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--idle-users", type=int, default=10_000)
    parser.add_argument("--skip", nargs="*", default=[], help="parts to skip: rss parent all")
    args = parser.parse_args()
    target = Target()
    results: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "target": target.label,
        "runs": args.runs,
        "seconds": args.seconds,
        "users": args.users,
    }
    try:
        tools = {
            "mpswarm FastHttpUser": ("mpswarm", "fast_mpswarm.py"),
            "mpswarm HttpUser": ("mpswarm", "http_mpswarm.py"),
            "Locust FastHttpUser": ("locust", "fast_locust.py"),
            "Locust HttpUser": ("locust", "http_locust.py"),
        }
        table: dict[str, dict[str, float]] = {}
        # Run by run, each tool in turn: a machine whose speed drifts over the minutes of a
        # benchmark (this shared one does) then moves every tool's runs alike, not the ratios.
        runs: dict[str, dict[int, list[dict[str, float]]]] = {
            name: {1: [], -1: []} for name in tools
        }
        for _ in range(args.runs):
            for name, (tool, locustfile) in tools.items():
                for processes in (1,) if "all" in args.skip else (1, -1):
                    command = tool_command(
                        tool, locustfile, target.url, args.users, args.seconds, processes
                    )
                    runs[name][processes].append(throughput(target, command, args.seconds))
        for name in tools:
            one = median_of(runs[name][1])
            entry = {
                "req_per_cpu_s": one["req_per_cpu_s"],
                "rps_p1": one["rps"],
                "cpu_s_p1": one["cpu_s"],
            }
            if runs[name][-1]:
                entry["rps_all_cores"] = median_of(runs[name][-1])["rps"]
            table[name] = entry
            print(f"{name:<22} {entry}", flush=True)
        if shutil.which("wrk"):
            wrk = median_of(
                [
                    throughput(
                        target,
                        ["wrk", "-t1", f"-c{args.users}", f"-d{args.seconds}s", f"{target.url}/"],
                        args.seconds,
                    )
                    for _ in range(args.runs)
                ]
            )
            table["wrk (reference)"] = {
                "req_per_cpu_s": wrk["req_per_cpu_s"],
                "rps_p1": wrk["rps"],
                "cpu_s_p1": wrk["cpu_s"],
            }
        ceiling = [
            json.loads(
                subprocess.run(
                    [sys.executable, str(BENCH / "request_cost.py"), "--layer", "python ceiling",
                     "--url", target.url, "--users", str(args.users), "--seconds", "4"],
                    check=True, capture_output=True, text=True, timeout=120,
                ).stdout.strip().splitlines()[-1]
            )["us"]
            for _ in range(args.runs)
        ]  # fmt: skip
        table["Python ceiling (reference)"] = {"req_per_cpu_s": 1e6 / statistics.median(ceiling)}
        print(f"{'Python ceiling':<22} {table['Python ceiling (reference)']}", flush=True)
        results["throughput"] = table
        if "rss" not in args.skip:
            results["rss_per_idle_user_bytes"] = {
                f"{tool} {cls}": statistics.median(
                    rss_per_user(target, tool, cls, args.idle_users) for _ in range(args.runs)
                )
                for tool in ("mpswarm", "locust")
                for cls in ("IdleFast", "IdleHttp")
            }
            print(results["rss_per_idle_user_bytes"], flush=True)
        if "parent" not in args.skip:
            results["parent_cpu"] = {
                tool: median_of(
                    [
                        parent_cpu_share(target, tool, max(10, args.seconds))
                        for _ in range(args.runs)
                    ]
                )
                for tool in ("mpswarm", "locust")
            }
            print(results["parent_cpu"], flush=True)
    finally:
        target.close()
    fast = table["mpswarm FastHttpUser"]["req_per_cpu_s"]
    ratios = {
        "FastHttpUser req/CPU-s (target >= 8x)": fast
        / table["Locust FastHttpUser"]["req_per_cpu_s"],
        "HttpUser req/CPU-s (target >= 4x)": table["mpswarm HttpUser"]["req_per_cpu_s"]
        / table["Locust HttpUser"]["req_per_cpu_s"],
        "FastHttpUser / Python ceiling (a bare gevent + httptools loop)": fast
        / table["Python ceiling (reference)"]["req_per_cpu_s"],
    }
    if "parent_cpu" in results:
        ratios["parent CPU share (target <= 1x)"] = results["parent_cpu"]["mpswarm"][
            "parent_cpu_percent"
        ] / max(results["parent_cpu"]["locust"]["parent_cpu_percent"], 1e-9)
    results["ratios_mpswarm_over_locust"] = ratios
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for path in (RESULTS / f"{stamp}.json", RESULTS / "latest.json"):
        path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
