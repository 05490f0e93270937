"""``mpswarm compare BASE.json NEW.json``: the command line of ``mpswarm.report.compare``.

Exit codes: 0 when no check found a significant regression (or without checks), 3 when one
did, 2 for a usage error (a file that is not a JSON report of mpswarm, a wrong check).
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO
from xml.etree import ElementTree

import click
from tabulate import tabulate

from mpswarm._input import open_regular
from mpswarm._text import printable
from mpswarm.cli.main import EXIT_OK, run_subcommand
from mpswarm.exceptions import UsageError
from mpswarm.report._files import check_report_path, write_report_file
from mpswarm.report.compare import (
    METRICS,
    CheckOutcome,
    Compared,
    change_text,
    compare_runs,
    evaluate_compare,
    parse_compare_check,
)
from mpswarm.report.console import format_ms
from mpswarm.report.json_report import snapshot_from_dict
from mpswarm.stats.histogram import MIDPOINTS_US
from mpswarm.stats.snapshot import Snapshot

EXIT_REGRESSION = 3
_HEADERS = ["Type", "Name", "Metric", "BASE", "NEW", "Change (95 % interval)", ""]


def compare_main(argv: list[str]) -> int:
    """``mpswarm compare``: compare two JSON reports; see the module docstring."""
    return run_subcommand(compare_command, argv, "mpswarm compare")


#: The largest report read (a run's report with 10 000 endpoints is a few tens of MiB).
MAX_REPORT_BYTES = 256 * 2**20


def load_report(path: str) -> Snapshot:
    """The final Snapshot of a JSON report (``--json-file``), read as hostile: a regular file
    of at most ``MAX_REPORT_BYTES``, its fields checked.

    Raises:
        UsageError: the file cannot be read or is not an mpswarm JSON report.
    """
    with open_regular(path, MAX_REPORT_BYTES) as handle:
        try:
            raw = handle.read(MAX_REPORT_BYTES + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_REPORT_BYTES:  # it grew since it was looked at
        raise UsageError(
            f"cannot read {path}: more than the {MAX_REPORT_BYTES >> 20} MiB this reads"
        )
    try:
        return snapshot_from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        why = printable(str(exc))
        raise UsageError(f"{printable(path)} is not a JSON report of mpswarm: {why}") from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("base", metavar="BASE.json")
@click.argument("new", metavar="NEW.json")
@click.option(
    "--check",
    "checks",
    multiple=True,
    metavar="EXPR",
    help="A regression gate, repeatable: 'p95 < +10%', 'fail_ratio < +0.005', "
    "'rps > -5%', 'GET /x: p99 < +20%'. Fails (exit 3) only when significant.",
)
@click.option("--json", "json_file", metavar="FILE", help="Write the comparison as JSON.")
@click.option("--junit", "junit_file", metavar="FILE", help="Write a testcase per check.")
@click.option("--html", "html_file", metavar="FILE",
              help="Write a side-by-side HTML report (the distributions overlaid).")  # fmt: skip
def compare_command(
    base: str,
    new: str,
    checks: tuple[str, ...],
    json_file: str | None,
    junit_file: str | None,
    html_file: str | None,
) -> int:
    """Compare two runs' JSON reports: requests/s, fail ratio, p50/p95/p99/max per endpoint,
    with the 95 % interval of each change from the runs' histograms."""
    parsed = [parse_compare_check(expression) for expression in checks]
    for option, path in (("--json", json_file), ("--junit", junit_file), ("--html", html_file)):
        if path:
            check_report_path(option, path)
    base_run, new_run = load_report(base), load_report(new)
    extra = tuple(c.metric for c in parsed if c.metric not in METRICS)
    compared, only_base, only_new = compare_runs(base_run, new_run, METRICS + extra)
    outcomes = evaluate_compare(parsed, compared)
    out = sys.stdout
    _write_text(out, base, new, compared, only_base, only_new, outcomes)
    writers: list[tuple[str | None, Callable[[TextIO], Any]]] = [
        (json_file, lambda s: json.dump(_as_dict(base, new, compared, only_base, only_new,
                                                 outcomes), s, indent=2)),
        (junit_file, lambda s: _write_junit(s, outcomes)),
        (html_file, lambda s: _write_html(s, base, new, base_run, new_run, compared, outcomes)),
    ]  # fmt: skip
    for path, write in writers:
        if path:
            problem = write_report_file(path, write)
            if problem is not None:
                raise UsageError(f"cannot write {path}: {problem}")
    failed = [o for o in outcomes if not o.passed]
    return EXIT_REGRESSION if failed else EXIT_OK


def _cell(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric == "rps":
        return f"{value:.1f}"
    if metric == "fail_ratio":
        return f"{value:.4f}"
    return format_ms(value)


def _rows(compared: list[Compared]) -> list[list[str]]:
    rows = []
    for row in compared:
        for metric, change in row.changes.items():
            unit = "" if metric in ("rps", "fail_ratio") else " ms"
            rows.append([
                printable(row.method) if metric == "rps" else "",
                printable(row.name) if metric == "rps" else "",
                metric, _cell(metric, change.base) + unit, _cell(metric, change.new) + unit,
                change_text(change), "significant" if change.significant else "",
            ])  # fmt: skip
    return rows


def _write_text(out: TextIO, base: str, new: str, compared: list[Compared], only_base: list[Any],
                only_new: list[Any], outcomes: list[CheckOutcome]) -> None:  # fmt: skip
    base, new = printable(base), printable(new)
    out.write(f"BASE {base} -> NEW {new} (change: NEW against BASE, with its 95 % interval)\n\n")
    out.write(tabulate(_rows(compared), headers=_HEADERS, disable_numparse=True))
    out.write("\n")
    for label, rows in (("Only in BASE", only_base), ("Only in NEW", only_new)):
        for row in rows:
            name = printable(f"{row.method} {row.name}")
            out.write(f"{label}: {name} ({row.requests} requests)\n")
    if outcomes:
        out.write("\nChecks:\n")
        for outcome in outcomes:
            out.write(f"  {'ok  ' if outcome.passed else 'FAIL'} {outcome.describe()}\n")
        failed = sum(1 for o in outcomes if not o.passed)
        out.write("PASSED\n" if not failed else f"FAILED: {failed} significant regression(s)\n")


def _as_dict(base: str, new: str, compared: list[Compared], only_base: list[Any],
             only_new: list[Any], outcomes: list[CheckOutcome]) -> dict[str, Any]:  # fmt: skip
    return {
        "base": base,
        "new": new,
        "endpoints": [
            {"method": c.method, "name": c.name, "base_requests": c.base_requests,
             "new_requests": c.new_requests,
             "metrics": {m: change.as_dict() for m, change in c.changes.items()}}
            for c in compared
        ],
        "only_in_base": [{"method": r.method, "name": r.name} for r in only_base],
        "only_in_new": [{"method": r.method, "name": r.name} for r in only_new],
        "checks": [
            {"check": o.check.expression, "passed": o.passed,
             "change": o.change.as_dict() if o.change is not None else None}
            for o in outcomes
        ],
        "regression": any(not o.passed for o in outcomes),
    }  # fmt: skip


def _write_junit(stream: TextIO, outcomes: list[CheckOutcome]) -> None:
    suite = ElementTree.Element("testsuite", name="mpswarm compare", tests=str(len(outcomes)),
                                failures=str(sum(1 for o in outcomes if not o.passed)),
                                errors="0")  # fmt: skip
    for outcome in outcomes:
        case = ElementTree.SubElement(suite, "testcase", classname="mpswarm.compare",
                                      name=outcome.check.expression)  # fmt: skip
        if not outcome.passed:
            ElementTree.SubElement(case, "failure", message=outcome.describe())
    stream.write(ElementTree.tostring(suite, encoding="unicode", xml_declaration=True))
    stream.write("\n")


def _write_html(stream: TextIO, base: str, new: str, base_run: Snapshot, new_run: Snapshot,
                compared: list[Compared], outcomes: list[CheckOutcome]) -> None:  # fmt: skip
    from mpswarm.report.charts import DRAW_SCRIPT, plotly_js

    traces = []
    for label, path, run, color in (("BASE", base, base_run, "#1f77b4"),
                                    ("NEW", new, new_run, "#d62728")):  # fmt: skip
        total = run.total
        if not total.counts.size:
            continue
        traces.append({
            "type": "scatter", "mode": "lines", "name": f"{label} ({path})",
            "x": (MIDPOINTS_US[total.buckets] / 1000).tolist(),
            "y": (total.counts / total.counts.sum() * 100).tolist(),
            "line": {"color": color, "shape": "hvh"},
            "hovertemplate": "%{x:.4~g} ms: %{y:.3f} % of requests<extra></extra>",
        })  # fmt: skip
    figure = [{"id": "chart-compare", "data": traces, "layout": {
        "title": {"text": "Response time distribution, all requests"},
        "xaxis": {"title": {"text": "response time (ms)"}, "type": "log", "showgrid": True},
        "yaxis": {"title": {"text": "% of requests"}, "showgrid": True},
        "hovermode": "closest", "margin": {"t": 40}}}]  # fmt: skip
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in _rows(compared))  # fmt: skip
    checks = "".join(
        f'<li class="{"passed" if o.passed else "failed"}">{html.escape(o.describe())}</li>'
        for o in outcomes
    )
    stream.write(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mpswarm compare'
        "</title><style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;"
        "text-align:right}td:nth-child(2),th:nth-child(2){text-align:left}.failed{color:#b00}"
        ".chart{height:420px}</style></head><body>"
        f"<h1>mpswarm compare</h1><p>BASE {html.escape(base)} &rarr; NEW {html.escape(new)}"
        "</p>"
        + (f"<h2>Checks</h2><ul>{checks}</ul>" if outcomes else "")
        + '<div id="chart-compare" class="chart"></div>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table><script>"
    )
    stream.write(plotly_js())
    stream.write(f"</script>\n<script>{DRAW_SCRIPT}\ndrawFigures(")
    stream.write(json.dumps(figure).replace("</", "<\\/"))
    stream.write(");\n</script></body></html>\n")
