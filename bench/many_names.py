"""Runaway request names: the parent's memory and the final reports' time (issue 14, item 4).

    python bench/many_names.py inproc [--names 20000] [--workers 2] [--cap 10000]
    python bench/many_names.py run [--seconds 20] [--users 4] [--cap 10000]

``inproc`` records ``--names`` distinct one-request names (a third of them failing with a
distinct text) and five busy names into real segments, as ``--workers`` workers would, then
times the final snapshot, three live snapshots kept (as the 10 s window keeps them) and each
report writer, and prints the process's memory after each step.

``run`` runs the real CLI against the demo server on 127.0.0.1: ``--users`` users request
``/u/<random>`` without a wait for ``--seconds`` over two processes, with every report file
written; it samples the parent's memory (/proc/PID/status, every 50 ms) and prints its peak,
the rows in the JSON report, the summary's length and the time from the end of the load to the
exit. Its RSS is split into its own memory (RssAnon) and the segment pages it has read
(RssShmem: shared with the workers, who wrote them).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent

RUNAWAY = """
import uuid
from mpswarm import FastHttpUser, task

class Runaway(FastHttpUser):
    @task
    def unique(self):
        self.client.get(f"/u/{uuid.uuid4().hex[:12]}")
"""


def _status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssShmem of a process, in KB (/proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}
    wanted = ("VmRSS", "RssAnon", "RssShmem")
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines) if k in wanted}


def _memory(process: psutil.Process) -> str:
    info = process.memory_full_info()
    return f"rss {info.rss / 2**20:.0f} MB (uss {info.uss / 2**20:.0f} MB)"


def inproc(names: int, workers: int, cap: int) -> None:
    """Record into real segments in this process, then snapshot and write every report."""
    from mpswarm.report.console import write_summary
    from mpswarm.report.csv_report import CsvWriter
    from mpswarm.report.html import write_html
    from mpswarm.report.json_report import write_json
    from mpswarm.stats.aggregate import Aggregator
    from mpswarm.stats.announcements import Announcement
    from mpswarm.stats.recorder import Recorder
    from mpswarm.stats.segment import Segment

    me = psutil.Process()
    print(f"start: {_memory(me)}")
    aggregator = Aggregator(max_endpoints=cap, max_errors=1000)
    recorders = []
    for wid in range(workers):
        segment = Segment.create(cap, 1000)
        aggregator.add_segment(wid, segment)

        def announce(message: Announcement, wid: int = wid) -> None:
            message.apply_to(aggregator, wid)

        recorders.append(Recorder(segment, announce))
    rnd = random.Random(1)
    for i in range(20_000):
        recorders[i % workers].on_request("GET", f"/busy/{i % 5}", rnd.uniform(1, 500), 100)
    for i in range(names):
        failed = RuntimeError(f"404 for /u/{i:08x}") if i % 3 == 0 else None
        recorders[i % workers].on_request("GET", f"/u/{i:08x}", rnd.uniform(1, 50), 10, failed)
    print(f"recorded {names} names: {_memory(me)}")
    started = time.perf_counter()
    final = aggregator.snapshot(0.0, 20.0, 4, final=True)
    print(
        f"final snapshot {time.perf_counter() - started:.3f} s, {len(final.endpoints)} rows, "
        f"{len(final.errors)} error rows: {_memory(me)}"
    )
    started = time.perf_counter()
    kept = [aggregator.snapshot(0.0, 21.0 + i, 4) for i in range(3)]
    print(f"3 live snapshots kept {(time.perf_counter() - started) / 3:.3f} s each: {_memory(me)}")
    del kept
    directory = tempfile.mkdtemp(prefix="mpswarm-names-")
    summary = io.StringIO()
    timings = {}
    started = time.perf_counter()
    write_summary(final, summary)
    timings["summary"] = time.perf_counter() - started
    started = time.perf_counter()
    writer = CsvWriter(os.path.join(directory, "run"))
    writer.update(final, None, time.time())
    writer.close()
    timings["csv"] = time.perf_counter() - started
    started = time.perf_counter()
    with open(os.path.join(directory, "run.json"), "w", encoding="utf-8") as handle:
        write_json(final, handle, {})
    timings["json"] = time.perf_counter() - started
    started = time.perf_counter()
    with open(os.path.join(directory, "run.html"), "w", encoding="utf-8") as handle:
        write_html(final, handle, [], {})
    timings["html"] = time.perf_counter() - started
    lines = summary.getvalue().count("\n")
    print(
        " ".join(f"{k} {v:.3f} s" for k, v in timings.items())
        + f" (all {sum(timings.values()):.3f} s); summary {lines} lines: {_memory(me)}"
    )
    for segment in aggregator.segments:
        segment.close()


def run(seconds: int, users: int, cap: int) -> None:
    """The real CLI against the demo server, sampling the parent's RSS."""
    with tempfile.TemporaryDirectory(prefix="mpswarm-names-") as tmp:
        locustfile = Path(tmp, "runaway.py")
        locustfile.write_text(RUNAWAY)
        server = subprocess.Popen(
            [sys.executable, "-m", "mpswarm", "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip().rsplit(" ", 1)[-1]
            command = [
                sys.executable, "-m", "mpswarm", "-f", str(locustfile), "-H", url,
                "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
                "--processes", "2", "--max-endpoints", str(cap), "--only-summary",
                "--csv", f"{tmp}/run", "--json-file", f"{tmp}/run.json",
                "--html", f"{tmp}/run.html",
            ]  # fmt: skip
            started = time.monotonic()
            # into files: a summary of 20 000 lines would fill a pipe nobody reads yet
            with (
                Path(tmp, "stdout.txt").open("w") as out_file,
                Path(tmp, "stderr.txt").open("w") as err_file,
            ):
                proc = subprocess.Popen(command, cwd=ROOT, stdout=out_file, stderr=err_file)
            peak = {"VmRSS": 0, "RssAnon": 0, "RssShmem": 0}
            while proc.poll() is None:
                for key, kb in _status(proc.pid).items():
                    peak[key] = max(peak.get(key, 0), kb)
                time.sleep(0.05)
            proc.wait()
            elapsed = time.monotonic() - started
            out = Path(tmp, "stdout.txt").read_text()
            err = Path(tmp, "stderr.txt").read_text()
        finally:
            server.terminate()
            server.wait(timeout=10)
        report = json.loads(Path(tmp, "run.json").read_text())
        rows = report["endpoints"]
        warnings = [line for line in err.splitlines() if "distinct request names" in line]
        print(
            f"exit {proc.returncode}; parent peak RSS {peak['VmRSS'] / 1024:.0f} MB (its own "
            f"memory {peak['RssAnon'] / 1024:.0f} MB, segment pages it read "
            f"{peak['RssShmem'] / 1024:.0f} MB); {len(rows)} rows, "
            f"{report['total']['requests']} requests (rows sum "
            f"{sum(r['requests'] for r in rows)}), {len(report['errors'])} error rows; summary "
            f"{out.count(chr(10))} lines; {len(warnings)} warning line(s); "
            f"{elapsed - seconds:.1f} s past the run time"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["inproc", "run"])
    parser.add_argument("--names", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cap", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--users", type=int, default=4)
    args = parser.parse_args()
    if args.mode == "inproc":
        inproc(args.names, args.workers, args.cap)
    else:
        run(args.seconds, args.users, args.cap)


if __name__ == "__main__":
    main()
