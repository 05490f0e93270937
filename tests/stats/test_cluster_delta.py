"""The Ray bridge's segment deltas (mpswarm/cluster/delta.py): a copy kept by deltas equals the
segment. No Ray needed: only the snapshot and apply functions."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mpswarm.cluster.delta import DeltaReader, apply, used_ranges
from mpswarm.http.response import Response
from mpswarm.stats.recorder import Recorder
from mpswarm.stats.segment import HIST, PHASES, Segment


def _flat(segment: Segment) -> np.ndarray:
    return np.frombuffer(segment._map, dtype=np.int64)  # type: ignore[arg-type]


def _assert_same(source: Segment, copy: Segment, open_model: bool) -> None:
    a, b = _flat(source), _flat(copy)
    for offset, n in used_ranges(source, open_model):
        assert np.array_equal(a[offset : offset + n], b[offset : offset + n]), offset
    for table, _ in PHASES:  # the timing breakdown's rows: those in use, as the source has them
        assert np.array_equal(source.tables[table], copy.tables[table]), table


def _response(rng: random.Random) -> Response | None:
    """An HTTP client's response with a breakdown, now and then on a new (TLS) connection."""
    if rng.random() < 0.2:
        return None  # a custom client's request: no breakdown
    response = Response(200, "OK", {}, b"", "http://127.0.0.1/")
    opened = (rng.randrange(50, 900), rng.choice([-1, rng.randrange(500, 5000)]))
    response._phases = (*(opened if rng.random() < 0.1 else (-1, -1)), rng.randrange(90, 9000), 80)
    return response


@pytest.mark.parametrize("open_model", [False, True])
def test_deltas_rebuild_the_segment(open_model: bool) -> None:
    source = Segment.create(20, 5)
    copy = Segment.create(20, 5)
    recorder = Recorder(source, lambda *args: None)
    if open_model:
        recorder.open_model({})
    reader = DeltaReader(source, open_model)
    rng = random.Random(7)
    for step in range(30):
        for _ in range(rng.randrange(0, 50)):
            name = f"/n{rng.randrange(30)}"  # past 20 names: the overflow row
            error = RuntimeError(f"e{rng.randrange(8)}") if rng.random() < 0.1 else None
            recorder.on_request(
                "GET", name, rng.expovariate(1 / 20.0), 100, exception=error,
                response=_response(rng),
            )  # fmt: skip
        if step == 15:
            source.reset_counts()
        apply(_flat(copy), reader.snapshot())
        _assert_same(source, copy, open_model)
    full = sum(n for _, n in used_ranges(source, open_model)) * 30
    assert reader.words_sent < full  # unchanged rows were left out
    assert all(source.tables[table][1:, 0].any() for table, _ in PHASES)  # all three were used


def test_a_row_caught_mid_update_is_sent_again() -> None:
    source = Segment.create(4, 2)
    copy = Segment.create(4, 2)
    recorder = Recorder(source, lambda *args: None)
    recorder.on_request("GET", "/a", 5.0, 10)
    reader = DeltaReader(source, False)
    apply(_flat(copy), reader.snapshot())
    flat = _flat(source)
    offset = source.row_offset(1)
    flat[offset] += 1  # the worker counted the request but has not written its bucket yet
    apply(_flat(copy), reader.snapshot())
    flat[offset + HIST + 7] += 1  # now it has
    apply(_flat(copy), reader.snapshot())
    _assert_same(source, copy, False)


def test_routine_records_are_told_from_the_others() -> None:
    """The agent's read hurries for a record that matters now (a worker's Spawned, Stopped,
    custom messages), not for the ones every worker sends every second."""
    import pickle

    from mpswarm.cluster.agent import is_routine
    from mpswarm.runner import messages as m

    def frame(message: object) -> bytes:
        return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)

    assert is_routine(frame(m.Usage(12.5, 1 << 20)))
    assert is_routine(frame(m.Report({"x": 1})))
    # The recorder's announcements are defined in mpswarm.stats, and pickled under that name.
    assert is_routine(frame(m.RowAnnounced(1, "GET", "/x" * 40)))
    assert is_routine(frame(m.ErrorAnnounced(0, "GET", "/x", "boom")))
    assert is_routine(frame(m.NamesOverflowed("GET", "/y")))
    assert not is_routine(frame(m.Spawned(3)))
    assert not is_routine(frame(m.Stopped()))
    assert not is_routine(frame(m.Custom("Usage", {"Report": 1})))
