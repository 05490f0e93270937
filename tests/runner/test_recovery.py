"""Supervision with real processes against the demo server: crashes, memory, saturation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.conftest import mpswarm_env, tagged_processes, wait_until_gone, write
from tests.runner.test_run import start_background, summary_counts, wait_for_workers

STEADY = """
from mpswarm import HttpUser, constant, task

class Steady(HttpUser):
    wait_time = constant(0.1)

    def on_start(self):
        self.client.get("/bytes/1", name="start")

    @task
    def t(self):
        self.client.get("/items/1", name="/items/[id]")
"""


def test_kill_9_of_a_worker_is_recovered(demo, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    lf = write(tmp_path / "steady.py", STEADY)
    proc = start_background(
        [
            "-f",
            str(lf),
            "-H",
            demo.url,
            "--headless",
            "-u",
            "6",
            "-r",
            "100",
            "-t",
            "6s",
            "--processes",
            "2",
            "--json-file",
            str(tmp_path / "r.json"),
        ],
        tag,
    )
    try:
        wait_for_workers(tag, 4)
        time.sleep(2.0)
        kill_a_worker(proc, tag)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "died (signal 9 (SIGKILL))" in stdout and "replaced; its 3 user(s) restored" in stdout
    served = demo.stats()
    # 6 users, then the killed worker's 3 again on the replacement
    assert served["paths"]["GET /bytes/1"] == 9
    ours = sum(requests for requests, _ in summary_counts(stdout).values())
    assert served["total"] - 3 <= ours <= served["total"]  # at most its in-flight requests
    report = json.loads((tmp_path / "r.json").read_text())
    [event] = report["recovery_events"]
    assert event["cause"].startswith("died") and event["action"].startswith("replaced")
    assert not wait_until_gone(tag)


SLOW = """
from mpswarm import HttpUser, constant, task

class Slow(HttpUser):
    wait_time = constant(0)

    @task
    def slow(self):
        self.client.get("/slow?ms=4000", name="slow")
"""


def test_requests_in_flight_in_a_killed_worker_are_counted_as_lost(demo, tmp_path: Path) -> None:
    """kill -9 of a worker whose 2 users each wait for a 4 s response: those 2 requests can
    never be recorded; they are counted as lost, and what the server counted is exactly what
    was recorded plus what was lost (before: 2 requests silently missing)."""
    tag = uuid.uuid4().hex
    lf = write(tmp_path / "slow.py", SLOW)
    args = ["-f", str(lf), "-H", demo.url, "--headless", "-u", "4", "-r", "100", "-t", "7s",
            "--processes", "2", "--json-file", str(tmp_path / "r.json")]  # fmt: skip
    proc = start_background(args, tag)
    try:
        wait_for_workers(tag, 4)
        deadline = time.monotonic() + 20  # every user's first request has reached the server
        while demo.stats()["paths"].get("GET /slow", 0) < 4:
            assert time.monotonic() < deadline, demo.stats()
            time.sleep(0.05)
        kill_a_worker(proc, tag)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads((tmp_path / "r.json").read_text())
    served = demo.stats()["paths"]["GET /slow"]
    ours = sum(requests for requests, _ in summary_counts(stdout).values())
    truth = f"served {served}, recorded {ours}, lost {report['lost_requests']}"
    assert report["lost_requests"] == 2, truth
    assert served == ours + report["lost_requests"], truth
    assert "Lost: 2 request(s) were in flight in workers that died or were killed" in stdout
    assert "ended with 2 request(s) in flight" in stderr, stderr
    assert not wait_until_gone(tag)


HOG = (
    STEADY
    + """
import os
import resource
from mpswarm import events

HELD = []

@events.test_start.add_listener
def take_every_descriptor(environment, **kw):
    # In the parent only: a listener that leaks descriptors until none is left (as 1 100
    # idle connections to the web UI once did), under a lowered limit to be quick about it.
    from mpswarm.runner.swarm import Swarm

    if isinstance(environment.runner, Swarm):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        try:
            while True:
                HELD.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
"""
)


def test_a_parent_out_of_descriptors_stops_with_exit_4_and_writes_its_reports(
    demo, tmp_path
) -> None:
    """A listener leaks every descriptor of the parent (as 1 100 idle connections to the web
    UI once did): supervision cannot go on, so the run stops as for any resource failure,
    exit 4 with the reason, and the descriptors held in reserve let it write its reports
    (before: errors in the log each second, the run went on unsupervised, exit 0)."""
    lf = write(tmp_path / "hog.py", HOG)
    report = tmp_path / "r.json"
    run = subprocess.run(
        [sys.executable, "-m", "mpswarm", "-f", str(lf), "-H", demo.url, "--headless", "-u",
         "4", "-r", "100", "-t", "20s", "--processes", "2", "--json-file", str(report)],
        capture_output=True, text=True, timeout=60, env=mpswarm_env(uuid.uuid4().hex),
    )  # fmt: skip
    assert run.returncode == 4, (run.stdout, run.stderr)
    assert "the 16 held in reserve are used now" in run.stderr, run.stderr
    stop = json.loads(report.read_text())["stop"]
    assert stop["kind"] == "descriptors" and stop["exit_code"] == 4, stop
    assert "ran out of file descriptors" in stop["message"] and stop["at"] < 10, stop
    assert "Traceback" not in run.stderr, run.stderr


def kill_a_worker(proc: subprocess.Popen[str], tag: str) -> None:
    """kill -9 of one worker of the run ``proc`` (not its fork server, a child of the parent)."""
    parent = proc.pid
    workers = [p for p in tagged_processes(tag) if p != parent and _ppid(p) != parent]
    os.kill(workers[0], signal.SIGKILL)


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


LEAKY = """
from mpswarm import HttpUser, constant, task

HOARD = []

class Leaky(HttpUser):
    wait_time = constant(0.05)

    @task
    def leak(self):
        self.client.get("/items/2", name="/items/[id]")
        HOARD.append(bytearray(2 * 1024 * 1024))  # 40 MB a second per user
"""


def test_worker_over_memory_limit_is_recycled_without_losing_counts(
    run_cli, demo, tmp_path: Path
) -> None:
    lf = write(tmp_path / "leaky.py", LEAKY)
    run = run_cli(
        "-f",
        str(lf),
        "-H",
        demo.url,
        "--headless",
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "6s",
        "--processes",
        "1",
        "--max-worker-memory",
        "150MB",
    )
    assert run.code == 0, run
    assert "over --max-worker-memory 150 MB" in run.stdout
    assert "recycled" in run.stdout
    ours = summary_counts(run.stdout)[("GET", "/items/[id]")][0]
    assert ours == demo.stats()["paths"]["GET /items/2"]  # nothing lost in the handover


BURNER = """
import time
from mpswarm import User, constant, task

class Burner(User):
    wait_time = constant(0)

    @task
    def burn(self):
        end = time.perf_counter() + 0.2  # blocks the event loop: lag and CPU both go up
        while time.perf_counter() < end:
            pass
"""


def test_saturation_is_flagged_with_figures(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "burner.py", BURNER)
    prefix = tmp_path / "sat"
    run = run_cli(
        "-f",
        str(lf),
        "--headless",
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "8s",
        "--processes",
        "1",
        "--csv",
        str(prefix),
        "--json-file",
        str(tmp_path / "r.json"),
        "--html",
        str(tmp_path / "r.html"),
    )
    assert run.code == 0, run
    assert "is saturated: CPU" in run.stderr and "event-loop lag p99" in run.stderr
    assert "The load generator was saturated" in run.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["saturation"]["share"] > 0.5
    assert report["saturation"]["worst_loop_lag_ms"] >= 150
    history = Path(f"{prefix}_stats_history.csv").read_text().splitlines()
    assert history[0].endswith(",Generator Saturated,Dropped Iterations")
    assert any(line.endswith(",1,0") for line in history[1:])
    assert "was saturated" in (tmp_path / "r.html").read_text()


CRASHER = """
import os
from mpswarm import User, task

class Crasher(User):
    def on_start(self):
        os._exit(7)

    @task
    def never(self):
        pass
"""


def test_crash_loop_stops_with_exit_code_4(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "crasher.py", CRASHER)
    run = run_cli(
        "-f",
        str(lf),
        "--headless",
        "-u",
        "1",
        "-r",
        "10",
        "-t",
        "60s",
        "--max-restarts",
        "2",
        "--json-file",
        str(tmp_path / "r.json"),
    )
    assert run.code == 4, run
    assert "crash loop" in run.stderr and "exit code 7" in run.stderr
    assert "not replaced: crash loop" in run.stdout
    assert json.loads((tmp_path / "r.json").read_text())["recovery_events"]


def test_total_memory_limit_stops_with_exit_code_4(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "steady.py", STEADY)
    run = run_cli(
        "-f",
        str(lf),
        "-H",
        demo.url,
        "--headless",
        "-u",
        "2",
        "-r",
        "10",
        "-t",
        "60s",
        "--max-memory",
        "10MB",
        "--json-file",
        str(tmp_path / "r.json"),
    )
    assert run.code == 4, run
    assert "over --max-memory 10 MB" in run.stderr
    assert json.loads((tmp_path / "r.json").read_text())["total"]["requests"] >= 0


RUNAWAY = """
import itertools
from mpswarm import HttpUser, constant, task

COUNTER = itertools.count()

class Runaway(HttpUser):
    wait_time = constant(0.02)

    @task
    def unique(self):
        self.client.get(f"/items/{next(COUNTER)}")  # no name=: a new name per request
"""


def test_runaway_names_fold_with_a_warning_naming_the_fix(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "runaway.py", RUNAWAY)
    run = run_cli(
        "-f",
        str(lf),
        "-H",
        demo.url,
        "--headless",
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "2s",
        "--max-endpoints",
        "5",
    )
    assert run.code == 0, run
    assert "more than 5 distinct request names" in run.stderr
    assert "GET /items/" in run.stderr and "name=" in run.stderr
    counts = summary_counts(run.stdout)
    assert len(counts) == 5  # 5 names; the rest is in the 'other names' row (method '*')
    assert "other names (more than 5 distinct)" in run.stdout
    total_line = next(line for line in run.stdout.splitlines() if "Aggregated" in line)
    assert int(total_line.split()[1]) == demo.stats()["total"]


ITERATIONS_CRASH = """
import os
from mpswarm import HttpUser, constant, task

class Counter(HttpUser):
    wait_time = constant(0.01)
    done = 0

    @task
    def hit(self):
        self.client.get("/items/1")
        Counter.done += 1
        marker = os.environ["CRASH_MARKER"]
        if self.environment.runner.worker_index == 0 and Counter.done == 15:
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(9)  # after its request: the iteration it took is complete
"""


def test_a_replaced_worker_runs_what_is_left_of_its_iterations(
    run_cli, demo, tmp_path: Path
) -> None:
    lf = write(tmp_path / "lf.py", ITERATIONS_CRASH)
    run = run_cli(
        "-f", str(lf), "-H", demo.url, "--headless", "--only-summary", "--processes", "2",
        "-u", "4", "-r", "100", "-i", "200", "-t", "60s",
        env={"CRASH_MARKER": str(tmp_path / "crashed")},
    )  # fmt: skip
    assert (tmp_path / "crashed").exists()
    assert "exit code 9" in run.stderr and "iterations are done" in run.stderr, run
    assert demo.stats()["total"] == 200  # not 200 minus what the dead worker had left
    # Requests in flight in the dead worker reached the server but never came back to it:
    # they are counted as lost.
    ours = int(run.stdout.split("Aggregated", 1)[1].split()[0])
    lost = int(run.stdout.split("Lost: ", 1)[1].split()[0]) if "Lost: " in run.stdout else 0
    assert ours + lost == 200, run


def test_iterations_are_exact_with_workers_recycled(run_cli, demo, tmp_path: Path) -> None:
    """-i 300 while the workers outgrow --max-worker-memory and are recycled: the server
    receives exactly 300 requests (a recycled worker's users finish their task, and its
    successor runs what is left of its share)."""
    lf = write(tmp_path / "leaky.py", LEAKY)
    run = run_cli(
        "-f", str(lf), "-H", demo.url, "--headless", "--only-summary", "--processes", "2",
        "-u", "4", "-r", "100", "-i", "300", "-t", "60s", "--max-worker-memory", "150MB",
    )  # fmt: skip
    assert run.code == 0, run
    assert "recycled" in run.stdout, run
    assert demo.stats()["paths"]["GET /items/2"] == 300, (demo.stats(), run.stdout)
    assert summary_counts(run.stdout)[("GET", "/items/[id]")][0] == 300


BLOCKER = """
import ctypes
from mpswarm import HttpUser, constant, task

class Blocker(HttpUser):
    wait_time = constant(0.05)

    @task
    def block(self):
        self.client.get("/")
        if self.environment.runner.worker_index == 0:
            # A C call gevent does not patch: the loop gets no turn and no CPU is used.
            ctypes.CDLL(None).sleep(30)
"""


def test_a_blocked_event_loop_is_seen_while_it_is_blocked(run_cli, demo, tmp_path: Path) -> None:
    """A task holds worker 0's loop past the run's end (no CPU: a CPU test would not see it,
    and the loop's own lag probe never runs again). The parent's watchdog reads the heartbeat
    in its segment: a live warning, the true lag in the reports, the run still ends."""
    lf = write(tmp_path / "blocker.py", BLOCKER)
    run = run_cli(
        "-f", str(lf), "-H", demo.url, "--headless", "-u", "2", "-r", "100", "-t", "5s",
        "--processes", "2", "--stop-timeout", "1", "--json-file", str(tmp_path / "r.json"),
        timeout=60,
    )  # fmt: skip
    assert "worker 0" in run.stderr and "its event loop is blocked" in run.stderr, run
    report = json.loads((tmp_path / "r.json").read_text())
    # Blocked from its first request to its kill at the end: at least the run's last 3 s.
    assert report["saturation"]["worst_loop_lag_ms"] >= 3000, report["saturation"]
    assert report["saturation"]["saturated_seconds"] >= 3, report["saturation"]
    assert "The load generator was saturated" in run.stdout, run


FORKER = """
import os
import subprocess
from mpswarm import HttpUser, constant, task

FORKED = []

class Forker(HttpUser):
    wait_time = constant(0.05)

    @task
    def fork_once(self):
        self.client.get("/")
        # A subprocess is fine (gevent runs it through os.fork, then exec).
        assert subprocess.run(["true"]).returncode == 0
        if self.environment.runner.worker_index == 0 and not FORKED:
            FORKED.append(os.fork())  # the copy goes on with the task, then the user loop
"""


def test_a_task_that_forks_its_worker_stops_the_run(run_cli, demo, tmp_path: Path) -> None:
    """os.fork() in a task: the copy would run the worker's users too (the server saw 145
    requests, the run reported 72). It exits before running a user again, the run stops
    with one clear error and exit 1, and the server's count is what was recorded."""
    lf = write(tmp_path / "forker.py", FORKER)
    started = time.monotonic()
    run = run_cli("-f", str(lf), "-H", demo.url, "--headless", "-u", "4", "-r", "100",
                  "-t", "20s", "--processes", "2", "--json-file", str(tmp_path / "r.json"),
                  timeout=60)  # fmt: skip
    took = time.monotonic() - started
    assert run.code == 1, run
    assert "a task forked its worker process" in run.stderr, run
    assert "FAILED" in run.stdout and took < 15, (took, run)
    report = json.loads((tmp_path / "r.json").read_text())
    served = demo.stats()["paths"]["GET /"]
    recorded = report["total"]["requests"]
    assert served == recorded + report["lost_requests"], (served, recorded)


NO_SECOND_START = """
import os
from mpswarm import HttpUser, constant, events, task

@events.init.add_listener
def _(environment, **kwargs):
    if os.path.exists({marker!r}):  # set once the first workers run: a replacement fails
        os._exit(3)

class Steady(HttpUser):
    wait_time = constant(0.1)

    @task
    def t(self):
        self.client.get("/items/1")
"""


def test_a_replacement_that_cannot_start_ends_the_run_with_exit_4(demo, tmp_path: Path) -> None:
    """A worker is killed and its replacement dies while starting: the run cannot go on with
    a worker short, so it stops at once, exit 4, with the reason (how the replacement ended)
    in the summary and the JSON, and is not PASSED (never silently short of its users)."""
    tag = uuid.uuid4().hex
    marker = tmp_path / "started"
    lf = write(tmp_path / "lf.py", NO_SECOND_START.format(marker=str(marker)))
    args = ["-f", str(lf), "-H", demo.url, "--headless", "-u", "4", "-r", "100", "-t", "60s",
            "--processes", "2", "--json-file", str(tmp_path / "r.json")]  # fmt: skip
    proc = start_background(args, tag)
    try:
        wait_for_workers(tag, 4)
        deadline = time.monotonic() + 20
        while demo.stats()["paths"].get("GET /items/1", 0) < 4:
            assert time.monotonic() < deadline, demo.stats()
            time.sleep(0.05)
        marker.touch()
        killed = time.monotonic()
        kill_a_worker(proc, tag)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, (stdout, stderr)
    assert time.monotonic() - killed < 30  # not the 60 s asked: it stopped at once
    stop = json.loads((tmp_path / "r.json").read_text())["stop"]
    assert stop["kind"] == "workers_lost" and stop["exit_code"] == 4, stop
    assert "could not be replaced: the replacement of worker" in stop["message"], stop
    assert stop["message"].endswith("did not start (exit code 3)"), stop
    assert f"FAILED: {stop['message']}" in stdout and "PASSED" not in stdout, stdout
    assert not wait_until_gone(tag)
