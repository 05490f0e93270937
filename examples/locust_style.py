"""A locustfile written for Locust, unchanged: mpswarm runs it as it is.

    mpswarm serve --port 8088 -- mpswarm -f examples/locust_style.py -H http://127.0.0.1:8088 \
        --headless -u 20 -r 20 -t 10s --processes 2
"""

from locust import HttpUser, constant_throughput, task


class Visitor(HttpUser):
    # Each user runs at most 4 tasks a second, so the request mix and volume depend on the
    # locustfile, not on how fast the load generator is: Locust and mpswarm should agree.
    wait_time = constant_throughput(4)

    @task(5)
    def home(self):
        self.client.get("/")

    @task(3)
    def item(self):
        self.client.get("/items/3", name="/items/[id]")

    @task(2)
    def api(self):
        self.client.get("/api/items", params={"page": 1}, name="/api/items")
