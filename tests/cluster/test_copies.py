"""The copies a host agent logs and replays (no Ray needed): merging, the log's numbering, a
reader that asks for copies the log no longer has, a newer reader, shutdown."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpswarm.cluster import agent as agent_module
from mpswarm.cluster.agent import HostAgent, LogGap
from mpswarm.cluster.delta import apply, merge

WORDS = 64


def _copy(rng: np.random.Generator, wid: str, ended: bool = False) -> dict[str, Any]:
    positions = rng.choice(WORDS, size=int(rng.integers(1, 12)), replace=False)
    values = rng.integers(0, 1 << 40, size=len(positions))
    data = bytes(rng.integers(0, 256, size=int(rng.integers(0, 5)), dtype=np.uint8))
    return {wid: (data, (positions.astype(np.int64), values.astype(np.int64)), ended)}


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6))
def test_a_merged_copy_equals_its_copies_applied_in_turn(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    copies = []
    for _ in range(n):
        copy: dict[str, Any] = {}
        for wid in ("0:1", "0:2"):
            if rng.random() < 0.7:
                copy.update(_copy(rng, wid, ended=bool(rng.random() < 0.2)))
        copies.append(copy)
    one_by_one = {wid: np.zeros(WORDS, np.int64) for wid in ("0:1", "0:2")}
    records: dict[str, bytes] = {}
    ended: dict[str, bool] = {}
    for copy in copies:
        for wid, (data, parts, end) in copy.items():
            apply(one_by_one[wid], parts)
            records[wid] = records.get(wid, b"") + data
            ended[wid] = ended.get(wid, False) or end
    merged = merge(copies)
    assert set(merged) == set(records)
    for wid, (data, parts, end) in merged.items():
        flat = np.zeros(WORDS, np.int64)
        apply(flat, parts)
        assert np.array_equal(flat, one_by_one[wid])
        assert len(set(parts[0].tolist())) == len(parts[0])  # no word written twice
        assert data == records[wid] and end == ended[wid]


def _agent() -> HostAgent:
    return HostAgent(0, {"max_endpoints": 10, "max_errors": 10, "open_model": False})


def _logged(agent: HostAgent, words: list[int], urgent: bool = False) -> None:
    positions = np.arange(len(words), dtype=np.int64)
    agent._append({"0:1": (b"r", (positions, np.array(words, np.int64)), False)}, urgent)


def test_a_reader_gets_every_copy_after_its_number_merged_then_each_as_it_comes() -> None:
    agent = _agent()
    _logged(agent, [1])
    _logged(agent, [2, 2])
    _logged(agent, [3, 3, 3], urgent=True)
    stream = agent.stream(1, reader=1)
    number, copies, urgent = next(stream)
    assert number == 3 and urgent
    data, (positions, values), _ = copies["0:1"]
    assert data == b"rr" and values.tolist() == [3, 3, 3] and positions.tolist() == [0, 1, 2]
    threading.Timer(0.05, _logged, (agent, [4])).start()
    number, copies, urgent = next(stream)  # waits for the next copy
    assert number == 4 and not urgent and copies["0:1"][1][1].tolist() == [4]


def test_a_reader_behind_the_log_gets_a_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = _agent()
    monkeypatch.setattr(agent_module, "LOG_BYTES", 1)  # the log keeps one copy only
    for words in ([1], [2], [3]):
        _logged(agent, words)
    with pytest.raises(LogGap, match="copies 2 to 3"):
        next(agent.stream(1, reader=1))
    number, _, _ = next(agent.stream(2, reader=2))  # the last copy is there
    assert number == 3


def test_a_newer_reader_ends_the_older_and_shutdown_ends_the_last_after_its_copies() -> None:
    agent = _agent()
    _logged(agent, [1])
    old = agent.stream(0, reader=1)
    assert next(old)[0] == 1
    new = agent.stream(0, reader=2)  # replays from the start: the old reader's copy included
    assert next(new)[0] == 1
    with pytest.raises(StopIteration):
        next(old)
    _logged(agent, [2])
    agent._stopping.set()
    assert next(new)[0] == 2  # what was logged before the end still goes
    with pytest.raises(StopIteration):
        next(new)
