"""Custom messages: in ``test_start`` the parent hands out one test account per user.

As in files that log each user in with its own account: the parent makes
``target_user_count`` accounts, sends each worker its share, and the workers acknowledge
with a message of their own. A user that finds no account left raises; the ``quitting``
listener fails the run (exit 3) when a worker's acknowledgement is missing. Without worker
processes the runner is the parent and the worker at once.
"""

from locust import HttpUser, between, events, task
from locust.runners import MasterRunner, WorkerRunner

accounts = []  # this worker's share, taken one per user
acks = []  # the parent's: how many accounts each worker acknowledged


def take_accounts(environment, msg, **kwargs):
    accounts.extend(msg.data)
    environment.runner.send_message("accounts_taken", len(msg.data))


def count_ack(environment, msg, **kwargs):
    acks.append(msg.data)


@events.init.add_listener
def register(environment, **kwargs):
    if not isinstance(environment.runner, MasterRunner):
        environment.runner.register_message("accounts", take_accounts)
    if not isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message("accounts_taken", count_ack)


@events.test_start.add_listener
def hand_out(environment, **kwargs):
    if isinstance(environment.runner, WorkerRunner):
        return
    runner = environment.runner
    made = [f"tester{n}" for n in range(runner.target_user_count)]
    if not isinstance(runner, MasterRunner):
        runner.send_message("accounts", made)
        return
    workers = list(runner.clients)
    for index, client_id in enumerate(workers):
        runner.send_message("accounts", made[index :: len(workers)], client_id)


@events.quitting.add_listener
def all_acknowledged(environment, **kwargs):
    runner = environment.runner
    expected = runner.worker_count if isinstance(runner, MasterRunner) else 1
    if not isinstance(runner, WorkerRunner) and len(acks) < expected:
        environment.process_exit_code = 3


class Tester(HttpUser):
    wait_time = between(0.05, 0.15)

    def on_start(self):
        if not accounts:
            raise RuntimeError("no test account left for this user")
        self.client.post("/login", data={"username": accounts.pop()})

    @task(3)
    def item(self):
        self.client.get("/items/7", name="/items/[id]")

    @task(1)
    def cart(self):
        self.client.get("/cart")
