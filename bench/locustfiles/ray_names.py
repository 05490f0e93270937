"""Many request names for bench/ray_cluster.py (MPSWARM_BENCH_NAMES, default 1000).

With MPSWARM_BENCH_SAMPLES set to a directory, every worker also writes each response time it
records there (``<host>-<pid>.txt``), so that the benchmark can rebuild the union of all
hosts' histograms on its own and compare it with mpswarm's merged numbers. (MPSWARM_*
variables reach every host of a ``--ray`` run.)
"""

import itertools
import os
import random
import socket

from mpswarm import HttpUser, constant_throughput, events, task

NAMES = int(os.environ.get("MPSWARM_BENCH_NAMES", "1000"))
SAMPLES = os.environ.get("MPSWARM_BENCH_SAMPLES")
_files = {}


@events.request.add_listener
def _sample(request_type, name, response_time, **kwargs):
    if not SAMPLES:
        return
    out = _files.get(os.getpid())
    if out is None:  # one file per worker process (forked after this module was imported)
        path = os.path.join(SAMPLES, f"{socket.gethostname()}-{os.getpid()}.txt")
        out = _files[os.getpid()] = open(path, "a", buffering=1)  # noqa: SIM115
    out.write(f"{request_type}\t{name}\t{response_time!r}\n")


class ManyNames(HttpUser):
    """Each user goes through every name in turn (from a random start): with 4 users at 20
    requests a second, a worker has used all 1 000 names after some 12 s."""

    wait_time = constant_throughput(20)

    def on_start(self):
        self.names = itertools.count(random.randrange(NAMES))

    @task
    def page(self):
        n = next(self.names) % NAMES
        self.client.get("/api/items", params={"page": n}, name=f"/api/items?page={n}")
