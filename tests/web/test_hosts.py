"""Which Host and Origin values the web UI answers: the allow-list, then forged requests."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from mpswarm.exceptions import UsageError
from mpswarm.web.hosts import AllowedHosts, parse_allowed_names, split_authority
from tests.conftest import ROOT

PORT = 8089
LOOPBACK = AllowedHosts("127.0.0.1", PORT, hostname="box")
EVERYWHERE = AllowedHosts("0.0.0.0", PORT, hostname="Box")
ONE_ADDRESS = AllowedHosts("10.1.2.3", PORT, hostname="box")
PROXIED = AllowedHosts("127.0.0.1", PORT, parse_allowed_names(["UI.example", "::2"]), "box")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:8089", ("localhost", 8089)),
        ("LocalHost", ("localhost", None)),
        ("[0:0::1]:80", ("::1", 80)),
        ("[::ffff:127.0.0.1]:1", ("127.0.0.1", 1)),
        ("127.0.0.1:65535", ("127.0.0.1", 65535)),
        ("127.0.0.1:0", None),
        ("127.0.0.1:65536", None),
        ("::1:8089", None),  # IPv6 needs brackets
        ("[not-v6]:1", None),
        ("a b", None),
        ("a,b", None),  # two Host headers joined
        ("evil.example:80/x", None),
        ("", None),
    ],
)
def test_split_authority(text: str, expected: tuple[str, int | None] | None) -> None:
    assert split_authority(text) == expected


@pytest.mark.parametrize(
    ("hosts", "header", "local", "allowed"),
    [
        (LOOPBACK, "127.0.0.1:8089", None, True),
        (LOOPBACK, "localhost:8089", None, True),
        (LOOPBACK, "[::1]:8089", None, True),
        (LOOPBACK, "LOCALHOST:8089", None, True),
        (LOOPBACK, "evil.example:8089", "127.0.0.1", False),  # the rebinding case
        (LOOPBACK, "localhost", None, False),  # no port: 80, not ours
        (LOOPBACK, "localhost:8090", None, False),
        (LOOPBACK, "localhost.:8089", None, False),
        (LOOPBACK, "127.0.0.2:8089", None, False),
        (LOOPBACK, "box:8089", None, False),  # the machine's name only when bound everywhere
        (LOOPBACK, None, None, False),  # HTTP/1.0 without Host
        (LOOPBACK, "", None, False),
        (AllowedHosts("127.0.0.1", 80), "localhost", None, True),  # port 80 may be left out
        (EVERYWHERE, "box:8089", None, True),
        (EVERYWHERE, "localhost:8089", None, True),
        (EVERYWHERE, "0.0.0.0:8089", None, True),
        (EVERYWHERE, "10.1.2.3:8089", "10.1.2.3", True),  # the address it arrived on
        (EVERYWHERE, "10.1.2.3:8089", "::ffff:10.1.2.3", True),
        (EVERYWHERE, "10.1.2.4:8089", "10.1.2.3", False),
        (EVERYWHERE, "box.lan:8089", "10.1.2.3", False),
        (ONE_ADDRESS, "10.1.2.3:8089", None, True),
        (ONE_ADDRESS, "localhost:8089", None, False),
        (PROXIED, "ui.example", None, True),  # named hosts: any port or none
        (PROXIED, "ui.example:443", None, True),
        (PROXIED, "[::2]:1", None, True),
        (PROXIED, "other.example", None, False),
    ],
)
def test_allowed_hosts(
    hosts: AllowedHosts, header: str | None, local: str | None, allowed: bool
) -> None:
    assert hosts.allows_host(header, local) is allowed


@pytest.mark.parametrize(
    ("hosts", "origin", "allowed"),
    [
        (LOOPBACK, "http://127.0.0.1:8089", True),
        (LOOPBACK, "http://localhost:8089", True),  # any accepted name, not the request's Host
        (LOOPBACK, "http://evil.example:8089", False),
        (LOOPBACK, "https://localhost:8089", False),
        (LOOPBACK, "http://localhost", False),
        (LOOPBACK, "null", False),
        (LOOPBACK, "", False),
        (LOOPBACK, "file://", False),
        (PROXIED, "https://ui.example", True),  # behind a proxy that terminates TLS
        (PROXIED, "http://ui.example:8080", True),
        (PROXIED, "https://evil.example", False),
    ],
)
def test_allowed_origins(hosts: AllowedHosts, origin: str, allowed: bool) -> None:
    assert hosts.allows_origin(origin) is allowed


@pytest.mark.parametrize("value", ["http://ui.example", "ui.example:8080", "a b", "", "..", "/x"])
def test_bad_allowed_names(value: str) -> None:
    with pytest.raises(UsageError, match="--web-allowed-host"):
        parse_allowed_names([value])


def test_names_for_the_log() -> None:
    own = ["127.0.0.1:8089", "[::1]:8089", "localhost:8089"]
    assert PROXIED.names() == [*own, "[::2] (any port)", "ui.example (any port)"]


# -- against a real web UI ------------------------------------------------------------------------
def _port(ui) -> str:  # type: ignore[no-untyped-def]
    return ui.base.rsplit(":", 1)[1]


def _raw(ui, request: bytes) -> bytes:  # type: ignore[no-untyped-def]
    """Send ``request`` as it is (urllib always adds a Host); the whole answer."""
    with socket.create_connection(("127.0.0.1", int(_port(ui))), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_rebound_name_gets_neither_page_nor_run(web, demo) -> None:
    ui = web()
    port = _port(ui)
    token = ui.csrf_token()  # what a rebinding page would have read from GET / before the fix
    evil = {"Host": f"evil.example:{port}"}
    for path in ("/", "/api/state", "/download/stats.csv", "/static/x.js"):
        status, body, headers = ui.request(path, headers=evil)
        assert status == 421, (path, status)
        assert headers["Content-Type"].startswith("text/plain")
        assert token.encode() not in body and b"CSRF" not in body
    status, body, _ = ui.request(
        "/api/start", {"users": 1, "spawn_rate": 10},
        headers={**evil, "Origin": f"http://evil.example:{port}"},
    )  # fmt: skip
    assert status == 421 and token.encode() not in body
    # HTTP/1.0 without a Host header: refused as well.
    answer = _raw(ui, b"GET / HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 421") and token.encode() not in answer
    assert ui.state()["state"] == "ready"
    assert demo.stats()["total"] == 0
    assert "refused a request for Host 'evil.example:" in ui.log.read_text()


def test_another_sites_origin_is_refused_even_with_the_token(web, demo) -> None:
    ui = web()
    port = _port(ui)
    evil = {"Origin": f"http://evil.example:{port}"}
    status, body, _ = ui.request("/api/start", {"users": 1, "spawn_rate": 10}, headers=evil)
    assert status == 403 and "cross-site" in json.loads(body)["error"]
    # Reads too: a cross-site fetch gets nothing, not even the state.
    status, body, _ = ui.request("/api/state", headers=evil)
    assert status == 403 and b"defaults" not in body
    status, _, _ = ui.request(
        "/api/start", {"users": 1, "spawn_rate": 10}, headers={"Origin": "null"}
    )
    assert status == 403
    assert ui.state()["state"] == "ready"
    assert demo.stats()["total"] == 0


def test_the_names_the_ui_is_served_as(web, demo) -> None:
    ui = web("--web-allowed-host", "ui.example", "--web-allowed-host", "proxy.example")
    port = _port(ui)
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "ui.example",
                 f"ui.example:{port}", "proxy.example:8443"):  # fmt: skip
        status, body, _ = ui.request("/", headers={"Host": host})
        assert status == 200 and b"const CSRF" in body, host
    # The page served as one name may post from another accepted one.
    status, body, _ = ui.request(
        "/api/start", {"users": 1, "spawn_rate": 10, "run_time": "1s"},
        headers={"Host": f"localhost:{port}", "Origin": f"http://127.0.0.1:{port}"},
    )  # fmt: skip
    assert status == 200, body
    ui.wait_for(lambda s: s["state"] == "stopped", timeout=30)
    assert demo.stats()["total"] > 0


def test_bound_everywhere_the_machine_name_and_the_environment(web) -> None:
    ui = web("--web-host", "0.0.0.0", env={"MPSWARM_WEB_ALLOWED_HOST": "ui.example other.example"})
    token = ui.url.split("?token=", 1)[1]
    ui.base = "http://127.0.0.1:" + _port(ui)
    bearer = {"Authorization": f"Bearer {token}"}
    printed = urlsplit(ui.url).netloc  # socket.gethostname():port
    assert printed.split(":")[0] == socket.gethostname()
    for host in (printed, f"localhost:{_port(ui)}", "other.example"):
        assert ui.request("/api/state", headers={**bearer, "Host": host})[0] == 200, host
    # Refused before authentication: a forged name learns nothing, not even that a token exists.
    status, body, _ = ui.request("/api/state", headers={**bearer, "Host": "evil.example"})
    assert status == 421 and b"token" not in body


def test_a_bad_allowed_host_is_a_usage_error(tmp_path) -> None:
    lf = tmp_path / "lf.py"
    lf.write_text(
        "from mpswarm import User, task\nclass U(User):\n    @task\n    def t(self): pass\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mpswarm", "-f", str(lf), "--web-port", "0",
         "--web-allowed-host", "http://ui.example"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "--web-allowed-host 'http://ui.example' is not a host name" in proc.stderr
