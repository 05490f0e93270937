"""A JSON API client: creates, reads, lists and deletes items.

    mpswarm serve --port 8088 -- mpswarm -f examples/api.py -H http://127.0.0.1:8088 \
        --headless -u 50 -r 25 -t 20s --processes 2
"""

from mpswarm import HttpUser, constant_throughput, task


class ApiClient(HttpUser):
    # Each user makes at most 5 task runs per second, however fast the server answers.
    wait_time = constant_throughput(5)

    def on_start(self):
        self.mine = []

    @task(3)
    def create(self):
        response = self.client.post("/api/items", json={"name": "widget"})
        if response.status_code == 201:
            self.mine.append(response.json()["id"])

    @task(5)
    def read(self):
        if self.mine:
            self.client.get(f"/api/items/{self.mine[-1]}", name="/api/items/[id]")

    @task(2)
    def listing(self):
        self.client.get("/api/items", params={"page": 1}, name="/api/items?page")

    @task(1)
    def delete(self):
        if self.mine:
            self.client.delete(f"/api/items/{self.mine.pop(0)}", name="/api/items/[id]")
