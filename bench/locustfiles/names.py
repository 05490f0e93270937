# 1 000 distinct request names, no wait: the parent's aggregation cost (runs under both tools).
import random

from locust import FastHttpUser, task


class Names(FastHttpUser):
    @task
    def named(self):
        self.client.get("/", name=f"/n/{random.randrange(1000)}")
