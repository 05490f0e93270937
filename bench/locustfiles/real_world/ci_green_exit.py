"""A CI smoke test that ends its job green on purpose: ``sys.exit(0)`` in ``on_stop``.

``SMOKE_EXIT`` sets another status, as files that end their job red themselves do.
"""

import os
import sys

from locust import HttpUser, between, task


class Smoke(HttpUser):
    wait_time = between(0.05, 0.15)

    @task(3)
    def index(self):
        self.client.get("/")

    @task(1)
    def item(self):
        self.client.get("/items/1", name="/items/[id]")

    def on_stop(self):
        self.client.post("/logout")
        sys.exit(int(os.environ.get("SMOKE_EXIT", "0")))
