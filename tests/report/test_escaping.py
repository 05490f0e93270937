"""Text from a hostile server reaches no terminal, log or report raw.

A raw socket server on loopback answers with a reason phrase that would clear the screen and
set the window title, and a user's task raises an exception quoting it; the real CLI runs both
clients against it and writes every report.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from mpswarm._text import printable
from tests.conftest import write
from tests.http.conftest import ScriptedServer

EVIL = "\x1b[2J\x1b]0;pwned\x07Oops\u202e"
# How the escaped text reads in every output.
SHOWN = "\\x1b[2J\\x1b]0;pwned\\x07Oops\\u202e"
RAW = ("\x1b", "\x07", "\u202e")

LOCUSTFILE = """
from mpswarm import FastHttpUser, HttpUser, constant, task

EVIL = "\\x1b[2J\\x1b]0;pwned\\x07Oops\\u202e"

class Slow(HttpUser):
    wait_time = constant(0.05)
    @task
    def get(self):
        self.client.get("/h", name="/h" + EVIL)

class Fast(FastHttpUser):
    wait_time = constant(0.05)
    @task
    def get(self):
        self.client.get("/f")
        raise ValueError("the server said " + EVIL)
"""


def _evil_reason(conn: socket.socket, head: bytes) -> bool:
    conn.sendall(b"HTTP/1.1 503 " + EVIL.encode() + b"\r\nContent-Length: 0\r\n\r\n")
    return True


def test_printable_escapes_controls_and_caps_length() -> None:
    assert printable(EVIL) == SHOWN
    assert printable("caf\u00e9 \u65e5\u672c") == "caf\u00e9 \u65e5\u672c"  # letters stay
    assert printable("a\nb\r\tc") == "a\\x0ab\\x0d\\x09c"
    long = printable("x" * 10_000)
    assert long.startswith("x" * 500) and long.endswith("(9500 more characters)")


def test_server_text_is_escaped_in_every_output(run_cli, tmp_path: Path) -> None:
    server = ScriptedServer(_evil_reason)
    try:
        lf = write(tmp_path / "evil.py", LOCUSTFILE)
        out = tmp_path / "out"
        run = run_cli(
            *("-f", str(lf), "-H", server.url, "--headless", "-u", "2", "-r", "10"),
            *("-t", "2s", "--processes", "2", "--csv", str(out), "--json-file", f"{out}.json"),
            *("--html", f"{out}.html", "--junit", f"{out}.xml"),
        )
    finally:
        server.close()
    assert run.code == 1, run  # failed requests and an exception in user code
    outputs = {"stdout": run.stdout, "stderr": run.stderr}
    for path in tmp_path.glob("out*"):
        outputs[path.name] = path.read_text(encoding="utf-8")
    assert len(outputs) == 2 + 4 + 3  # four CSV files, JSON, HTML, JUnit
    raw = [(where, char) for where, text in outputs.items() for char in RAW if char in text]
    assert not raw, f"control characters reached these outputs raw: {raw}"
    # The escaped text is there to read: in the name, and in the exceptions table.
    assert f"/h{SHOWN}" in run.stdout
    assert f"ValueError: the server said {SHOWN}" in run.stdout
    report = json.loads(outputs["out.json"])
    assert any(row["name"] == f"/h{SHOWN}" for row in report["endpoints"])
    assert any(SHOWN in error["error"] for error in report["errors"]), report["errors"]
