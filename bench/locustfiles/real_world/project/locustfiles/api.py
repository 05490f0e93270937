"""API reads, with the project's own shopkit helpers."""

from locust import HttpUser, between, task
from shopkit import login_form


class ApiUser(HttpUser):
    weight = 1
    wait_time = between(0.05, 0.15)

    def on_start(self):
        self.client.post("/login", data=login_form("api"), name="/login (api)")

    @task
    def items(self):
        self.client.get("/api/items?page=1", name="/api/items")
