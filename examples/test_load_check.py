"""A quick load check inside a pytest suite (mpswarm's pytest plugin: fixtures ``swarm`` and
``mpswarm_demo``, the demo target on a free port for the test session).

    pytest examples/test_load_check.py

Point ``host=`` at the service under test (started by another fixture) instead of the demo.
The users run in worker processes: their classes must be importable, at a module's top level.
"""

from mpswarm import HttpUser, constant, task


class Shopper(HttpUser):
    wait_time = constant(0.1)

    @task
    def item(self):
        self.client.get("/items/7", name="/items/[id]")


def test_the_item_page_holds_20_users(swarm, mpswarm_demo):
    result = swarm(Shopper, users=20, spawn_rate=20, run_time="3s", host=mpswarm_demo)
    assert result.requests > 0 and result.fail_ratio == 0
    assert result.percentile_ms(95) < 500
    swarm.check("p99<1s", "fail_ratio<0.01")
