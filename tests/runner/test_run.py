"""Whole runs of the real CLI with two worker processes against real loopback servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, mpswarm_env, shm_entries, tagged_processes, wait_until_gone, write


def summary_counts(stdout: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(method, name) -> (requests, failures) from the summary table."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] in ("GET", "POST", "PUT", "DELETE") and parts[2].isdigit():
            rows[(parts[0], parts[1])] = (int(parts[2]), int(parts[3].split("(")[0]))
    return rows


def test_shop_example_counts_equal_server_counts(run_cli, demo) -> None:
    run = run_cli(
        "-f",
        "examples/shop.py",
        "-H",
        demo.url,
        "--headless",
        "-u",
        "30",
        "-r",
        "30",
        "-t",
        "4s",
        "--processes",
        "2",
    )
    assert run.code == 0, run
    served = demo.stats()["routes"]
    ours = summary_counts(run.stdout)
    assert ours[("POST", "/login")][0] == served["POST /login"] == 30
    assert ours[("GET", "/items/[id]")][0] == served["GET /items/<id>"]
    assert ours[("GET", "/")][0] == served["GET /"]
    assert ours[("POST", "/cart")][0] == served["POST /cart"]
    assert ours[("GET", "/cart")][0] == served["GET /cart"]
    total = sum(requests for requests, _ in ours.values())
    assert total == demo.stats()["total"] > 100
    assert all(failures == 0 for _, failures in ours.values())
    assert "Aggregated" in run.stdout and "p99.9" in run.stdout


WEIGHTED = """
from mpswarm import HttpUser, constant, task

class Base(HttpUser):
    abstract = True
    wait_time = constant(0.5)
    marker = 0
    def on_start(self):
        self.client.get(f"/bytes/{self.marker}", name="start")
    @task
    def t(self):
        self.client.get("/")

class Heavy(Base):
    weight = 3
    marker = 1

class Light(Base):
    weight = 1
    marker = 2

class Solo(Base):
    fixed_count = 1
    marker = 3
"""


def test_class_weights_and_fixed_count_across_workers(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "weighted.py", WEIGHTED)
    run = run_cli(
        "-f",
        str(lf),
        "-H",
        demo.url,
        "--headless",
        "-u",
        "10",
        "-r",
        "50",
        "-t",
        "2s",
        "--processes",
        "2",
    )
    assert run.code == 0, run
    paths = demo.stats()["paths"]
    # 1 fixed, then 9 split 3:1 -> 6.75 / 2.25 -> 7 / 2 (nearest user)
    assert paths.get("GET /bytes/1") == 7
    assert paths.get("GET /bytes/2") == 2
    assert paths.get("GET /bytes/3") == 1


TAGGED = """
from mpswarm import HttpUser, tag, task

class Tagged(HttpUser):
    @tag("read")
    @task
    def read(self):
        self.client.get("/items/1")

    @tag("write")
    @task
    def write(self):
        self.client.post("/cart", data={"item_id": 1})

    @task
    def untagged(self):
        self.client.get("/")
"""


@pytest.mark.parametrize(
    ("args", "present", "absent"),
    [
        (["-T", "read"], {"GET /items/<id>"}, {"POST /cart", "GET /"}),
        (["-E", "write"], {"GET /items/<id>", "GET /"}, {"POST /cart"}),
        (
            ["--tags", "read,write", "--exclude-tags", "write"],
            {"GET /items/<id>"},
            {"POST /cart", "GET /"},
        ),
        # Locust's spelling: several tags after one flag.
        (["-T", "read", "write", "-E", "write"], {"GET /items/<id>"}, {"POST /cart", "GET /"}),
    ],
)
def test_tags(run_cli, demo, tmp_path: Path, args, present, absent) -> None:
    lf = write(tmp_path / "tagged.py", TAGGED)
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
        "1s",
        "--processes",
        "2",
        *args,
    )
    routes = demo.stats()["routes"]
    assert present <= set(routes), (routes, run)
    assert not absent & set(routes), (routes, run)


FAILING = """
from mpswarm import HttpUser, constant, task

class Failing(HttpUser):
    wait_time = constant(0.05)
    @task
    def fail(self):
        self.client.get("/status/500")
"""


def test_failed_requests_exit_code_and_errors_table(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "failing.py", FAILING)
    args = ["-f", str(lf), "-H", demo.url, "--headless", "-u", "2", "-t", "1s", "-r", "10"]
    run = run_cli(*args, "--processes", "2")
    assert run.code == 1, run
    assert "500 Server Error: Internal Server Error for url: /status/500" in run.stdout
    requests, failures = summary_counts(run.stdout)[("GET", "/status/500")]
    assert requests == failures == demo.stats()["paths"]["GET /status/500"]
    overridden = run_cli(*args, "--exit-code-on-error", "0")
    assert overridden.code == 0, overridden


RAISING = """
from mpswarm import User, constant, task

class Raising(User):
    wait_time = constant(0.1)
    @task
    def boom(self):
        raise KeyError("missing-thing")
"""


def test_exception_in_user_code(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "raising.py", RAISING)
    run = run_cli(
        "-f", str(lf), "--headless", "-u", "2", "-r", "10", "-t", "1s", "--processes", "2"
    )
    assert run.code == 1, run
    assert "Exceptions in user code" in run.stdout
    assert "KeyError: 'missing-thing'" in run.stdout
    assert "raising.py" in run.stdout  # where it was raised
    assert run.stderr.count("Traceback") <= 2  # logged once per worker, then counted


def test_unreachable_target_is_a_failure_not_a_crash(run_cli, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lf = write(tmp_path / "failing.py", FAILING)
    run = run_cli(
        "-f",
        str(lf),
        "-H",
        f"http://127.0.0.1:{port}",
        "--headless",
        "-u",
        "2",
        "-r",
        "10",
        "-t",
        "1s",
    )
    assert run.code == 1, run
    assert "Connection refused" in run.stdout
    assert "Traceback" not in run.stderr


class GarbageServer:
    """Answers every connection with bytes that are not HTTP, then closes."""

    def __init__(self, reply: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.reply = reply
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    "reply",
    [b"this is not http\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", b""],
    ids=["garbage", "truncated", "empty"],
)
def test_misbehaving_server_is_a_failure_not_a_crash(run_cli, tmp_path: Path, reply) -> None:
    server = GarbageServer(reply)
    try:
        lf = write(tmp_path / "failing.py", FAILING)
        run = run_cli(
            "-f", str(lf), "-H", server.url, "--headless", "-u", "1", "-r", "10", "-t", "1s"
        )
    finally:
        server.close()
    assert run.code == 1, run
    assert "Errors:" in run.stdout
    assert "Traceback" not in run.stderr
    requests, failures = summary_counts(run.stdout)[("GET", "/status/500")]
    assert requests == failures >= 1


SLOW = """
from mpswarm import HttpUser, constant, task

class Slow(HttpUser):
    wait_time = constant(0)
    @task
    def slow(self):
        self.client.get("/slow?ms=1500", name="slow")
"""


def test_stop_timeout_lets_requests_finish(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "slow.py", SLOW)
    run = run_cli(
        "-f",
        str(lf),
        "-H",
        demo.url,
        "--headless",
        "-u",
        "4",
        "-r",
        "100",
        "-t",
        "1s",
        "-s",
        "5s",
        "--processes",
        "2",
    )
    assert run.code == 0, run
    requests, failures = summary_counts(run.stdout)[("GET", "slow")]
    assert requests == demo.stats()["paths"]["GET /slow"] == 4
    assert failures == 0


def test_stop_without_timeout_still_counts_requests_in_flight(run_cli, demo, tmp_path) -> None:
    lf = write(tmp_path / "slow.py", SLOW)
    run = run_cli(
        "-f",
        str(lf),
        "-H",
        demo.url,
        "--headless",
        "-u",
        "4",
        "-r",
        "100",
        "-t",
        "1s",
        "--processes",
        "2",
    )
    assert run.code == 0, run
    requests, _ = summary_counts(run.stdout)[("GET", "slow")]
    assert requests == demo.stats()["paths"]["GET /slow"] == 4


def start_background(args: list[str], tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mpswarm", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=mpswarm_env(tag),
        cwd=ROOT,
    )


def wait_for_workers(tag: str, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(tagged_processes(tag)) < count:  # parent + fork server + workers
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("signum", "run_time"),
    [
        (signal.SIGINT, None),
        (signal.SIGTERM, None),
        (signal.SIGINT, "60s"),
        (signal.SIGTERM, "60s"),
    ],
)
def test_signal_stops_gracefully_with_exact_counts(demo, signum, run_time) -> None:
    """A run with no end of its own ends with Ctrl-C as planned (its results decide, as under
    Locust); one a signal cuts short of its -t is never PASSED (before: exit 0, PASSED)."""
    tag = uuid.uuid4().hex
    args = [
        "-f",
        "examples/shop.py",
        "-H",
        demo.url,
        "--headless",
        "-u",
        "10",
        "-r",
        "50",
        "--processes",
        "2",
        *(["-t", run_time] if run_time else []),
    ]
    proc = start_background(args, tag)
    try:
        wait_for_workers(tag, 4)
        time.sleep(1.5)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    if run_time is None:
        assert proc.returncode == 0, stderr
        assert stdout.rstrip().endswith("PASSED"), stdout
    else:  # cut short: never PASSED, the exit code a shell gives that signal (130, 143)
        assert proc.returncode == 128 + signum, stderr
        assert stdout.rstrip().endswith(f"FAILED: interrupted (received {signum.name})"), stdout
    assert "Aggregated" in stdout
    total = sum(requests for requests, _ in summary_counts(stdout).values())
    assert total == demo.stats()["total"] > 0
    assert not wait_until_gone(tag)


HANGING = """
from mpswarm import HttpUser, constant, task

class Hanging(HttpUser):
    wait_time = constant(0)

    @task
    def hang(self):
        self.client.get("/slow?ms=20000", name="slow")
"""


def test_a_second_signal_stops_at_once_and_never_passes(demo, tmp_path) -> None:
    """Ctrl-C twice with every request hanging, in a run with no end of its own: the workers
    are killed at once, their requests in flight counted as lost, and the run is cut short:
    exit 130, never PASSED (before: exit 0, PASSED, 4 requests missing without a word)."""
    tag = uuid.uuid4().hex
    lf = write(tmp_path / "hanging.py", HANGING)
    args = ["-f", str(lf), "-H", demo.url, "--headless", "-u", "4", "-r", "100", "--processes",
            "2", "--stop-timeout", "30", "--json-file", str(tmp_path / "r.json")]  # fmt: skip
    proc = start_background(args, tag)
    try:
        wait_for_workers(tag, 4)
        deadline = time.monotonic() + 20
        while demo.stats()["paths"].get("GET /slow", 0) < 4:
            assert time.monotonic() < deadline, demo.stats()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stdout.rstrip().endswith("FAILED: interrupted (received SIGINT)"), stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["lost_requests"] == 4 == demo.stats()["paths"]["GET /slow"], report
    assert not wait_until_gone(tag)


def test_kill_9_of_parent_leaves_nothing(demo) -> None:
    tag = uuid.uuid4().hex
    before = shm_entries()
    args = [
        "-f",
        "examples/shop.py",
        "-H",
        demo.url,
        "--headless",
        "-u",
        "10",
        "-r",
        "50",
        "--processes",
        "2",
        "-t",
        "60s",
    ]
    proc = start_background(args, tag)
    try:
        wait_for_workers(tag, 4)
        time.sleep(0.5)
        proc.kill()
        proc.communicate(timeout=5)
        survivors = wait_until_gone(tag, timeout=2.0)
    finally:
        for pid in tagged_processes(tag):
            os.kill(pid, signal.SIGKILL)
    assert survivors == []
    assert shm_entries() <= before
    # No traffic after the parent died.
    settled = demo.stats()["total"]
    time.sleep(0.5)
    assert demo.stats()["total"] == settled


SLOW_WITH_ON_STOP = """
from mpswarm import HttpUser, constant, task

class Slow(HttpUser):
    wait_time = constant(0)
    def on_stop(self):
        self.client.get("/bytes/2", name="stop")
    @task
    def slow(self):
        self.client.get("/slow?ms=1500", name="slow")
"""


def test_on_stop_requests_go_out_after_a_stop_in_a_request(run_cli, demo, tmp_path) -> None:
    """As under Locust: a user stopped in a request (no stop timeout) still runs on_stop, and
    what on_stop sends is sent (a logout, a cleanup), not refused as a new request."""
    lf = write(tmp_path / "slow.py", SLOW_WITH_ON_STOP)
    run = run_cli(
        "-f", str(lf), "-H", demo.url, "--headless", "-u", "4", "-r", "100", "-t", "1s",
        "--processes", "2",
    )  # fmt: skip
    assert run.code == 0, run
    paths = demo.stats()["paths"]
    assert paths["GET /slow"] == summary_counts(run.stdout)[("GET", "slow")][0] == 4
    assert paths["GET /bytes/2"] == summary_counts(run.stdout)[("GET", "stop")][0] == 4


BREAKPOINT_SHAPE = """
import sys
from mpswarm import HttpUser, LoadTestShape, constant, task

class Quick(HttpUser):
    wait_time = constant(0.2)
    @task
    def index(self):
        self.client.get("/bytes/2")

class Breakpoint(LoadTestShape):
    def tick(self):
        if self.get_run_time() > 3:
            return None
        return (sys.maxsize, 5)
"""


def test_a_shape_asking_for_sys_maxsize_users_ramps_at_its_spawn_rate(
    run_cli, demo, tmp_path
) -> None:
    """A breakpoint test's shape: users start at the spawn rate until the shape ends, as under
    Locust; before, a worker spun building a spawn list of sys.maxsize entries, started no
    user and the run PASSED."""
    lf = write(tmp_path / "breakpoint.py", BREAKPOINT_SHAPE)
    began = time.monotonic()
    run = run_cli("-f", str(lf), "-H", demo.url, "--headless", "--processes", "2", timeout=60)
    wall = time.monotonic() - began
    assert run.code == 0, run
    peak = int(run.stdout.split("Users: peak ")[1].split(",")[0])
    assert 5 <= peak <= 5 * (wall + 1), (peak, wall, run.stdout)
    recorded = summary_counts(run.stdout)[("GET", "/bytes/2")][0]
    assert recorded == demo.stats()["paths"]["GET /bytes/2"] > 0


STEERED = """
import time
import gevent
from mpswarm import HttpUser, constant, events, task

class Steered(HttpUser):
    wait_time = constant(0.2)
    def on_start(self):
        self.client.get("/bytes/1", name="start")
    def on_stop(self):
        self.client.get("/bytes/2", name="stop")
    @task
    def t(self):
        self.client.get("/")

@events.init.add_listener
def steer_from_the_parent(environment, **kwargs):
    runner = environment.runner
    if not hasattr(runner, "workers"):
        return  # a worker process
    def reach(users):
        # Wait for the workers to report the users running, not for a fixed time: a busy
        # machine may start a batch late.
        deadline = time.monotonic() + 30
        while runner.user_count != users and time.monotonic() < deadline:
            gevent.sleep(0.05)
    def steer():
        reach(4)
        runner.set_target(10, 100)
        reach(10)
        runner.set_target(3, 100)
        reach(3)
        runner.quit()
    gevent.spawn(steer)
"""


def test_new_targets_mid_run_start_and_stop_users(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "steered.py", STEERED)
    run = run_cli(
        "-f",
        str(lf),
        "-H",
        demo.url,
        "--headless",
        "-u",
        "4",
        "-r",
        "100",
        "-t",
        "60s",  # a bound only: the locustfile quits once the users went 4 -> 10 -> 3
        "--processes",
        "2",
    )
    assert run.code == 0, run
    assert "runner.quit() called" in run.stdout + run.stderr
    paths = demo.stats()["paths"]
    assert paths["GET /bytes/1"] == 10  # 4, then 6 more
    assert paths["GET /bytes/2"] == 10  # 7 retired at 3 users, 3 at the end
    assert summary_counts(run.stdout)[("GET", "stop")][0] == 10


CRASHING = """
import os
from mpswarm import HttpUser, constant, task

class Steady(HttpUser):
    wait_time = constant(0.1)
    @task
    def t(self):
        self.client.get("/")

class Crasher(HttpUser):
    fixed_count = 1
    def on_start(self):
        for _ in range(3):
            self.client.get("/bytes/5", name="before-crash")
        marker = os.environ["CRASH_MARKER"]
        if not os.path.exists(marker):  # crash once; the replacement worker carries on
            open(marker, "w").close()
            os._exit(3)
    @task
    def never(self):
        pass
"""


def test_crashed_worker_keeps_its_recorded_requests(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "crashing.py", CRASHING)
    run = run_cli(
        "-f",
        str(lf),
        "-H",
        demo.url,
        "--headless",
        "-u",
        "4",
        "-r",
        "100",
        "-t",
        "3s",
        "--processes",
        "2",
        env={"CRASH_MARKER": str(tmp_path / "crashed")},
    )
    assert run.code == 0, run
    assert "died (exit code 3)" in run.stdout and "replaced" in run.stdout
    ours = summary_counts(run.stdout)
    # 3 recorded by the worker that died, 3 by its replacement: none lost
    assert ours[("GET", "before-crash")][0] == 6 == demo.stats()["paths"]["GET /bytes/5"]
    total = sum(requests for requests, _ in ours.values())
    assert demo.stats()["total"] - 2 <= total <= demo.stats()["total"]  # in flight at the crash
