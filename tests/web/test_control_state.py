"""The page's state JSON around a run's end: the stop reason, and the workers' shown state.

The Controller is driven on a stand-in swarm (only what ``state()`` reads): which state the
page shows is decided here, not by the processes; tests/web/test_api.py runs the real thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import gevent
import pytest

from mpswarm.config import RunConfig
from mpswarm.stats.aggregate import Aggregator
from mpswarm.stats.run_facts import RunStop, Saturation
from mpswarm.stats.snapshot import Snapshot
from mpswarm.web.control import Controller
from tests.stats.test_recorder import Worker

CRASH = {"kind": "crash_loop", "message": "crash loop: workers died 6 times", "exit_code": 4}


def worker(slot: int, state: str, alive: bool = True) -> tuple[Any, Any]:
    handle = SimpleNamespace(
        slot=slot,
        pid=1000 + slot,
        client_id=f"w{slot}",
        alive=alive,
        user_count=0,
        segment=SimpleNamespace(loop_lag_us=(0, 0)),
    )
    return handle, SimpleNamespace(state=state, cpu_usage=0.0, memory_usage=0)


@pytest.fixture()
def live() -> Iterator[Snapshot]:
    aggregator = Aggregator()
    w = Worker(aggregator, 0)
    for i in range(10):
        w.record("GET", "/ok", 5.0 + i)
    yield aggregator.snapshot(started_at=1_700_000_000.0, duration_s=3.0, users=2)
    for segment in aggregator.segments:
        segment.close()


@pytest.fixture()
def controller(live: Snapshot) -> Iterator[Controller]:
    rows = [worker(0, "running"), worker(1, "running"), worker(2, "missing", alive=False)]
    swarm = SimpleNamespace(
        spec=SimpleNamespace(user_classes=[]),
        state="stopped",
        workers=[handle for handle, _ in rows],
        clients={handle.client_id: node for handle, node in rows},
        supervisor=SimpleNamespace(events=[], summary=lambda: Saturation(0.0, 0, 0, 0.0, False)),
        snapshot=lambda: live,
    )
    ui = Controller(swarm, RunConfig())  # type: ignore[arg-type]
    yield ui
    if ui._runner is not None:
        ui._runner.kill()
    ui.close()


def test_before_any_run_the_workers_are_ready_and_there_is_no_stop(controller) -> None:
    state = controller.state()
    assert state["state"] == "ready" and state["stop"] is None
    assert [w["state"] for w in state["workers"]] == ["ready", "ready", "missing"]


def test_while_running_the_workers_say_their_own_state(controller) -> None:
    controller.runs = 1
    controller._runner = gevent.spawn(gevent.sleep, 60)
    state = controller.state()
    assert state["state"] == "running" and state["stop"] is None
    assert [w["state"] for w in state["workers"]] == ["running", "running", "missing"]


def test_after_a_stop_the_page_says_why_and_no_worker_says_running(controller, live) -> None:
    controller.runs = 1
    stop = {**CRASH, "at": 4.25}
    controller.final = dataclasses.replace(live, final=True, stop=RunStop(**stop))
    state = controller.state()
    assert state["state"] == "stopped"
    assert state["stop"] == stop
    assert [w["state"] for w in state["workers"]] == ["stopped", "stopped", "missing"]


def test_a_final_snapshot_without_a_stop_has_none(controller, live) -> None:
    controller.runs = 1
    controller.final = dataclasses.replace(live, final=True)
    assert controller.state()["stop"] is None
