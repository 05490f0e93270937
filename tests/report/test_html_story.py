"""The HTML report tells the whole story, in a real browser (headless Chromium, offline):
settings as a table, the verdict, checks, exceptions with their tracebacks as code, and an
endpoint table that sorts by the column clicked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import DemoServer, write

RAISING = """
from mpswarm import HttpUser, constant, task

class Raiser(HttpUser):
    wait_time = constant(0.05)

    @task(3)
    def fine(self):
        self.client.get("/items/1", name="/items/[id]")

    @task
    def many(self):
        self.client.get("/")
        self.client.get("/")

    @task
    def broken(self):
        {}["missing key"]
"""


def test_the_report_shows_settings_checks_exceptions_and_sorts(
    run_cli: Any, demo: DemoServer, tmp_path: Path, page: Any
) -> None:
    locustfile = write(tmp_path / "raising.py", RAISING)
    report = tmp_path / "report.html"
    result = run_cli("-f", str(locustfile), "-H", demo.url, "--headless", "-u", "2", "-r", "2",
                     "-t", "2s", "--only-summary", "--html", str(report),
                     "--check", "fail_ratio<0.5")  # fmt: skip
    assert result.code == 1, result  # user code raised
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_content(report.read_text())
    assert not errors, errors
    settings = dict(
        zip(page.locator("table.settings td:nth-child(1)").all_inner_texts(),
            page.locator("table.settings td:nth-child(2)").all_inner_texts(), strict=True)
    )  # fmt: skip
    assert settings["Users"] == "2" and settings["Host"] == demo.url, settings
    assert settings["Checks"] == "fail_ratio<0.5", settings
    assert page.locator("p.verdict").inner_text().startswith("FAILED: user code raised")
    assert page.locator("table.checks tr.passed td").first.inner_text() == "fail_ratio<0.5"
    exception = page.locator(".exception pre").first
    assert "KeyError" in exception.inner_text() and "raising.py" in exception.inner_text()
    assert exception.evaluate("e => getComputedStyle(e).whiteSpace") == "pre"
    assert page.locator(".exception code").first.inner_text() == "KeyError: 'missing key'"

    def column(n: int) -> list[str]:
        return page.locator(f"table.endpoints tbody td:nth-child({n})").all_inner_texts()

    requests = page.locator("table.endpoints thead th", has_text="Requests")
    requests.click()  # the most requests first
    counts = [int(c) for c in column(3)]
    assert counts == sorted(counts, reverse=True) and column(2)[0] == "Aggregated"
    requests.click()  # the other way
    counts = [int(c) for c in column(3)]
    assert counts == sorted(counts)
