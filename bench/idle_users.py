"""RSS per idle FastHttpUser, each with a kept-alive connection, at 10 000 and 100 000 users.

    python bench/idle_users.py [--users 10000 100000] [--runs 3] [--hosts 8]

Target: nginx listening on 127.0.0.1 ... 127.0.0.H (same port, ``reuseport``), so that
100 000 connections from 127.0.0.1 do not run out of ephemeral ports (28 000 per destination).
The users (bench/locustfiles/idle_spread.py, one class per address) make one request each and
wait an hour. For each count N, mpswarm runs until nginx's stub_status shows N more active
connections and N more requests, then until the RSS of its whole process tree (parent, fork
server, workers) settles; the same with 1 user and as many workers; the result is
``(RSS(N) - RSS(1)) / (N - 1)``. Medians of --runs runs, saved under bench/results/.

File descriptors: the soft RLIMIT_NOFILE is raised to the hard one, which the generator and
nginx inherit. Where the hard limit is below N (this machine's is 20 000, and no process may
raise it), the users are spread over ``--processes ceil(N / PER_PROCESS)`` workers and nginx
gets as many worker processes; 10 000 users run in one worker. Only ever loads loopback
addresses.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "bench" / "locustfiles" / "idle_spread.py"
RESULTS = ROOT / "bench" / "results"
PORT = 18231
#: Users per generator worker (and connections per nginx worker), under the fd limit.
PER_PROCESS = 15_000


class Nginx:
    """One nginx worker on 127.0.0.1..127.0.0.H:PORT, with stub_status on 127.0.0.1."""

    def __init__(self, hosts: int, workers: int, fds: int) -> None:
        self.tmp = tempfile.mkdtemp(prefix="mpswarm-idle-")
        self.urls = [f"http://127.0.0.{i}:{PORT}" for i in range(1, hosts + 1)]
        listens = " ".join(
            f"listen 127.0.0.{i}:{PORT} reuseport backlog=65535;" for i in range(1, hosts + 1)
        )
        conf = Path(self.tmp) / "nginx.conf"
        conf.write_text(
            f"worker_processes {workers}; daemon off; pid nginx.pid; error_log error.log;\n"
            f"worker_rlimit_nofile {fds};\n"
            f"events {{ worker_connections {fds - 100}; }}\n"
            "http { access_log off; keepalive_requests 1000000; keepalive_timeout 3600s;\n"
            f"  server {{ {listens}\n"
            "    location = /nginx_status { stub_status; }\n"
            '    location / { return 200 "ok\\n"; } } }\n'
        )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", self.tmp, "-c", str(conf)])
        wait_until(lambda: self._try_status() is not None, 10, "nginx to answer")

    def _try_status(self) -> tuple[int, int] | None:
        try:
            return self.status()
        except OSError:
            return None

    def status(self) -> tuple[int, int]:
        """(active connections, requests served), the status request included."""
        with urllib.request.urlopen(f"{self.urls[0]}/nginx_status", timeout=5) as response:
            lines = response.read().decode().splitlines()
        return int(lines[0].split()[-1]), int(lines[2].split()[2])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_until(condition: Any, seconds: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(every)


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_rss(pid: int) -> tuple[int, int]:
    """(RSS of the whole tree, RSS of the workers: the fork server's children)."""
    total = workers = 0
    root = psutil.Process(pid)
    for depth, procs in enumerate(([root], root.children(), root.children(recursive=True))):
        for proc in procs:
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            if depth < 2:
                total += rss
            elif proc.ppid() != pid:  # a grandchild: a worker
                total += rss
                workers += rss
    return total, workers


def settled_rss(pid: int, seconds: float = 60) -> tuple[int, int]:
    """The tree's RSS once two readings a second apart differ by under 0.1 %."""
    last = tree_rss(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = tree_rss(pid)
        if abs(now[0] - last[0]) <= 0.001 * last[0]:
            return now
        last = now
    return last


def measure(nginx: Nginx, users: int, rate: int, processes: int) -> dict[str, float]:
    """RSS of the generator's tree with ``users`` idle users, each with its connection."""
    # Start from nginx with no connection but the status request's own: one closing late (a
    # previous status request's, a previous run's) would otherwise hide a new one in the count.
    wait_until(lambda: nginx.status()[0] <= 1, 120, "nginx's other connections to close")
    active0, served0 = nginx.status()
    command = [
        sys.executable, "-m", "mpswarm", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(rate), "-t", "3600s", "--processes", str(processes),
        "--only-summary", "--loglevel", "ERROR",
    ]  # fmt: skip
    env = {**os.environ, "IDLE_HOSTS": ",".join(nginx.urls)}
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:

        def connected() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"mpswarm exited with {proc.returncode}")
            active, served = nginx.status()
            return active - active0 >= users and served - served0 > users

        try:
            wait_until(connected, 120 + users / 500, f"{users} connections", every=0.5)
        except TimeoutError as exc:
            seen = nginx.status()
            raise TimeoutError(f"{exc}: nginx {seen}, before {active0, served0}") from None
        spawned_s = time.monotonic() - started
        total, worker = settled_rss(proc.pid)
        return {"tree_rss": total, "worker_rss": worker, "spawned_s": spawned_s}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            for child in tree(proc.pid)[::-1]:
                child.kill()
            proc.wait()
        wait_until(lambda: nginx.status()[0] <= active0, 120, "the connections to close")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=8, help="loopback addresses 127.0.0.1..H")
    parser.add_argument("--rate", type=int, default=20_000, help="users started per second")
    parser.add_argument("--label", default="", help="a word for the results file's name")
    args = parser.parse_args()
    most = max(args.users)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds = hard if hard != resource.RLIM_INFINITY else 1_048_576
    resource.setrlimit(resource.RLIMIT_NOFILE, (fds, hard))
    workers = max(1, -(-most // PER_PROCESS))
    if fds < PER_PROCESS + 1000:
        raise SystemExit(f"RLIMIT_NOFILE {fds} is below {PER_PROCESS} users per process")
    nginx = Nginx(args.hosts, workers, fds)
    results: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "hosts": args.hosts,
        "runs": {},
        "bytes_per_idle_user": {},
    }
    try:
        for users in args.users:
            runs = []
            processes = max(1, -(-users // PER_PROCESS))
            for _ in range(args.runs):
                one = measure(nginx, 1, 1, processes)
                many = measure(nginx, users, args.rate, processes)
                per_user = (many["tree_rss"] - one["tree_rss"]) / (users - 1)
                worker = (many["worker_rss"] - one["worker_rss"]) / (users - 1)
                runs.append(
                    {
                        "per_user": per_user,
                        "worker_per_user": worker,
                        "processes": processes,
                        **many,
                    }
                )
                print(
                    f"{users} users: {per_user:.0f} B/user (worker {worker:.0f}), "
                    f"spawned in {many['spawned_s']:.1f} s",
                    flush=True,
                )
            results["runs"][str(users)] = runs
            results["bytes_per_idle_user"][str(users)] = statistics.median(
                run["per_user"] for run in runs
            )
    finally:
        nginx.close()
    print(json.dumps(results["bytes_per_idle_user"]))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"idle-users-{stamp}{'-' + args.label if args.label else ''}.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved bench/results/{name}")


if __name__ == "__main__":
    main()
