"""Two FastHttpUser classes with weights and tagged tasks; the bench runs it with ``-T raw get``.

Only tasks tagged ``raw`` or ``get`` run: the cart posts (``post``) and the untagged slow page
never do. ``rest()`` checks a JSON list, as FastHttpUser files often do.
"""

import random

from locust import FastHttpUser, between, tag, task


class Browser(FastHttpUser):
    weight = 3
    wait_time = between(0.05, 0.15)

    @tag("get")
    @task(3)
    def index(self):
        self.client.get("/")

    @tag("get", "items")
    @task(2)
    def item(self):
        self.client.get(f"/items/{random.randint(1, 20)}", name="/items/[id]")

    @tag("raw")
    @task(1)
    def download(self):
        self.client.get("/bytes/512")

    @tag("post")
    @task(2)
    def add_to_cart(self):
        self.client.post("/cart", data={"item_id": "1"})


class ApiReader(FastHttpUser):
    weight = 1
    wait_time = between(0.05, 0.15)

    @tag("raw")
    @task
    def follow_redirects(self):
        self.client.get("/redirect/2", name="/redirect/[n]")

    @tag("get")
    @task(2)
    def items(self):
        with self.rest("GET", "/api/items?page=1", name="/api/items (rest)") as response:
            if not isinstance(response.js.get("items"), list):
                response.failure("no items list")

    @task
    def slow(self):
        self.client.get("/slow?ms=5", name="/slow")
