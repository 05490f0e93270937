"""A Ray cluster of several simulated nodes on this machine, for trying ``--ray`` and testing it.

    python -m mpswarm.cluster.simulate [--nodes 2] [--cpus 1]

Prints the cluster's address on its first line of output (``address 127.0.0.1:PORT``), then
keeps the cluster up until its standard input closes (or SIGTERM/SIGINT), and shuts it down.
Every node listens on 127.0.0.1 only (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: set here before
Ray is imported). It runs in its own process because Ray cannot start inside a
gevent-patched one.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray is imported
    parser = argparse.ArgumentParser(prog="python -m mpswarm.cluster.simulate")
    parser.add_argument("--nodes", type=int, default=2, help="nodes (the head included)")
    parser.add_argument("--cpus", type=int, default=1, help="CPUs each node offers to Ray")
    args = parser.parse_args(argv)
    from ray.cluster_utils import Cluster

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.cpus})
    try:
        for _ in range(args.nodes - 1):
            cluster.add_node(num_cpus=args.cpus)
        cluster.wait_for_nodes()
        print(f"address {cluster.address}", flush=True)

        def until_stdin_closes() -> None:
            sys.stdin.read()
            done.set()

        threading.Thread(target=until_stdin_closes, daemon=True).start()
        done.wait()
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
