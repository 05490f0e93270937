"""``--ray``'s figures on a local Ray cluster of simulated nodes (every process on 127.0.0.1).

    .venv/bin/python bench/ray_cluster.py [--rounds 3] [--hosts 2,4] [--names 1000] [-t 20]

Against the demo target (``mpswarm serve``), with ``bench/locustfiles/ray_names.py`` (1 000
request names; every worker also writes each response time it records to a file), per round:

- **exact**: a run over N hosts (one worker each) stopped gracefully. The merged total must
  equal the target's own count; every endpoint's merged histogram must equal the one rebuilt
  from the union of all workers' own samples, bucket for bucket, and so must its percentiles,
  minimum, maximum and sum (bit-exact, no tolerance).
- **coordinator CPU**: CPU seconds of the coordinator (the ``mpswarm`` command and its Ray
  bridge) per second of the steady part of the run (from ``--settle`` seconds on, once every
  worker has used every name), in % of one core; and the same of the collector (the Ray actor
  on a load node that gathers every host's copies for the coordinator).
- **stats age**: the target's count is polled every 20 ms; for every progress line the
  coordinator prints (``--print-interval 1``, on stderr), how long ago the target had served
  the number of requests the line shows, over the steady part. Median and worst.
- **lost host**: the agent of one host is killed (SIGKILL) mid-run, or its node removed from
  the cluster (one that does not run the collector), or frozen (SIGSTOP to its raylet and
  every process under it: a machine that vanished, whose connections stay open); after the
  run, the requests the target served that the report lacks, in seconds of that host's
  request rate; and how long the coordinator took to notice.
- **lost collector**: the collector is killed (SIGKILL) mid-run (nothing may be missing: its
  successor replays every host's log), or its node removed from the cluster (the host on
  that node is lost as well; what is missing is that host's).

Medians over ``--rounds``. Exit code 0 when every exactness check held.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray is imported: loopback only
ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = "bench/locustfiles/ray_names.py"


class Target:
    """The demo target, its count polled every 20 ms while ``polling``."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "mpswarm", "serve", "--port", "0"],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
        assert self.proc.stdout is not None
        match = re.search(r"http://127\.0\.0\.1:\d+", self.proc.stdout.readline())
        assert match, "the demo target did not start"
        self.url = match.group(0)
        self.counts: list[tuple[float, int]] = []
        self._polling = threading.Event()
        threading.Thread(target=self._poll, daemon=True).start()

    def total(self) -> int:
        with urllib.request.urlopen(self.url + "/__stats", timeout=5) as response:
            return sum(json.load(response)["routes"].values())

    def reset(self) -> None:
        request = urllib.request.Request(self.url + "/__reset", method="POST")
        urllib.request.urlopen(request, timeout=5).close()
        self.counts = []

    def _poll(self) -> None:
        while True:
            self._polling.wait()
            self.counts.append((time.monotonic(), self.total()))
            time.sleep(0.02)

    def polling(self, on: bool) -> None:
        (self._polling.set if on else self._polling.clear)()

    def served_at(self, requests: int) -> float | None:
        """The first poll time at which the target had served ``requests``."""
        for t, total in self.counts:
            if total >= requests:
                return t
        return None

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Run:
    """One coordinator: ``python -m mpswarm ... --ray ADDRESS``, its output lines timed."""

    def __init__(self, address: str, url: str, hosts: int, seconds: int, users: int,
                 env: dict[str, str], report: Path) -> None:  # fmt: skip
        command = [sys.executable, "-m", "mpswarm", "-f", LOCUSTFILE, "-H", url, "--headless",
                   "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--processes", "1",
                   "--ray", address, "--ray-hosts", str(hosts), "--print-interval", "1",
                   "--json-file", str(report)]  # fmt: skip
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1",
                                          **env})  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self.stderr = self.stdout = ""
        self.log: list[tuple[float, str]] = []
        self.loaded = threading.Event()  # the first progress line
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self.report = report

    def _read(self) -> None:
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()

    def _read_err(self) -> None:  # the log and the progress lines
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr += line
            self.log.append((time.monotonic(), line))
            if "requests " in line:
                self.lines.append((time.monotonic(), line))
                self.loaded.set()

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds of the coordinator and of its bridge so far."""
        found = [0.0, 0.0]
        try:
            parent = psutil.Process(self.proc.pid)
            for index, proc in enumerate([parent, *parent.children()][:2]):
                times = proc.cpu_times()
                found[index] = times.user + times.system
        except psutil.Error:
            pass
        return found[0], found[1]

    def collector_cpu_s(self) -> float:
        """CPU seconds of the run's collector so far (0 when it is not found)."""
        try:
            return sum(psutil.Process(collector_pid()).cpu_times()[:2])
        except (psutil.Error, LookupError):
            return 0.0

    def facts(self) -> list[dict[str, Any]]:
        """The hosts as the coordinator logged them (agent pids, node ids)."""
        found = re.findall(r"\{'host': [^}]*\}", self.stderr)
        return [ast.literal_eval(f) for f in found]

    def wait(self) -> int:
        code = self.proc.wait(300)
        time.sleep(0.2)  # the reader threads' last lines
        return code

    def json(self) -> dict[str, Any]:
        return json.loads(self.report.read_text())


def collector_pid() -> int:
    """The pid of the live collector actor (Ray names its process ``ray::Collector``)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(b"ray::Collector"):
                        return int(entry)
            except OSError:
                pass
    raise LookupError("no collector")


def node_of(pid: int, cluster: Any) -> Any:
    """The cluster node whose raylet started process ``pid``."""
    raylet = psutil.Process(pid).ppid()
    for node in cluster.list_all_nodes():
        if any(p.process.pid == raylet for p in node.all_processes.get("raylet", [])):
            return node
    raise LookupError(f"no node runs {pid}")


def union_of_samples(directory: Path) -> dict[tuple[str, str], list[int]]:
    """Every recorded response time (µs, as the recorder rounds it), by (method, name)."""
    found: dict[tuple[str, str], list[int]] = {}
    for path in directory.glob("*.txt"):
        for line in path.read_text().splitlines():
            method, name, ms = line.split("\t")
            value = float(ms)
            found.setdefault((method, name), []).append(
                int(value * 1000.0 + 0.5) if value > 0 else 0
            )
    return found


def compare_with_union(
    report: dict[str, Any], union: dict[tuple[str, str], list[int]]
) -> list[str]:
    """Differences between the merged rows and the union of the workers' samples."""
    import numpy as np

    from mpswarm.report.json_report import JSON_PERCENTILES
    from mpswarm.stats.histogram import MIDPOINTS_US, NUM_BUCKETS, bucket_index

    problems = []
    rows = {(row["method"], row["name"]): row for row in report["endpoints"]}
    if set(rows) != set(union):
        problems.append(f"names differ: {len(rows)} merged, {len(union)} in the samples")
    for key, values in union.items():
        row = rows.get(key)
        if row is None:
            continue
        dense = np.zeros(NUM_BUCKETS, dtype=np.int64)
        for us in values:
            dense[bucket_index(us)] += 1
        merged = {int(k): v for k, v in row["histogram"].items()}
        mine = {int(i): int(dense[i]) for i in np.flatnonzero(dense)}
        low, high = min(values), max(values)
        cumulative = np.cumsum(dense)
        expected = []
        for q in JSON_PERCENTILES:  # nearest rank over the union, as a reader would compute it
            if q >= 100:
                expected.append(high / 1000.0)
                continue
            rank = max(1, int(np.ceil(q / 100.0 * len(values))))
            index = int(np.searchsorted(cumulative, rank, side="left"))
            expected.append(float(min(max(MIDPOINTS_US[index], low), high)) / 1000.0)
        got = list(row["percentiles_ms"].values())
        checks = [
            ("requests", row["requests"], len(values)), ("histogram", merged, mine),
            ("min_us", row["min_us"], low), ("max_us", row["max_us"], high),
            ("total_us", row["total_us"], sum(values)), ("percentiles", got, expected),
        ]  # fmt: skip
        problems += [f"{key}: {what} {a!r} != {b!r}" for what, a, b in checks if a != b]
    return problems


def exact_round(address: str, target: Target, hosts: int, args: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mpswarm-ray-bench-") as tmp:
        samples = Path(tmp) / "samples"
        samples.mkdir()
        target.reset()
        target.polling(True)
        env = {"MPSWARM_BENCH_SAMPLES": str(samples), "MPSWARM_BENCH_NAMES": str(args.names)}
        run = Run(address, target.url, hosts, args.run_time, args.users_per_host * hosts, env,
                  Path(tmp) / "run.json")  # fmt: skip
        run.loaded.wait(120)
        time.sleep(args.settle)  # past the ramp-up and the first use of every name
        t_a, cpu_a, coll_a = time.monotonic(), run.cpu_s(), run.collector_cpu_s()
        time.sleep(max(1, args.run_time - args.settle - 3))
        t_b, cpu_b, coll_b = time.monotonic(), run.cpu_s(), run.collector_cpu_s()
        code = run.wait()
        target.polling(False)
        served = target.total()
        report = run.json()
        ages = []
        for t, line in run.lines:
            if t < t_a:  # the steady part only
                continue
            match = re.search(r"requests (\d+)", line)
            if match and int(match.group(1)) > 0:
                at = target.served_at(int(match.group(1)))
                if at is not None:
                    ages.append(t - at)
        problems = compare_with_union(report, union_of_samples(samples))
    merged = report["total"]["requests"]
    if merged != served:
        problems.insert(0, f"merged {merged} != served {served}")
    if code != 0:
        problems.insert(0, f"exit code {code}: {run.stderr[-500:]}")
    return {"hosts": hosts, "served": served, "merged": merged, "names": len(report["endpoints"]),
            "cpu_pct": 100.0 * (sum(cpu_b) - sum(cpu_a)) / (t_b - t_a),
            "parent_pct": 100.0 * (cpu_b[0] - cpu_a[0]) / (t_b - t_a),
            "collector_pct": 100.0 * (coll_b - coll_a) / (t_b - t_a),
            "age_median_s": statistics.median(ages) if ages else float("nan"),
            "age_max_s": max(ages) if ages else float("nan"), "problems": problems}  # fmt: skip


def lost_round(address: str, cluster: Any, target: Target, hosts: int, how: str,
               args: Any) -> dict[str, Any]:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mpswarm-ray-bench-") as tmp:
        target.reset()
        env = {"MPSWARM_BENCH_NAMES": str(args.names)}
        seconds = 20
        if args.debug:
            env["MPSWARM_LOGLEVEL"] = "DEBUG"
        run = Run(address, target.url, hosts, seconds, args.users_per_host * hosts, env,
                  Path(tmp) / "run.json")  # fmt: skip
        run.loaded.wait(120)
        time.sleep(5)
        head = cluster.head_node.node_id
        collector = collector_pid()
        collector_node = node_of(collector, cluster)
        if how == "collector-node":  # the host on the collector's node is lost with it
            assert collector_node.node_id != head, "the collector runs on the head node"
            victim = next(f for f in run.facts() if f["node_id"] == collector_node.node_id)
        else:
            victim = next(f for f in reversed(run.facts())
                          if f["node_id"] not in (head, collector_node.node_id))  # fmt: skip
        frozen = []
        t_kill = time.monotonic()
        if how == "frozen":
            node = next(n for n in cluster.list_all_nodes() if n.node_id == victim["node_id"])
            raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
            frozen = [raylet, *raylet.children(recursive=True)]
            for proc in frozen:
                proc.suspend()
        elif how == "agent":
            os.kill(victim["agent_pid"], signal.SIGKILL)
        elif how == "collector":
            os.kill(collector, signal.SIGKILL)
        else:
            node = next(n for n in cluster.list_all_nodes() if n.node_id == victim["node_id"])
            cluster.remove_node(node, allow_graceful=False)
        code = run.wait()
        served = target.total()
        report = run.json()
        if frozen:  # gone for good: its node goes, and the round's loop adds a new one
            for proc in frozen:
                try:
                    proc.kill()
                except psutil.Error:
                    pass
            cluster.remove_node(node, allow_graceful=False)
        if args.debug:  # the bridge's words, timed from the loss
            for t, line in run.log:
                if line.startswith("mpswarm: ray:") and " copies, " not in line:
                    print(f"{t - t_kill:+8.2f} s  {line.rstrip()[:300]}")
        seen = "the collector was lost" if how == "collector" else "lost: its agent"
        noticed = [t - t_kill for t, line in run.log if t > t_kill and seen in line]
    merged = report["total"]["requests"]
    host_rate = served / seconds / hosts
    lost = report.get("hosts_lost") or [{}]
    return {"how": how, "hosts": hosts, "code": code, "served": served, "merged": merged,
            "missing": served - merged, "lost_s": (served - merged) / host_rate,
            "noticed_s": noticed[0] if noticed else float("nan"),
            "action": lost[0].get("action", "(no host lost)")}  # fmt: skip


def _exact_line(r: dict[str, Any]) -> str:
    return (
        f"exact  {r['hosts']} hosts: served {r['served']} merged {r['merged']} "
        f"({r['names']} names); coordinator CPU {r['cpu_pct']:.2f} % of a core (the mpswarm "
        f"process {r['parent_pct']:.2f} %), collector {r['collector_pct']:.2f} %; stats age "
        f"median {r['age_median_s']:.2f} s, worst "
        f"{r['age_max_s']:.2f} s; {len(r['problems'])} difference(s) {r['problems'][:3]}"
    )


def _exact_median(results: list[dict[str, Any]], names: int) -> str:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    exact = sum(not r["problems"] for r in results)
    return (
        f"MEDIAN {results[0]['hosts']} hosts x {names} names: coordinator CPU "
        f"{median('cpu_pct'):.2f} % of a core (mpswarm process {median('parent_pct'):.2f} %), "
        f"collector {median('collector_pct'):.2f} %, "
        f"stats age {median('age_median_s'):.2f} s (worst "
        f"{max(r['age_max_s'] for r in results):.2f} s), exact in {exact}/{len(results)}"
    )


def _lost_line(r: dict[str, Any]) -> str:
    return (
        f"lost   {r['how']}: served {r['served']} merged {r['merged']} missing {r['missing']} = "
        f"{r['lost_s']:.2f} s of the host's requests; noticed after {r['noticed_s']:.2f} s; "
        f"exit {r['code']}; {r['action']}"
    )


def _lost_median(rounds: list[dict[str, Any]], how: str) -> str:
    worst = max(r["lost_s"] for r in rounds)
    return (
        f"MEDIAN lost {how}: {statistics.median(r['lost_s'] for r in rounds):.2f} s of its "
        f"requests missing (worst {worst:.2f} s), noticed after "
        f"{statistics.median(r['noticed_s'] for r in rounds):.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hosts", default="2,4", help="cluster sizes for the exact rounds")
    parser.add_argument("--names", type=int, default=1000)
    parser.add_argument("--users-per-host", type=int, default=4)
    parser.add_argument("-t", "--run-time", type=int, default=35, help="seconds per exact round")
    parser.add_argument("--settle", type=int, default=16, help="seconds before the steady part")
    parser.add_argument(
        "--lost",
        default="agent,node,frozen,collector,collector-node",
        help="lost-host rounds: agent, node, frozen, collector, collector-node",
    )
    parser.add_argument("--debug", action="store_true", help="print the lost runs' logs")
    parser.add_argument("--no-exact", action="store_true", help="only the lost-host rounds")
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    target = Target()
    ok = True
    sizes = [int(h) for h in args.hosts.split(",")]
    try:
        for hosts in sizes:
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
            try:
                for _ in range(hosts - 1):
                    cluster.add_node(num_cpus=1)
                cluster.wait_for_nodes()
                results = []
                for _ in range(0 if args.no_exact else args.rounds):
                    r = exact_round(cluster.address, target, hosts, args)
                    print(_exact_line(r), flush=True)
                    ok = ok and not r["problems"]
                    results.append(r)
                if results:
                    print(_exact_median(results, args.names), flush=True)
                if hosts != max(sizes):
                    continue
                for how in [h for h in args.lost.split(",") if h]:
                    rounds = []
                    for _ in range(args.rounds):
                        r = lost_round(cluster.address, cluster, target, hosts, how, args)
                        print(_lost_line(r), flush=True)
                        rounds.append(r)
                        if how.endswith("node") or how == "frozen":  # a node comes back
                            cluster.add_node(num_cpus=1)
                            cluster.wait_for_nodes()
                    print(_lost_median(rounds, how), flush=True)
            finally:
                cluster.shutdown()
    finally:
        target.close()
    print("EXACT" if ok else "NOT EXACT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
