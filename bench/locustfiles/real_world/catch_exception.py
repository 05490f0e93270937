"""An exception raised inside a ``catch_response`` block, by the body's own JSON.

The list's check reads a ``total`` field the demo does not send: ``KeyError`` leaves the
block undecided. Locust records no request for it, only the exception.
"""

import random

from locust import HttpUser, between, task


class Reader(HttpUser):
    wait_time = between(0.05, 0.15)

    @task(3)
    def item(self):
        with self.client.get(
            f"/items/{random.randint(1, 20)}", name="/items/[id]", catch_response=True
        ) as response:
            if response.json()["price"] <= 0:
                response.failure("free item")

    @task(1)
    def count(self):
        with self.client.get("/api/items", catch_response=True) as response:
            if response.json()["total"] < 0:
                response.failure("negative total")
