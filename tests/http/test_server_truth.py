"""Server truth: the real command line (``mpswarm -f locustfile.py --headless ...``) against real
servers on loopback, and what mpswarm recorded compared with what the server says happened.

HTTP/1.1 correctness (RFC 9110 / 9112) for both clients: connections the server closes (nginx's
``keepalive_requests`` and ``keepalive_timeout``, ``Connection: close``, HTTP/1.0, bodies
delimited by the close, silent closes after any response) never fail a request and never lose
or add one; 1xx interim responses are skipped, never recorded, and a flood of them or an
unasked ``101`` is one clean failure. Bounded resources: a worker's RSS, sampled from here with
psutil while the load runs, stays within a bound of its idle size against endless and
gzip-bomb bodies, and its file descriptors stay bounded when every response redirects to a new
origin. Credentials never follow a redirect to another origin.

Every assertion message carries the numbers (recorded against served, RSS, descriptors).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from mpswarm.event import EventHook
from mpswarm.http.fast import FastHttpSession
from mpswarm.http.session import HttpSession
from tests.conftest import ROOT, mpswarm_env, shm_entries, wait_until_gone
from tests.http._nginx import Nginx, open_nginx
from tests.http._truth_servers import (
    GzipBomb,
    Request,
    TruthServer,
    endless_chunked,
    endless_close_delimited,
    response,
)

MB = 1000 * 1000
MiB = 1024 * 1024
CLIENTS = ["HttpUser", "FastHttpUser"]


# -- running the CLI -------------------------------------------------------------------------------


class Report:
    """A finished run: exit code, output and its JSON report."""

    def __init__(self, code: int, stdout: str, stderr: str, data: dict[str, Any]) -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        self.data = data

    @property
    def requests(self) -> int:
        return int(self.data["total"]["requests"])

    @property
    def failures(self) -> int:
        return int(self.data["total"]["failures"])

    def endpoint(self, name: str) -> dict[str, Any]:
        for row in self.data["endpoints"]:
            if row["name"] == name:
                return dict(row)
        return {"requests": 0, "failures": 0}

    def errors(self, name: str | None = None) -> dict[str, int]:
        """Error text -> occurrences (of endpoint ``name``, or of all)."""
        found: dict[str, int] = {}
        for row in self.data["errors"]:
            if name is None or row["name"] == name:
                found[row["error"]] = found.get(row["error"], 0) + row["occurrences"]
        return found

    def exceptions(self) -> list[str]:
        """User code that raised: ``count x message``."""
        return [f"{row['count']} x {row['message']}" for row in self.data["exceptions"]]

    def tail(self) -> str:
        return f"exit {self.code}; stderr: {self.stderr[-1500:]}"


class Swarm:
    """One ``python -m mpswarm`` run in progress, its output in files."""

    def __init__(self, tag: str, folder: Path, args: list[str]) -> None:
        self.folder = folder
        self.report_path = folder / "report.json"
        self._out = open(folder / "stdout.txt", "w+")  # noqa: SIM115 - closed in finish()
        self._err = open(folder / "stderr.txt", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mpswarm", *args, "--json-file", str(self.report_path)],
            stdout=self._out,
            stderr=self._err,
            env=mpswarm_env(tag),
            cwd=ROOT,
        )

    def workers(self) -> list[psutil.Process]:
        """The worker processes: the grandchildren of the run's parent (parent -> fork server
        -> workers)."""
        try:
            tree = psutil.Process(self.proc.pid).children(recursive=True)
            return [p for p in tree if p.ppid() != self.proc.pid]
        except psutil.Error:
            return []

    def worker(self, timeout: float = 30.0) -> psutil.Process:
        """The one worker of a ``--processes 1`` run, once it is there."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.workers()
            if len(found) == 1:
                return found[0]
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no worker process: {self.output()}")
            time.sleep(0.02)

    def output(self) -> str:
        self._err.seek(0)
        return f"exit {self.proc.poll()}; stderr: {self._err.read()[-1500:]}"

    def finish(self, timeout: float = 60.0) -> Report:
        """Wait for the run to end; its report."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGINT)
            raise AssertionError(f"the run did not end within {timeout:.0f} s") from None
        self._out.seek(0)
        self._err.seek(0)
        stdout, stderr = self._out.read(), self._err.read()
        if not self.report_path.exists():
            raise AssertionError(f"no JSON report; exit {code}; stderr: {stderr[-3000:]}")
        data = json.loads(self.report_path.read_text())
        return Report(code, stdout, stderr, data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self._err.close()


@pytest.fixture()
def swarm(tmp_path: Path) -> Iterator[Callable[..., Swarm]]:
    """``swarm(locustfile_text, *cli_args)`` starts a headless run; every process it started is
    gone after the test, also when the test fails."""
    tag = uuid.uuid4().hex
    before = shm_entries()
    runs: list[Swarm] = []

    def start(locustfile: str, *args: str) -> Swarm:
        folder = tmp_path / f"run{len(runs)}"
        folder.mkdir()
        path = folder / "locustfile.py"
        path.write_text(textwrap.dedent(locustfile))
        run = Swarm(tag, folder, ["-f", str(path), "--headless", "--only-summary", *args])
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()
    survivors = wait_until_gone(tag, timeout=10)
    for pid in survivors:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not survivors, f"processes left behind: {survivors}"
    assert shm_entries() <= before, f"shared memory left behind: {shm_entries() - before}"


@pytest.fixture()
def nginx(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Nginx]]:
    """``nginx({name: directives})``: a private nginx, one server block per name (``_nginx``);
    skipped without nginx unless MPSWARM_REQUIRE_NGINX=1."""
    yield from open_nginx(tmp_path)


@pytest.fixture()
def servers() -> Iterator[Callable[..., TruthServer]]:
    """``servers(answer, **options)`` starts a ``TruthServer``; all are closed after the test."""
    started: list[TruthServer] = []

    def start(answer: Callable[[socket.socket, Request], bool], **options: Any) -> TruthServer:
        server = TruthServer(answer, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def shown(truth: str) -> str:
    """Prints the figures of an assertion message, so a run that passed shows them too
    (``pytest -rP``)."""
    print(truth)
    return truth


def headless(users: int, seconds: float, *more: str) -> list[str]:
    return ["-u", str(users), "-r", str(max(users, 100)), "-t", f"{seconds}s", *more]


# -- 1. nginx: keepalive_requests and keepalive_timeout --------------------------------------------

NGINX_LOCUSTFILE = """
from mpswarm import {user} as Base, between, constant, task

class Client(Base):
    wait_time = {wait}

    @task(6)
    def root(self):
        self.client.get("/")

    @task(2)
    def item(self):
        self.client.get("/item/1", name="/item/[id]")

    @task
    def empty(self):
        self.client.get("/empty")
"""


def _nginx_truth(report: Report, lines: list[str], statuses: Any) -> str:
    connections = len({line.split(" ")[0] for line in lines})
    return (
        f"mpswarm recorded {report.requests} requests, {report.failures} failed "
        f"({report.errors()}); nginx logged {len(lines)} ({dict(statuses)}) "
        f"on {connections} connections"
    )


@pytest.mark.parametrize("user", CLIENTS)
def test_nginx_keepalive_requests(nginx: Any, swarm: Any, user: str) -> None:
    """nginx closes each connection after 10 requests, the 10th response saying
    ``Connection: close``: not one request may fail, and nginx logged each one recorded."""
    server = nginx({"main": "keepalive_requests 10;"})
    run = swarm(
        NGINX_LOCUSTFILE.format(user=user, wait="constant(0)"),
        "-H",
        server.url("main"),
        *headless(5, 2.5),
    )
    report = run.finish()
    lines = server.logged("main", report.requests)
    truth = shown(_nginx_truth(report, lines, server.statuses(lines)))
    assert report.requests > 100, truth
    assert report.failures == 0, truth
    assert report.requests == len(lines), truth
    assert report.code == 0, report.tail()


@pytest.mark.parametrize("user", CLIENTS)
def test_nginx_keepalive_timeout(nginx: Any, swarm: Any, user: str) -> None:
    """nginx's default keep-alive settings with ``keepalive_timeout 1s``, and users waiting
    about as long between requests: some requests go out on a connection nginx closes just
    before or just as they are sent. None may fail, none be lost."""
    server = nginx({"idle": "keepalive_timeout 1s;"})
    run = swarm(
        NGINX_LOCUSTFILE.format(user=user, wait="between(0.85, 1.25)"),
        "-H",
        server.url("idle"),
        *headless(20, 3),
    )
    report = run.finish()
    lines = server.logged("idle", report.requests)
    truth = shown(_nginx_truth(report, lines, server.statuses(lines)))
    assert report.requests >= 40, truth
    assert report.failures == 0, truth
    assert report.requests == len(lines), truth
    # Many requests came after an idle second, on a new connection: nginx had closed theirs.
    assert len({line.split(" ")[0] for line in lines}) > report.requests // 4, truth
    assert report.code == 0, report.tail()


# -- 2. 1xx interim responses ----------------------------------------------------------------------

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
PROCESSING = b"HTTP/1.1 102 Processing\r\n\r\n"
HINTS = (
    b"HTTP/1.1 103 Early Hints\r\n"
    b"Link: </style.css>; rel=preload; as=style\r\n"
    b"Link: </app.js>; rel=preload; as=script\r\n\r\n"
)
# name -> the interim responses before the final one, each list item one write (several
# interim responses in one write, or one write each).
INTERIM = {
    "continue": [CONTINUE],
    "hints": [HINTS],
    "both": [CONTINUE, HINTS],
    "several": [CONTINUE + PROCESSING + HINTS + HINTS, HINTS],
}
INTERIM_PATHS = [f"/{kind}/{status}" for kind in INTERIM for status in (200, 500)]


def answer_interim(conn: socket.socket, request: Request) -> bool:
    _, kind, status = request.path.split("/")
    for piece in INTERIM[kind]:
        conn.sendall(piece)
    if status == "500":
        conn.sendall(response("500 Internal Server Error", b"boom"))
    else:
        conn.sendall(response("200 OK", b"final"))
    return True


INTERIM_LOCUSTFILE = """
from mpswarm import {user} as Base, task

PATHS = {paths!r}

class Client(Base):
    index = 0

    @task
    def interim(self):
        path = PATHS[self.index % len(PATHS)]
        self.index += 1
        want = int(path.rsplit("/", 1)[1])
        with self.client.get(path, name=path, catch_response=True) as response:
            if response.status_code == 0:
                pass  # no response: the client's own error is recorded
            elif 100 <= response.status_code < 200:
                response.failure(f"recorded an interim status {{response.status_code}}")
            elif response.status_code != want:
                response.failure(f"expected {{want}}, got {{response.status_code}}")
            elif response.content != b"final" and want == 200:
                response.failure(f"wrong body {{response.content[:40]!r}}")
            elif want == 200:
                response.success()
            # a 500 as the server sent it: the client's own failure
"""


@pytest.mark.parametrize("user", CLIENTS)
def test_interim_responses_are_skipped(servers: Any, swarm: Any, user: str) -> None:
    """100, 103, both, several: the final response is the one recorded; exactly the 500s
    fail; the connection serves the next request."""
    server = servers(answer_interim)
    run = swarm(
        INTERIM_LOCUSTFILE.format(user=user, paths=INTERIM_PATHS),
        "-H",
        server.url,
        *headless(3, 2),
    )
    report = run.finish()
    tally = server.quiet()
    rows = {
        path: (report.endpoint(path)["requests"], tally.answered[path], report.errors(path))
        for path in INTERIM_PATHS
    }
    truth = (
        f"per path (recorded, answered by the server, errors): {rows}; "
        f"{tally.connections} connections, {tally.reused} requests on a reused one"
    )
    shown(truth)
    for path, (recorded, answered, errors) in rows.items():
        failed = report.endpoint(path)["failures"]
        assert recorded == answered > 0, truth
        if path.endswith("/500"):
            assert failed == recorded and all("500" in text for text in errors), truth
        else:
            assert failed == 0, truth
    assert not any("interim" in text for text in report.errors()), truth
    assert tally.reused >= report.requests // 2, truth


FLOOD = 100_000  # interim responses before the final one: far past any sane bound
UPGRADE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    b"\x81\x05hello\x89\x00"
)


def answer_hostile_interim(conn: socket.socket, request: Request) -> bool:
    if request.path == "/flood":
        batch = (CONTINUE + HINTS) * 500
        for _ in range(FLOOD // 1000):
            if request.server._stopping.is_set():
                return False
            conn.sendall(batch)
        conn.sendall(response("200 OK", b"final"))  # a client without a bound gets here
        return True
    if request.path == "/upgrade":
        conn.sendall(UPGRADE)  # a protocol nobody asked for, then the server hangs up
        return False
    conn.sendall(response("200 OK", b"final"))
    return True


HOSTILE_INTERIM_LOCUSTFILE = """
from mpswarm import {user} as Base, task

class Client(Base):
    def ok(self):
        with self.client.get("/ok", catch_response=True) as response:
            if response.status_code and response.content != b"final":
                response.failure(f"got {{response.status_code}} {{response.content[:40]!r}}")

    @task
    def sequence(self):
        self.ok()
        self.client.get("/flood")
        self.ok()
        self.client.get("/upgrade")
        self.ok()
"""


@pytest.mark.parametrize("user", CLIENTS)
def test_interim_flood_and_unasked_upgrade_fail_cleanly(
    servers: Any, swarm: Any, user: str
) -> None:
    """100 000 interim responses (past any sane bound) are one failed request naming them; a
    ``101 Switching Protocols`` to a request that asked for no upgrade is one failed request;
    the worker survives and the requests that follow succeed."""
    server = servers(answer_hostile_interim)
    run = swarm(HOSTILE_INTERIM_LOCUSTFILE.format(user=user), "-H", server.url, *headless(2, 2))
    report = run.finish()
    ok, flood, upgrade = (report.endpoint(p) for p in ("/ok", "/flood", "/upgrade"))
    answered_ok = server.quiet().answered["/ok"]
    truth = (
        f"/ok: recorded {ok['requests']} ({ok['failures']} failed), server answered "
        f"{answered_ok}; /flood: {flood['requests']} recorded, {flood['failures']} failed, "
        f"errors {report.errors('/flood')}; /upgrade: {upgrade['requests']} recorded, "
        f"{upgrade['failures']} failed, errors {report.errors('/upgrade')}; "
        f"other errors {report.errors('/ok')}; exceptions {report.exceptions()}; "
        f"recovery {report.data['recovery_events']}"
    )
    shown(truth)
    assert flood["requests"] >= 1 and flood["failures"] == flood["requests"], truth
    assert all(
        "interim" in text.lower() or "1xx" in text.lower() for text in report.errors("/flood")
    ), truth
    assert upgrade["requests"] >= 1 and upgrade["failures"] == upgrade["requests"], truth
    assert ok["failures"] == 0 and ok["requests"] == answered_ok, truth
    assert ok["requests"] > flood["requests"], truth  # the requests after them went on
    assert report.data["recovery_events"] == [], truth


# -- 3. connections the server closes --------------------------------------------------------------


def _closing(every: int | None = None, chance: float = 0.0) -> Callable[..., bool]:
    """Keep-alive responses; the server hangs up silently (no ``Connection: close``) right
    after every ``every``-th response on a connection, or at random with ``chance``."""

    def answer(conn: socket.socket, request: Request) -> bool:
        conn.sendall(response("200 OK", b"ok"))
        if every is not None:
            return request.index % every != 0
        return random.random() >= chance

    return answer


def _always(data: bytes) -> Callable[..., bool]:
    def answer(conn: socket.socket, request: Request) -> bool:
        conn.sendall(data)
        return False  # and close

    return answer


CLOSING = {
    "connection-close": _always(response("200 OK", b"ok", ["Connection: close"])),
    "http10": _always(response("200 OK", b"ok", version="HTTP/1.0")),
    "close-delimited": _always(response("200 OK", b"x" * 3000, length=False)),
    "random-close": _closing(chance=0.3),
    "every-1": _closing(every=1),
    "every-2": _closing(every=2),
    "every-3": _closing(every=3),
}

CLOSING_LOCUSTFILE = """
from mpswarm import {user} as Base, task

BODY = {{"close-delimited": b"x" * 3000}}

def get(user, mode):
    with user.client.get("/" + mode, name=mode, catch_response=True) as response:
        if response.status_code and response.content != BODY.get(mode, b"ok"):
            response.failure(f"got {{response.status_code}} {{response.content[:40]!r}}")
"""

CLOSING_CLASS = """
class {name}(Base):
    host = {host!r}

    @task
    def get(self):
        get(self, {mode!r})
"""


@pytest.mark.parametrize("user", CLIENTS)
def test_connections_the_server_closes(servers: Any, swarm: Any, user: str) -> None:
    """One user per way a server ends a connection, each with its own server: every request
    succeeds, and each server answered exactly the requests recorded."""
    started = {mode: servers(answer) for mode, answer in CLOSING.items()}
    hosts = {mode: server.url for mode, server in started.items()}
    locustfile = CLOSING_LOCUSTFILE.format(user=user) + "".join(
        CLOSING_CLASS.format(name=mode.replace("-", "_").title(), host=url, mode=mode)
        for mode, url in hosts.items()
    )
    run = swarm(locustfile, *headless(len(CLOSING), 2))
    report = run.finish()
    recorded = {mode: report.endpoint(mode)["requests"] for mode in started}
    for server in started.values():
        server.quiet()
    rows = {
        mode: (recorded[mode], report.endpoint(mode)["failures"], s.answered(), report.errors(mode))
        for mode, s in started.items()
    }
    truth = shown(f"per mode (recorded, failed, answered by the server, errors): {rows}")
    for count, failed, answered, _ in rows.values():
        assert count > 10, truth
        assert failed == 0, truth
        assert count == answered, truth
    assert report.code == 0, report.tail()


# -- 4. bounded memory -----------------------------------------------------------------------------

HOSTILE_BODIES = ("chunked", "close-delimited", "gzip")

MEMORY_LOCUSTFILE = """
import gevent
from mpswarm import {user} as Base, StopTest, task

PHASE = {phase!r}
READY = {ready!r}

class Hostile(Base):
    {cap}

    def on_start(self):
        with open(READY, "a") as ready:
            ready.write("ready\\n")

    @task
    def hostile(self):
        with open(PHASE) as control:
            phase = control.read().strip()
        if phase == "quit":
            raise StopTest()
        if phase in {bodies!r}:
            self.client.get("/" + phase, name=phase)
        else:
            gevent.sleep(0.02)
"""


class RssWatch:
    """The RSS of one worker, sampled with psutil, and its peak (VmHWM) where it can be reset."""

    def __init__(self, worker: psutil.Process) -> None:
        self.worker = worker
        self.status = f"/proc/{worker.pid}/status"

    def rss(self) -> int:
        try:
            return int(self.worker.memory_info().rss)
        except psutil.NoSuchProcess:
            raise AssertionError(f"worker {self.worker.pid} is gone (it died or was replaced)")

    def _reset_peak(self) -> bool:
        try:
            with open(f"/proc/{self.worker.pid}/clear_refs", "w") as refs:
                refs.write("5")  # VmHWM starts again from the current RSS
            return True
        except OSError:
            return False

    def _hwm(self) -> int:
        with open(self.status) as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def peak_while(self, done: Callable[[], bool], at_least: float, within: float) -> int:
        """The highest RSS from now until ``done()`` holds and ``at_least`` seconds passed
        (at most ``within`` seconds)."""
        exact = self._reset_peak()
        start = time.monotonic()
        peak = 0
        while True:
            peak = max(peak, self.rss())
            elapsed = time.monotonic() - start
            if (elapsed >= at_least and done()) or elapsed > within:
                break
            time.sleep(0.01)
        return max(peak, self._hwm()) if exact else peak


def _memory_run(
    servers: Any, swarm: Any, tmp_path: Path, user: str, users: int, cap: int | None, back: int
) -> tuple[int, dict[str, int], int, Report]:
    """Run ``users`` users through the hostile bodies one after the other; returns the idle
    RSS, the peak of each body, the RSS after the load ended (once within ``back`` of idle, or
    after 4 s), and the report."""
    # 4 GiB in 4 MB for the default cap; under a cap of 1 MiB, 512 MiB in 0.5 MB: a bomb
    # whose compressed size is under the cap, so the client has to inflate it.
    bomb = GzipBomb(4 << 30 if cap is None else 512 * MiB)
    answers: dict[str, Callable[[socket.socket, Request], bool]] = {
        "/chunked": endless_chunked,
        "/close-delimited": endless_close_delimited,
        "/gzip": bomb,
    }
    server = servers(lambda conn, request: answers[request.path](conn, request))
    phase, ready = tmp_path / "phase", tmp_path / "ready"
    phase.write_text("idle")
    ready.write_text("")
    locustfile = MEMORY_LOCUSTFILE.format(
        user=user,
        phase=str(phase),
        ready=str(ready),
        bodies=HOSTILE_BODIES,
        cap=f"max_body_size = {cap}" if cap else "pass",
    )
    run = swarm(locustfile, "-H", server.url, *headless(users, 60))
    watch = RssWatch(run.worker())
    deadline = time.monotonic() + 30
    while ready.read_text().count("ready") < users:
        assert time.monotonic() < deadline, f"users did not start: {run.output()}"
        time.sleep(0.05)
    idle = watch.peak_while(lambda: True, 0.3, 1)
    peaks = {}
    for body in HOSTILE_BODIES:
        enough = server.snapshot().received[f"/{body}"] + users
        phase.write_text(body)

        def served(path: str = f"/{body}", enough: int = enough) -> bool:
            return server.snapshot().received[path] >= enough

        # 0.7 s of each (FastHttpUser's cycles took 300 MB in that time), and at least as
        # many such responses as there are users.
        peaks[body] = watch.peak_while(served, 0.7, 15)
    phase.write_text("idle")
    after_deadline = time.monotonic() + 4
    after = watch.rss()
    while after > idle + back and time.monotonic() < after_deadline:
        time.sleep(0.05)
        after = watch.rss()
    phase.write_text("quit")
    return idle, peaks, after, run.finish(timeout=30)


def _check_memory(
    user: str, idle: int, peaks: dict[str, int], after: int, bound: int, back: int, report: Report
) -> None:
    figures = ", ".join(f"{body} +{(peak - idle) / MB:.0f} MB" for body, peak in peaks.items())
    truth = (
        f"{user} worker RSS idle {idle / MB:.0f} MB; peaks above idle: {figures} "
        f"(bound +{bound / MB:.0f} MB); after the load +{(after - idle) / MB:.0f} MB "
        f"(bound +{back / MB:.0f} MB); "
        f"recorded {[(b, report.endpoint(b)['requests'], report.endpoint(b)['failures']) for b in HOSTILE_BODIES]}; "  # noqa: E501
        f"errors {report.errors()}; recovery {report.data['recovery_events']}"
    )
    shown(truth)
    for body in HOSTILE_BODIES:
        row = report.endpoint(body)
        assert row["requests"] >= 1 and row["failures"] == row["requests"], truth
        assert all("BodyTooLarge" in text for text in report.errors(body)), truth
    assert report.data["recovery_events"] == [], truth
    assert report.data["stop"]["kind"] == "user_code", truth
    assert all(peak <= idle + bound for peak in peaks.values()), truth
    assert after <= idle + back, truth


@pytest.mark.parametrize("user", CLIENTS)
def test_memory_one_user_hostile_bodies(
    servers: Any, swarm: Any, tmp_path: Path, user: str
) -> None:
    """One user, the default cap (32 MiB): an endless chunked body, an endless body delimited
    by the close, a gzip bomb (4 GiB in 4 MB). Each is a BodyTooLarge failure, and the worker's
    RSS never rises more than 64 MB above its idle size."""
    idle, peaks, after, report = _memory_run(servers, swarm, tmp_path, user, 1, None, 64 * MB)
    _check_memory(user, idle, peaks, after, 64 * MB, 64 * MB, report)


@pytest.mark.parametrize("user", CLIENTS)
def test_memory_fifty_users_hostile_bodies(
    servers: Any, swarm: Any, tmp_path: Path, user: str
) -> None:
    """50 users with ``max_body_size = 1 MiB``: at most 50 x 1 MiB + 64 MB above idle while
    the hostile bodies come, and back within 32 MB of idle a little after."""
    idle, peaks, after, report = _memory_run(servers, swarm, tmp_path, user, 50, MiB, 32 * MB)
    _check_memory(user, idle, peaks, after, 50 * MiB + 64 * MB, 32 * MB, report)


# -- 5. redirect spray -----------------------------------------------------------------------------

ORIGINS = 200

SPRAY_LOCUSTFILE = """
from mpswarm import {user} as Base, task

class Client(Base):
    @task
    def spray(self):
        with self.client.get("/spray", catch_response=True) as response:
            if response.status_code and response.content != b"landed":
                response.failure(f"got {{response.status_code}} {{response.content[:40]!r}}")
"""


@pytest.mark.parametrize("user", CLIENTS)
def test_redirect_spray_keeps_descriptors_bounded(servers: Any, swarm: Any, user: str) -> None:
    """Every request is redirected to the next of 200 origins (loopback ports): the worker's
    open file descriptors stay bounded, not one kept-alive connection per origin and user."""
    users = 4
    turn = itertools.count()

    def answer(conn: socket.socket, request: Request) -> bool:
        if request.path == "/spray":
            target = request.server.origin(1 + next(turn) % ORIGINS)
            conn.sendall(response("302 Found", b"", [f"Location: {target}/landing"]))
        else:
            conn.sendall(response("200 OK", b"landed"))
        return True

    # The server lets go of a connection idle for 0.5 s: it holds about what was used lately,
    # while a client that keeps every origin's connection holds each descriptor all the same.
    server = servers(answer, ports=1 + ORIGINS, idle_s=0.5)
    run = swarm(SPRAY_LOCUSTFILE.format(user=user), "-H", server.url, *headless(users, 2))
    worker = run.worker()
    idle_fds = worker.num_fds()
    peak = idle_fds
    while run.proc.poll() is None:
        try:
            peak = max(peak, worker.num_fds())
        except psutil.Error:
            break
        time.sleep(0.02)
    report = run.finish()
    tally = server.quiet()
    landed = tally.answered["/landing"]
    bound = 64 + 4 * users
    origins = len({r.local_port for r in server.requests if r.path == "/landing"})
    truth = (
        f"{user}: worker fds peak {peak} (at start {idle_fds}, bound {bound}); recorded "
        f"{report.requests} ({report.failures} failed, {report.errors()}); server answered "
        f"{tally.answered['/spray']} /spray and {landed} /landing on {origins} origins, "
        f"{tally.connections} connections"
    )
    shown(truth)
    assert origins == ORIGINS, truth
    assert report.failures == 0, truth
    assert report.requests == tally.answered["/spray"] == landed, truth
    assert peak <= bound, truth


# -- 6. credentials across origins -----------------------------------------------------------------

SECRET = "Basic " + base64.b64encode(b"ann:secret").decode()


@pytest.mark.parametrize("source", ["headers", "auth", "host"])
@pytest.mark.parametrize("kind", [HttpSession, FastHttpSession], ids=CLIENTS)
def test_credentials_stay_with_their_origin(
    servers: Any, kind: type[HttpSession], source: str
) -> None:
    """``Authorization`` (from ``headers=``, ``auth=`` or credentials in the host) goes to the
    origin it was meant for and follows a redirect within it, never one to another port or
    another host (requests' ``should_strip_auth``)."""

    def land(conn: socket.socket, request: Request) -> bool:
        conn.sendall(response("200 OK", b"landed"))
        return True

    other_port = servers(land)
    other_host = servers(land, host="127.0.0.2")
    targets = {
        "/to-port": f"{other_port.url}/landing",
        "/to-host": f"{other_host.url}/landing",
        "/same": "/landing",
    }

    def answer(conn: socket.socket, request: Request) -> bool:
        if request.path in targets:
            location = targets[request.path]
            conn.sendall(response("302 Found", b"", [f"Location: {location}"]))
        else:
            conn.sendall(response("200 OK", b"landed"))
        return True

    origin = servers(answer)
    base = origin.url
    options: dict[str, Any] = {}
    if source == "headers":
        options["headers"] = {"Authorization": SECRET}
    elif source == "auth":
        options["auth"] = ("ann", "secret")
    else:
        base = base.replace("http://", "http://ann:secret@")
    client = kind(base_url=base, request_event=EventHook())
    try:
        for path in targets:
            got = client.get(path, **options)
            assert got.content == b"landed", (path, got.error)
    finally:
        client.close()

    def seen(server: TruthServer, path: str) -> list[str | None]:
        return [r.headers.get("authorization") for r in server.requests if r.path == path]

    hops = [seen(origin, path) for path in targets]
    truth = {
        "first hops": hops,
        "same origin /landing": seen(origin, "/landing"),
        "other port": seen(other_port, "/landing"),
        "other host 127.0.0.2": seen(other_host, "/landing"),
    }
    assert all(hop == [SECRET] for hop in hops), truth
    assert truth["same origin /landing"] == [SECRET], truth
    assert truth["other port"] == [None], truth
    assert truth["other host 127.0.0.2"] == [None], truth
