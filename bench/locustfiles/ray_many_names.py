"""Many request names (300) for bench/ray_smoke.py: exercises the bridge's row deltas."""

import random

from mpswarm import HttpUser, constant_throughput, task


class ManyNames(HttpUser):
    wait_time = constant_throughput(50)

    @task
    def page(self):
        n = random.randrange(300)
        self.client.get("/api/items", params={"page": n}, name=f"/api/items?page={n}")
