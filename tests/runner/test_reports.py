"""Reports from real runs: CSV, JSON, HTML, JUnit, checks, live status, crash safety."""

from __future__ import annotations

import csv
import json
import time
import uuid
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.conftest import ARTEFACTS, wait_until_gone, write
from tests.runner.test_run import FAILING, start_background, wait_for_workers


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_all_reports_from_one_run(run_cli, demo, tmp_path: Path) -> None:
    prefix = tmp_path / "out" / "run"
    prefix.parent.mkdir()  # --csv makes no folders
    run = run_cli(
        "-f",
        "examples/shop.py",
        "-H",
        demo.url,
        "--headless",
        "-u",
        "10",
        "-r",
        "50",
        "-t",
        "3s",
        "--processes",
        "2",
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--json-file",
        str(tmp_path / "r.json"),
        "--html",
        str(tmp_path / "r.html"),
        "--junit",
        str(tmp_path / "j.xml"),
        "--check",
        "p95<5s",
        "--check",
        "fail_ratio<0.01",
    )
    assert run.code == 0, run
    served = demo.stats()
    stats = read_csv(Path(f"{prefix}_stats.csv"))
    assert stats[-1]["Name"] == "Aggregated"
    assert int(stats[-1]["Request Count"]) == served["total"]
    names = [(r["Type"], r["Name"]) for r in stats[:-1]]
    assert names == sorted(names, key=lambda k: (k[1], k[0]))
    for row in stats:
        values = [float(row[c]) for c in ("50%", "90%", "99%", "100%")]
        assert values == sorted(values)
        assert float(row["100%"]) == float(row["Max Response Time"])
        assert float(row["Min Response Time"]) <= values[0]
    history = read_csv(Path(f"{prefix}_stats_history.csv"))
    aggregated = [r for r in history if r["Name"] == "Aggregated"]
    assert len(aggregated) >= 3 and {r["Name"] for r in history} > {"Aggregated"}
    assert int(aggregated[-1]["Total Request Count"]) == served["total"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["total"]["requests"] == served["total"]
    assert report["settings"]["users"] == 10 and all(c["passed"] for c in report["checks"])
    suite = ElementTree.parse(tmp_path / "j.xml").getroot()
    # two checks and "run completed", none failed
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert report["stop"]["kind"] == "time_limit" and report["stop"]["exit_code"] == 0
    page = (tmp_path / "r.html").read_text()
    assert page.count('class="chart"') == 6 and "/items/[id]" in page  # + the endpoints' p95
    assert "2 passed, 0 failed" in run.stdout


def test_failed_check_exit_code_3(run_cli, demo, tmp_path: Path) -> None:
    run = run_cli(
        "-f",
        "examples/shop.py",
        "-H",
        demo.url,
        "--headless",
        "-u",
        "4",
        "-r",
        "50",
        "-t",
        "1s",
        "--check",
        "p50<0.001ms",
        "--check",
        "requests>0",
    )
    assert run.code == 3, run
    assert "FAIL p50<0.001ms" in run.stdout and "1 passed, 1 failed" in run.stdout


def test_checks_decide_over_failed_requests(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "failing.py", FAILING)
    run = run_cli(
        "-f",
        str(lf),
        "-H",
        demo.url,
        "--headless",
        "-u",
        "1",
        "-r",
        "10",
        "-t",
        "1s",
        "--check",
        "fail_ratio<=1",
    )
    assert run.code == 0, run  # every request failed, but the only check allows it


@pytest.mark.parametrize("expression", ["p95<", "latency<3ms", "rps>5ms"])
def test_invalid_check_is_a_usage_error(run_cli, demo, expression: str) -> None:
    run = run_cli(
        "-f", "examples/shop.py", "-H", demo.url, "--headless", "-t", "1s", "--check", expression
    )
    assert run.code == 2, run
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mpswarm: error: invalid --check"), run


def test_check_abort_stops_early(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "failing.py", FAILING)
    started = time.monotonic()
    run = run_cli(
        "-f",
        str(lf),
        "-H",
        demo.url,
        "--headless",
        "-u",
        "2",
        "-r",
        "10",
        "-t",
        "60s",
        "--check",
        "fail_ratio<0.5",
        "--check-abort",
        "--check-grace",
        "2s",
    )
    assert run.code == 3, run
    assert time.monotonic() - started < 20
    assert "check 'fail_ratio<0.5' failed for 2 s" in run.stderr


def test_json_on_stdout_and_status_lines(run_cli, demo) -> None:
    run = run_cli(
        "-f",
        "examples/shop.py",
        "-H",
        demo.url,
        "--headless",
        "-u",
        "4",
        "-r",
        "50",
        "-t",
        "3s",
        "--json",
        "--print-interval",
        "1",
    )
    assert run.code == 0, run
    data = json.loads(run.stdout)
    assert data["total"]["requests"] == demo.stats()["total"]
    assert "Aggregated" in run.stderr  # the summary moved to stderr
    status = [line for line in run.stderr.splitlines() if line.startswith("mpswarm  0:")]
    assert len(status) >= 2 and "req/s" in status[0] and "worker CPU" in status[0]
    quiet = run_cli(
        "-f",
        "examples/shop.py",
        "-H",
        demo.url,
        "--headless",
        "-t",
        "2s",
        "--print-interval",
        "1",
        "--only-summary",
    )
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("mpswarm  0:")]


def test_csv_files_complete_after_a_crash(demo, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    prefix = tmp_path / "crash"
    proc = start_background(
        [
            "-f",
            "examples/shop.py",
            "-H",
            demo.url,
            "--headless",
            "-u",
            "10",
            "-r",
            "50",
            "--processes",
            "2",
            "-t",
            "60s",
            "--csv",
            str(prefix),
        ],
        tag,
    )
    try:
        wait_for_workers(tag, 4)
        time.sleep(3.5)
        proc.kill()
        proc.communicate(timeout=10)
    finally:
        assert not wait_until_gone(tag)
    stats = read_csv(Path(f"{prefix}_stats.csv"))
    assert stats[-1]["Name"] == "Aggregated" and int(stats[-1]["Request Count"]) > 0
    with open(f"{prefix}_stats_history.csv", newline="") as handle:
        raw = handle.read()
    assert raw.endswith("\n")  # no half-written line
    history = list(csv.DictReader(raw.splitlines()))
    assert len(history) >= 2
    stamps = [int(r["Timestamp"]) for r in history]
    assert stamps == sorted(stamps) and time.time() - stamps[-1] < 3
    # What the last second wrote is at most one second behind what the server saw.
    assert int(stats[-1]["Request Count"]) <= demo.stats()["total"]
    assert not list(tmp_path.glob("*.tmp"))


def test_html_report_draws_real_charts_offline(run_cli, demo, tmp_path: Path, page) -> None:
    """plotly.js, inlined, draws every chart with tick labels on both axes; hovering a line
    shows its values; nothing is loaded from the network (the ``page`` fixture fails then)."""
    report = tmp_path / "r.html"
    run = run_cli("-f", "examples/shop.py", "-H", demo.url, "--headless", "-u", "10", "-r", "50",
                  "-t", "4s", "--html", str(report))  # fmt: skip
    assert run.code == 0, run
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_viewport_size({"width": 1200, "height": 900})
    page.set_content(report.read_text(), wait_until="load")
    assert not errors, errors
    for chart in ("chart-rps", "chart-users", "chart-times", "chart-endpoints",
                  "chart-distribution", "chart-percentiles"):  # fmt: skip
        page.wait_for_selector(f"#{chart} .main-svg")
        x_ticks = page.locator(f"#{chart} .xtick text").all_text_contents()
        y_ticks = page.locator(f"#{chart} .ytick text").all_text_contents()
        assert len([t for t in x_ticks if t]) >= 2, (chart, x_ticks)
        assert len([t for t in y_ticks if t]) >= 2, (chart, y_ticks)
        assert page.locator(f"#{chart} .g-ytitle").text_content(), chart  # a labelled value axis
    # The busiest endpoints' p95 each second: one line per endpoint, named in the legend.
    legend = page.locator("#chart-endpoints .legendtext").all_text_contents()
    assert "GET /items/[id]" in legend and "POST /login" in legend, legend
    # Clock times on the time axis ("12:03:05" style ticks).
    assert any(":" in t for t in page.locator("#chart-rps .xtick text").all_text_contents())
    box = page.locator("#chart-rps .nsewdrag").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    page.mouse.move(box["x"] + box["width"] * 0.62, box["y"] + box["height"] * 0.5)
    page.wait_for_function(  # the tooltip: every series' value at that time
        "() => /req\\/s: [0-9.]+/.test(document.querySelector('#chart-rps .hoverlayer')"
        ".textContent)",
        timeout=5000,
    )
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "html-report.png"), full_page=True)
