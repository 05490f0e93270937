"""A checkout journey as a SequentialTaskSet: log in, look, add, pay, log out, start over."""

import random

from locust import HttpUser, SequentialTaskSet, between, task


class Checkout(SequentialTaskSet):
    def on_start(self):
        self.client.post("/login", data={"username": "buyer"})

    @task
    def home(self):
        self.client.get("/")

    @task
    def item(self):
        self.item_id = random.randint(1, 20)
        self.client.get(f"/items/{self.item_id}", name="/items/[id]")

    @task
    def add(self):
        self.client.post("/cart", data={"item_id": self.item_id})

    @task
    def review(self):
        with self.client.get("/cart", catch_response=True) as response:
            if str(self.item_id) not in response.json().get("items", []):
                response.failure("the item is not in the cart")

    @task
    def leave(self):
        self.client.post("/logout")
        self.interrupt()


class Buyer(HttpUser):
    wait_time = between(0.05, 0.15)
    tasks = [Checkout]
