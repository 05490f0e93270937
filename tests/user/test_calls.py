"""``user._calls.Call``: the rules a protocol client's call follows, as an HTTP request."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from gevent import GreenletExit

from mpswarm.event import EventHook
from mpswarm.http._errors import Interrupted
from mpswarm.stats import in_flight
from mpswarm.user._calls import Call, phases_us
from mpswarm.user._control import UserControl


class _User:
    def __init__(self) -> None:
        self.events = SimpleNamespace(request=EventHook())
        self.environment = SimpleNamespace(events=self.events)
        self._mpswarm = UserControl()
        self.recorded: list[dict[str, Any]] = []
        self.events.request.add_listener(lambda **kw: self.recorded.append(kw))

    def context(self) -> dict[str, Any]:
        return {"user": 7}


def test_a_call_is_in_flight_while_it_runs_and_recorded_once() -> None:
    user = _User()
    before = in_flight.counter[0]
    with Call(user, "grpc", "/pkg.Svc/Say", "grpc://127.0.0.1:1", context={"k": 1}) as call:
        assert in_flight.counter[0] == before + 1
        assert user._mpswarm.in_request == 1
        call.length = 12
        call.phases = phases_us(0.001, None, 0.0025, 40)
    assert in_flight.counter[0] == before and user._mpswarm.in_request == 0
    [meta] = user.recorded
    assert (meta["request_type"], meta["name"], meta["response_length"]) == (
        "grpc",
        "/pkg.Svc/Say",
        12,
    )
    assert meta["exception"] is None and meta["context"] == {"user": 7, "k": 1}
    assert meta["response"]._phases == (1000, -1, 2500, 40)
    assert meta["response_time"] >= 0 and meta["url"] == "grpc://127.0.0.1:1"


def test_what_the_block_raises_is_the_failure_and_is_raised_on() -> None:
    user = _User()
    with pytest.raises(ConnectionResetError), Call(user, "WS", "recv"):
        raise ConnectionResetError("gone")
    [meta] = user.recorded
    assert isinstance(meta["exception"], ConnectionResetError)
    with Call(user, "WS", "recv") as call:
        call.fail("closed by the server")
    assert user.recorded[1]["exception"] == "closed by the server"


def test_a_call_cut_off_by_a_kill_is_recorded_as_interrupted() -> None:
    user = _User()
    with pytest.raises(GreenletExit), Call(user, "WS", "recv"):
        raise GreenletExit()
    [meta] = user.recorded
    assert isinstance(meta["exception"], Interrupted)
    assert user._mpswarm.in_request == 0


def test_a_stop_between_calls_begins_nothing_and_a_stop_during_one_ends_after_it() -> None:
    user = _User()
    before = in_flight.counter[0]
    user._mpswarm.stop_after_request = True
    with pytest.raises(GreenletExit), Call(user, "WS", "send"):
        raise AssertionError("not begun")
    assert user.recorded == [] and in_flight.counter[0] == before
    user._mpswarm.stop_after_request = False
    with pytest.raises(GreenletExit), Call(user, "WS", "send"):
        user._mpswarm.stop_after_request = True  # the runner asks meanwhile
    assert len(user.recorded) == 1 and user.recorded[0]["exception"] is None
