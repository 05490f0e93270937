"""A load shape: ramp up, hold, spike, ramp down (Locust's LoadTestShape, unchanged).

    mpswarm serve --port 8088 -- mpswarm -f examples/stages.py -H http://127.0.0.1:8088 \
        --headless --processes -1

No -u, -r or -t: the shape decides the users over time, and the run ends when ``tick()``
returns None. Pick one of several shapes in a file by naming its class on the command line.
"""

from mpswarm import HttpUser, LoadTestShape, constant, task


class Browser(HttpUser):
    wait_time = constant(1)

    @task
    def home(self):
        self.client.get("/")


class Stages(LoadTestShape):
    #: (until this many seconds into the run, users, spawn rate)
    stages = [(10, 20, 5), (30, 20, 5), (35, 60, 20), (45, 20, 20), (50, 0, 10)]

    def tick(self):
        now = self.get_run_time()
        for until, users, rate in self.stages:
            if now < until:
                return users, rate
        return None
