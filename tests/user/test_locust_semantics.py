"""Locust behaviours locustfiles rely on: alias modules, waits, missing tasks, queues, order."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from gevent.pool import Group

import mpswarm
from mpswarm import (
    MarkovTaskSet,
    SequentialTaskSet,
    StopUser,
    TaskSet,
    User,
    _locust_alias,
    constant,
    task,
    transition,
    transitions,
)
from mpswarm.env import Environment
from mpswarm.exceptions import LocustError


def run_user(cls: type[User], max_seconds: float = 3.0, env: Environment | None = None) -> list:
    """Run one user until it ends; returns the exceptions reported on the way."""
    env = env or Environment(user_classes=[cls])
    errors: list[BaseException] = []
    env.exception_sink = errors.append
    greenlet = cls(env).start(Group())
    greenlet.join(timeout=max_seconds)
    if not greenlet.dead:
        greenlet.kill()
        raise AssertionError(f"{cls.__name__} did not end within {max_seconds} s")
    return errors


# --- 1. alias modules --------------------------------------------------------------------------


@pytest.fixture
def locust_alias() -> Iterator[None]:
    _locust_alias.install()
    try:
        yield
    finally:
        _locust_alias.uninstall()


def test_submodule_import_leaves_the_task_decorator_alone(locust_alias: None) -> None:
    importlib.import_module("locust.user.task")
    importlib.import_module("locust.user.wait_time")
    importlib.import_module("locust.contrib.fasthttp")
    locust = sys.modules["locust"]
    from locust import task as imported_task  # type: ignore[import-not-found]

    assert imported_task is mpswarm.task
    assert locust.user is not locust  # their own modules, reading through to mpswarm
    assert locust.user.task is mpswarm.task  # as in Locust, where locust.user binds it first
    assert locust.user.TaskSet is mpswarm.TaskSet
    assert locust.contrib.fasthttp.FastHttpUser is mpswarm.FastHttpUser
    assert not hasattr(importlib.import_module("mpswarm.locust_compat"), "fasthttp")

    class Decorated(User):
        @imported_task
        def one(self) -> None: ...

    assert Decorated.tasks == [Decorated.one]


def test_alias_package_reaches_submodules_by_attribute(locust_alias: None) -> None:
    locust = importlib.import_module("locust")
    assert locust.exception.StopUser is StopUser
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        locust.nothing_here  # noqa: B018


# --- 2. a wait after CPU-bound code ------------------------------------------------------------


def test_wait_after_busy_task_lasts_its_full_time() -> None:
    marks: list[float] = []

    class Busy(User):
        wait_time = constant(0.1)

        @task
        def step(self) -> None:
            marks.append(time.monotonic())
            if len(marks) == 2:  # woken by a timer: the loop's cached clock is now stale
                end = time.monotonic() + 0.2
                while time.monotonic() < end:
                    pass
                marks.append(time.monotonic())
            elif len(marks) > 2:
                raise StopUser()

    assert run_user(Busy) == []
    assert marks[3] - marks[2] >= 0.09, f"waited only {marks[3] - marks[2]:.4f} s"


# --- 3. no tasks, and exceptions Locust propagates ---------------------------------------------


def test_user_without_tasks_ends_with_locusts_error() -> None:
    class Idle(User):
        pass

    errors = run_user(Idle)
    assert len(errors) == 1 and isinstance(errors[0], LocustError)
    assert str(errors[0]).startswith("No tasks defined on Idle. Use the @task decorator")


def test_taskset_without_tasks_reached_at_run_time_ends_the_user() -> None:
    class Hollow(TaskSet):
        pass

    class Ordered(SequentialTaskSet):
        pass

    class Chain(MarkovTaskSet):
        abstract = True  # without it, Locust's check refuses the class when it is defined

    for empty in (Hollow, Ordered, Chain):

        class Visitor(User):
            tasks = [empty]

        errors = run_user(Visitor)
        assert [type(e) for e in errors] and isinstance(errors[0], LocustError)
        assert f"tasks defined on {empty.__name__}. Use the @" in str(errors[0])


def test_typo_task_attribute_gets_a_hint() -> None:
    def page(user: Any) -> None: ...

    class Typo(User):
        task = [page]

    (error,) = run_user(Typo)
    assert "you have set a 'task' attribute: did you mean 'tasks'?" in str(error)


def test_catch_exceptions_false_lets_a_task_error_end_the_user() -> None:
    runs: list[int] = []

    class Failing(User):
        @task
        def fail(self) -> None:
            runs.append(1)
            raise ValueError("boom")

    env = Environment(user_classes=[Failing])
    env.catch_exceptions = False
    errors = run_user(Failing, env=env)
    assert runs == [1]
    assert len(errors) == 1 and str(errors[0]) == "boom"


# --- 4. wait(), schedule_task(), execute_next_task() -------------------------------------------


def test_user_wait_from_inside_a_task() -> None:
    waited: list[float] = []

    class Patient(User):
        wait_time = constant(0.05)

        @task
        def step(self) -> None:
            start = time.monotonic()
            self.wait()
            waited.append(time.monotonic() - start)
            raise StopUser()

    assert run_user(Patient) == []
    assert waited[0] >= 0.045


def test_schedule_task_first_and_execute_next_task() -> None:
    order: list[str] = []

    def a(ts: Any) -> None:
        order.append("a")

    def b(ts: Any) -> None:
        order.append("b")

    class Queued(TaskSet):
        def on_start(self) -> None:
            self.schedule_task(b)
            self.schedule_task(a, first=True)

        @task
        def main(self) -> None:
            order.append("main")
            self.schedule_task(b)
            self.execute_next_task()  # runs b inside main
            order.append("main-end")
            self.wait()
            raise StopUser()

    class Runner(User):
        tasks = [Queued]

    assert run_user(Runner) == []
    assert order == ["a", "b", "main", "b", "main-end"]


# --- 5. SequentialTaskSet order ----------------------------------------------------------------


def _t(n: int) -> Any:
    def run(ts: Any) -> None:
        ts.user.seen.append(n)

    run.__name__ = f"t{n}"
    return run


def test_sequential_order_follows_the_class_body_and_bases() -> None:
    class First(SequentialTaskSet):
        @task
        def t1(self) -> None:
            self.user.seen.append(1)

        @task
        def t2(self) -> None:
            self.user.seen.append(2)

        tasks = [_t(101), _t(102)]

        @task
        def t3(self) -> None:
            self.user.seen.append(3)

    class Second(First):
        tasks = [_t(201)]

        @task
        def t4(self) -> None:
            self.user.seen.append(4)
            if len(self.user.seen) == 14:  # two rounds
                raise StopUser()

    names = [t.__name__ for t in Second.tasks]
    assert names == ["t1", "t2", "t101", "t102", "t3", "t201", "t4"]

    class Walker(User):
        tasks = [Second]

        def __init__(self, environment: Any) -> None:
            super().__init__(environment)
            self.seen: list[int] = []

    walker_env = Environment(user_classes=[Walker])
    walker_env.exception_sink = lambda exc: None
    walker = Walker(walker_env)
    walker.start(Group()).join(timeout=3)
    assert walker.seen == [1, 2, 101, 102, 3, 201, 4] * 2


# --- what Locust's own unit tests found (bench/locust_suite.py) ----------------------------------


def test_a_scheduled_bound_method_runs_without_the_taskset_passed_twice() -> None:
    ran: list[str] = []

    class Steps(TaskSet):
        @task
        def first(self) -> None:
            ran.append("first")
            self.schedule_task(self.second)  # bound: Locust calls it without an argument

        def second(self) -> None:
            ran.append("second")
            raise StopUser()

    class Walker(User):
        tasks = [Steps]

    assert run_user(Walker) == []
    assert ran == ["first", "second"]


def test_on_stop_after_an_interrupt_may_end_the_user() -> None:
    stops: list[int] = []

    class Inner(TaskSet):
        @task
        def leave(self) -> None:
            self.interrupt(reschedule=False)

        def on_stop(self) -> None:
            stops.append(1)
            if len(stops) == 2:
                raise StopUser()  # was swallowed by the interrupt's reschedule: a loop

    class Walker(User):
        tasks = [Inner]

    assert run_user(Walker) == []
    assert len(stops) == 2


def test_markov_transitions_follow_their_weights() -> None:
    import random

    class Walk(MarkovTaskSet):
        @transitions({"a": 2, "c": 1, "never": 0})
        def b(self) -> None: ...

        @transition("b")
        def a(self) -> None: ...

        @transition("b")
        def c(self) -> None: ...

        @transition("b")
        def never(self) -> None: ...

    class Walker(User):
        tasks = [Walk]

    random.seed(7)
    walk = Walk(Walker(Environment(user_classes=[Walker])))
    picked = [walk.get_next_task().__name__ for _ in range(6000)]
    after_b = [picked[i + 1] for i in range(len(picked) - 1) if picked[i] == "b"]
    assert picked[0] == "b" and "never" not in picked  # declared first; weight 0: never
    assert after_b.count("a") / len(after_b) == pytest.approx(2 / 3, abs=0.03)


def test_tags_filter_reaches_into_a_user_class_used_as_a_task_holder() -> None:
    class Holder(User):
        @mpswarm.tag("keep")
        @task
        def kept(self) -> None: ...

        @task
        def dropped(self) -> None: ...

    class Outer(User):
        tasks = [Holder]

    env = Environment(user_classes=[Outer], tags=["keep"])
    env._filter_tasks_by_tags()
    assert Holder.tasks == [Holder.kept]


def test_fullname_leaves_out_locals() -> None:
    class Inner(User):
        pass

    assert Inner.fullname() == (f"{__name__}.test_fullname_leaves_out_locals.Inner")


def test_locust_0x_class_names_raise_locusts_import_error(locust_alias: None) -> None:
    for module, name in (("locust", "Locust"), ("locust", "HttpLocust")):
        with pytest.raises(ImportError, match="class has been renamed to"):
            getattr(importlib.import_module(module), name)
    with pytest.raises(ImportError, match="FastHttpLocust class has been renamed to FastHttpUser"):
        from locust.contrib.fasthttp import FastHttpLocust  # type: ignore[import-not-found]  # noqa: F401


def test_forced_stop_is_over_when_it_returns() -> None:
    class Busy(User):
        @task
        def t(self) -> None:
            gevent.sleep(1)

    group = Group()
    user = Busy(Environment(user_classes=[Busy]))
    user.start(group)
    gevent.sleep(0)
    user.stop(force=True)
    assert user.greenlet.dead  # killed, not just told to die
    gevent.sleep(0)
    assert len(group) == 0
