"""WebSocketUser against a real websockets server on 127.0.0.1 (tests/protocols/_ws_server.py).

The counts test runs the real CLI with two worker processes and compares what mpswarm
recorded with what the server counted; the edge cases (a dropped connection, a close with a
reason, a message over the cap, a ping, wss with a test CA) drive ``WebSocketClient`` in this
process, recording through a list, and once through the CLI to see the user live on.

wsproto (the websocket extra) and websockets (the test extra) missing skip these tests,
unless ``MPSWARM_REQUIRE_PROTOCOLS`` is set (``.ci/run`` sets it): there they fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, DemoServer, write
from tests.http._pki import Pki, make_pki

for _module in ("wsproto", "websockets"):
    if importlib.util.find_spec(_module) is None:
        if os.environ.get("MPSWARM_REQUIRE_PROTOCOLS"):
            raise ImportError(f"{_module} is not installed (MPSWARM_REQUIRE_PROTOCOLS is set)")
        pytest.skip(f"{_module} is not installed (pip install -e '.[test]')",
                    allow_module_level=True)  # fmt: skip

from mpswarm.protocols.websocket import WebSocketClient  # noqa: E402

SERVER = Path(__file__).with_name("_ws_server.py")


class WsServer(DemoServer):
    """``_ws_server.py`` in a subprocess; ``stats()`` reads its counts (``close()``: the demo
    server's)."""

    def __init__(self, pki: Pki | None = None) -> None:
        args = [str(pki.server_cert), str(pki.server_key)] if pki else []
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), *args], stdout=subprocess.PIPE, stderr=self._log,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()  # printed once it listens
        if "://" not in self.url:
            self.close()
            raise RuntimeError(f"the WebSocket server did not start: {self.url!r}")
        self._context = ssl.create_default_context(cafile=str(pki.ca)) if pki else None

    def stats(self) -> dict[str, int]:
        url = self.url.replace("ws", "http", 1) + "/__stats"
        with urllib.request.urlopen(url, timeout=5, context=self._context) as response:
            counts: dict[str, int] = json.loads(response.read())
        return counts


@pytest.fixture()
def server() -> Iterator[WsServer]:
    running = WsServer()
    yield running
    running.close()


class Recorded:
    """A request event that keeps what was fired."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def fire(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)

    def failures(self) -> list[str]:
        return [str(call["exception"]) for call in self.calls if call["exception"]]


def client(url: str, **options: Any) -> tuple[WebSocketClient, Recorded]:
    event = Recorded()
    return WebSocketClient(None, url, event, network_timeout=5, **options), event


def _rows(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    report = json.loads(path.read_text())
    return {(e["method"], e["name"]): (e["requests"], e["failures"]) for e in report["endpoints"]}


COUNTED = """\
from mpswarm import WebSocketUser, task


class Chat(WebSocketUser):
    def on_start(self):
        self.ws.connect("/echo?room=1", headers={"X-Token": "t"})

    @task(3)
    def round_trip(self):
        assert self.ws.request("hello", name="hello") == "hello"

    @task
    def send_then_recv(self):
        self.ws.send(b"\\x00bin")
        assert self.ws.recv(timeout=5) == b"\\x00bin"
"""


def test_recorded_counts_equal_the_servers_with_two_processes(
    run_cli: Any, server: WsServer, tmp_path: Path
) -> None:
    locustfile = write(tmp_path / "chat.py", COUNTED)
    report = tmp_path / "run.json"
    result = run_cli("-f", str(locustfile), "-H", server.url.replace("ws", "http", 1),
                     "--headless", "-u", "4", "-r", "4", "-t", "3s", "--processes", "2",
                     "--only-summary", "--json-file", str(report))  # fmt: skip
    assert result.code == 0, result
    rows = _rows(report)
    counts = server.stats()
    connects, requests, sends, recvs = (
        rows[key] for key in [("WS-CONNECT", "/echo"), ("WS-REQUEST", "hello"),
                              ("WS-SEND", "/echo"), ("WS-RECV", "/echo")]
    )  # fmt: skip
    assert connects == (4, 0) and counts["connections"] == counts["tokens"] == 4
    assert requests[1] == sends[1] == recvs[1] == 0, rows
    assert requests[0] + sends[0] == counts["received"] > 100
    # a user stopped between its send and its recv leaves one echo unread
    assert counts["sent"] - 4 <= requests[0] + recvs[0] <= counts["sent"]


DROPPED = """\
from mpswarm import WebSocketUser, task


class Dropped(WebSocketUser):
    @task
    def call(self):
        if not self.ws.connected:
            self.ws.connect("/drop")
        assert self.ws.request("x") is None  # failed, recorded, not raised
        assert not self.ws.connected
"""


def test_a_dropped_connection_fails_the_call_and_the_user_lives_on(
    run_cli: Any, server: WsServer, tmp_path: Path
) -> None:
    locustfile = write(tmp_path / "dropped.py", DROPPED)
    report = tmp_path / "run.json"
    result = run_cli("-f", str(locustfile), "-H", server.url, "--headless", "-u", "2",
                     "-r", "2", "-i", "6", "--processes", "2", "--only-summary",
                     "--json-file", str(report))  # fmt: skip
    rows = _rows(report)
    assert rows[("WS-CONNECT", "/drop")] == (6, 0), result
    assert rows[("WS-REQUEST", "/drop")] == (6, 6), result  # each one the server dropped
    assert server.stats()["received"] == 6 and server.stats()["connections"] == 6
    errors = json.loads(report.read_text())["errors"]
    assert len(errors) == 1 and "dropped the connection" in json.dumps(errors), errors
    assert "Traceback" not in result.stderr and "AssertionError" not in result.stderr, result


def test_a_close_from_the_server_fails_later_calls_with_its_reason_escaped(
    server: WsServer,
) -> None:
    ws, event = client(server.url)
    assert ws.connect("/close")
    assert ws.request("x") is None
    assert ws.recv() is None and ws.send("y") is None
    failures = event.failures()
    assert len(failures) == 3 and all("(1011 'bye\\\\x1b[2J')" in text for text in failures), (
        failures
    )
    assert [call["request_type"] for call in event.calls] == [
        "WS-CONNECT", "WS-REQUEST", "WS-RECV", "WS-SEND"]  # fmt: skip
    assert ws.connect("/echo") and ws.request(b"again") == b"again"  # a new connection
    ws.close()


def test_a_message_over_the_cap_fails_and_closes_the_connection(server: WsServer) -> None:
    ws, event = client(server.url, max_message_size=100_000)
    assert ws.connect("/big")
    assert ws.request("100000") == b"x" * 100_000  # at the cap: taken
    assert ws.request("100001") is None
    assert not ws.connected
    assert "over max_message_size (100000 bytes)" in event.failures()[0]
    assert event.calls[1]["response_length"] == 100_000
    ws.close()


def test_fragments_make_one_message_and_count_against_the_cap(server: WsServer) -> None:
    ws, event = client(server.url, max_message_size=10_000)
    assert ws.connect("/fragments")
    assert ws.request("1000 10") == b"x" * 10_000  # at the cap, in 1 000 fragments
    assert ws.request("100 50 text") == "é" * 5_000  # 10 000 bytes in UTF-8
    assert ws.request("101 50 text") is None and not ws.connected
    assert "over max_message_size" in event.failures()[0]
    ws.close()


def test_a_ping_is_answered_while_waiting(server: WsServer) -> None:
    ws, event = client(server.url)
    assert ws.connect("ping", name="pinged")  # a path without its slash
    assert ws.request("hi") == b"pong seen"
    assert server.stats()["pongs"] == 1 and not event.failures()
    assert [call["name"] for call in event.calls] == ["pinged", "pinged"]
    ws.close()


def test_a_recv_past_its_timeout_fails_and_the_connection_stays(server: WsServer) -> None:
    ws, event = client(server.url)
    assert ws.connect("/echo")
    assert ws.recv(timeout=0.2) is None
    assert "no message within 0.2 s" in event.failures()[0]
    assert ws.connected and ws.request("still") == "still"
    ws.close()


def test_the_handshake_records_its_phases(server: WsServer) -> None:
    ws, event = client(server.url)
    assert ws.connect("/echo")
    connect_us, tls_us, first_byte_us, sent = event.calls[0]["response"]._phases
    assert connect_us >= 0 and tls_us == -1 and first_byte_us >= 0 and sent > 100
    ws.close()


def test_a_call_before_connect_raises_and_a_refused_connect_is_recorded() -> None:
    ws, event = client("ws://127.0.0.1:9")  # discard port: nothing listens on loopback
    with pytest.raises(RuntimeError, match=r"before self.ws.connect\(\)"):
        ws.send("x")
    assert not ws.connect("/") and len(event.failures()) == 1
    assert ws.recv() is None and "connect() failed" in event.failures()[1]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_wss_verifies_the_server_against_the_given_ca(pki: Pki) -> None:
    server = WsServer(pki)
    try:
        trusted = lambda: ssl.create_default_context(cafile=str(pki.ca))  # noqa: E731
        ws, event = client(server.url, ssl_context_factory=trusted)
        assert ws.connect("/echo") and ws.request("over tls") == "over tls"
        assert event.calls[0]["response"]._phases[1] >= 0  # the TLS handshake's time
        ws.close()
        ws, event = client(server.url.replace("wss", "https"))  # the default trust store
        assert not ws.connect("/echo")
        assert "CERTIFICATE_VERIFY_FAILED" in event.failures()[0]
        ws, event = client(server.url, insecure=True)
        assert ws.connect("/echo") and ws.request(b"unverified") == b"unverified"
        ws.close()
    finally:
        server.close()


WSS = """\
from mpswarm import WebSocketUser, task


class Secure(WebSocketUser):
    @task
    def call(self):
        if self.ws.connect("/echo"):
            self.ws.request("x")
            self.ws.close()
"""


def test_insecure_on_the_command_line_reaches_the_user(run_cli: Any, pki: Pki, tmp_path: Path
                                                       ) -> None:  # fmt: skip
    server = WsServer(pki)
    try:
        locustfile = write(tmp_path / "secure.py", WSS)
        report = tmp_path / "run.json"
        args = ["-f", str(locustfile), "-H", server.url, "--headless", "-u", "1", "-i", "3",
                "--processes", "1", "--only-summary", "--json-file", str(report)]  # fmt: skip
        result = run_cli(*args)
        assert _rows(report) == {("WS-CONNECT", "/echo"): (3, 3)}, result  # not trusted
        result = run_cli(*args, "--insecure")
        rows = _rows(report)
        assert rows[("WS-CONNECT", "/echo")] == rows[("WS-REQUEST", "/echo")] == (3, 0), result
        assert server.stats()["received"] == 3
    finally:
        server.close()


def test_a_host_of_another_scheme_is_refused_before_any_load(run_cli: Any, tmp_path: Path
                                                             ) -> None:  # fmt: skip
    locustfile = write(tmp_path / "chat.py", COUNTED)
    result = run_cli("-f", str(locustfile), "-H", "ftp://127.0.0.1:1", "--headless", "-t", "1s")
    assert result.code == 2, result
    assert "ws:// or wss:// or http:// or https://" in result.stderr.strip().splitlines()[-1]


def test_the_extra_is_named_when_wsproto_is_missing() -> None:
    code = (
        "import sys; sys.modules['wsproto'] = None\n"
        "import mpswarm\n"
        "try:\n    mpswarm.WebSocketUser\nexcept ImportError as exc:\n    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)  # fmt: skip
    assert "pip install 'mpswarm[websocket]'" in proc.stdout, proc
