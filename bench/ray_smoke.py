"""Smoke test of ``--ray``: a real run over a 2-node local Ray cluster, counts checked.

    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 /tmp/rayvenv/bin/python bench/ray_smoke.py \
        [--nodes 2] [--processes 1] [-u 4] [-t 5s]

Starts the demo target (``mpswarm serve --port 0``), a local ``ray.cluster_utils.Cluster``
with one CPU per node, runs ``python -m mpswarm -f examples/api.py --headless --ray ADDRESS``
against the target, and prints mpswarm's merged per-endpoint counts next to the target's own
per-route counts. Exit code 0 when they are equal (and every node ran a worker).
Everything stays on 127.0.0.1; every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _route(method: str, name: str) -> str:
    """mpswarm's endpoint name as the demo target's route (examples/api.py's names)."""
    name = name.split("?")[0].replace("[id]", "<id>")
    return f"{method} {name}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("-u", "--users", type=int, default=4)
    parser.add_argument("-t", "--run-time", default="5s")
    parser.add_argument("-f", "--locustfile", default="examples/api.py")
    args = parser.parse_args()

    server = subprocess.Popen([sys.executable, "-m", "mpswarm", "serve", "--port", "0"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    cluster = None
    try:
        line = server.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        import ray
        from ray.cluster_utils import Cluster

        t0 = time.monotonic()
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        for _ in range(args.nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        print(f"cluster {cluster.address}: {args.nodes} nodes in {time.monotonic() - t0:.1f} s")
        report = os.path.join(tempfile.mkdtemp(prefix="ray-smoke-"), "run.json")
        command = [
            sys.executable, "-m", "mpswarm", "-f", args.locustfile, "-H", url,
            "--headless", "-u", str(args.users), "-r", str(args.users), "-t", args.run_time,
            "--ray", cluster.address, "--processes", str(args.processes),
            "--json-file", report,
        ]  # fmt: skip
        print("$", " ".join(command))
        t0 = time.monotonic()
        run = subprocess.run(command, cwd=ROOT, timeout=300, stderr=subprocess.PIPE, text=True)
        sys.stderr.write(run.stderr)
        nodes = set(re.findall(r"'node_id': '([0-9a-f]+)'", run.stderr))
        print(f"agents on {len(nodes)} distinct Ray node(s): {sorted(nodes)}")
        print(f"mpswarm exit code {run.returncode} after {time.monotonic() - t0:.1f} s")
        with urllib.request.urlopen(url + "/__stats") as response:
            served = json.load(response)["routes"]
        with open(report) as f:
            snapshot = json.load(f)
        merged: dict[str, int] = {}
        torn = [f"{row['method']} {row['name']}"
                for row in [*snapshot["endpoints"], snapshot["total"]]
                if sum(row["histogram"].values()) != row["requests"]]  # fmt: skip
        print(f"{len(snapshot['endpoints'])} endpoint rows; histogram sums != requests: {torn}")
        for row in snapshot["endpoints"]:
            key = _route(row["method"], row["name"])
            merged[key] = merged.get(key, 0) + row["requests"]
        print(f"\n{'endpoint (route)':32} {'mpswarm':>8} {'server':>8}")
        equal = True
        for key in sorted(set(merged) | set(served)):
            a, b = merged.get(key, 0), served.get(key, 0)
            equal = equal and a == b
            print(f"{key:32} {a:8d} {b:8d}{'' if a == b else '   <-- differs'}")
        total = snapshot["total"]["requests"]
        print(f"{'total':32} {total:8d} {sum(served.values()):8d}")
        ok = equal and not torn and run.returncode == 0 and len(nodes) == args.nodes
        print("\nEQUAL" if ok else "\nNOT EQUAL (or the run failed, or a node ran no agent)")
        return 0 if ok else 1
    finally:
        if cluster is not None:
            try:
                ray.shutdown()
            except Exception:
                pass
            cluster.shutdown()
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
