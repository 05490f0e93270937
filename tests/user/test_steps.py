"""Users run in steps on pooled greenlets: a waiting user holds no greenlet, and
``user.greenlet`` still behaves as a gevent Greenlet (Groups, joinall, killall, links)."""

from __future__ import annotations

import contextvars
import gc
import time
from typing import Any

import gevent
import pytest
from gevent.pool import Group
from greenlet import greenlet as RawGreenlet

from mpswarm import TaskSet, User, constant, task
from mpswarm.env import Environment
from mpswarm.user import _steps


def live_greenlets() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, RawGreenlet) and not o.dead)


def wait_until(condition: Any, seconds: float = 5.0) -> None:
    with gevent.Timeout(seconds):
        while not condition():
            gevent.sleep(0.01)


def test_waiting_users_hold_no_greenlet() -> None:
    events: list[str] = []

    class Nested(TaskSet):
        wait_time = constant(3600)

        def on_stop(self) -> None:
            events.append("nested on_stop")

        @task
        def inner(self) -> None:
            events.append("inner")

    class Waiter(User):
        wait_time = constant(3600)
        tasks = [Nested]

        def on_stop(self) -> None:
            events.append("user on_stop")

    env = Environment(user_classes=[Waiter])
    before = live_greenlets()
    group = Group()
    users = [Waiter(env) for _ in range(300)]
    for user in users:
        user.start(group)
    wait_until(lambda: events.count("inner") == 300)
    gevent.sleep(0.05)
    assert all(u._state == "waiting" for u in users)
    # 300 users waiting in a nested TaskSet: at most the pool's spare greenlets are alive.
    assert live_greenlets() - before <= _steps.SPARE_GREENLETS
    assert len(group) == 300 and not any(u.greenlet.dead for u in users)
    gevent.killall([u.greenlet for u in users], timeout=5)
    assert all(u.greenlet.dead and u.greenlet.successful() for u in users)
    assert events.count("nested on_stop") == events.count("user on_stop") == 300
    group.join(timeout=2)
    assert len(group) == 0


def test_greenlet_api_join_get_links_and_kill_before_start() -> None:
    class Once(User):
        wait_time = constant(0.01)

        @task
        def leave(self) -> None:
            self.stop(force=True)

    env = Environment(user_classes=[Once])
    user = Once(env)
    linked: list[Any] = []
    greenlet = user.start(Group())
    greenlet.rawlink(linked.append)
    greenlet.link(lambda g: linked.append("link"))
    assert greenlet and not greenlet.ready()
    greenlet.join(timeout=2)
    assert greenlet.dead and greenlet.successful() and greenlet.get() is None
    gevent.sleep(0.01)
    assert linked[0] is greenlet and "link" in linked

    never = Once(env)
    ran: list[str] = []
    never.on_start = lambda: ran.append("on_start")  # type: ignore[method-assign]
    g = never.start(Group())
    g.kill(block=False)  # before its first step: it never runs
    assert g.dead
    gevent.sleep(0.02)
    assert ran == []
    assert gevent.joinall([g], timeout=1) == [g]


def test_a_kill_reaches_a_task_and_a_wait() -> None:
    seen: list[str] = []

    class Sleepy(User):
        wait_time = constant(3600)

        @task
        def slow(self) -> None:
            try:
                gevent.sleep(10)
            except gevent.GreenletExit:
                seen.append("killed in task")
                raise

        def on_stop(self) -> None:
            seen.append("on_stop")

    env = Environment(user_classes=[Sleepy])
    user = Sleepy(env)
    greenlet = user.start(Group())
    gevent.sleep(0.05)
    greenlet.kill(timeout=2)  # mid-task: raised where the task blocks
    assert greenlet.dead and seen == ["killed in task", "on_stop"]


def test_a_run_of_its_own_and_context_vars_keep_their_meaning() -> None:
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=0)
    runs: list[int] = []

    class OwnRun(User):
        wait_time = constant(0.01)

        def run(self) -> None:  # blocks in its own loop, on its greenlet
            for _ in range(3):
                runs.append(var.get())
                var.set(var.get() + 1)
                self.wait()
            raise gevent.GreenletExit

    env = Environment(user_classes=[OwnRun])
    greenlet = OwnRun(env).start(Group())
    greenlet.join(timeout=2)
    assert greenlet.dead and runs == [0, 1, 2]


@pytest.mark.parametrize("wait", [0, 0.001])
def test_many_short_waits_keep_running(wait: float) -> None:
    count = 0

    class Busy(User):
        wait_time = constant(wait)

        @task
        def tick(self) -> None:
            nonlocal count
            count += 1

    env = Environment(user_classes=[Busy])
    group = Group()
    for _ in range(20):
        Busy(env).start(group)
    wait_until(lambda: count >= 2000)
    group.kill(timeout=2)
    assert len(group) == 0


def test_context_vars_stay_with_their_user_between_tasks() -> None:
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=0)
    seen: dict[int, list[int]] = {}

    class Counter(User):
        wait_time = constant(0.01)

        @task
        def count(self) -> None:
            seen.setdefault(id(self), []).append(var.get())
            var.set(var.get() + 1)
            if var.get() == 3:
                raise gevent.GreenletExit

    env = Environment(user_classes=[Counter])
    group = Group()
    for _ in range(5):
        Counter(env).start(group)
    group.join(timeout=3)
    assert len(group) == 0 and sorted(seen.values()) == [[0, 1, 2]] * 5


def test_keep_greenlet_waits_in_place() -> None:
    seen: list[Any] = []

    class Pinned(User):
        wait_time = constant(0.01)
        keep_greenlet = True

        @task
        def note(self) -> None:
            seen.append(gevent.getcurrent())
            if len(seen) == 3:
                raise gevent.GreenletExit

    class Other(User):
        wait_time = constant(0.001)

        @task
        def busy(self) -> None:
            gevent.sleep(0.002)

    env = Environment(user_classes=[Pinned, Other])
    group = Group()
    others = [Other(env) for _ in range(5)]
    for user in others:
        user.start(group)
    pinned = Pinned(env).start(group)
    pinned.join(timeout=3)
    group.kill(timeout=2)
    assert pinned.dead and len(seen) == 3 and len(set(seen)) == 1


def test_a_zero_wait_yields_after_every_task() -> None:
    """A zero wait gives the loop a pass after a task that waited (here a short sleep, as a
    response is waited for: the users' next requests then leave together) and after one that
    only computes (a timer elsewhere keeps firing among such users)."""
    ticks = 0

    class Waits(User):
        @task
        def sleep_a_little(self) -> None:
            gevent.sleep(0.001)

    class Computes(User):
        @task
        def spin(self) -> None:
            end = time.perf_counter() + 0.005
            while time.perf_counter() < end:
                pass

    def ticker() -> None:
        nonlocal ticks
        while True:
            gevent.sleep(0.01)
            ticks += 1

    env = Environment(user_classes=[Waits, Computes])
    group = Group()
    waits = [Waits(env) for _ in range(5)]
    computes = [Computes(env) for _ in range(3)]
    for user in waits + computes:
        user.start(group)
    tick = gevent.spawn(ticker)
    gevent.sleep(0.5)
    group.kill(timeout=2)
    tick.kill()
    assert all(user._yield_timer is not None for user in waits)
    assert all(user._yield_timer is not None for user in computes)
    assert ticks >= 10, ticks  # 3 users computing 5 ms a task did not starve the ticker
