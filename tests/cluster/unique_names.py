"""A locustfile for tests/cluster/test_ray.py: every request under a name of its own, so that
each one lives in one copy only (its row's counters and the record that names the row): a
copy lost on its way to the coordinator is missing from the report."""

import itertools
import os

from mpswarm import HttpUser, constant, task

_numbers = itertools.count()


class EachRequestItsOwnName(HttpUser):
    wait_time = constant(0.05)

    @task
    def index(self):
        self.client.get("/", name=f"/{os.getpid()}/{next(_numbers)}")
