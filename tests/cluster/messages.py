"""A locustfile for tests/cluster/test_ray.py: custom messages and worker reports across hosts.

The coordinator pings every worker once all users run; each worker answers with its index and
pid, and adds its pid to every report it sends. At the end the coordinator writes what it got
to MESSAGES_OUT (read on the coordinator only: the hosts have their own environment).
"""

import json
import os

import gevent

from mpswarm import HttpUser, constant, events, task
from mpswarm.runner.base import WorkerRunner

got = {"pongs": [], "reporting_pids": []}


class Pinged(HttpUser):
    wait_time = constant(0.2)

    @task
    def index(self):
        self.client.get("/")


def on_ping(environment, msg, **kwargs):
    runner = environment.runner
    runner.send_message("pong", {"index": runner.worker_index, "pid": os.getpid(), "got": msg.data})


def on_pong(environment, msg, **kwargs):
    got["pongs"].append(msg.data)


@events.init.add_listener
def on_init(environment, **kwargs):
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message("ping", on_ping)
    else:
        environment.runner.register_message("pong", on_pong)
        got["runner"] = environment.runner


@events.spawning_complete.add_listener
def ping(user_count, **kwargs):
    runner = got.get("runner")
    if runner is not None:
        runner.send_message("ping", "hello")


@events.report_to_master.add_listener
def report(client_id, data):
    data["pid"] = os.getpid()


@events.worker_report.add_listener
def worker_report(client_id, data):
    got["reporting_pids"].append(data.get("pid"))


@events.test_stop.add_listener
def dump(environment, **kwargs):
    if "runner" in got and os.environ.get("MESSAGES_OUT"):
        gevent.sleep(1.2)  # the last reports
        with open(os.environ["MESSAGES_OUT"], "w") as f:
            json.dump({"pongs": got["pongs"], "reporting_pids": got["reporting_pids"],
                       "clients": sorted(got["runner"].clients)}, f)  # fmt: skip
