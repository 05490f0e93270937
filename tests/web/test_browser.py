"""The web UI in a real browser: headless Chromium (the system's) driven by Playwright.

Skipped where Playwright or Chromium is missing, unless MPSWARM_REQUIRE_BROWSER is set, as
``.ci/run`` does after installing both: there a missing browser fails the suite.
"""

from __future__ import annotations

import csv
from typing import Any

from mpswarm.report.csv_report import STATS_HEADER
from tests.conftest import ARTEFACTS
from tests.web.conftest import HOSTILE


def _cells(page: Any, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr",
        "rows => rows.map(r => [...r.cells].map(c => c.textContent))",
    )


def test_drive_a_run_from_the_browser(web, demo, page, tmp_path) -> None:
    ui = web()
    page.goto(ui.url)
    page.fill("#users", "5")
    page.fill("#spawn-rate", "10")
    page.fill("#run-time", "")
    page.click("#start-button")
    # Rows fill with non-zero numbers.
    page.wait_for_function(
        "() => { const r = document.querySelector('#stats-table tbody tr.total');"
        " return r && Number(r.cells[2].textContent) > 20; }",
        timeout=20_000,
    )
    names = {row[1] for row in _cells(page, "stats-table")}
    assert names == {"/items/1", "/echo", "Aggregated"}
    # Charts: plotly.js (served from loopback) draws lines with ticks on both axes.
    page.click("nav button[data-tab=charts]")
    page.wait_for_function(
        "() => { const l = document.querySelector('#chart-rps .scatterlayer path.js-line');"
        " return l && (l.getAttribute('d') || '').split('L').length >= 3; }",
        timeout=20_000,
    )
    for chart in ("chart-rps", "chart-users", "chart-times", "chart-distribution"):
        assert len(page.locator(f"#{chart} .xtick text").all_text_contents()) >= 2, chart
        assert len(page.locator(f"#{chart} .ytick text").all_text_contents()) >= 2, chart
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1200, "height": 1400})
    page.wait_for_timeout(2000)  # a refresh, drawn at the new size
    page.wait_for_selector("#chart-times .xtick text")
    page.screenshot(path=str(ARTEFACTS / "web-ui.png"), full_page=True)
    # 5 -> 10 users: the workers tab follows.
    page.click("nav button[data-tab=workers]")
    assert sum(int(row[3]) for row in _cells(page, "workers-table")) == 5
    page.fill("#change-users", "10")
    page.click("#change-button")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#workers-table tbody tr')]"
        ".reduce((n, r) => n + Number(r.cells[3].textContent), 0) === 10",
        timeout=20_000,
    )
    assert all(row[2] in ("running", "spawning") for row in _cells(page, "workers-table"))
    # Stop: the final numbers match what the server saw.
    page.click("#stop-button")
    page.wait_for_function("() => document.querySelector('#state').textContent === 'stopped'")
    page.click("nav button[data-tab=stats]")
    page.wait_for_timeout(2000)  # one more refresh with the final numbers
    total = next(row for row in _cells(page, "stats-table") if row[1] == "Aggregated")
    assert int(total[2]) == demo.stats()["total"]
    # Download the CSV.
    page.click("nav button[data-tab=downloads]")
    with page.expect_download() as download_info:
        page.click("#dl-stats")
    path = tmp_path / "stats.csv"
    download_info.value.save_as(path)
    with path.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == STATS_HEADER
    assert int(rows[-1][2]) == demo.stats()["total"]
    # The start form is back for a new run.
    assert page.is_visible("#start-form")


def test_hostile_texts_show_as_text(web, page, tmp_path) -> None:
    hostile = tmp_path / "hostile.py"
    hostile.write_text(HOSTILE)
    ui = web("-f", str(hostile))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(ui.url)
    page.wait_for_function("() => document.querySelector('#state').textContent !== '-'")
    page.fill("#users", "2")
    page.fill("#spawn-rate", "10")
    page.click("#start-button")
    page.wait_for_function(
        "() => document.querySelector('#failures-table tbody tr')"
        " && document.querySelector('#exceptions-table tbody tr')",
        timeout=20_000,
    )
    page.click("#stop-button")
    error = _cells(page, "failures-table")[0]
    assert error[1] == "<b>bold</b>" and "<img src=x onerror=alert(1)>" in error[2]
    assert "<script>alert(2)</script>" in _cells(page, "exceptions-table")[0][1]
    assert "<b>bold</b>" in {row[1] for row in _cells(page, "stats-table")}
    # Nothing of it became markup: no image, no bold, no second script; no alert ran.
    assert page.eval_on_selector_all("main img, main b", "nodes => nodes.length") == 0
    assert page.eval_on_selector_all("script", "nodes => nodes.length") == 2  # plotly, the page's
    assert dialogs == []


def test_tracebacks_read_as_code_and_a_timed_run_shows_what_is_left(
    web, demo, page, tmp_path
) -> None:
    raising = tmp_path / "raising.py"
    raising.write_text(
        "from mpswarm import HttpUser, constant, task\n\n"
        "class Raiser(HttpUser):\n"
        "    wait_time = constant(0.2)\n\n"
        "    @task\n"
        "    def item(self):\n"
        "        self.client.get('/items/1')\n"
        "        {}['missing']\n"
    )
    ui = web("-f", str(raising))
    page.goto(ui.url)
    page.wait_for_function("() => document.querySelector('#state').textContent !== '-'")
    page.fill("#users", "2")
    page.fill("#spawn-rate", "10")
    page.fill("#run-time", "20s")
    page.click("#start-button")
    # While it runs: the time left and a progress bar that moves.
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector('#remaining-box')).display !== 'none'"
        " && document.querySelector('#progress').value > 0.05",
        timeout=20_000,
    )
    left = float(page.inner_text("#remaining").split()[0])
    assert 0 < left < 20
    page.click("nav button[data-tab=exceptions]")
    page.wait_for_function("() => document.querySelector('#exceptions-table pre.traceback')")
    pre = page.locator("#exceptions-table pre.traceback").first
    text = pre.inner_text()
    assert "Traceback" in text and "KeyError" in text and "\n" in text  # its lines kept
    style = pre.evaluate(
        "e => [getComputedStyle(e).whiteSpace, getComputedStyle(e).fontFamily,"
        " getComputedStyle(e.parentElement).textAlign]"
    )
    assert style[0] == "pre" and "monospace" in style[1] and style[2] == "left", style
    page.click("#stop-button")
    page.wait_for_function("() => document.querySelector('#state').textContent === 'stopped'")
    assert page.locator("#remaining-box").evaluate("e => getComputedStyle(e).display") == "none"
    page.click("nav button[data-tab=workers]")
    states = {row[2] for row in _cells(page, "workers-table")}
    assert states == {"stopped"}, states
