"""Locust's library API in one process: Environment, create_local_runner(), runner.stats.

The LocalRunner is a UserHost like a worker: the same recorder and histograms, read through
Locust's RequestStats surface. Network-free cases run here (users fire the request event
themselves); a script that uses Locust as a library runs against the demo server in its own
process, after ``mpswarm.use_as_locust()``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import pytest

from mpswarm import LoadTestShape, StopUser, User, constant, task
from mpswarm.env import Environment
from mpswarm.event import Events
from mpswarm.exceptions import RunnerAlreadyExistsError
from mpswarm.runner.base import STATE_RUNNING, STATE_STOPPED

DEADLINE_S = 20.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run until ``condition()`` holds, failing after a deadline."""
    end = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {DEADLINE_S} s: {what}")
        gevent.sleep(0.01)


def fire(user: User, name: str, ms: float, exception: Any = None) -> None:
    user.environment.events.request.fire(
        request_type="GET",
        name=name,
        response_time=ms,
        response_length=100,
        exception=exception,
        context={},
    )


def test_environment_takes_locusts_keywords_and_checks() -> None:
    class Shopper(User):
        @task
        def t(self) -> None: ...

    class Retired(User):
        weight = 0

        @task
        def t(self) -> None: ...

    env = Environment(
        user_classes=[Shopper, Retired],
        shape_class=None,
        tags=None,
        exclude_tags=None,
        locustfile="shop.py",
        events=Events(),
        host="http://127.0.0.1:1",
        reset_stats=False,
        stop_timeout=None,
        catch_exceptions=False,
        parsed_options=None,
        parsed_locustfiles=["shop.py"],
        available_user_classes={"Shopper": Shopper},
        available_shape_classes={},
        available_user_tasks={},
        profile=None,
    )
    assert env.user_classes == [Shopper]  # weight 0 and no fixed_count: dropped, as in Locust
    assert env.stop_timeout == 0.0 and env.catch_exceptions is False
    assert env.stats is None  # no runner yet
    runner = env.create_local_runner()
    assert env.runner is runner and env.stats is runner.stats
    with pytest.raises(RunnerAlreadyExistsError):
        env.create_local_runner()
    with pytest.raises(NotImplementedError, match="--processes"):
        env.create_master_runner()
    runner.quit()

    other = type("Shopper", (User,), {"tasks": [lambda u: None], "__module__": "elsewhere"})
    with pytest.raises(ValueError, match="same class name"):
        Environment(user_classes=[Shopper, other])
    with pytest.raises(ValueError, match="no users with weight > 0"):
        Environment(user_classes=[Retired])
    with pytest.raises(ValueError, match="shape_class should be instance"):
        Environment(shape_class=LoadTestShape)


def test_runner_stats_count_every_request_in_mpswarms_histograms() -> None:
    class Caller(User):
        @task
        def call(self) -> None:
            for _ in range(4):
                fire(self, "/fast", 12.5)
            fire(self, "/slow", 800.0)
            fire(self, "/slow", 900.0, exception=ConnectionError("reset by peer"))
            raise StopUser()

    env = Environment(user_classes=[Caller], events=Events())
    runner = env.create_local_runner()
    runner.start(3, spawn_rate=100)
    wait_until(lambda: runner.state == STATE_RUNNING and runner.user_count == 0, "users done")
    stats = runner.stats
    fast, slow = stats.get("/fast", "GET"), stats.get("/slow", "GET")
    assert (fast.num_requests, fast.num_failures) == (12, 0)
    assert (slow.num_requests, slow.num_failures) == (6, 3)
    assert (stats.total.num_requests, stats.total.num_failures) == (18, 3)
    assert stats.num_requests == 18 and set(stats.entries) == {("/fast", "GET"), ("/slow", "GET")}
    # The histogram keeps 2 significant digits and more: 12.5 ms stays 12.5 ms (Locust: 12 / 13).
    assert fast.get_response_time_percentile(0.5) == pytest.approx(12.5, rel=0.02)
    assert slow.get_response_time_percentile(0.95) == pytest.approx(900.0, rel=0.02)
    assert fast.avg_response_time == pytest.approx(12.5, abs=0.01)
    assert fast.avg_content_length == 100
    [error] = stats.errors.values()
    assert (error.name, error.occurrences) == ("/slow", 3)
    assert error.error == "ConnectionError: reset by peer"
    stats.clear_all()
    assert stats.total.num_requests == 0 and not stats.errors
    assert stats.get("/fast", "GET").num_requests == 0  # the row is kept, zeroed
    runner.quit()


def test_start_wait_stop_and_a_second_test() -> None:
    events = Events()
    fired: list[str] = []
    events.test_start.add_listener(lambda **_: fired.append("start"))
    events.test_stop.add_listener(lambda **_: fired.append("stop"))

    class Steady(User):
        wait_time = constant(0.01)

        @task
        def call(self) -> None:
            fire(self, "/", 1.0)

    env = Environment(user_classes=[Steady], events=events)
    runner = env.create_local_runner()
    with pytest.raises(ValueError, match="greater than the spawn rate"):
        runner.start(5, spawn_rate=2, wait=True)
    runner.start(2, spawn_rate=10, wait=True)
    assert runner.user_count == 2 and runner.state == STATE_RUNNING
    assert runner.user_classes_count == {"Steady": 2}
    wait_until(lambda: runner.stats.total.num_requests >= 20, "requests recorded")
    runner.start(1, spawn_rate=10)  # ramping down: one user retires
    wait_until(lambda: runner.user_count == 1, "one user left")
    runner.stop()
    assert runner.user_count == 0 and runner.state == STATE_STOPPED
    assert fired == ["start", "stop"]
    before = runner.stats.total.num_requests
    gevent.sleep(0.05)
    assert runner.stats.total.num_requests == before  # stopped means stopped
    runner.start(1, spawn_rate=10, wait=True)  # a new test: statistics start afresh
    assert fired == ["start", "stop", "start"]
    assert runner.stats.total.num_requests < before
    runner.quit()
    assert fired[-1] == "stop" and runner.greenlet.join(timeout=5) and len(runner.greenlet) == 0


def test_catch_exceptions_decides_whether_task_errors_raise() -> None:
    class Broken(User):
        @task
        def call(self) -> None:
            raise ZeroDivisionError("no")

    strict = Environment(user_classes=[Broken], events=Events(), catch_exceptions=False)
    strict.create_local_runner()
    with pytest.raises(ZeroDivisionError):
        Broken(strict).run()

    lenient = Environment(user_classes=[Broken], events=Events())
    runner = lenient.create_local_runner()
    runner.start(1, spawn_rate=10)
    wait_until(lambda: sum(e["count"] for e in runner.exceptions.values()) >= 3, "counted")
    [row] = runner.exceptions.values()
    assert "ZeroDivisionError: no" in row["msg"] and "raise ZeroDivisionError" in row["traceback"]
    assert runner.user_count == 1  # the user goes on, as under Locust
    runner.quit()


def test_shape_drives_a_local_runner_until_it_returns_none() -> None:
    class Steady(User):
        wait_time = constant(0.01)

        @task
        def call(self) -> None:
            fire(self, "/", 1.0)

    class TwoThenDone(LoadTestShape):
        def tick(self) -> tuple[int, float] | None:
            return (2, 50.0) if self.get_run_time() < 1.2 else None

    events = Events()
    stopped: list[bool] = []
    events.test_stop.add_listener(lambda **_: stopped.append(True))
    env = Environment(user_classes=[Steady], shape_class=TwoThenDone(), events=events)
    runner = env.create_local_runner()
    runner.start_shape()
    wait_until(lambda: runner.user_count == 2, "the shape's 2 users")
    wait_until(lambda: runner.state == STATE_STOPPED, "the shape ends the test")
    assert stopped == [True] and runner.user_count == 0
    assert runner.stats.total.num_requests > 0
    runner.quit()


LIBRARY_SCRIPT = """
import json, sys, time
import mpswarm
mpswarm.use_as_locust()

import gevent
from locust import HttpUser, FastHttpUser, task, constant, events
from locust.env import Environment
from locust.runners import LocalRunner
from locust.exception import StopUser


class Browser(HttpUser):
    wait_time = constant(0.01)

    @task
    def home(self):
        self.client.get("/")


class Api(FastHttpUser):
    wait_time = constant(0.01)

    @task
    def item(self):
        self.client.get("/items/7", name="/items/[id]")


env = Environment(user_classes=[Browser, Api], host=sys.argv[1], events=events)
runner = env.create_local_runner()
assert isinstance(runner, LocalRunner)
runner.start(4, spawn_rate=100)
deadline = time.monotonic() + 20
while runner.user_count < 4 or env.stats.total.num_requests < 40:
    assert time.monotonic() < deadline, "no load within 20 s"
    gevent.sleep(0.05)
peak = runner.user_count
gevent.spawn_later(0.3, runner.quit)
runner.greenlet.join(timeout=30)
stats = env.stats
print(json.dumps({
    "peak": peak,
    "after": runner.user_count,
    "total": stats.total.num_requests,
    "failures": stats.total.num_failures,
    "rows": {f"{m} {n}": e.num_requests for (n, m), e in stats.entries.items()},
    "p95": stats.total.get_response_time_percentile(0.95),
    "max": stats.total.max_response_time,
}))

class Empty(HttpUser):
    host = sys.argv[1]

try:
    mpswarm.run_single_user(Empty, loglevel=None)
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_a_locust_library_script_runs_unchanged(demo: Any, tmp_path: Path) -> None:
    script = tmp_path / "library.py"
    script.write_text(textwrap.dedent(LIBRARY_SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script), demo.url], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.strip().splitlines()[-2:]
    result = json.loads(first)
    served = demo.stats()["routes"]
    assert result["peak"] == 4 and result["after"] == 0
    # Every request the server answered is in runner.stats, and no other.
    home, item = served["GET /"], served["GET /items/<id>"]
    assert result["rows"] == {"GET /": home, "GET /items/[id]": item}
    assert result["total"] == home + item and result["failures"] == 0
    assert 0 < result["p95"] <= result["max"]
    # run_single_user raises what the user's code raises (Locust's), here: no tasks.
    assert second.startswith("NoTasksError No tasks defined on Empty"), second
