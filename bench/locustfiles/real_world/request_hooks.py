"""Listeners on ``events.request`` and ``quitting``, as CI gates and budget checks use them.

Every request to ``/slow`` is reported again as an ``SLA`` request that fails when it took
longer than the budget; the ``quitting`` listener then decides the exit code itself: green
while at most half of all requests failed, so the SLA misses alone do not fail the job.
"""

import random

from locust import HttpUser, between, events, task

BUDGET_MS = 50


class SlaMissed(Exception):
    pass


@events.request.add_listener
def check_budget(request_type, name, response_time, **kwargs):
    if request_type == "SLA" or name != "/slow":
        return
    events.request.fire(
        request_type="SLA",
        name=f"{name} within {BUDGET_MS} ms",
        response_time=response_time,
        response_length=0,
        exception=SlaMissed(f"over {BUDGET_MS} ms") if response_time > BUDGET_MS else None,
        context={},
    )


@events.quitting.add_listener
def gate(environment, **kwargs):
    environment.process_exit_code = 0 if environment.stats.total.fail_ratio <= 0.5 else 1


class Watcher(HttpUser):
    wait_time = between(0.05, 0.15)

    @task(2)
    def slow(self):
        self.client.get(f"/slow?ms={random.choice((5, 100))}", name="/slow")

    @task(1)
    def index(self):
        self.client.get("/")
