"""Task selection, TaskSets, control-flow exceptions and wait times, run in greenlets."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import gevent
import pytest
from gevent.pool import Group

from mpswarm import (
    InterruptTaskSet,
    RescheduleTask,
    RescheduleTaskImmediately,
    SequentialTaskSet,
    StopUser,
    TaskSet,
    User,
    between,
    constant,
    constant_pacing,
    constant_throughput,
    tag,
    task,
)
from mpswarm.env import Environment
from mpswarm.user.task import DefaultTaskSet, filter_tasks_by_tags


def run_user(cls: type[User], max_seconds: float = 5.0) -> User:
    """Run one user until it stops by itself (StopUser) or the time is up."""
    env = Environment(user_classes=[cls])
    errors: list[BaseException] = []
    env.exception_sink = errors.append
    user = cls(env)
    greenlet = user.start(Group())
    greenlet.join(timeout=max_seconds)
    if not greenlet.dead:
        greenlet.kill()
        raise AssertionError("user did not stop")
    if errors:
        raise errors[0]
    return user


def test_weights_by_decorator_list_dict_and_tuples() -> None:
    def a(user: Any) -> None: ...
    def b(user: Any) -> None: ...

    class Decorated(User):
        @task(3)
        def a(self) -> None: ...

        @task
        def b(self) -> None: ...

    class AsDict(User):
        tasks = {a: 3, b: 1}

    class AsTuples(User):
        tasks = [(a, 3), (b, 1)]

    for cls in (Decorated, AsDict, AsTuples):
        picker = DefaultTaskSet(cls(Environment()))
        picks = Counter(picker.get_next_task().__name__ for _ in range(8000))
        assert picks["a"] / 8000 == pytest.approx(0.75, abs=0.03), cls


def test_tasks_are_inherited_and_abstract_defaults() -> None:
    class Base(User):
        abstract = True

        @task
        def base(self) -> None: ...

    class Child(Base):
        @task(2)
        def child(self) -> None: ...

    assert Base.abstract is True and Child.abstract is False
    assert [t.__name__ for t in Child.tasks] == ["base", "child", "child"]


def test_user_lifecycle_with_stop_user() -> None:
    calls: list[str] = []

    class Lifecycle(User):
        def on_start(self) -> None:
            calls.append("start")

        @task
        def work(self) -> None:
            calls.append("task")
            if calls.count("task") == 3:
                raise StopUser()

        def on_stop(self) -> None:
            calls.append("stop")

    run_user(Lifecycle)
    assert calls == ["start", "task", "task", "task", "stop"]


def test_nested_taskset_interrupt_returns_to_parent() -> None:
    log: list[str] = []

    class Inner(TaskSet):
        def on_start(self) -> None:
            log.append("inner-start")

        @task
        def inner(self) -> None:
            log.append("inner")
            if log.count("inner") % 2 == 0:
                self.interrupt()

        def on_stop(self) -> None:
            log.append("inner-stop")

    class Bounded(User):
        @task
        class Round(Inner):
            pass

        @task
        def stop_later(self) -> None:
            if log.count("inner-stop") >= 2:
                raise StopUser()

    run_user(Bounded)
    # Each visit to the TaskSet runs two inner tasks, then interrupt() runs its on_stop.
    visit = ["inner-start", "inner", "inner", "inner-stop"]
    assert log[:4] == visit
    assert log.count("inner-start") == log.count("inner-stop")


def test_taskset_tasks_receive_the_taskset_and_reach_the_user() -> None:
    seen: list[Any] = []

    class Inner(TaskSet):
        @task
        def t(self) -> None:
            seen.append((type(self).__name__, type(self.user).__name__, self.parent))
            raise StopUser()

    class U(User):
        tasks = [Inner]

    user = run_user(U)
    assert seen[0][0] == "Inner" and seen[0][1] == "U" and seen[0][2] is user


def test_sequential_taskset_runs_in_declaration_order() -> None:
    order: list[str] = []

    class Steps(SequentialTaskSet):
        @task
        def first(self) -> None:
            order.append("first")

        @task
        def second(self) -> None:
            order.append("second")

        @task
        def third(self) -> None:
            order.append("third")
            if len(order) >= 6:
                raise StopUser()

    class U(User):
        tasks = [Steps]

    run_user(U)
    assert order == ["first", "second", "third"] * 2


def test_reschedule_exceptions_control_the_wait() -> None:
    waits: list[str] = []

    class U(User):
        def wait_time(self) -> float:
            waits.append(self.last)
            return 0

        @task
        def t(self) -> None:
            n = getattr(self, "n", 0)
            self.n = n + 1
            self.last = ["normal", "reschedule", "immediate"][n % 3]
            if n == 6:
                raise StopUser()
            if self.last == "reschedule":
                raise RescheduleTask()
            if self.last == "immediate":
                raise RescheduleTaskImmediately()

    run_user(U)
    # RescheduleTaskImmediately skips the wait; RescheduleTask and normal tasks wait.
    assert waits == ["normal", "reschedule", "normal", "reschedule"]


def test_interrupt_without_reschedule_waits_in_parent() -> None:
    waits: list[int] = []

    class Inner(TaskSet):
        @task
        def t(self) -> None:
            self.interrupt(reschedule=False)

    class U(User):
        tasks = [Inner]

        def wait_time(self) -> float:
            waits.append(1)
            if len(waits) == 3:
                raise StopUser()
            return 0

    run_user(U)  # StopUser from wait_time stops the user like one from a task
    assert len(waits) == 3


def test_exception_in_task_is_reported_and_user_continues() -> None:
    env = Environment()
    errors: list[BaseException] = []
    env.exception_sink = errors.append
    user_errors: list[dict[str, Any]] = []
    listener = env.events.user_error.add_listener(lambda **kw: user_errors.append(kw))

    class U(User):
        @task
        def t(self) -> None:
            self.n = getattr(self, "n", 0) + 1
            if self.n == 3:
                raise StopUser()
            raise ValueError(f"bad {self.n}")

    try:
        user = U(env)
        user.start(Group()).join(timeout=5)
    finally:
        env.events.user_error.remove_listener(listener)
    assert [str(e) for e in errors] == ["bad 1", "bad 2"]
    assert [str(kw["exception"]) for kw in user_errors] == ["bad 1", "bad 2"]
    assert set(user_errors[0]) == {"user_instance", "exception", "tb"}


def test_stop_kills_waiting_users_and_lets_running_tasks_finish() -> None:
    finished: list[str] = []

    class Sleeper(User):
        wait_time = constant(10)

        @task
        def quick(self) -> None:
            finished.append("quick")

    class Busy(User):
        @task
        def slow(self) -> None:
            gevent.sleep(0.3)
            finished.append("slow")

    env = Environment()
    group = Group()
    sleeper, busy = Sleeper(env), Busy(env)
    sleeper.start(group)
    busy.start(group)
    gevent.sleep(0.05)
    assert sleeper.stop() is True  # waiting: killed at once
    assert busy.stop() is False  # mid-task: finishes it, then stops
    group.join(timeout=2)
    assert finished == ["quick", "slow"]
    assert sleeper.greenlet.dead and busy.greenlet.dead


@pytest.mark.parametrize(
    ("wait", "low", "high"),
    [(between(0.1, 0.3), 0.1, 0.3), (constant(0.25), 0.25, 0.25)],
)
def test_between_and_constant(wait: Any, low: float, high: float) -> None:
    values = [wait(None) for _ in range(500)]
    assert all(low <= v <= high for v in values)


def test_constant_pacing_subtracts_task_time() -> None:
    class Holder:
        pass

    holder = Holder()
    pace = constant_pacing(1.0)
    assert pace(holder) == pytest.approx(1.0)  # first cycle: nothing to subtract yet
    holder._mpswarm_pace_start = time.perf_counter() - 0.3  # the task took 0.3 s
    assert pace(holder) == pytest.approx(0.7, abs=0.02)
    holder._mpswarm_pace_start = time.perf_counter() - 2.0  # slower than the pace
    assert pace(holder) == 0
    assert constant_throughput(4)(Holder()) == pytest.approx(0.25)


def test_default_wait_time_is_zero() -> None:
    class U(User):
        @task
        def t(self) -> None: ...

    assert U(Environment()).wait_time() == 0


def test_tag_filtering_recurses_into_tasksets() -> None:
    class Inner(TaskSet):
        @tag("a")
        @task
        def inner_a(self) -> None: ...

        @task
        def inner_plain(self) -> None: ...

    @tag("b")
    class Tagged(TaskSet):
        @task
        def tb(self) -> None: ...

    class U(User):
        tasks = [Inner, Tagged]

        @tag("a", "slow")
        @task
        def ua(self) -> None: ...

        @task
        def plain(self) -> None: ...

    filter_tasks_by_tags(U, {"a", "b"}, {"slow"})
    assert U.tasks == [Inner, Tagged]
    assert [t.__name__ for t in Inner.tasks] == ["inner_a"]
    assert [t.__name__ for t in Tagged.tasks] == ["tb"]  # a tagged TaskSet tags its tasks


def test_interrupt_taskset_exception_type() -> None:
    assert InterruptTaskSet(reschedule=False).reschedule is False
