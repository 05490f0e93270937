"""A REST API client with thresholds, as a CI job runs it: log in, list, create, read, delete.

    mpswarm serve --port 8088 -- mpswarm -f examples/rest_checks.py -H http://127.0.0.1:8088 \
        --headless -u 20 -r 10 -t 30s --check 'p95<200ms' --check 'fail_ratio<0.01' \
        --check 'POST /api/items: p99<500ms' --junit junit.xml

The exit code is 3 when a check fails (0 when all pass); the JUnit file has one test case per
check, for CI systems to show.
"""

from mpswarm import FastHttpUser, between, task


class ApiClient(FastHttpUser):
    wait_time = between(0.1, 0.5)

    def on_start(self):
        # A session cookie for this user (the demo target's /login sets one).
        self.client.post("/login", data={"username": "ci"})

    @task(5)
    def list_items(self):
        self.client.get("/api/items?page=1", name="/api/items?page")

    @task(2)
    def create_read_delete(self):
        with self.client.post("/api/items", json={"name": "widget"}, catch_response=True) as r:
            if r.status_code != 201:
                r.failure(f"expected 201, got {r.status_code}")
                return
            item = r.json()["id"]
        self.client.get(f"/api/items/{item}", name="/api/items/[id]")
        self.client.delete(f"/api/items/{item}", name="/api/items/[id]")
