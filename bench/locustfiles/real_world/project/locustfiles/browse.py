"""Shop browsing, with the project's own shopkit helpers."""

from locust import HttpUser, between, task
from shopkit import item_path, login_form


class Browser(HttpUser):
    weight = 2
    wait_time = between(0.05, 0.15)

    def on_start(self):
        self.client.post("/login", data=login_form("browser"), name="/login (browse)")

    @task(3)
    def item(self):
        self.client.get(item_path(), name="/items/[id]")

    @task(1)
    def index(self):
        self.client.get("/")
