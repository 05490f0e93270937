"""A shop visitor: logs in (session cookie), browses items, fills a cart.

Run it against the built-in demo target:

    mpswarm serve --port 8088 -- mpswarm -f examples/shop.py -H http://127.0.0.1:8088 \
        --headless -u 200 -r 50 -t 30s --processes -1
"""

import random

from mpswarm import HttpUser, between, task


class ShopUser(HttpUser):
    wait_time = between(0.5, 2)

    def on_start(self):
        # The demo target answers with a session cookie; the client keeps it for this user.
        self.client.post("/login", data={"username": f"user{random.randint(1, 10_000)}"})

    @task(10)
    def browse(self):
        self.client.get("/")

    @task(20)
    def view_item(self):
        item = random.randint(1, 500)
        self.client.get(f"/items/{item}", name="/items/[id]")

    @task(5)
    def add_to_cart(self):
        self.client.post("/cart", data={"item_id": random.randint(1, 500)})

    @task(3)
    def view_cart(self):
        with self.client.get("/cart", catch_response=True) as response:
            if "items" not in response.text:
                response.failure("cart page has no items list")
