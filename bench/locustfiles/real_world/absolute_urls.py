"""A class ``host`` without a scheme, in a file that builds its absolute URLs itself.

The address comes from ``SHOP_ADDRESS`` (host:port, set by the bench); no ``-H`` is given.
"""

import os
import random

from locust import HttpUser, between, task


class Partner(HttpUser):
    host = os.environ.get("SHOP_ADDRESS", "127.0.0.1:8089")
    wait_time = between(0.05, 0.15)

    @task(2)
    def item(self):
        self.client.get(f"http://{self.host}/items/{random.randint(1, 20)}", name="/items/[id]")

    @task(1)
    def index(self):
        self.client.get(f"http://{self.host}/")
