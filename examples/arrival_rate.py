"""The open model: iterations start on a schedule, whatever the responses take (k6's
``constant-arrival-rate``, wrk2's ``-R``), so a slow server gets the same load and its slow
seconds show in the percentiles instead of being under-sampled.

    mpswarm serve --port 8088 -- mpswarm -f examples/arrival_rate.py -H http://127.0.0.1:8088 \
        --headless -t 30s --arrival-rate 200/s --max-users 500 \
        --check 'p99<300ms' --check 'dropped_ratio<0.01'

One iteration is one task run of a user; ``wait_time`` is not used. An iteration that is due
when all --max-users users are busy is dropped and counted (``dropped_ratio``).
"""

import random

from mpswarm import HttpUser, task


class Visitor(HttpUser):
    @task(3)
    def item(self):
        self.client.get(f"/items/{random.randint(1, 500)}", name="/items/[id]")

    @task(1)
    def slow_page(self):
        self.client.get("/slow?ms=50", name="/slow")
