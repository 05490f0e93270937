"""What recording one request costs a worker: ``Recorder.on_request``, in ns per call.

    python bench/recording.py [--runs 7] [--calls 200000] [--baseline 2d3d0d0]

Three kinds of request, each over 50 names (a worker's dictionary of rows stays hot, as in a
run): one without a timing breakdown (a custom client firing the request event), an HTTP
response on a kept-alive connection (time to first byte), and one on a new TLS connection
(connect, TLS and time to first byte). ``--baseline`` measures the same calls with the
recorder of an earlier commit too (default: the last one before the breakdown), run by run in
turn with this checkout's, and every median is printed as a ratio to the baseline's request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.environ.get("MPSWARM_BENCH_TREE", str(ROOT)))

from mpswarm.http.response import Response  # noqa: E402
from mpswarm.stats.recorder import Recorder  # noqa: E402
from mpswarm.stats.segment import Segment  # noqa: E402

NAMES = [f"/item/{i}" for i in range(50)]
#: The last commit whose recorder had no timing breakdown.
BEFORE_BREAKDOWN = "2d3d0d0"
KINDS = {
    "no breakdown (custom client)": None,
    "kept-alive connection (ttfb)": (-1, -1, 950, 120),
    "new TLS connection (connect, tls, ttfb)": (120, 2400, 950, 120),
}


def _response(phases: tuple[int, int, int, int] | None) -> Response | None:
    if phases is None:
        return None
    response = Response(200, "OK", {}, b"x" * 100, "http://127.0.0.1/")
    response._phases = phases
    return response


def _time(recorder: Recorder, response: Response | None, calls: int) -> float:
    """ns per call of ``on_request`` as the HTTP clients call it (keyword arguments)."""
    on_request = recorder.on_request
    context: dict[str, str] = {}
    names = NAMES * (calls // len(NAMES))
    start = time.perf_counter_ns()
    for name in names:
        on_request(
            request_type="GET",
            name=name,
            response_time=1.234,
            response_length=100,
            response=response,
            context=context,
            exception=None,
            start_time=0.0,
            url="http://127.0.0.1/",
        )
    return (time.perf_counter_ns() - start) / len(names)


def measure(calls: int) -> dict[str, float]:
    """ns per call of each kind, once (a fresh segment, rows made before timing)."""
    segment = Segment.create(1000, 100)
    try:
        recorder = Recorder(segment, lambda message: None)
        _time(recorder, None, len(NAMES))
        return {kind: _time(recorder, _response(p), calls) for kind, p in KINDS.items()}
    finally:
        del recorder
        segment.close()


def _baseline_tree(revision: str, into: str) -> str:
    """The ``mpswarm`` package of ``revision``, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "mpswarm"],
        check=True,
        capture_output=True,
    ).stdout
    path = Path(into) / "tree.tar"
    path.write_bytes(archive)
    with tarfile.open(path) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--baseline", default=BEFORE_BREAKDOWN, help="a git revision, or none")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:  # one run, as JSON: how the baseline's tree is measured
        print(json.dumps(measure(args.calls)))
        return
    ours: dict[str, list[float]] = {kind: [] for kind in KINDS}
    theirs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="mpswarm-bench-") as tmp:
        tree = None if args.baseline == "none" else _baseline_tree(args.baseline, tmp)
        for _ in range(args.runs):  # in turn: the machine's noise hits both alike
            if tree is not None:
                child = subprocess.run(
                    [sys.executable, __file__, "--once", "--calls", str(args.calls)],
                    check=True,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "MPSWARM_BENCH_TREE": tree},
                )
                theirs.append(json.loads(child.stdout)["no breakdown (custom client)"])
            for kind, value in measure(args.calls).items():
                ours[kind].append(value)
    base = statistics.median(theirs) if theirs else statistics.median(ours[next(iter(KINDS))])
    print(f"Recorder.on_request: ns per call, median of {args.runs} runs of {args.calls} calls")
    if theirs:
        print(f"  {'baseline ' + args.baseline + ' (no breakdown)':42s} {base:7.0f} ns   x1.00")
    for kind, values in ours.items():
        median = statistics.median(values)
        print(f"  {kind:42s} {median:7.0f} ns   x{median / base:.2f}")


if __name__ == "__main__":
    main()
