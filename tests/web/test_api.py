"""The web UI over HTTP: its JSON API against a real run, downloads, auth and cross-site rules."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request

from mpswarm.report.csv_report import STATS_HEADER
from tests.conftest import ROOT
from tests.web.conftest import HOSTILE, LOCUSTFILE


def test_page_is_self_contained(web) -> None:
    ui = web()
    status, body, headers = ui.request("/")
    assert status == 200
    page = body.decode()
    # Nothing loaded from the network: no external src/href, a CSP that forbids it.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "Access-Control-Allow-Origin" not in headers
    assert ui.state()["state"] == "ready"


def test_page_builds_no_markup_from_data() -> None:
    # Names, error texts and messages come from the servers under test: the page's script puts
    # them in with textContent / setAttribute only, never through an HTML parser.
    page = (ROOT / "mpswarm" / "web" / "page.html").read_text()
    script = page.split("<script>", 1)[1]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "createContextualFragment", "DOMParser"):  # fmt: skip
        assert sink not in script, sink


def test_hostile_texts_reach_the_page_as_text(web, tmp_path) -> None:
    hostile = tmp_path / "hostile.py"
    hostile.write_text(HOSTILE)
    ui = web("-f", str(hostile))
    assert ui.request("/api/start", {"users": 2, "spawn_rate": 10})[0] == 200
    state = ui.wait_for(lambda s: s["errors"] and s["exceptions"])
    assert ui.request("/api/stop", {})[0] == 200
    error = state["errors"][0]
    assert error["name"] == "<b>bold</b>"
    assert "<img src=x onerror=alert(1)>" in error["error"]  # as it was sent: the page shows it
    assert "\\x1b[2J" in error["error"] and "\x1b" not in error["error"]  # escaped, inert
    assert [e["name"] for e in state["endpoints"]] == ["<b>bold</b>"]
    message = state["exceptions"][0]["message"]
    assert "<script>alert(2)</script>" in message
    assert "\\x1b[2J" in message and "\x1b" not in message


def test_start_watch_change_stop_download_and_start_again(web, demo) -> None:
    ui = web()
    assert ui.request("/api/start", {"users": 4, "spawn_rate": 10, "run_time": ""})[0] == 200
    state = ui.wait_for(lambda s: s["users"] == 4 and s["total"]["requests"] > 20)
    assert state["state"] == "running"
    assert {e["name"] for e in state["endpoints"]} == {"/items/1", "/echo"}
    assert sum(w["users"] for w in state["workers"]) == 4
    assert all(w["pid"] and w["cpu_percent"] >= 0 for w in state["workers"])
    # Steering: more users through the same dispatch path as the command line.
    assert ui.request("/api/change", {"users": 10, "spawn_rate": 10})[0] == 200
    ui.wait_for(lambda s: sum(w["users"] for w in s["workers"]) == 10)
    ui.wait_for(lambda s: len(s["series"]) >= 3 and s["series"][-1]["rps"] > 0)
    assert ui.request("/api/stop", {})[0] == 200
    state = ui.wait_for(lambda s: s["state"] == "stopped")
    served = demo.stats()["total"]
    assert state["total"]["requests"] == served  # exact once stopped
    # Downloads of the run that just ended.
    status, body, headers = ui.request("/download/stats.csv")
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == STATS_HEADER and rows[-1][1] == "Aggregated"
    assert int(rows[-1][2]) == served
    report = json.loads(ui.request("/download/report.json")[1])
    assert report["total"]["requests"] == served and report["settings"]["users"] == 10
    assert b"mpswarm report" in ui.request("/download/report.html")[1]
    history = ui.request("/download/stats_history.csv")[1].decode().splitlines()
    assert history[0].startswith("Timestamp,User Count") and len(history) > 2
    # A new run starts from zero.
    demo.reset()
    assert ui.request("/api/start", {"users": 2, "spawn_rate": 10, "run_time": "2s"})[0] == 200
    state = ui.wait_for(lambda s: s["state"] == "stopped", timeout=30)
    assert state["total"]["requests"] == demo.stats()["total"] > 0


def test_bad_requests_are_clear_errors(web) -> None:
    ui = web()
    status, body, _ = ui.request("/api/start", {"users": -1, "spawn_rate": 1})
    assert status == 400 and "users" in json.loads(body)["error"]
    for rate in ("nan", "inf", "-inf", 0):
        status, body, _ = ui.request("/api/start", {"users": 1, "spawn_rate": rate})
        assert status == 400 and "positive, finite" in json.loads(body)["error"], (rate, body)
    status, body, _ = ui.request("/api/start", {"users": 10**10, "spawn_rate": 1})
    assert status == 400 and "more users than this machine" in json.loads(body)["error"]
    status, body, _ = ui.request("/api/start", {"users": 1, "spawn_rate": 1, "host": "ftp://x"})
    assert status == 400 and "host" in json.loads(body)["error"]
    status, body, _ = ui.request(
        "/api/start", {"users": 1, "spawn_rate": 1, "host": "http://127.0.0.1:99999"}
    )
    assert status == 400 and "port must be a number from 1 to 65535" in json.loads(body)["error"]
    status, body, _ = ui.request("/api/start", {"users": 1, "spawn_rate": 1, "user_classes": ["X"]})
    assert status == 400 and "unknown user class" in json.loads(body)["error"]
    assert ui.request("/api/stop", {})[0] == 400  # nothing running
    assert ui.request("/download/nope.txt")[0] == 404
    assert ui.request("/nope")[0] == 404


def test_cross_site_posts_are_refused(web) -> None:
    ui = web()
    # No CSRF header: what a form or a simple fetch from another site would send.
    status, body, _ = ui.request("/api/start", {"users": 1, "spawn_rate": 1}, csrf=False)
    assert status == 403 and "X-Mpswarm-Csrf" in json.loads(body)["error"]
    # The right token but another site's Origin.
    status, body, _ = ui.request(
        "/api/start", {"users": 1, "spawn_rate": 1}, headers={"Origin": "http://evil.example"}
    )
    assert status == 403 and "cross-site" in json.loads(body)["error"]
    assert ui.state()["state"] == "ready"  # nothing started


def test_basic_auth(web) -> None:
    ui = web("--web-auth", "admin:s3cret")
    status, _, headers = ui.request("/api/state")
    assert status == 401 and "Basic" in headers["WWW-Authenticate"]
    wrong = "Basic " + base64.b64encode(b"admin:nope").decode()
    assert ui.request("/api/state", headers={"Authorization": wrong})[0] == 401
    right = "Basic " + base64.b64encode(b"admin:s3cret").decode()
    assert ui.request("/api/state", headers={"Authorization": right})[0] == 200


def test_other_interfaces_need_the_printed_token(web) -> None:
    ui = web("--web-host", "0.0.0.0")
    token = ui.url.split("?token=", 1)[1]
    assert token
    base = "http://127.0.0.1:" + ui.base.rsplit(":", 1)[1]
    ui.base = base
    assert ui.request("/api/state")[0] == 401
    assert ui.request("/api/state", headers={"Authorization": f"Bearer {token}"})[0] == 200

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(f"{base}/?token={token}", timeout=5)
        raise AssertionError("expected a redirect")
    except urllib.error.HTTPError as exc:
        assert exc.code == 303
        cookie = exc.headers["Set-Cookie"].split(";", 1)[0]
        assert "HttpOnly" in exc.headers["Set-Cookie"]
    assert ui.request("/api/state", headers={"Cookie": cookie})[0] == 200


def test_autostart_and_autoquit(tmp_path, demo) -> None:
    lf = tmp_path / "lf.py"
    lf.write_text(LOCUSTFILE)
    proc = subprocess.run(
        [
            sys.executable, "-m", "mpswarm", "-f", str(lf), "-H", demo.url, "--web-port", "0",
            "--autostart", "--autoquit", "1", "-u", "3", "-r", "10", "-t", "3s",
        ],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "mpswarm web UI: http://127.0.0.1:" in proc.stderr
    assert "Aggregated" in proc.stdout
    total = int(proc.stdout.split("Aggregated", 1)[1].split()[0])
    assert total == demo.stats()["total"] > 0


def test_port_in_use_is_a_usage_error(web) -> None:
    ui = web()
    port = ui.base.rsplit(":", 1)[1]
    proc = subprocess.run(
        [
            sys.executable, "-m", "mpswarm", "-f", str(ui.log.parent / "lf.py"),
            "-H", "http://127.0.0.1:9", "--web-port", port,
        ],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "cannot serve the web UI" in proc.stderr


def test_host_from_the_form_and_reset(web, demo) -> None:
    ui = web(host=False)  # no -H: the form gives the host
    assert ui.state()["defaults"]["host"] == ""
    status, body, _ = ui.request("/api/start", {"users": 2, "spawn_rate": 10, "host": demo.url})
    assert status == 200, body
    before = ui.wait_for(lambda s: s["total"]["requests"] > 30)["total"]["requests"]
    assert ui.request("/api/reset", {})[0] == 200
    # Workers zero their counters when the message reaches them: shortly after, well below.
    state = ui.wait_for(lambda s: s["total"]["requests"] < before // 2, timeout=5)
    assert state["state"] == "running"
    ui.wait_for(lambda s: s["total"]["requests"] > 10)
    assert ui.request("/api/stop", {})[0] == 200
    ui.wait_for(lambda s: s["state"] == "stopped")
    assert demo.stats()["total"] > 20


SHAPED = (
    LOCUSTFILE
    + """
from mpswarm import LoadTestShape

class Steps(LoadTestShape):
    def tick(self):
        t = self.get_run_time()
        if t < 2:
            return (2, 10)
        if t < 4:
            return (6, 10)
        return None
"""
)


def test_a_load_shape_runs_from_the_page(web, demo, tmp_path) -> None:
    shaped = tmp_path / "shaped.py"
    shaped.write_text(SHAPED)
    ui = web("-f", str(shaped))  # the last -f wins
    state = ui.state()
    assert state["mode"] == "load shape" and state["shape"] == "Steps"
    assert ui.request("/api/start", {"users": 1, "spawn_rate": 1})[0] == 200
    ui.wait_for(lambda s: sum(w["users"] for w in s["workers"]) == 6)
    status, body, _ = ui.request("/api/change", {"users": 9, "spawn_rate": 1})
    assert status == 400 and "load shape" in json.loads(body)["error"]
    state = ui.wait_for(lambda s: s["state"] == "stopped", timeout=30)  # tick() returned None
    assert state["total"]["requests"] == demo.stats()["total"] > 0


def test_an_open_model_run_from_the_page(web, demo) -> None:
    ui = web("--arrival-rate", "50/s")
    assert ui.state()["mode"] == "arrival rate"
    assert ui.request("/api/start", {"users": 2, "spawn_rate": 1, "run_time": "3s"})[0] == 200
    state = ui.wait_for(lambda s: s["state"] == "stopped", timeout=30)
    assert state["open_model"]["dropped"] == 0
    assert abs(state["open_model"]["iterations"] - 150) <= 5, state["open_model"]
    assert state["total"]["requests"] == demo.stats()["total"] == state["open_model"]["iterations"]
