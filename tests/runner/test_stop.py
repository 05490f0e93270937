"""The stop and supervision logic under a fake clock: races tested without sleeping.

The real-process tests (test_lifecycle.py, test_recovery.py) check the same paths end to end;
these pin the rules: the first stop request wins, the deadline is one more trigger, and once a
stop began nothing is replaced or recycled, and every recovery event says what happened.
"""

from __future__ import annotations

from typing import Any

import pytest
from gevent.event import Event

from mpswarm.exceptions import WorkerError
from mpswarm.runner.stop import EXIT_RESOURCE_FAILURE, StopKind, StopScope
from mpswarm.runner.supervisor import CRASH_WINDOW_S, Supervisor


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_request_wins_and_dates_the_stop() -> None:
    clock = FakeClock()
    scope = StopScope(clock)
    clock.now += 2.5
    assert scope.request(StopKind.SIGNAL, "received SIGINT")
    clock.now += 1.0
    assert not scope.fail(StopKind.CRASH_LOOP, "crash loop")  # too late: not the reason
    reason = scope.reason
    assert reason is not None and reason.kind is StopKind.SIGNAL and reason.at == 2.5
    assert reason.exit_code is None and not reason.failed
    assert reason.record().as_dict() == {
        "kind": "signal",
        "message": "received SIGINT",
        "exit_code": None,
        "at": 2.5,
    }


def test_the_deadline_is_one_more_trigger() -> None:
    clock = FakeClock()
    scope = StopScope(clock)
    scope.move_on_after(10.0)
    clock.now += 9.999
    assert not scope.check_deadline() and scope.remaining() == pytest.approx(0.001)
    clock.now += 0.001
    assert scope.check_deadline()
    assert scope.reason is not None and scope.reason.kind is StopKind.TIME_LIMIT
    assert scope.wait() is True  # returns at once once stopping


def test_a_request_before_the_deadline_keeps_its_reason() -> None:
    clock = FakeClock()
    scope = StopScope(clock)
    scope.move_on_after(5.0)
    scope.fail(StopKind.MEMORY_LIMIT, "over --max-memory")
    clock.now += 60
    scope.check_deadline()
    assert scope.reason is not None and scope.reason.kind is StopKind.MEMORY_LIMIT
    assert scope.reason.exit_code == EXIT_RESOURCE_FAILURE and scope.reason.failed


@pytest.mark.parametrize(
    ("before", "code", "kind", "exit_code", "message"),
    [
        (None, 5, StopKind.USER_CODE, 5, "sys.exit(5)"),  # it ends the run
        (None, 0, StopKind.USER_CODE, 0, "sys.exit(0)"),
        ((StopKind.TIME_LIMIT, None), 0, StopKind.TIME_LIMIT, 0, "over, then sys.exit(0)"),
        ((StopKind.USER_CODE, None), 7, StopKind.USER_CODE, 7, "over, then sys.exit(7)"),
        ((StopKind.SIGNAL, 130), 0, StopKind.SIGNAL, 130, "over"),  # a failure keeps its code
        ((StopKind.MEMORY_LIMIT, 4), 0, StopKind.MEMORY_LIMIT, 4, "over"),
    ],
)
def test_sys_exit_ends_the_run_or_gives_an_ending_run_its_code(
    before: Any, code: int, kind: StopKind, exit_code: int, message: str
) -> None:
    scope = StopScope(FakeClock())
    if before is not None:
        scope.request(before[0], "over", before[1])
    scope.exit_with(code, f"sys.exit({code})")
    scope.exit_with(9, "sys.exit(9)")  # only the first counts, as in one process
    reason = scope.reason
    assert reason is not None and (reason.kind, reason.exit_code) == (kind, exit_code)
    assert reason.message == message and reason.failed is (exit_code != 0)


def test_reset_readies_the_scope_for_another_run() -> None:
    clock = FakeClock()
    scope = StopScope(clock)
    scope.move_on_after(1.0)
    scope.request(StopKind.WEB_UI, "stopped from the web UI")
    clock.now += 30
    scope.reset()
    assert not scope.requested and scope.deadline is None and not scope.event.is_set()
    clock.now += 4
    scope.request(StopKind.USER_CODE, "StopTest raised")
    assert scope.reason is not None and scope.reason.at == 4


class Handle:
    """A worker as the supervisor sees it."""

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.pid = 1000 + slot
        self.exited = Event()
        self.exited.set()
        self.exit_description = "signal 9 (SIGKILL)"
        self.spawned = Event()
        self.gone = Event()
        self.target = {"U": 3}
        self.iterations = None
        self.alive = True


class FakeSwarm:
    """The ``Supervised`` protocol, recording what the supervisor asks."""

    def __init__(self, clock: FakeClock) -> None:
        self.scope = StopScope(clock)
        self.workers = [Handle(0), Handle(1)]
        self.clients: dict[str, Any] = {}
        self.started_at = 1.0
        self.fork_server_pid = None
        self.replaced: list[int] = []
        self.failed: list[tuple[StopKind, str]] = []
        self.replacement_fails = False

    @property
    def stop_requested(self) -> bool:
        return self.scope.requested

    def elapsed(self) -> float:
        return 12.0

    def fail(self, kind: StopKind, message: str) -> None:
        self.failed.append((kind, message))
        self.scope.fail(kind, message)

    def replace_worker(self, old: Any) -> Any:
        if self.replacement_fails:
            raise WorkerError("no worker can be started: the fork server is gone")
        self.replaced.append(old.slot)
        new = Handle(old.slot)
        new.spawned.set()  # its users run
        return new

    def recycle_worker(self, old: Any) -> Any:
        return self.replace_worker(old)


def _supervisor(clock: FakeClock, **limits: Any) -> tuple[Supervisor, FakeSwarm]:
    swarm = FakeSwarm(clock)
    return Supervisor(swarm, clock=clock, **limits), swarm


def test_a_lost_worker_is_replaced_and_the_event_says_so_after() -> None:
    clock = FakeClock()
    supervisor, swarm = _supervisor(clock)
    supervisor.on_worker_lost(swarm.workers[0])
    assert swarm.replaced == [0]
    [event] = supervisor.events
    assert event.cause == "died (signal 9 (SIGKILL))"
    assert event.action == "replaced; its 3 user(s) restored"


def test_nothing_is_replaced_once_the_stop_began() -> None:
    clock = FakeClock()
    supervisor, swarm = _supervisor(clock)
    swarm.scope.request(StopKind.TIME_LIMIT, "the run time is over")
    supervisor.on_worker_lost(swarm.workers[0])
    assert swarm.replaced == []
    assert [e.action for e in supervisor.events] == ["not replaced: the run is stopping"]


def test_crash_loop_counts_deaths_within_the_window_of_the_clock() -> None:
    clock = FakeClock()
    supervisor, swarm = _supervisor(clock, max_restarts=2)
    for _ in range(2):
        supervisor.on_worker_lost(swarm.workers[0])
        clock.now += CRASH_WINDOW_S / 2 + 1  # each death leaves the window after two steps
    supervisor.on_worker_lost(swarm.workers[0])
    assert swarm.failed == []  # only 2 deaths within the last minute
    supervisor.on_worker_lost(swarm.workers[0])
    [(kind, message)] = swarm.failed
    assert kind is StopKind.CRASH_LOOP and "more than --max-restarts 2" in message
    assert swarm.scope.reason is not None and swarm.scope.reason.exit_code == 4
    assert supervisor.events[-1].action == "not replaced: crash loop"


def test_a_replacement_that_cannot_start_is_said_and_ends_a_run_without_workers() -> None:
    clock = FakeClock()
    supervisor, swarm = _supervisor(clock)
    swarm.replacement_fails = True
    for handle in swarm.workers:
        handle.alive = False
    supervisor.on_worker_lost(swarm.workers[0])
    assert supervisor.events[-1].action.startswith("not replaced: no worker can be started")
    [(kind, _)] = swarm.failed
    assert kind is StopKind.WORKERS_LOST
