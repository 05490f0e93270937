"""How a run ends, with real processes: a lost fork server, a crash loop, the stop reason in
the JSON report, stopping against a server that never finishes a body, and nothing recycled
once the stop began (project issue #15)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from tests.conftest import tagged_processes, wait_until_gone, write
from tests.runner.test_run import start_background, summary_counts, wait_for_workers

STEADY = """
from mpswarm import HttpUser, constant, task

class Steady(HttpUser):
    wait_time = constant(0.1)

    @task
    def t(self):
        self.client.get("/items/1", name="/items/[id]")
"""

# Words that claim a worker was brought back ("replaced; its 2 user(s) restored", "recycled:
# a fresh worker takes over its users"), unless a negation comes first in the same clause
# ("not replaced: crash loop", "the workers could not be restored").
RECOVERY_WORDS = r"\b(replaced|restored|recycled|takes over)\b"
NEGATED = re.compile(r"\b(not|no|never|cannot)\b[^;:.]*" + RECOVERY_WORDS)


def claims_recovery(text: str) -> bool:
    """True when ``text`` (a log line, a recovery action) says a worker was brought back."""
    return any(
        re.search(RECOVERY_WORDS, clause) and not NEGATED.search(clause)
        for clause in re.split(r"[;:.]", text)
    )


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _fork_server(tag: str, parent: int) -> tuple[int, list[int]]:
    """(fork server pid, its workers): the parent's child whose children are the workers."""
    processes = tagged_processes(tag)
    for pid in processes:
        if _ppid(pid) == parent:
            children = [p for p in processes if _ppid(p) == pid]
            if children:
                return pid, children
    raise AssertionError(f"no fork server with workers under {parent}: {processes}")


def _wait_for(what: Any, timeout: float, step: float = 0.05) -> bool:
    """Poll ``what()`` until it is true or ``timeout`` seconds passed; its last answer."""
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            return bool(what())
        time.sleep(step)
    return True


def _stop(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# -- 1. kill -9 of the fork server ---------------------------------------------------------------

# Load must be back within 2 s of the kill (the requirement); 2 s more for a shared
# 2-core machine, where forking a fresh fork server and its workers may wait for a core.
RESUME_WITHIN_S = 4.0


def test_kill_9_of_the_fork_server_restores_load_or_stops_with_exit_4(demo, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    lf = write(tmp_path / "steady.py", STEADY)
    args = ["-f", str(lf), "-H", demo.url, "--headless", "-u", "4", "-r", "100", "-t", "8s",
            "--processes", "2", "--json-file", str(tmp_path / "r.json")]  # fmt: skip
    proc = start_background(args, tag)
    try:
        wait_for_workers(tag, 4)  # parent, fork server, 2 workers
        assert _wait_for(lambda: demo.stats()["total"] >= 20, 20), "no load before the kill"
        server, workers = _fork_server(tag, proc.pid)
        os.kill(server, signal.SIGKILL)
        # The kernel kills the workers with the fork server: once they are gone, no request of
        # theirs can still arrive, and what the server counted is the load before the kill.
        assert _wait_for(lambda: not any(_alive(p) for p in workers), 5), "workers survived"
        before = demo.stats()["total"]
        resumed = _wait_for(
            lambda: demo.stats()["total"] > before or proc.poll() is not None, RESUME_WITHIN_S
        ) and (demo.stats()["total"] > before)
        stdout, stderr = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    after = demo.stats()["total"]
    output = stdout + stderr
    problems = []
    if resumed:
        if proc.returncode != 0:
            problems.append(f"load resumed, but the run exited {proc.returncode}")
    else:
        if proc.returncode != 4:
            problems.append(
                f"no request reached the server within {RESUME_WITHIN_S} s of the kill "
                f"({before} before, {after} at the end), yet the run exited {proc.returncode}"
            )
        if not any("fork server" in line.lower() for line in stderr.splitlines()):
            problems.append("no line on stderr names the cause (the fork server died)")
        claims = [line for line in output.splitlines() if claims_recovery(line)]
        if claims:
            problems.append(f"claims workers were restored although no load came back: {claims}")
    if "Traceback" in output:
        problems.append("a Traceback in the output")
    assert not problems, "\n".join(problems) + f"\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
    if resumed:
        assert after > before + 4, "load came back but did not go on"
    assert not wait_until_gone(tag)


# -- 2. a crash loop is a failed run in every report ---------------------------------------------

CRASHER = """
import os
from mpswarm import User, task

class Crasher(User):
    def on_start(self):
        os._exit(3)

    @task
    def never(self):
        pass
"""


def test_crash_loop_is_exit_4_with_its_stop_in_json_and_a_junit_failure(
    run_cli, tmp_path: Path
) -> None:
    lf = write(tmp_path / "crasher.py", CRASHER)
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    run = run_cli(
        "-f", str(lf), "--headless", "-u", "1", "-r", "10", "-t", "60s", "--max-restarts", "2",
        "--json-file", str(report), "--junit", str(junit),
    )  # fmt: skip
    assert run.code == 4, run
    stop = json.loads(report.read_text()).get("stop")
    root = ElementTree.fromstring(junit.read_bytes())  # <testsuite>, or <testsuites> around it
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    failures = sum(int(suite.get("failures", "0")) for suite in suites)
    problems = []
    if not isinstance(stop, dict):
        problems.append(f"no top-level stop object in the JSON report: {stop!r}")
    elif not (
        stop.get("kind") == "crash_loop"
        and stop.get("exit_code") == 4
        and "crash loop" in str(stop.get("message"))
        and isinstance(stop.get("at"), (int, float))
        and 0 <= stop["at"] < 60
    ):
        problems.append(f"the JSON's stop is not a crash loop's: {stop}")
    if failures < 1:
        problems.append(f"the JUnit file has no failure: {junit.read_text()}")
    assert not problems, "\n".join(problems)


# -- 3. every run's JSON says why it ended -------------------------------------------------------


def _stop_of(report: Path) -> dict[str, Any]:
    data = json.loads(report.read_text())
    stop = data.get("stop")
    assert isinstance(stop, dict), f"no top-level stop object; the JSON's keys: {sorted(data)}"
    assert set(stop) >= {"kind", "message", "exit_code", "at"}, stop
    return stop


def test_time_limit_run_has_stop_time_limit(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "steady.py", STEADY)
    report = tmp_path / "r.json"
    run = run_cli("-f", str(lf), "-H", demo.url, "--headless", "-u", "2", "-r", "100",
                  "-t", "2s", "--json-file", str(report))  # fmt: skip
    assert run.code == 0, run
    stop = _stop_of(report)
    assert stop["kind"] == "time_limit" and stop["exit_code"] == 0, stop
    assert 1.5 <= stop["at"] <= 10, stop  # requested when the 2 s ran out


def test_iterations_run_has_stop_iterations_done(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "steady.py", STEADY)
    report = tmp_path / "r.json"
    run = run_cli("-f", str(lf), "-H", demo.url, "--headless", "-u", "2", "-r", "100",
                  "-i", "20", "-t", "60s", "--json-file", str(report))  # fmt: skip
    assert run.code == 0, run
    assert demo.stats()["total"] == 20
    stop = _stop_of(report)
    assert stop["kind"] == "iterations_done" and stop["exit_code"] == 0, stop


def test_ctrl_c_run_has_stop_signal(demo, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    lf = write(tmp_path / "steady.py", STEADY)
    report = tmp_path / "r.json"
    args = ["-f", str(lf), "-H", demo.url, "--headless", "-u", "2", "-r", "100",
            "--processes", "2", "--json-file", str(report)]  # fmt: skip
    proc = start_background(args, tag)
    try:
        wait_for_workers(tag, 4)
        assert _wait_for(lambda: demo.stats()["total"] >= 5, 20), "no load before Ctrl-C"
        proc.send_signal(signal.SIGINT)
        _, stderr = _stop(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr  # no -t: Ctrl-C is its planned end
    stop = _stop_of(report)
    assert stop["kind"] == "signal", stop
    assert stop["exit_code"] == proc.returncode, stop
    assert "SIGINT" in stop["message"], stop
    assert not wait_until_gone(tag)


# -- 4. a -t run ends on time against a server that never finishes a body ------------------------


class TrickleServer:
    """Answers every request with ``Content-Length: 10000000``, then 16 bytes every 100 ms.

    The body never ends while the client reads (160 bytes a second of 10 MB): no read ever
    times out and no size cap is reached. Each connection and the server itself stop after
    ``lifetime_s`` whatever happens, and at ``close()``.
    """

    HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10000000\r\n\r\n"

    def __init__(self, lifetime_s: float = 60.0) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.deadline = time.monotonic() + lifetime_s
        self.closing = threading.Event()
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _over(self) -> bool:
        return self.closing.is_set() or time.monotonic() > self.deadline

    def _accept(self) -> None:
        while not self._over() and len(self._threads) < 500:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._trickle, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(2)
                conn.recv(65536)
                conn.sendall(self.HEAD)
                while not self.closing.wait(0.1) and not self._over():
                    conn.sendall(b"x" * 16)
            except OSError:
                pass  # the client went away

    def close(self) -> None:
        self.closing.set()
        self.sock.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)


TRICKLE_USERS = """
from mpswarm import FastHttpUser, HttpUser, constant, task

class Fast(FastHttpUser):
    wait_time = constant(0.1)

    @task
    def big(self):
        self.client.get("/big")

class Slow(HttpUser):
    wait_time = constant(0.1)

    @task
    def big(self):
        self.client.get("/big")
"""

RUN_S = 5
STOP_TIMEOUT_S = 1
# docs/running.md (How it runs): the whole stop, a request in flight included, takes at most
# --stop-timeout + 5 s.
STOP_BOUND_S = 5
# Start-up and shut-down around -t: a trivial `-t 1s --processes 2` run took 1.9-2.6 s here
# (0.9-1.6 s of overhead), and 4.5 s once in a full suite on a slow moment of this shared
# machine; 5 s leaves room for that. A stop the trickling body held would take its 60 s.
STARTUP_ALLOWANCE_S = 5


@pytest.mark.parametrize("user_class", ["Fast", "Slow"], ids=["FastHttpUser", "HttpUser"])
def test_time_limited_run_ends_on_time_against_a_trickling_body(
    run_cli, tmp_path: Path, user_class: str
) -> None:
    lf = write(tmp_path / "trickle.py", TRICKLE_USERS)
    server = TrickleServer()
    try:
        started = time.monotonic()
        run = run_cli(
            "-f", str(lf), user_class, "-H", server.url, "--headless", "--only-summary",
            "-u", "4", "-r", "100", "-t", f"{RUN_S}s", "--stop-timeout", str(STOP_TIMEOUT_S),
            "--processes", "2", timeout=120,
        )  # fmt: skip
        wall = time.monotonic() - started
    finally:
        server.close()
    assert server.connections >= 4, run  # every user was reading a body at the stop
    bound = RUN_S + STOP_TIMEOUT_S + STOP_BOUND_S + STARTUP_ALLOWANCE_S
    assert wall <= bound, f"the run took {wall:.1f} s (at most {bound} s)\n{run}"
    assert run.code in (0, 1), run  # interrupted requests may count as failures
    assert "Traceback" not in run.stderr, run


# -- 5. nothing is recycled once the stop began --------------------------------------------------

HOG = """
import os
import gevent
from mpswarm import HttpUser, constant, task

class Hog(HttpUser):
    wait_time = constant(0.1)

    @task
    def t(self):
        self.client.get("/items/1")

    def on_stop(self):
        # Over --max-worker-memory only now, in the stop phase: 300 MB, touched so that it
        # is resident, held while the supervisor samples (every second).
        self.hog = bytearray(300 * 1024 * 1024)
        self.hog[::4096] = b"x" * len(range(0, len(self.hog), 4096))
        with open("/proc/self/status") as status:
            rss = next(line for line in status if line.startswith("VmRSS:"))
        with open(os.environ["HOG_MARKER"], "w") as marker:
            marker.write(rss)
        gevent.sleep(2.5)
"""


def test_no_worker_is_recycled_after_the_stop_began(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "hog.py", HOG)
    marker, report = tmp_path / "hogged", tmp_path / "r.json"
    run = run_cli(
        "-f", str(lf), "-H", demo.url, "--headless", "-u", "1", "-r", "100", "-t", "3s",
        "--stop-timeout", "3", "--processes", "1", "--max-worker-memory", "200MB",
        "--json-file", str(report), env={"HOG_MARKER": str(marker)},
    )  # fmt: skip
    # The scenario happened: the worker went over the limit in on_stop, after the stop began.
    assert marker.exists(), run
    rss_kb = int(marker.read_text().split()[1])
    assert rss_kb > 200 * 1024, marker.read_text()
    events = json.loads(report.read_text())["recovery_events"]
    claimed = [e for e in events if claims_recovery(e["action"])]
    table = run.stdout.split("Recovery events:", 1)[1] if "Recovery events:" in run.stdout else ""
    claimed_lines = [line for line in table.splitlines() if claims_recovery(line)]
    problems = []
    if "Traceback" in run.stdout + run.stderr:
        problems.append("a Traceback in the output")
    if claimed:
        problems.append(f"recovery events after the stop began (only on_stop hogs): {claimed}")
    if claimed_lines:
        problems.append(f"the summary lists them: {claimed_lines}")
    assert not problems, "\n".join(problems) + f"\n{run}"
    assert run.code == 0, run
    assert summary_counts(run.stdout)[("GET", "/items/1")][0] == demo.stats()["total"]
