"""A LoadTestShape in steps: 4 users for 2 s, then 8 for 2 s, then the end.

Each user announces itself once (``on_start``), so that name counts the users started.
"""

from locust import HttpUser, LoadTestShape, between, task


class Steps(LoadTestShape):
    stages = ((2, 4, 4), (4, 8, 8))  # (until second, users, spawn rate)

    def tick(self):
        run_time = self.get_run_time()
        for until, users, spawn_rate in self.stages:
            if run_time < until:
                return users, spawn_rate
        return None


class Visitor(HttpUser):
    wait_time = between(0.05, 0.15)

    def on_start(self):
        self.client.get("/", name="on_start")

    @task(2)
    def item(self):
        self.client.get("/items/2", name="/items/[id]")

    @task(1)
    def cart(self):
        self.client.get("/api/items", name="/api/items")
