"""HTTP/2 for FastHttpUser (``http2 = True``): the real CLI against nginx (h2c with prior
knowledge, and TLS with ALPN and a CA the test makes) counted against nginx's access log, the
same Response API as the HTTP/1.1 lean client on the same URLs, big bodies both ways under
flow control, and what nginx will not do on request (hold streams open, reset one, send a
GOAWAY past a stream it got) against a small h2 server of the test's own on loopback.

h2 missing skips these tests, unless ``MPSWARM_REQUIRE_PROTOCOLS`` is set (CI): there they
fail. nginx missing skips the nginx ones unless ``MPSWARM_REQUIRE_NGINX=1``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from mpswarm.http._transport import shared
from mpswarm.http.fastclient import FastHttpSession
from tests.conftest import ROOT, write
from tests.http._nginx import Nginx, open_nginx

try:
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.settings
except ImportError:
    if os.environ.get("MPSWARM_REQUIRE_PROTOCOLS"):
        raise
    pytest.skip("h2 is not installed (pip install 'mpswarm[http2]')", allow_module_level=True)

ROUTES = """
    client_max_body_size 16m;
    location = /redirect { return 302 /item/2; }
    location = /twice { return 301 /redirect; }
    location = /cookie { add_header Set-Cookie "flavour=h2; Path=/"; return 200 "cookie"; }
    location /files/ { root %(root)s; dav_methods PUT; create_full_put_path on; }
    location /gz/ { root %(root)s; gzip on; gzip_types text/plain; gzip_min_length 1; }
"""


@pytest.fixture()
def nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    yield from open_nginx(tmp_path)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, and a certificate for 127.0.0.1 it signed (with its key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("h2tls")
    files = {name: folder / f"{name}.pem" for name in ("ca", "ca_key", "cert", "key", "csr")}

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=mpswarm test CA",
            "-keyout", str(files["ca_key"]), "-out", str(files["ca"]))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", str(files["key"]), "-out", str(files["csr"]))  # fmt: skip
    ext = write(folder / "ext.cnf", "subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(files["csr"]), "-CA", str(files["ca"]), "-CAkey",
            str(files["ca_key"]), "-CAcreateserial", "-days", "1", "-extfile", str(ext),
            "-out", str(files["cert"]))  # fmt: skip
    return files


def _tls(files: dict[str, Path]) -> str:
    return f"ssl_certificate {files['cert']}; ssl_certificate_key {files['key']};"


def _routes(root: Path) -> str:
    (root / "gz").mkdir(parents=True, exist_ok=True)
    (root / "files").mkdir()
    (root / "gz" / "text.txt").write_text("compressible " * 2000)
    return ROUTES % {"root": root}


def _protocols(lines: list[str]) -> Counter[str]:
    return Counter(line.rsplit(" ", 1)[-1] for line in lines)


def _report(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _run(
    run_cli: Any,
    tmp_path: Path,
    locustfile: str,
    host: str,
    users: int,
    processes: int,
    env: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """The real CLI, headless for 2 s; the run and its JSON report."""
    report = tmp_path / "report.json"
    run = run_cli(
        "-f", str(write(tmp_path / "locustfile.py", locustfile)), "--headless", "--only-summary",
        "-u", str(users), "-r", "100", "-t", "2s", "--processes", str(processes), "-H", host,
        "--json-file", str(report), env=env,
    )  # fmt: skip
    assert report.exists(), run
    return run, _report(report)


# -- the CLI, counted against nginx's access log -----------------------------------------------

COUNTED = """
from mpswarm import FastHttpUser, constant, task

class Client(FastHttpUser):
    http2 = True
    wait_time = constant(0)

    @task(4)
    def root(self):
        self.client.get("/")

    @task(2)
    def item(self):
        self.client.get("/item/1", name="/item/[id]")

    @task
    def missing(self):
        self.client.get("/missing")

    @task
    def post(self):
        self.client.post("/", data=b"x" * 300)
"""


def _counted(run_cli: Any, server: Nginx, host: str, tmp_path: Path, env: Any = None) -> str:
    """Run COUNTED with 2 processes; the recorded counts must be nginx's, all HTTP/2."""
    run, report = _run(run_cli, tmp_path, COUNTED, host, users=4, processes=2, env=env)
    assert run.code == 1, run  # exit 1: the 404s failed, as they must
    total = report["total"]
    lines = server.logged("main", total["requests"])
    statuses = server.statuses(lines)
    truth = (
        f"mpswarm recorded {total['requests']} requests, {total['failures']} failed; nginx "
        f"logged {len(lines)} {dict(statuses)} {dict(_protocols(lines))}"
    )
    print(truth)
    assert total["requests"] > 100, truth
    assert total["requests"] == len(lines), truth
    assert total["failures"] == statuses["404"], truth
    assert _protocols(lines) == {"HTTP/2.0": len(lines)}, truth
    return truth


def test_h2c_counts_equal_nginx_log(nginx: Any, run_cli: Any, tmp_path: Path) -> None:
    """h2c with prior knowledge, 2 worker processes; nginx ends each connection with a GOAWAY
    after 50 requests, which loses none and fails none."""
    server = nginx({"main": "keepalive_requests 50;"}, listen="http2")
    _counted(run_cli, server, server.url("main"), tmp_path)
    lines = server.log("main")
    assert len({line.split(" ")[0] for line in lines}) > len(lines) // 50, "GOAWAYs came"


def test_tls_alpn_counts_equal_nginx_log(
    nginx: Any, run_cli: Any, tmp_path: Path, tls_files: dict[str, Path]
) -> None:
    """HTTP/2 chosen by ALPN, the server's certificate verified against the test's CA."""
    server = nginx({"main": _tls(tls_files)}, listen="ssl http2")
    host = f"https://127.0.0.1:{server.ports['main']}"
    _counted(run_cli, server, host, tmp_path, env={"REQUESTS_CA_BUNDLE": str(tls_files["ca"])})


BURST = """
from gevent.pool import Pool
from mpswarm import FastHttpUser, StopUser, constant, task

class Burst(FastHttpUser):
    http2 = True
    wait_time = constant(0)

    @task
    def burst(self):
        pool = Pool(%(n)d)
        for i in range(%(n)d):
            pool.spawn(self.client.get, f"/item/{i}", name="/item/[id]")
        pool.join()
        raise StopUser()
"""


def test_concurrent_requests_share_one_connection(nginx: Any, run_cli: Any, tmp_path: Path) -> None:
    """Each user's 12 requests at once are streams on one connection, under nginx's limit of
    2 concurrent streams: nginx logs 12 requests on each of 2 connections, none refused."""
    server = nginx({"main": "http2_max_concurrent_streams 2;"}, listen="http2")
    burst = BURST % {"n": 12}
    run, report = _run(run_cli, tmp_path, burst, server.url("main"), users=2, processes=2)
    total = report["total"]
    lines = server.logged("main", 24)
    per_connection = Counter(line.split(" ")[0] for line in lines)
    truth = f"recorded {total}; nginx: {dict(per_connection)}"
    assert run.code == 0, run
    assert total["requests"] == 24 and total["failures"] == 0, truth
    assert sorted(per_connection.values()) == [12, 12], truth
    assert _protocols(lines) == {"HTTP/2.0": 24}, truth


STORM = """
from gevent.pool import Pool
from mpswarm import FastHttpUser, constant, task

class Storm(FastHttpUser):
    http2 = True
    wait_time = constant(0)

    @task
    def burst(self):
        pool = Pool(20)
        for i in range(20):
            if i % 5 == 0:
                pool.spawn(self.client.post, "/", data=b"x" * 100_000)
            else:
                pool.spawn(self.client.get, f"/item/{i}", name="/item/[id]")
        pool.join()
"""


def test_bursts_under_goaways_and_a_stream_limit_lose_and_fail_nothing(
    nginx: Any, run_cli: Any, tmp_path: Path
) -> None:
    """20 requests at once per user (POSTs of 100 KB among them) against 3 streams at a time
    and a GOAWAY every 7 requests: the streams past each GOAWAY go again on a new connection
    (POSTs too: the server processed none of them), and nginx logged every request recorded."""
    directives = "keepalive_requests 7; http2_max_concurrent_streams 3; client_max_body_size 1m;"
    server = nginx({"main": directives}, listen="http2")
    run, report = _run(run_cli, tmp_path, STORM, server.url("main"), users=4, processes=2)
    total = report["total"]
    lines = server.logged("main", total["requests"])
    truth = f"recorded {total['requests']} ({total['failures']} failed), nginx {len(lines)}"
    assert run.code == 0, run
    assert total["requests"] == len(lines) > 200 and total["failures"] == 0, truth
    assert server.statuses(lines) == {"200": len(lines)}, truth
    assert len({line.split(" ")[0] for line in lines}) > len(lines) // 7, truth


# -- the same Response API as HTTP/1.1 -------------------------------------------------------------


class _Events:
    """A request event that keeps what it was fired with."""

    def __init__(self) -> None:
        self._handlers = [self._fired]
        self.fired: list[dict[str, Any]] = []

    def _fired(self, **kwargs: Any) -> None:
        self.fired.append(kwargs)


def _session(host: str, ca: Path, http2: bool, **kwargs: Any) -> FastHttpSession:
    session = FastHttpSession(host, _Events(), http2=http2, **kwargs)
    session.trust_env = False  # requests lets REQUESTS_CA_BUNDLE beat a session's verify
    session.verify = str(ca)
    return session


_SKIPPED = {"date", "connection", "keep-alive", "transfer-encoding"}


def _fields(response: Any) -> dict[str, Any]:
    # HTTP/2 has no connection-specific headers (RFC 9113 8.2.2); the Date may tick between.
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() not in _SKIPPED}
    return {
        "status": response.status_code,
        "ok": response.ok,
        "headers": headers,
        "content": response.content,
        "text": response.text,
        "url": response.url,
        "history": [(r.status_code, r.url, r.headers.get("Location")) for r in response.history],
        "cookies": response.cookies.get_dict(),
        "error": str(response.error) if response.error else None,
        "encoding": response.encoding,
    }


def test_responses_equal_http11_field_by_field(
    nginx: Any, tmp_path: Path, tls_files: dict[str, Path]
) -> None:
    """One TLS port offering both by ALPN: the HTTP/1.1 lean client and the HTTP/2 client
    get the same status, reason, headers' values, body, URL, redirects, history, cookies."""
    server = nginx({"main": _tls(tls_files) + _routes(tmp_path / "www")}, listen="ssl http2")
    host = f"https://127.0.0.1:{server.ports['main']}"
    one, two = (_session(host, tls_files["ca"], http2) for http2 in (False, True))
    paths = ["/", "/item/7", "/empty", "/missing", "/redirect", "/twice", "/cookie", "/gz/text.txt"]
    try:
        for path in paths:
            for method in ("GET", "HEAD", "POST"):
                expected = _fields(one.request(method, path))
                response = two.request(method, path)
                assert _fields(response) == expected, (method, path)
                # HTTP/2 carries no reason phrase: the standard one (nginx's 405 says "Not
                # Allowed" in HTTP/1.1, the only phrase of its own on these routes)
                assert response.reason == HTTPStatus(response.status_code).phrase
        assert one.cookies.get_dict() == two.cookies.get_dict() == {"flavour": "h2"}
        no_redirect = two.get("/redirect", allow_redirects=False)
        assert (no_redirect.status_code, no_redirect.is_redirect) == (302, True)
        timings = two.get("/").timings  # the same breakdown per stream: none to connect again
        assert timings["connect"] is None and timings["ttfb"] is not None, timings
    finally:
        one.close()
        two.close()
    lines = server.logged("main", 2 * len(paths) * 3 + 2)
    protocols = _protocols(lines)  # each redirect followed a hop: nginx logged it in both
    assert protocols["HTTP/2.0"] == protocols["HTTP/1.1"] + 2 > 24, protocols


def test_big_bodies_both_ways_and_the_body_cap(
    nginx: Any, tmp_path: Path, tls_files: dict[str, Path]
) -> None:
    """A 3 MiB PUT (nginx's window is 64 KiB: sent as WINDOW_UPDATEs come) read back whole,
    streamed, and refused over a 1 MiB cap; over h2c and TLS alike."""
    body = os.urandom(3 << 20)
    h2c = nginx({"main": _routes(tmp_path / "c")}, listen="http2")
    tls = nginx({"main": _tls(tls_files) + _routes(tmp_path / "d")}, listen="ssl http2")
    hosts = [h2c.url("main"), f"https://127.0.0.1:{tls.ports['main']}"]
    for host in hosts:
        session = _session(host, tls_files["ca"], True)
        _big_bodies(session, body)
    for server in (h2c, tls):
        lines = server.log("main")
        assert _protocols(lines) == {"HTTP/2.0": 6}, lines
        assert len({line.split(" ")[0] for line in lines}) == 1, lines


def _big_bodies(session: FastHttpSession, body: bytes) -> None:
    try:
        put = session.put("/files/big.bin", data=body)
        assert put.status_code == 201, put.error
        got = session.get("/files/big.bin")
        assert hashlib.sha256(got.content).digest() == hashlib.sha256(body).digest()
        streamed = session.get("/files/big.bin", stream=True)
        assert sum(len(piece) for piece in streamed.iter_content(65536)) == len(body)
        capped = session.get("/files/big.bin", max_body_size=1 << 20)
        assert str(capped.error) == "BodyTooLarge: response body larger than 1 MiB (max_body_size)"
        half = session.get("/files/big.bin", stream=True)
        assert len(half.raw.read(1000)) == 1000
        half.close()  # cancels the stream; the connection goes on
        assert session.get("/").content == b"ok"
    finally:
        session.close()


# -- what nginx will not do on request: a small h2 server of the test's own ----------------------


class H2Server:
    """An h2 server on loopback answering ``ok`` ``delay`` seconds after a request's end, with
    a stream limit, ``/reset`` answered with RST_STREAM, ``/headers`` with 150 headers, and a
    GOAWAY past the ``goaway_at``-th request of a connection (that request unanswered).
    Counts what it received and answered, and keeps each request (``seen``)."""

    def __init__(self, max_streams: int = 100, delay: float = 0.0, goaway_at: int = 0) -> None:
        self.max_streams, self.delay, self.goaway_at = max_streams, delay, goaway_at
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.connections = 0
        self.most_open = 0
        #: Each request received whole: (its header list, its body).
        self.seen: list[tuple[list[tuple[bytes, bytes]], bytearray]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        conn = h2.connection.H2Connection(config=config)
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams},
        )
        conn.initiate_connection()
        due: list[tuple[float, int, str]] = []
        count = 0
        partial: dict[int, tuple[str, list[tuple[bytes, bytes]], bytearray]] = {}
        with sock:
            sock.sendall(conn.data_to_send())
            while not self._stop.is_set():
                wait = max(0.0, min(d[0] for d in due) - time.monotonic()) if due else 0.1
                if select.select([sock], [], [], wait)[0]:
                    data = sock.recv(65536)
                    if not data:
                        return
                    for event in conn.receive_data(data):
                        if isinstance(event, h2.events.RequestReceived):
                            count += 1
                            head = dict(event.headers)
                            name = f"{head[b':method'].decode()} {head[b':path'].decode()}"
                            with self.lock:
                                self.received[name] += 1
                            if count == self.goaway_at:
                                conn.close_connection(last_stream_id=event.stream_id - 2)
                                sock.sendall(conn.data_to_send())
                                _linger(sock)
                                return
                            if head[b":path"] == b"/headers":  # over the header cap
                                many = [(f"x-{n}".encode(), b"v") for n in range(150)]
                                conn.send_headers(event.stream_id, [(b":status", b"200"), *many])
                                conn.send_data(event.stream_id, b"ok", end_stream=True)
                                continue
                            if head[b":path"] == b"/reset":
                                conn.reset_stream(
                                    event.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR
                                )
                                continue
                            partial[event.stream_id] = (name, event.headers, bytearray())
                        elif isinstance(event, h2.events.StreamReset):  # cancelled
                            due = [item for item in due if item[1] != event.stream_id]
                            partial.pop(event.stream_id, None)
                        elif isinstance(event, h2.events.StreamEnded):  # answered from now
                            if event.stream_id in partial:
                                name, headers, body = partial.pop(event.stream_id)
                                due.append((time.monotonic() + self.delay, event.stream_id, name))
                                with self.lock:
                                    self.seen.append((headers, body))
                                    self.most_open = max(self.most_open, len(due))
                        elif isinstance(event, h2.events.DataReceived):
                            if event.stream_id in partial:
                                partial[event.stream_id][2].extend(event.data)
                            conn.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id
                            )
                now = time.monotonic()
                for item in [d for d in due if d[0] <= now]:
                    due.remove(item)
                    conn.send_headers(item[1], [(b":status", b"200"), (b"content-length", b"2")])
                    conn.send_data(item[1], b"ok", end_stream=True)
                    with self.lock:
                        self.answered[item[2]] += 1
                sock.sendall(conn.data_to_send())

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


def _linger(sock: socket.socket) -> None:
    """End the connection without a TCP reset (the unread request body would cause one, and
    the client would lose the GOAWAY before it): shut writing, read until the client closes."""
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(2)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


@pytest.fixture()
def h2_server() -> Iterator[Callable[..., H2Server]]:
    started: list[H2Server] = []

    def start(**options: Any) -> H2Server:
        server = H2Server(**options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def test_the_servers_stream_limit_is_honoured(h2_server: Any, run_cli: Any, tmp_path: Path) -> None:
    """16 requests at once against a limit of 3 streams, each held 50 ms: never more than 3
    open at a time, and all 16 answered on one connection."""
    server = h2_server(max_streams=3, delay=0.05)
    host = f"http://127.0.0.1:{server.port}"
    _, report = _run(run_cli, tmp_path, BURST % {"n": 16}, host, users=1, processes=1)
    assert report["total"]["requests"] == 16 and report["total"]["failures"] == 0, report["total"]
    assert (server.most_open, server.connections) == (3, 1)
    assert sum(server.answered.values()) == 16


RESET_AND_GOAWAY = """
from mpswarm import FastHttpUser, StopUser, constant, task

class Client(FastHttpUser):
    http2 = True
    wait_time = constant(0)

    @task
    def once(self):
        self.client.get("/reset")
        for _ in range(3):
            self.client.get("/")
        self.client.post("/", data=b"form")
        self.client.get("/")
        self.client.post("/", data=(piece for piece in [b"a", b"b"]))  # (cannot go twice)
        raise StopUser()
"""


def test_rst_stream_fails_one_request_and_goaway_sends_unprocessed_ones_again(
    h2_server: Any, run_cli: Any, tmp_path: Path
) -> None:
    """A reset stream is one failed request with a stable text. A GOAWAY leaves the 3rd request
    of each connection unprocessed: sent again on a new connection, a POST too (RFC 9113 6.8:
    the server did not process it), except a POST whose body was a generator (not twice)."""
    server = h2_server(goaway_at=3)
    host = f"http://127.0.0.1:{server.port}"
    _, report = _run(run_cli, tmp_path, RESET_AND_GOAWAY, host, users=1, processes=1)
    rows = {(e["method"], e["name"]): (e["requests"], e["failures"]) for e in report["endpoints"]}
    errors = {e["error"]: e["occurrences"] for e in report.get("errors", [])}
    truth = f"{rows} {errors} received {dict(server.received)} answered {dict(server.answered)}"
    # connection 1: /reset, GET a, GET b (3rd: GOAWAY) -> connection 2: GET b, GET c, POST
    # bytes (3rd) -> connection 3: POST bytes, GET d, POST generator (3rd): failed.
    assert rows[("GET", "/reset")] == (1, 1), truth
    assert rows[("GET", "/")] == (4, 0), truth
    assert rows[("POST", "/")] == (2, 1), truth
    assert server.received == {"GET /reset": 1, "GET /": 5, "POST /": 3}, truth
    assert server.answered == {"GET /": 4, "POST /": 1}, truth
    assert server.connections == 3, truth
    assert errors == {
        "BadResponse: the server reset the HTTP/2 stream (INTERNAL_ERROR)": 1,
        "BadResponse: the server closed the HTTP/2 connection (GOAWAY) before the request": 1,
    }, truth


def test_http2_is_a_client_option_too() -> None:
    """``FastHttpSession(..., http2=True)``, as httpx's client takes it; read-only after."""
    assert FastHttpSession("http://127.0.0.1:1", _Events(), http2=True).http2 is True
    assert FastHttpSession("http://127.0.0.1:1", _Events()).http2 is False


def test_the_example_runs(nginx: Any, run_cli: Any, tmp_path: Path) -> None:
    """examples/http2.py as its docstring says (shortened), against nginx's h2c."""
    server = nginx({"main": ""}, listen="http2")
    example = (ROOT / "examples" / "http2.py").read_text()
    run, report = _run(run_cli, tmp_path, example, server.url("main"), users=4, processes=2)
    assert run.code == 0, run
    total = report["total"]
    lines = server.logged("main", total["requests"])
    assert total["requests"] == len(lines) > 0 and total["failures"] == 0, run
    assert _protocols(lines) == {"HTTP/2.0": len(lines)}
    # 4 users, one connection each: every request of a user on its own one
    assert len({line.split(" ")[0] for line in lines}) == 4, lines


def test_a_server_choosing_http11_by_alpn_gets_http11(
    nginx: Any, tmp_path: Path, tls_files: dict[str, Path]
) -> None:
    """nginx without http2 answers ALPN with http/1.1: the requests go as HTTP/1.1 (the lean
    client), on one kept-alive connection, the first one included."""
    server = nginx({"main": _tls(tls_files)}, listen="ssl")
    session = _session(f"https://127.0.0.1:{server.ports['main']}", tls_files["ca"], True)
    try:
        responses = [session.get("/item/1") for _ in range(3)]
    finally:
        session.close()
    assert [(r.status_code, r.content, r.error) for r in responses] == [(200, b"item", None)] * 3
    assert responses[0].timings["tls"] is not None and responses[1].timings["tls"] is None
    lines = server.logged("main", 3)
    assert _protocols(lines) == {"HTTP/1.1": 3}, lines
    assert len({line.split(" ")[0] for line in lines}) == 1, lines


def test_without_h2_the_locustfile_fails_to_load_naming_the_extra(tmp_path: Path) -> None:
    """``http2 = True`` where h2 is not installed: exit 2 before any load, one line naming
    ``pip install 'mpswarm[http2]'`` (h2 hidden from a child process here)."""
    locustfile = write(tmp_path / "locustfile.py", COUNTED)
    run = subprocess.run(
        [sys.executable, "-c", "import sys, runpy; sys.modules['h2'] = None; "
         "runpy.run_module('mpswarm', run_name='__main__')",
         "-f", str(locustfile), "--headless", "-H", "http://127.0.0.1:1", "-t", "1s"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 2, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'mpswarm[http2]'" in lines[0], run.stderr


def test_header_cap_and_read_timeout_fail_one_request_not_the_connection(
    h2_server: Any,
) -> None:
    """150 response headers (the cap is 100) and a response slower than the read timeout
    are failed requests with the HTTP/1.1 client's texts; the connection serves on."""
    server = h2_server(delay=0.5)
    session = FastHttpSession(f"http://127.0.0.1:{server.port}", _Events(), http2=True)
    try:
        assert (
            str(session.get("/headers").error) == "HeadersTooLarge: more than 100 response headers"
        )
        late = session.get("/", timeout=0.1)
        assert str(late.error) == "ReadTimeout: read timed out after 0.1 s", late.error
        assert (
            session.get("/").content == b"ok"
        )  # (the late answer, to a cancelled stream, ignored)
    finally:
        session.close()
    assert server.connections == 1


def test_sessions_sharing_a_client_pool_share_the_connection(nginx: Any) -> None:
    """``client_pool``: users whose classes name the same object share one connection per
    origin over HTTP/2 too (their requests are streams on it)."""
    server = nginx({"main": ""}, listen="http2")
    pool = object()
    sessions = [
        FastHttpSession(server.url("main"), _Events(), http2=True, client_pool=pool)
        for _ in range(3)
    ]
    try:
        assert [s.get("/").content for s in sessions for _ in range(2)] == [b"ok"] * 6
        sessions[0].close()  # (its own connections: the shared one serves the others on)
        assert sessions[1].get("/").content == b"ok"
    finally:
        for conn in list(shared(pool, dict).values()):
            conn.close()
    lines = server.logged("main", 7)
    assert len(lines) == 7 and len({line.split(" ")[0] for line in lines}) == 1, lines


def test_what_the_server_receives(h2_server: Any) -> None:
    """The request as HTTP/2 carries it: pseudo-headers first (``:authority`` from the
    ``Host`` the session made), the session's and the request's headers, cookies and basic
    auth in lower-case names, no connection headers, the body whole; a generator's pieces
    (chunked over HTTP/1.1) as DATA without framing."""
    server = h2_server()
    host = f"127.0.0.1:{server.port}"
    session = FastHttpSession(f"http://{host}", _Events(), http2=True)
    session.headers["X-Session"] = "s"
    session.cookies.set("flavour", "h2")
    try:
        posted = session.post(
            "/form?q=1", json={"a": 1}, headers={"X-Custom": "v"}, auth=("user", "pw")
        )
        put = session.put("/up", data=(piece for piece in [b"ab", b"cd"]))
    finally:
        session.close()
    assert (posted.status_code, put.status_code) == (200, 200), (posted.error, put.error)
    (first, body), (second, chunked) = server.seen
    assert [name for name, _ in first[:4]] == [b":method", b":scheme", b":authority", b":path"]
    head = dict(first)
    assert (head[b":method"], head[b":scheme"], head[b":path"]) == (b"POST", b"http", b"/form?q=1")
    assert head[b":authority"] == host.encode()
    assert (head[b"x-custom"], head[b"x-session"], head[b"cookie"]) == (b"v", b"s", b"flavour=h2")
    assert head[b"authorization"] == b"Basic " + base64.b64encode(b"user:pw")
    assert head[b"content-type"] == b"application/json" and bytes(body) == b'{"a": 1}'
    assert head[b"content-length"] == str(len(body)).encode()
    assert all(name == name.lower() for name, _ in first)
    for forbidden in (b"host", b"connection", b"transfer-encoding", b"keep-alive"):
        assert forbidden not in head and forbidden not in dict(second)
    assert bytes(chunked) == b"abcd" and b"content-length" not in dict(second)
