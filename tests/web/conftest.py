"""A real ``mpswarm`` web UI on loopback, against the demo server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, mpswarm_env, wait_until_gone

LOCUSTFILE = """
from mpswarm import FastHttpUser, constant, task

class Reader(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def item(self):
        self.client.get("/items/1")

class Writer(FastHttpUser):
    wait_time = constant(0.5)

    @task
    def echo(self):
        self.client.post("/echo", json={"item": 1})
"""

# What a hostile or broken target makes the page show: markup and a terminal escape sequence in
# an error text, an endpoint name and an exception message.
HOSTILE = r"""
from mpswarm import FastHttpUser, constant, task

class Hostile(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def item(self):
        with self.client.get("/items/1", name="<b>bold</b>", catch_response=True) as response:
            response.failure("<img src=x onerror=alert(1)> \x1b[2J")
        raise ValueError("<script>alert(2)</script> \x1b[2J")
"""


class WebUI:
    """``python -m mpswarm -f LOCUSTFILE --web-port 0 ...`` and its URL."""

    def __init__(
        self, args: list[str], tag: str, cwd: Path, env: dict[str, str] | None = None
    ) -> None:
        self.log = cwd / "mpswarm.log"
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mpswarm", "--web-port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=mpswarm_env(tag, env),
            cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        self.url = ""
        while time.monotonic() < deadline and not self.url:
            for line in self.log.read_text().splitlines():
                if line.startswith("mpswarm web UI: "):
                    self.url = line.split(": ", 1)[1].strip()
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        if not self.url:
            self.stop()
            raise RuntimeError(f"the web UI did not start:\n{self.log.read_text()}")
        self.base = self.url.split("?", 1)[0].rstrip("/")
        self.csrf = ""

    def request(
        self,
        path: str,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        csrf: bool = True,
    ) -> tuple[int, bytes, Any]:
        """(status, body, headers) of a GET, or of a POST when ``data`` is given."""
        all_headers = dict(headers or {})
        body = None
        if data is not None:
            body = json.dumps(data).encode()
            all_headers["Content-Type"] = "application/json"
            if csrf:
                all_headers["X-Mpswarm-Csrf"] = self.csrf_token()
        request = urllib.request.Request(self.base + path, data=body, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers

    def csrf_token(self) -> str:
        if not self.csrf:
            page = self.request("/")[1].decode()
            self.csrf = page.split('const CSRF = "', 1)[1].split('"', 1)[0]
        return self.csrf

    def state(self) -> dict[str, Any]:
        status, body, _ = self.request("/api/state")
        assert status == 200, body
        return dict(json.loads(body))

    def wait_for(self, what: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if what(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; last state: {json.dumps(state)[:2000]}")
            time.sleep(0.3)

    def stop(self, timeout: float = 30) -> str:
        """SIGINT, as Ctrl-C; returns stdout (the last run's summary)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self._log.close()
        return out or ""


@pytest.fixture()
def web(tmp_path: Path, demo) -> Iterator[Callable[..., WebUI]]:
    """Start web UIs on the demo server; all are stopped and checked for leftovers after."""
    lf = tmp_path / "lf.py"
    lf.write_text(LOCUSTFILE)
    tag = uuid.uuid4().hex
    started: list[WebUI] = []

    def start(*args: str, host: bool = True, env: dict[str, str] | None = None) -> WebUI:
        base = ["-f", str(lf), "--processes", "2"] + (["-H", demo.url] if host else [])
        ui = WebUI([*base, *args], tag, tmp_path, env)
        started.append(ui)
        return ui

    yield start
    for ui in started:
        ui.stop()
    left = wait_until_gone(tag)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind: {left}"
