"""A private nginx on loopback for the server-truth tests: its own prefix in a temporary folder,
``daemon off``, its own ports, and an access log per server block that the tests count.

nginx missing skips the tests that need it, unless ``MPSWARM_REQUIRE_NGINX=1`` (CI sets it):
there a missing nginx fails them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

REQUIRE_VAR = "MPSWARM_REQUIRE_NGINX"


def _executable() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Nginx:
    """nginx with one ``server`` block per entry of ``servers`` (its directives), each on a
    free loopback port, returning ``ok`` on ``/`` and a few other routes.

    Args:
        executable: the nginx binary.
        prefix: an empty folder of its own (config, pid file, logs, temp folders).
        servers: name -> directives added to that server block (``keepalive_requests 10;``).
        listen: parameters of every ``listen`` (``http2``: h2c; ``ssl http2``: over TLS).
    """

    def __init__(
        self, executable: str, prefix: Path, servers: dict[str, str], listen: str = ""
    ) -> None:
        self.prefix = prefix
        self.ports = {name: _free_port() for name in servers}
        blocks = "".join(
            f"  server {{ listen 127.0.0.1:{self.ports[name]} {listen};\n"
            f"    access_log {prefix / f'{name}.log'} truth;\n"
            f"    {directives}\n"
            '    location / { return 200 "ok"; }\n'
            '    location /item/ { return 200 "item"; }\n'
            "    location = /empty { return 204; }\n"
            "    location = /missing { return 404; }\n"
            "  }\n"
            for name, directives in servers.items()
        )
        conf = prefix / "nginx.conf"
        # Under root the workers would run as nobody, who cannot read or write the test's
        # folders (0700): they run as the user who started nginx instead.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"{user}worker_processes 1; daemon off; pid nginx.pid;\n"
            f"error_log {prefix / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "  log_format truth '$connection $connection_requests $status $request';\n"
            f"{blocks}"
            "}\n"
        )
        # -e: the error log from the start (before the config is read, nginx would try
        # /var/log/nginx/error.log, which a user other than root cannot open).
        self.proc = subprocess.Popen(
            [executable, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_listening()
        except BaseException:
            self.close()
            raise

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        for port in self.ports.values():
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx exited at start:\n{self.errors()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"nginx did not listen on {port}:\n{self.errors()}")
                    time.sleep(0.05)

    def log(self, name: str) -> list[str]:
        """The access log lines of server ``name``: ``connection requests-on-it status request``."""
        path = self.prefix / f"{name}.log"
        return path.read_text().splitlines() if path.exists() else []

    def logged(self, name: str, expected: int, within: float = 3.0) -> list[str]:
        """The log once it has ``expected`` lines, or as it is after ``within`` seconds (nginx
        writes a line just after the response, so a client may count it first)."""
        deadline = time.monotonic() + within
        while True:
            lines = self.log(name)
            if len(lines) >= expected or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    @staticmethod
    def statuses(lines: list[str]) -> Counter[str]:
        return Counter(line.split(" ")[2] for line in lines)

    def errors(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def close(self) -> None:
        try:
            workers = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            workers = []
        if self.proc.poll() is None:
            self.proc.terminate()  # nginx: SIGTERM is a fast shutdown, workers included
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _, alive = psutil.wait_procs(workers, timeout=5)
        for worker in alive:  # the master was killed before it could stop them
            worker.kill()
        assert not alive, f"nginx workers outlived their master: {alive}"


def open_nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    """For a fixture: yields ``start(servers)``, which starts a private nginx (see ``Nginx``);
    every nginx started is stopped afterwards. Skips where nginx is not installed, unless
    ``MPSWARM_REQUIRE_NGINX=1``."""
    executable = _executable()
    if executable is None:
        if os.environ.get(REQUIRE_VAR) == "1":
            raise RuntimeError(f"{REQUIRE_VAR}=1 is set but nginx is not installed")
        pytest.skip("nginx is not installed")
    started: list[Nginx] = []

    def start(servers: dict[str, str], listen: str = "") -> Nginx:
        prefix = tmp_path / f"nginx{len(started)}"
        prefix.mkdir()
        server = Nginx(executable, prefix, servers, listen)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.close()
