"""GrpcUser against a real grpcio server on loopback (tests/protocols/_grpc_server.py).

Each test runs the real CLI with two worker processes and compares what mpswarm recorded with
what the server counted. The stubs are generated from echo.proto with grpcio-tools into a
temporary folder, as a user's build would. grpcio and grpcio-tools come with the test extra;
without them these tests skip, unless ``MPSWARM_REQUIRE_PROTOCOLS`` is set (CI): then they fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.test_contrib import _stop
from tests.conftest import ROOT, write
from tests.protocols import _grpc_server
from tests.test_cli import assert_one_line_error

REQUIRE_VAR = "MPSWARM_REQUIRE_PROTOCOLS"
#: A Locust source tree (a checkout of its repository) whose examples/grpc these tests run.
SOURCE_VAR = "MPSWARM_LOCUST_SOURCE"
SAY = "/mpswarm.echo.Echo/Say"
COUNT = "/mpswarm.echo.Echo/Count"
COLLECT = "/mpswarm.echo.Echo/Collect"


def _require(*modules: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            what = f"{module} is not installed (pip install -e '.[test]')"
            if os.environ.get(REQUIRE_VAR):
                pytest.fail(f"{what} ({REQUIRE_VAR} is set)")
            pytest.skip(what)


@pytest.fixture(scope="session")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require("grpc", "grpc_tools")
    return _grpc_server.generate(tmp_path_factory.mktemp("grpc") / "stubs")


@pytest.fixture()
def server(stubs: Path) -> Iterator[_grpc_server.Server]:
    started = _grpc_server.Server(stubs)
    try:
        yield started
    finally:
        started.close()


def _report(path: Path) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """(name -> (requests, failures)) of the grpc rows, (error text -> occurrences)."""
    report = json.loads(path.read_text())
    rows = {e["name"]: (e["requests"], e["failures"]) for e in report["endpoints"]}
    assert {e["method"] for e in report["endpoints"]} <= {"grpc"}, report["endpoints"]
    errors = {e["error"]: e["occurrences"] for e in report["errors"]}
    return rows, errors


PREAMBLE = """
import json, os, sys
from collections import Counter

sys.path.insert(0, {stubs!r})
import grpc

import echo_pb2
import echo_pb2_grpc
from mpswarm import GrpcUser, constant, events, task

MESSAGES = Counter()


@events.request.add_listener
def count_messages(name, context, **kwargs):
    for key in ("messages_sent", "messages_received"):
        MESSAGES[f"{{name}} {{key}}"] += context.get(key, 0)


@events.test_stop.add_listener
def save_messages(**kwargs):
    if MESSAGES:  # a worker's (the parent records nothing)
        with open(os.path.join({out!r}, f"{{os.getpid()}}.json"), "w") as handle:
            json.dump(MESSAGES, handle)
"""

CALLER = """
class Caller(GrpcUser):
    stub_class = echo_pb2_grpc.EchoStub
    wait_time = constant(0.005)

    @task(4)
    def say(self):
        assert self.stub.Say(echo_pb2.Note(text="hi")).text == "hi"

    @task(1)
    def refused(self):
        try:
            self.stub.Say(echo_pb2.Note(text="no such note \\x1b[31m<b>", code=5))
        except grpc.RpcError as error:  # raised to the task, as anywhere with grpc
            assert error.code() == grpc.StatusCode.NOT_FOUND
        else:
            raise AssertionError("NOT_FOUND did not raise")

    @task(1)
    def later(self):  # waited for inside the call: recorded like the others
        assert self.stub.Say.future(echo_pb2.Note(text="f")).result().text == "f"

    @task(1)
    def count(self):
        assert [note.count for note in self.stub.Count(echo_pb2.Note(count=3))] == [0, 1, 2]

    @task(1)
    def collect(self):
        notes = (echo_pb2.Note(text="x") for _ in range(4))
        assert self.stub.Collect(notes).count == 4
"""


def _messages(out: Path) -> Counter[str]:
    total: Counter[str] = Counter()
    files = sorted(out.glob("*.json"))
    assert len(files) == 2, files  # one per worker
    for path in files:
        total.update(json.loads(path.read_text()))
    return total


def test_calls_recorded_are_what_the_server_counted(
    run_cli: Any, server: _grpc_server.Server, tmp_path: Path
) -> None:
    """Unary, failing unary, server- and client-streaming calls on two workers: requests,
    failures and messages recorded == the server's; the failure reads ``StatusCode.NAME:
    details``, the server's details escaped."""
    out = tmp_path / "out"
    out.mkdir()
    lf = write(tmp_path / "lf.py", PREAMBLE.format(stubs=str(server.stubs), out=str(out)) + CALLER)
    report = tmp_path / "r.json"
    run = run_cli("-f", str(lf), "-H", server.url, "--headless", "--processes", "2", "-u", "4",
                  "-r", "100", "-t", "3s", "--json-file", str(report))  # fmt: skip
    assert run.code == 1, run  # the NOT_FOUNDs are failures
    rows, errors = _report(report)
    counted = server.counts()
    say = counted[SAY]
    assert rows[SAY] == (say["OK"] + say["NOT_FOUND"], say["NOT_FOUND"]) and say["OK"] > 20
    assert rows[COUNT] == (counted[COUNT]["OK"], 0) and rows[COLLECT] == (counted[COLLECT]["OK"], 0)
    assert errors == {"StatusCode.NOT_FOUND: no such note \\x1b[31m<b>": say["NOT_FOUND"]}
    messages = _messages(out)
    assert (
        messages[f"{COUNT} messages_received"] == counted["messages"][COUNT] == 3 * rows[COUNT][0]
    )
    assert messages[f"{COLLECT} messages_sent"] == counted["messages"][COLLECT]
    assert counted["messages"][COLLECT] == 4 * rows[COLLECT][0]
    assert messages[f"{SAY} messages_received"] == say["OK"]
    assert messages[f"{SAY} messages_sent"] == rows[SAY][0]


#: The body of a user class that calls Say as fast as it can.
SAYER = """
    stub_class = echo_pb2_grpc.EchoStub
    wait_time = constant(0.005)

    @task
    def say(self):
        self.stub.Say(echo_pb2.Note(text="hi"))
"""

AT_IMPORT = (
    """
# A channel made, and called, when the locustfile is imported: in the parent, before the fork.
CHANNEL = grpc.insecure_channel({target!r})
assert echo_pb2_grpc.EchoStub(CHANNEL).Say(echo_pb2.Note(text="at import")).text == "at import"


class Caller(GrpcUser):
"""
    + SAYER
)


@pytest.mark.parametrize("gevent_mode", ["", "grpc.experimental.gevent.init_gevent()\n"])
def test_a_channel_made_and_called_at_import_does_not_hang_the_workers(
    run_cli: Any, server: _grpc_server.Server, tmp_path: Path, gevent_mode: str
) -> None:
    """grpc/grpc#15334's pattern: the run ends on time and every call of the workers is the
    server's (the import's one call aside); also where the locustfile put grpc in gevent mode
    first, as Locust's example does (the parent's run never started: the channel held a thread
    of the hub's pool, which the fork server's start waited for)."""
    out = tmp_path / "out"
    out.mkdir()
    target = server.url.removeprefix("grpc://")
    preamble = PREAMBLE.format(stubs=str(server.stubs), out=str(out))
    text = preamble.replace(
        "import grpc\n", f"import grpc\nimport grpc.experimental.gevent\n{gevent_mode}", 1
    ) + AT_IMPORT.format(target=target)
    lf = write(tmp_path / "lf.py", text)
    report = tmp_path / "r.json"
    run = run_cli("-f", str(lf), "-H", server.url, "--headless", "--processes", "2", "-u", "4",
                  "-r", "100", "-t", "2s", "--json-file", str(report), timeout=60)  # fmt: skip
    assert run.code == 0 and "blocked" not in run.stderr, run
    rows, _ = _report(report)
    assert rows[SAY][0] > 20 and rows[SAY] == (server.counts()[SAY]["OK"] - 1, 0)


OWN_WRAPPER = (
    """
import sys, time

sys.path.insert(0, {stubs!r})
import grpc
import grpc.experimental.gevent
from grpc_interceptor import ClientInterceptor

import echo_pb2
import echo_pb2_grpc
from locust import User, constant, task

# Locust's way: grpc cooperates with gevent from the locustfile's import on.
grpc.experimental.gevent.init_gevent()


class Timed(ClientInterceptor):
    # Every call, fired to the request event by hand.
    def __init__(self, environment):
        self.environment = environment

    def intercept(self, method, request, details):
        began = time.perf_counter()
        outcome = method(request, details)
        error = outcome.exception()
        self.environment.events.request.fire(
            request_type="grpc", name=details.method, response_length=0, context={{}},
            response_time=(time.perf_counter() - began) * 1000, response=outcome,
            exception=error,
        )
        return outcome


class Wrapped(User):
    abstract = True
    stub_class = None

    def __init__(self, environment):
        super().__init__(environment)
        channel = grpc.intercept_channel(grpc.insecure_channel(self.host), Timed(environment))
        self.stub = self.stub_class(channel)


class Caller(Wrapped):
    host = {target!r}
"""
    + SAYER
)


def test_a_locust_style_wrapper_with_init_gevent_at_import_runs(
    run_cli: Any, server: _grpc_server.Server, tmp_path: Path
) -> None:
    """The pattern of Locust's gRPC example in our words (its own User wrapper, a
    grpc-interceptor interceptor, init_gevent() at import): it ran no call at all before
    mpswarm bound grpc's gevent mode to each process's hub. Its calls cut off by the stop go
    unrecorded (nothing but GrpcUser's Call counts them), as in Locust: at most one a user."""
    _require("grpc_interceptor")
    target = server.url.removeprefix("grpc://")
    lf = write(tmp_path / "lf.py", OWN_WRAPPER.format(stubs=str(server.stubs), target=target))
    report = tmp_path / "r.json"
    run = run_cli("-f", str(lf), "--headless", "--processes", "2", "-u", "4", "-r", "100",
                  "-t", "2s", "--json-file", str(report), timeout=60)  # fmt: skip
    assert run.code == 0 and "blocked" not in run.stderr, run
    rows, _ = _report(report)
    served = server.counts()[SAY]["OK"]
    assert rows[SAY][0] > 20 and rows[SAY][1] == 0 and 0 <= served - rows[SAY][0] <= 4


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_locusts_grpc_example_runs_unchanged(run_cli: Any, tmp_path: Path) -> None:
    """Locust's own examples/grpc (its GrpcUser wrapper and interceptor, its server started by
    an init listener: in the parent and in each worker here, sharing the port through grpc's
    SO_REUSEPORT). Its host and server port are fixed at localhost:50051."""
    source = os.environ.get(SOURCE_VAR)
    if not source:
        pytest.skip(f"set {SOURCE_VAR} to a Locust checkout to run its examples/grpc")
    folder = Path(source) / "examples" / "grpc"
    if not (folder / "locustfile.py").is_file():
        pytest.fail(f"{SOURCE_VAR}={source} has no examples/grpc/locustfile.py")
    _require("grpc", "grpc_interceptor")
    if not _port_free(50051):
        pytest.skip("port 50051, which Locust's example hard-codes, is in use")
    example = shutil.copytree(folder, tmp_path / "grpc")
    report = tmp_path / "r.json"
    # Its server answers after 1 s: 4 users for 4 s make about 12 calls.
    run = run_cli("-f", str(example / "locustfile.py"), "--headless", "--processes", "2",
                  "-u", "4", "-r", "100", "-t", "4s", "--json-file", str(report),
                  timeout=60, cwd=example)  # fmt: skip
    assert run.code == 0, run
    rows, _ = _report(report)
    calls, failures = rows["/locust.hello.HelloService/SayHello"]
    assert calls >= 8 and failures == 0, run


def test_a_host_of_another_scheme_is_refused_before_any_load(
    run_cli: Any, stubs: Path, tmp_path: Path
) -> None:
    lf = write(tmp_path / "lf.py", PREAMBLE.format(stubs=str(stubs), out=str(tmp_path)) + CALLER)
    run = run_cli("-f", str(lf), "-H", "http://127.0.0.1:1", "--headless", "-t", "1s")
    assert_one_line_error(run, 2, "http://127.0.0.1:1", "grpc://", "grpcs://")


def test_without_grpcio_the_import_names_the_extra(tmp_path: Path) -> None:
    """Where grpcio is not installed (a stand-in package that is not importable hides it)."""
    hide = tmp_path / "hide"
    (hide / "grpc").mkdir(parents=True)
    (hide / "grpc" / "__init__.py").write_text("raise ModuleNotFoundError('hidden', name='grpc')\n")
    code = "import mpswarm\nmpswarm.GrpcUser\n"
    env = {**os.environ, "PYTHONPATH": f"{hide}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last == (
        "ModuleNotFoundError: GrpcUser needs grpcio, which is not installed: "
        "pip install 'mpswarm[grpc]'"
    ), out.stderr


def test_the_example_runs_as_its_docstring_says(run_cli: Any, tmp_path: Path) -> None:
    """examples/grpc_echo.py: its service on a free port, then the run (shortened)."""
    _require("grpc")
    example = ROOT / "examples" / "grpc_echo.py"
    service = subprocess.Popen(
        [sys.executable, str(example), "--port", "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert service.stdout is not None
        url = service.stdout.readline().strip()
        assert url.startswith("grpc://127.0.0.1:"), url
        report = tmp_path / "r.json"
        run = run_cli("-f", str(example), "-H", url, "-u", "6", "-r", "100", "-t", "3s",
                      "--headless", "--processes", "2", "--json-file", str(report))  # fmt: skip
    finally:
        _stop(service)
        if service.stdout is not None:
            service.stdout.close()
    assert run.code == 0, run
    rows, _ = _report(report)
    assert set(rows) == {"/demo.Echo/Say", "/demo.Echo/Repeat"}, rows
    assert rows["/demo.Echo/Say"][0] > 5 and sum(failed for _, failed in rows.values()) == 0


TLS_CALLERS = """
class Trusting(GrpcUser):
    root_certificates = {cert!r}  # a path; PEM bytes do too
    stub_class = echo_pb2_grpc.EchoStub
    wait_time = constant(0.01)

    @task
    def say(self):
        self.stub.Say(echo_pb2.Note(text="hi"))


class Doubting(GrpcUser):  # the system's CAs: they do not know the test's certificate
    stub_class = echo_pb2_grpc.EchoStub
    wait_time = constant(0.05)

    @task
    def collect(self):
        try:
            self.stub.Collect(iter([echo_pb2.Note()]))
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
"""


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)  # fmt: skip
    return cert, key


def test_grpcs_verifies_the_server_with_the_class_certificates(
    run_cli: Any, stubs: Path, tmp_path: Path
) -> None:
    """grpcs://: a class that trusts the server's certificate gets through, one with the
    system's CAs fails every call (UNAVAILABLE) and the server never sees it."""
    cert, key = _certificate(tmp_path)
    tls = _grpc_server.Server(stubs, cert, key)
    try:
        lf = PREAMBLE.format(stubs=str(stubs), out=str(tmp_path)) + TLS_CALLERS.format(
            cert=str(cert)
        )
        report = tmp_path / "r.json"
        run = run_cli("-f", str(write(tmp_path / "lf.py", lf)), "-H", tls.url, "--headless",
                      "--processes", "2", "-u", "4", "-r", "100", "-t", "2s",
                      "--json-file", str(report))  # fmt: skip
        counted = tls.counts(cert)
    finally:
        tls.close()
    assert tls.url.startswith("grpcs://") and run.code == 1, run
    rows, errors = _report(report)
    assert rows[SAY][0] > 20 and rows[SAY] == (counted[SAY]["OK"], 0)
    assert rows[COLLECT][0] == rows[COLLECT][1] > 0 and COLLECT not in counted
    assert list(errors) == [next(e for e in errors if e.startswith("StatusCode.UNAVAILABLE: "))]


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ("    pass\n", ["lf.py", "Lost has no stub_class", "pb2_grpc"]),
        (
            "    stub_class = echo_pb2_grpc.EchoStub\n    max_message_size = 0\n",
            ["Lost.max_message_size must be a positive number of bytes, got 0"],
        ),
    ],
)
def test_a_class_that_cannot_run_is_named_before_any_load(
    run_cli: Any, stubs: Path, tmp_path: Path, body: str, fragments: list[str]
) -> None:
    text = PREAMBLE.format(stubs=str(stubs), out=str(tmp_path)) + "\n\nclass Lost(GrpcUser):\n"
    lf = write(tmp_path / "lf.py", text + body)
    run = run_cli("-f", str(lf), "-H", "grpc://127.0.0.1:1", "--headless", "-t", "1s")
    assert_one_line_error(run, 2, *fragments)


CAPPED = """
class Capped(GrpcUser):
    stub_class = echo_pb2_grpc.EchoStub
    max_message_size = 64
    wait_time = constant(0.01)

    @task
    def say(self):
        try:
            self.stub.Say(echo_pb2.Note(text="x" * 100))
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
"""


def test_a_message_over_the_cap_fails_its_call_and_is_never_sent(
    run_cli: Any, server: _grpc_server.Server, tmp_path: Path
) -> None:
    lf = PREAMBLE.format(stubs=str(server.stubs), out=str(tmp_path)) + CAPPED
    report = tmp_path / "r.json"
    run = run_cli("-f", str(write(tmp_path / "lf.py", lf)), "-H", server.url, "--headless",
                  "-u", "2", "-t", "1s", "--json-file", str(report))  # fmt: skip
    assert run.code == 1, run
    rows, errors = _report(report)
    assert rows[SAY][0] == rows[SAY][1] > 0 and SAY not in server.counts()
    assert [text.split(":")[0] for text in errors] == ["StatusCode.RESOURCE_EXHAUSTED"], errors
