"""The open-model target: tests/runner/timed_server.py in a subprocess, which notes when
each request arrived."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


class TimedServer:
    """tests/runner/timed_server.py in a subprocess."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "timed_server.py")], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip().rsplit(" ", 1)[-1]

    def times(self) -> list[float]:
        with urllib.request.urlopen(f"{self.url}/__times", timeout=5) as response:
            return list(json.loads(response.read()))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture()
def timed() -> Iterator[TimedServer]:
    server = TimedServer()
    yield server
    server.close()
