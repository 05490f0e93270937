"""A warm-up whose requests must not count: user code resets the statistics after it.

For its first second (from the first task a process runs) requests are named
``(warm-up)``; the first user to see the warm-up over calls ``runner.stats.reset_all()``.
"""

import random
import time

from locust import HttpUser, between, task

WARMUP_S = 1.0
state = {"started": None, "reset": False}


class Warm(HttpUser):
    wait_time = between(0.05, 0.15)

    @task
    def item(self):
        now = time.monotonic()
        if state["started"] is None:
            state["started"] = now
        warming = now - state["started"] < WARMUP_S
        phase = "warm-up" if warming else "measured"
        self.client.get(f"/items/{random.randint(1, 20)}", name=f"/items/[id] ({phase})")
        if not warming and not state["reset"]:
            state["reset"] = True
            self.environment.runner.stats.reset_all()
