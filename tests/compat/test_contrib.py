"""Locust's contrib modules (``locust.contrib.<name>``) run under mpswarm from an installed Locust.

Their code is Locust's, loaded from where Locust is installed, with ``locust`` resolving to
mpswarm: each test runs the real CLI with two worker processes against a real server on
loopback (the demo server, mosquitto, a python-socketio server) and compares what mpswarm
recorded with what the other side counted.

Locust and the contrib users' clients come with the test extra (Python 3.11+), mosquitto from
the OS (Debian: apt-get install mosquitto). Missing ones skip these tests, unless
``MPSWARM_REQUIRE_CONTRIB=1`` (``.ci/run`` sets it): there they fail.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Run, mpswarm_env, write
from tests.test_cli import assert_one_line_error

REQUIRE_VAR = "MPSWARM_REQUIRE_CONTRIB"
#: A Locust source tree (a checkout of its repository) whose examples/ these tests run too.
#: Locust's sdists stopped carrying examples/ (2.47.0's has none), so CI has no copy to get.
SOURCE_VAR = "MPSWARM_LOCUST_SOURCE"


def _missing(what: str) -> None:
    if os.environ.get(REQUIRE_VAR) == "1":
        pytest.fail(f"{what} ({REQUIRE_VAR}=1 is set)")
    pytest.skip(what)


def _require_locust(*modules: str) -> None:
    """Skip (or fail, under MPSWARM_REQUIRE_CONTRIB) unless Locust and ``modules`` are
    installed; looked up without importing them (a real ``import locust`` monkey-patches)."""
    try:
        importlib.metadata.version("locust")
    except importlib.metadata.PackageNotFoundError:
        _missing("Locust is not installed (pip install -e '.[test]' on Python 3.11+)")
    for module in modules:
        if importlib.util.find_spec(module) is None:
            _missing(f"{module} is not installed (pip install -e '.[test]')")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.05)


def _report_rows(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """(method, name) -> (requests, failures) from mpswarm's JSON report."""
    report = json.loads(path.read_text())
    return {(e["method"], e["name"]): (e["requests"], e["failures"]) for e in report["endpoints"]}


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- without Locust, or without the module ------------------------------------------------------

CONTRIB_MQTT = """
from locust.contrib.mqtt import MqttUser

class Pub(MqttUser):
    pass
"""


def _site_without_locust(folder: Path) -> Path:
    """A folder standing in for site-packages: links to everything installed but Locust."""
    folder.mkdir()
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for entry in Path(site).iterdir():
            hidden = entry.name.startswith(("locust", "pytest_locust"))
            if not hidden and not (folder / entry.name).exists():
                (folder / entry.name).symlink_to(entry)
    return folder


def test_without_locust_a_contrib_import_names_the_module_and_the_fix(tmp_path: Path) -> None:
    """On a Python where Locust is not installed (no site-packages but a copy of it less
    Locust's files): one line naming locust.contrib.mqtt and ``pip install locust``, exit 2."""
    site = _site_without_locust(tmp_path / "site")
    lf = write(tmp_path / "lf.py", CONTRIB_MQTT)
    env = mpswarm_env("no-locust", {"PYTHONPATH": f"{ROOT}{os.pathsep}{site}"})
    run = Run(subprocess.run(
        [sys.executable, "-S", "-m", "mpswarm", "-f", str(lf), "--headless", "-t", "1s"],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    ))  # fmt: skip
    assert_one_line_error(run, 2, "lf.py:2", "locust.contrib.mqtt", "pip install locust")


def test_the_module_is_locusts_own_file_and_locust_itself_is_not_imported() -> None:
    """``locust.contrib.mqtt`` is the file in the installed Locust, its ``User`` is mpswarm's,
    and the real ``locust/__init__.py`` (which monkey-patches at import) never ran."""
    _require_locust("paho.mqtt")
    code = (
        "import sys, mpswarm._locust_alias as alias\n"
        "alias.install()\n"
        "from locust.contrib import mqtt\n"
        "import locust, mpswarm, gevent.monkey\n"
        "print(mqtt.__file__)\n"
        "print(mqtt.User is mpswarm.User, locust.User is mpswarm.User)\n"
        "print(gevent.monkey.is_module_patched('socket'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    where, same, patched = out.stdout.splitlines()
    files = importlib.metadata.files("locust") or []
    installed = {str(file.locate()) for file in files if file.name == "mqtt.py"}
    assert where in installed and (same, patched) == ("True True", "False"), out.stdout


def test_a_module_the_installed_locust_lacks_is_named(run_cli, tmp_path: Path) -> None:
    _require_locust()
    lf = write(tmp_path / "lf.py", "from locust.contrib.nosuch import NoSuchUser\n")
    run = run_cli("-f", str(lf), "--headless", "-t", "1s")
    version = importlib.metadata.version("locust")
    assert_one_line_error(run, 2, f"Locust (version {version}) has no locust.contrib.nosuch")


# -- csv_request_logger -------------------------------------------------------------------------

CSV_LOGGER = """
import os

from locust import HttpUser, constant, events, task
from locust.contrib.csv_request_logger import CsvRequestLogger

OUT = {out!r}


@events.init.add_listener
def log_requests(environment, **kwargs):
    # One file a process: every process fires init and the logger truncates its file, as
    # with Locust's --processes.
    CsvRequestLogger(os.path.join(OUT, f"requests-{{os.getpid()}}.csv")).register(environment)


class Web(HttpUser):
    wait_time = constant(0)

    @task(3)
    def fine(self):
        self.client.get("/bytes/7")

    @task
    def missing(self):
        self.client.get("/status/404")
"""


def test_csv_request_logger_writes_every_request_of_every_worker(
    run_cli, demo, tmp_path: Path
) -> None:
    """Locust's CsvRequestLogger, fed by mpswarm's request event in each worker: its rows
    are mpswarm's counts, request for request, and the server's."""
    _require_locust()
    out = tmp_path / "out"
    out.mkdir()
    lf = write(tmp_path / "lf.py", CSV_LOGGER.format(out=str(out)))
    report = tmp_path / "r.json"
    run = run_cli("-f", str(lf), "-H", demo.url, "--headless", "--processes", "2",
                  "-u", "4", "-r", "100", "-i", "200", "--json-file", str(report))  # fmt: skip
    assert run.code == 1, run  # the 404s are failures
    rows: Counter[tuple[str, str, str, bool]] = Counter()
    per_file = []
    for path in sorted(out.glob("requests-*.csv")):
        with path.open(newline="") as handle:
            lines = list(csv.DictReader(handle))
        per_file.append(len(lines))
        for line in lines:
            key = (line["request_type"], line["name"], line["status_code"], bool(line["exception"]))
            rows[key] += 1
    # The parent's file has the header only; each of the two workers logged its own share.
    assert len(per_file) == 3 and sorted(per_file)[0] == 0 and min(sorted(per_file)[1:]) > 0
    recorded = _report_rows(report)
    fine, missing = recorded[("GET", "/bytes/7")], recorded[("GET", "/status/404")]
    assert fine[0] + missing[0] == 200 and fine[1] == 0 and missing[1] == missing[0] > 0
    assert rows == {
        ("GET", "/bytes/7", "200", False): fine[0],
        ("GET", "/status/404", "404", True): missing[0],
    }
    paths = demo.stats()["paths"]
    assert (paths["GET /bytes/7"], paths["GET /status/404"]) == (fine[0], missing[0])


# -- mqtt ---------------------------------------------------------------------------------------


def _mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


class Mosquitto:
    """A private mosquitto on a free loopback port, from a generated config."""

    def __init__(self, folder: Path) -> None:
        binary = _mosquitto_binary()
        if binary is None:
            _missing("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.port = _free_port()
        config = folder / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stdout\n"
        )
        self._log = folder / "mosquitto.log"
        with self._log.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(binary), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            _wait_for(self._accepts, 10, "mosquitto did not listen")
        except AssertionError:
            self.close()
            raise AssertionError(self._log.read_text()) from None

    def _accepts(self) -> bool:
        assert self.proc.poll() is None, self._log.read_text()
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def close(self) -> None:
        _stop(self.proc)


class Subscriber:
    """A paho-mqtt client of the test's own, subscribed to ``topic``, keeping what it gets."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.received: list[bytes] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mpswarm-tests")
        self.client.on_message = lambda client, userdata, message: self.received.append(
            message.payload
        )
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=0)
        assert subscribed.wait(10), "the subscription was not acknowledged"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    _require_locust("paho.mqtt")
    broker = Mosquitto(tmp_path)
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture()
def subscriber(mosquitto: Mosquitto) -> Iterator[Subscriber]:
    client = Subscriber(mosquitto.port, "hello/locust")
    try:
        yield client
    finally:
        client.close()


def _assert_publishes_arrived(report: Path, subscriber: Subscriber) -> int:
    """The publishes mpswarm recorded are the messages the subscriber got; returns them."""
    recorded = _report_rows(report)
    published, failed = recorded[("MQTT", "publish:0:hello/locust")]
    assert published > 0 and failed == 0, recorded
    _wait_for(lambda: len(subscriber.received) >= published, 10, "the messages did not arrive")
    assert len(subscriber.received) == published
    return published


MQTT_PUBLISHER = """
import os
import time

from locust import constant, task
from locust.contrib.mqtt import MqttUser


class Publisher(MqttUser):
    host = "127.0.0.1"
    port = {port}
    wait_time = constant(0.02)

    def on_start(self):
        # MqttUser connects in the background; a publish before that fails (MQTT_ERR_NO_CONN).
        deadline = time.monotonic() + 10
        while not self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)

    @task
    def hello(self):
        # The payload says which worker process published it.
        self.client.publish("hello/locust", str(os.getpid()).encode())
"""


def test_mqtt_publishes_recorded_are_what_a_subscriber_received(
    run_cli, mosquitto: Mosquitto, subscriber: Subscriber, tmp_path: Path
) -> None:
    """Locust's MqttUser on two workers: each publish mpswarm recorded reached the broker's
    subscriber, and both worker processes published. Its host, a broker's address, is not an
    HTTP base URL: nothing warns about it."""
    lf = write(tmp_path / "lf.py", MQTT_PUBLISHER.format(port=mosquitto.port))
    report = tmp_path / "r.json"
    run = run_cli("-f", str(lf), "--headless", "--processes", "2", "-u", "4", "-r", "100",
                  "-t", "3s", "--json-file", str(report))  # fmt: skip
    assert run.code == 0 and "WARNING" not in run.stderr, run
    _assert_publishes_arrived(report, subscriber)
    assert len(set(subscriber.received)) == 2, Counter(subscriber.received)
    assert _report_rows(report)[("MQTT", "connect")] == (4, 0)


BROKER_ON_LOOPBACK = """
import os

from locust import events


@events.init.add_listener
def broker_on_loopback(environment, **kwargs):
    # What Locust's --config-users '{{"user_class_name": "MyUser", "port": ...}}' sets.
    for user_class in environment.user_classes:
        user_class.host, user_class.port = "127.0.0.1", {port}
"""


def _locust_example(relative: str) -> Path:
    source = os.environ.get(SOURCE_VAR)
    if not source:
        pytest.skip(f"set {SOURCE_VAR} to a Locust checkout to run its {relative}")
    path = Path(source) / relative
    if not path.is_file():
        pytest.fail(f"{SOURCE_VAR}={source} has no {relative}")
    return path


def test_locusts_mqtt_example_runs_unchanged(
    run_cli, mosquitto: Mosquitto, subscriber: Subscriber, tmp_path: Path
) -> None:
    """Locust's own examples/mqtt/locustfile.py (its users sleep 5 s in on_start), its broker
    moved to this test's mosquitto by a second locustfile's init listener."""
    example = _locust_example("examples/mqtt/locustfile.py")
    settings = write(tmp_path / "broker.py", BROKER_ON_LOOPBACK.format(port=mosquitto.port))
    report = tmp_path / "r.json"
    run = run_cli("-f", f"{example},{settings}", "--headless", "--processes", "2", "-u", "4",
                  "-r", "100", "-t", "8s", "--json-file", str(report))  # fmt: skip
    assert run.code == 0, run
    assert _assert_publishes_arrived(report, subscriber) > 20
    assert set(subscriber.received) == {b"hello world"}


# -- socketio -----------------------------------------------------------------------------------


class SocketIOServer:
    """tests/compat/_socketio_server.py on a free loopback port."""

    def __init__(self) -> None:
        script = Path(__file__).with_name("_socketio_server.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.close()
            raise AssertionError(f"the Socket.IO server did not start: {self.url!r}")

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/counts", timeout=5) as response:
            return dict(json.loads(response.read()))

    def close(self) -> None:
        _stop(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture()
def socketio_server() -> Iterator[SocketIOServer]:
    _require_locust("socketio", "geventwebsocket")
    server = SocketIOServer()
    try:
        yield server
    finally:
        server.close()


SOCKETIO_USER = """
import gevent.event

from locust import constant, task
from locust.contrib.socketio import SocketIOUser


class Chatter(SocketIOUser):
    wait_time = constant(0)

    def on_start(self):
        self.news = gevent.event.Event()
        self.sio.on("news", self.on_news)
        self.sio.connect(self.host, wait_timeout=10)

    @task
    def chat(self):
        self.news.clear()
        self.sio.emit("chat", "hello")  # recorded as WSE chat
        assert self.sio.call("echo", "ping", timeout=10) == "ping"  # WSC echo
        assert self.news.wait(10), "no news came back"

    def on_news(self, data):
        self.sio.on_message("news", data)  # recorded as WSR news, as Locust's example does
        self.news.set()

    def on_stop(self):
        self.sio.disconnect()
"""


def test_socketio_messages_recorded_are_what_the_server_counted(
    run_cli, socketio_server: SocketIOServer, tmp_path: Path
) -> None:
    """Locust's SocketIOUser on two workers against a python-socketio server: messages sent,
    calls made and messages received, as recorded by mpswarm, are the server's counts."""
    lf = write(tmp_path / "lf.py", SOCKETIO_USER)
    report = tmp_path / "r.json"
    run = run_cli("-f", str(lf), "-H", socketio_server.url, "--headless", "--processes", "2",
                  "-u", "4", "-r", "100", "-i", "60", "--json-file", str(report))  # fmt: skip
    assert run.code == 0, run
    recorded = _report_rows(report)
    counts = socketio_server.counts()
    assert counts["chat"] == counts["echo"] == counts["news"] == 60, counts
    assert recorded[("WS", "connect")] == (counts["connect"], 0) == (4, 0)
    assert recorded[("WSE", "chat")] == (60, 0)
    assert recorded[("WSC", "echo")] == (60, 0)
    assert recorded[("WSR", "news")] == (60, 0)
