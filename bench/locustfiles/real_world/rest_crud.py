"""A REST API client: create, read, list and delete, with JSON checked in catch_response.

Each user keeps the ids it created; URLs with ids are grouped with ``name=``. A read of a
missing id expects the 404 and marks it a success; a schema check expects a ``total`` field
the demo's list does not have, so every one of those requests fails with the same message.
"""

import itertools
import random

from locust import HttpUser, between, task

serial = itertools.count(1)


class ApiClient(HttpUser):
    wait_time = between(0.05, 0.15)

    def on_start(self):
        self.created = []

    @task(3)
    def create(self):
        name = f"widget-{next(serial)}"
        with self.client.post("/api/items", json={"name": name}, catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"create answered {response.status_code}")
            elif response.json().get("name") != name:
                response.failure("the created item has another name")
            else:
                self.created.append(response.json()["id"])

    @task(4)
    def read(self):
        if not self.created:
            return
        item_id = random.choice(self.created)
        with self.client.get(
            f"/api/items/{item_id}", name="/api/items/[id]", catch_response=True
        ) as response:
            if response.json().get("id") != item_id:
                response.failure("read another item than asked for")

    @task(2)
    def delete(self):
        if len(self.created) > 3:
            self.client.delete(f"/api/items/{self.created.pop(0)}", name="/api/items/[id]")

    @task(2)
    def list_page(self):
        self.client.get(f"/api/items?page={random.randint(1, 3)}", name="/api/items?page=[n]")

    @task(1)
    def read_missing(self):
        with self.client.get(
            "/api/items/999999999", name="/api/items/[missing]", catch_response=True
        ) as response:
            if response.status_code == 404:
                response.success()
            else:
                response.failure(f"expected 404, got {response.status_code}")

    @task(1)
    def schema(self):
        with self.client.get("/api/items", name="/api/items (schema)", catch_response=True) as r:
            if "total" not in r.json():
                r.failure("the list has no 'total' field")
