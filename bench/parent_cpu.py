"""The parent's CPU with many workers and names, and the final reports' time (issue 21, item 4).

    python bench/parent_cpu.py live [--workers 16] [--names 1000] [--changing 0.25]
                                    [--seconds 10] [--runs 3] [--scenario default csv ...]
    python bench/parent_cpu.py reports [--names 10000] [--runs 3]
    python bench/parent_cpu.py all [--save]     # both; --save: a JSON file in bench/results/

``live`` simulates ``--workers`` workers on a machine with fewer cores: it creates their real
segments (``Segment.create`` with the run's default caps) and announces ``--names`` names in
each through a real ``Recorder``, seeds every row with a few hundred response times (so a row
uses tens of histogram buckets, as a busy endpoint's does), then forks one small process per
worker that, four times a second, records a few requests into ``--changing`` of its rows
(numpy writes into the same words, in the recorder's order: histograms and sums, then the
count), with the time to first byte of each request in the breakdown table as mpswarm's HTTP
clients record it. The workers' CPU stays near zero: no event loop, no HTTP. The parent runs
what a real one runs every second, in gevent greenlets: ``RunReporting`` (snapshot, history
and window, the chart's point, the live status redrawn as on a terminal, the CSV files with
``--csv``), the swarm's tick (``Aggregator.totals``) and the ``Supervisor``'s sample of every
worker's CPU and memory (psutil on the 16 real pids). It measures the parent's CPU time
(``time.process_time``) over ``--seconds`` of wall time after a warm-up, ``--runs`` times,
and prints the median as a percentage of one core.

Scenarios: ``default`` (no report file: with more than 200 names the sample takes the totals
only), ``chart`` (the same with 200 names: the chart of the busiest endpoints reads every
row), ``csv`` (``--csv``: the stats, failures and history files) and ``csv-full`` (``--csv
--csv-full-history``: a history row per endpoint every second). Under ``chart`` and ``csv``
the samples of every row are spaced to keep them under half a percent of a core
(``ROWS_CPU_SHARE`` in ``mpswarm/runner/reporting.py``): measure over a minute or more
(``--seconds 60``) to see several.

``reports`` records ``--names`` names (a tenth failing with their own error text, capped by
``--max-errors`` 1 000 as in a run) into 2 segments, takes the final snapshot and times the
console summary and the CSV files (stats, failures, exceptions and history, with and without
the full history), medians of ``--runs``.

Every segment is an anonymous memory file: nothing is left in /dev/shm, whatever happens. The
worker processes are killed in a ``finally`` (Ctrl-C included) and exit by themselves when
the parent is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import io
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mpswarm.config import RunConfig  # noqa: E402
from mpswarm.report.console import write_summary  # noqa: E402
from mpswarm.report.csv_report import CsvWriter  # noqa: E402
from mpswarm.report.live import LiveStatus  # noqa: E402
from mpswarm.runner.reporting import CHART_NAMES, RunReporting  # noqa: E402
from mpswarm.stats.aggregate import Aggregator  # noqa: E402
from mpswarm.stats.announcements import Announcement  # noqa: E402
from mpswarm.stats.histogram import NUM_BUCKETS, bucket_bounds  # noqa: E402
from mpswarm.stats.recorder import Recorder  # noqa: E402
from mpswarm.stats.segment import (  # noqa: E402
    BYTES,
    HIST,
    INT64_MAX,
    MAX_US,
    MIN_US,
    PHASE_BIT,
    PHASE_BITS,
    REQUESTS,
    SUM_US,
    TOTAL_ROW,
    TTFB,
    Segment,
)

_LOWS = np.array([bucket_bounds(i)[0] for i in range(NUM_BUCKETS)], dtype=np.int64)
SCENARIOS = ("default", "chart", "csv", "csv-full")


def record(segment: Segment, rows: np.ndarray, times_us: np.ndarray, failed: int = 0) -> None:
    """Record one request per entry of ``rows`` (which may repeat), vectorised.

    The recorder's words, in its order: the row's histogram, sums and extremes, its time to
    first byte in the breakdown table, the worker's total row, then the request count.
    """
    table = segment.rows
    buckets = HIST + np.searchsorted(_LOWS, times_us, side="right") - 1
    np.add.at(table, (rows, buckets), 1)
    np.add.at(table[:, SUM_US], rows, times_us)
    np.minimum.at(table[:, MIN_US], rows, times_us)
    np.maximum.at(table[:, MAX_US], rows, times_us)
    np.add.at(table[:, BYTES], rows, 100)
    ttfb = segment.tables[TTFB]
    first = np.unique(rows[(table[rows, PHASE_BITS] & PHASE_BIT[TTFB]) == 0])
    ttfb[first, MIN_US] = INT64_MAX
    table[first, PHASE_BITS] |= PHASE_BIT[TTFB]
    served = times_us * 4 // 5
    np.add.at(ttfb, (rows, HIST + np.searchsorted(_LOWS, served, side="right") - 1), 1)
    np.add.at(ttfb[:, SUM_US], rows, served)
    np.minimum.at(ttfb[:, MIN_US], rows, served)
    np.maximum.at(ttfb[:, MAX_US], rows, served)
    np.add.at(ttfb[:, REQUESTS], rows, 1)
    total = table[TOTAL_ROW]
    np.add.at(total, HIST + np.searchsorted(_LOWS, times_us, side="right") - 1, 1)
    total[SUM_US] += int(times_us.sum())
    total[MIN_US] = min(int(total[MIN_US]), int(times_us.min()))
    total[MAX_US] = max(int(total[MAX_US]), int(times_us.max()))
    total[BYTES] += 100 * rows.size
    total[1] += failed  # FAILURES
    np.add.at(table[:, REQUESTS], rows, 1)
    total[REQUESTS] += rows.size


def times(rnd: np.random.Generator, count: int) -> np.ndarray:
    """Response times in µs: lognormal around 20 ms, a busy endpoint's spread."""
    return np.maximum(1, rnd.lognormal(np.log(20_000), 0.6, count)).astype(np.int64)


def build(
    workers: int, names: int, seed_requests: int, shared: bool = True
) -> tuple[Aggregator, list[Segment]]:
    """``workers`` segments with ``names`` names each, announced through real Recorders: the
    same names in every worker (``shared``: a run's endpoints), or each worker its own."""
    aggregator = Aggregator(max_endpoints=10_000, max_errors=1_000)
    segments = []
    rnd = np.random.default_rng(1)
    for wid in range(workers):
        segment = Segment.create(10_000, 1_000)
        segments.append(segment)
        aggregator.add_segment(wid, segment)

        def announce(message: Announcement, wid: int = wid) -> None:
            message.apply_to(aggregator, wid)

        recorder = Recorder(segment, announce)
        for i in range(names) if shared else range(wid * names, (wid + 1) * names):
            failed = RuntimeError(f"404 for /api/item/{i:05d}") if i % 10 == 0 else None
            recorder.on_request("GET", f"/api/item/{i:05d}", 20.0, 100, failed)
        if seed_requests:
            rows = np.repeat(np.arange(1, names + 1), seed_requests)
            record(segment, rows, times(rnd, rows.size))
    return aggregator, segments


def _worker(segment: Segment, names: int, changing: float, parent: int, seed: int) -> None:
    """A simulated busy worker: 4 times a second, a few requests into ``changing`` of its rows."""
    rnd = np.random.default_rng(seed)
    per_tick = max(1, int(names * changing / 4))
    tick = 0.25
    next_at = time.monotonic()
    while os.getppid() == parent:
        rows = 1 + rnd.choice(names, per_tick, replace=False)
        rows = np.repeat(rows, 3)  # 3 requests per row and tick
        record(segment, rows, times(rnd, rows.size))
        segment.users = 10
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))


def start_workers(segments: list[Segment], names: int, changing: float) -> list[int]:
    """Fork one writer per segment; returns their pids."""
    pids = []
    parent = os.getpid()
    for slot, segment in enumerate(segments):
        pid = os.fork()
        if pid == 0:  # the child: write until the parent is gone or kills it
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cleans up
                _worker(segment, names, changing, parent, slot)
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    return pids


def stop_workers(pids: list[int]) -> None:
    """Kill and reap the writers."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


class _Terminal(io.StringIO):
    """A terminal that forgets what it is shown (the live status redraws every 2 s on one)."""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


class _Swarm:
    """What ``RunReporting`` and ``Supervisor`` read of a Swarm, over the real Aggregator."""

    def __init__(self, aggregator: Aggregator, segments: list[Segment], pids: list[int]) -> None:
        import gevent.event

        from mpswarm.runner._rates import RecentRates
        from mpswarm.runner.supervisor import Supervisor

        self.aggregator = aggregator
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self.stop_requested = False
        self.fork_server_pid = None
        self.target_user_count = 10 * len(segments)
        self.workers = []
        self.clients = {}
        for slot, (segment, pid) in enumerate(zip(segments, pids, strict=True)):
            ready = gevent.event.Event()
            ready.set()
            handle = SimpleNamespace(
                slot=slot,
                pid=pid,
                alive=True,
                ready=ready,
                remote=False,
                segment=segment,
                client_id=f"w{slot}",
                process=None,
            )
            self.workers.append(handle)
            self.clients[handle.client_id] = SimpleNamespace(
                cpu_usage=0.0, memory_usage=0, user_count=0
            )
        self.supervisor = Supervisor(self)  # type: ignore[arg-type]
        #: CPU seconds of each snapshot that read every row (not the totals only).
        self.row_samples: list[float] = []
        self.rates = RecentRates(self.snapshot)

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def snapshot(self, final: bool = False, totals_only: bool = False) -> Any:
        """As ``Swarm.snapshot``: the aggregate, with the supervisor's figures."""
        started = time.thread_time()
        snapshot = self.aggregator.snapshot(
            self.started_at,
            self.elapsed(),
            10 * len(self.workers),
            final=final,
            totals_only=totals_only,
        )
        if not totals_only:
            self.row_samples.append(time.thread_time() - started)
        return dataclasses.replace(
            snapshot,
            saturation=self.supervisor.summary(),
            recovery_events=tuple(self.supervisor.events),
        )

    @property
    def name_count(self) -> int:
        return len(self.aggregator.row_names())

    def request_stop(self, reason: str | None = None, kind: Any = None) -> None:
        self.stop_requested = True

    def tick_forever(self) -> None:
        """``Swarm._tick_forever``: the totals, for ``current_rps``."""
        import gevent

        while True:
            totals = self.aggregator.totals()
            self.rates.remember(int(totals[0]), int(totals[1]))
            for handle in self.workers:
                self.clients[handle.client_id].user_count = handle.segment.users
            gevent.sleep(1.0)


def live_once(args: argparse.Namespace, scenario: str, folder: str) -> dict[str, float]:
    """One run of a scenario: the parent's CPU in % of one core, and its samples of every row
    (how many, and the median CPU time of one)."""
    import gevent

    names = min(args.names, CHART_NAMES) if scenario == "chart" else args.names
    aggregator, segments = build(args.workers, names, args.seed_requests)
    pids: list[int] = []
    greenlets = []
    try:
        pids = start_workers(segments, names, args.changing)
        swarm = _Swarm(aggregator, segments, pids)
        csv = scenario.startswith("csv")
        config = RunConfig(
            csv_prefix=os.path.join(folder, scenario) if csv else None,
            csv_full_history=scenario == "csv-full",
        )
        reporting = RunReporting(config, swarm)  # type: ignore[arg-type]
        reporting.live = LiveStatus(_Terminal(), config.print_interval)
        reporting.start()
        greenlets = [gevent.spawn(swarm.tick_forever), gevent.spawn(swarm.supervisor.run_forever)]
        gevent.sleep(args.warmup)
        cpu, wall = time.process_time(), time.perf_counter()
        before = len(swarm.row_samples)
        gevent.sleep(args.seconds)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        samples = len(reporting.series)
        row_samples = swarm.row_samples[before:]
        if reporting._greenlet is not None:
            reporting._greenlet.kill(block=True)
        gevent.killall(greenlets, block=True)
        if reporting.csv is not None:
            reporting.csv.close()
        total = reporting.series[-1] if reporting.series else None
        each = statistics.median(row_samples) * 1000 if row_samples else 0.0
        print(
            f"  {scenario}: {100 * cpu / wall:.3f} % of a core ({cpu * 1000:.0f} ms CPU in "
            f"{wall:.1f} s, {samples} samples, {len(row_samples)} of every row ({each:.0f} ms "
            f"each); last second {total.rps if total else 0:.0f} req/s over "
            f"{swarm.name_count} names)",
            flush=True,
        )
        return {"cpu_percent": 100 * cpu / wall, "row_samples": len(row_samples),
                "row_sample_ms": each}  # fmt: skip
    finally:
        stop_workers(pids)
        for segment in segments:
            segment.close()


def live(args: argparse.Namespace) -> dict[str, Any]:
    """Every scenario ``--runs`` times; the median of each."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mpswarm-parent-") as folder:
        for scenario in args.scenario:
            runs = [live_once(args, scenario, folder) for _ in range(args.runs)]
            median = statistics.median(run["cpu_percent"] for run in runs)
            results[scenario] = {"parent_cpu_percent": median, "runs": runs}
            print(f"{scenario}: median {median:.3f} % of a core", flush=True)
    return results


def reports(args: argparse.Namespace) -> dict[str, Any]:
    """The final snapshot, the summary and the CSV files with ``--names`` rows."""
    aggregator, segments = build(2, args.names // 2, 0, shared=False)
    rnd = np.random.default_rng(2)
    for segment in segments:  # a spread of times per row: a few dozen buckets, as in a real run
        rows = np.repeat(np.arange(1, args.names // 2 + 1), 50)
        record(segment, rows, times(rnd, rows.size))
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def timed(key: str) -> Iterator[None]:
        """Wall and CPU time (this thread's: the machine may be shared) of the block."""
        wall, cpu = time.perf_counter(), time.thread_time()
        yield
        walls.setdefault(key, []).append(time.perf_counter() - wall)
        cpus.setdefault(key, []).append(time.thread_time() - cpu)

    try:
        with tempfile.TemporaryDirectory(prefix="mpswarm-reports-") as folder:
            for _ in range(args.runs):
                with timed("final snapshot"):
                    final = aggregator.snapshot(0.0, 60.0, 20, final=True)
                with timed("summary"):
                    settings = {"users": 20, "spawn_rate": 1.0, "processes": 2}
                    write_summary(final, io.StringIO(), settings)
                for full in (False, True):
                    with timed("csv full history" if full else "csv"):
                        writer = CsvWriter(os.path.join(folder, "run"), full_history=full)
                        writer.update(final, None, time.time())
                        writer.close()
            rows, errors = len(final.endpoints), len(final.errors)
    finally:
        del final
        for segment in segments:
            segment.close()
    wall = {key: statistics.median(values) for key, values in walls.items()}
    cpu = {key: statistics.median(values) for key, values in cpus.items()}
    print(
        f"{rows} rows, {errors} error rows, median wall (CPU) s: "
        + ", ".join(f"{key} {wall[key]:.3f} ({cpu[key]:.3f})" for key in wall)
    )
    return {"rows": rows, "error_rows": errors, "median_wall_s": wall, "median_cpu_s": cpu,
            "runs_wall_s": walls}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["live", "reports", "all"])
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--names", type=int, default=None, help="live 1 000, reports 10 000")
    parser.add_argument("--changing", type=float, default=0.25, help="rows moving each second")
    parser.add_argument("--seed-requests", type=int, default=200, help="per row, before")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--save", action="store_true", help="write bench/results/parent_cpu-*")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg": os.getloadavg(),
        },
        "git": os.popen(f"git -C {ROOT} rev-parse --short HEAD").read().strip(),
    }
    names = args.names
    if args.mode in ("live", "all"):
        args.names = names or 1_000
        results["live"] = {
            "workers": args.workers,
            "names": args.names,
            "changing": args.changing,
            "seconds": args.seconds,
            "runs": args.runs,
            **live(args),
        }
    if args.mode in ("reports", "all"):
        args.names = names or 10_000
        results["reports"] = reports(args)
    if args.save:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = ROOT / "bench" / "results" / f"parent_cpu-{stamp}.json"
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
