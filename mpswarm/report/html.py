"""The HTML report (``--html FILE``): one self-contained file that opens offline.

The charts are plotly.js figures (``mpswarm.report.charts``, the same as the web UI's), with
plotly.js inlined once: nothing is loaded from the network. The rest is plain HTML: the
verdict, the settings, checks, saturation, recovery events, the endpoint table (sortable by
a click on a column), errors and exceptions with their tracebacks.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
from collections.abc import Iterable, Iterator
from typing import TextIO

from mpswarm.report.charts import DRAW_SCRIPT, figures_json, plotly_js
from mpswarm.report.checks import CheckResult
from mpswarm.report.console import format_bytes, format_ms, open_model_text, verdict
from mpswarm.report.stop_reason import stop_text
from mpswarm.stats.snapshot import Snapshot


@dataclasses.dataclass(frozen=True)
class Point:
    """One second of the run, for the charts over time."""

    t: float
    users: int
    rps: float
    fps: float
    p50: float | None
    p95: float | None
    p99: float | None
    saturated: bool = False
    p90: float | None = None
    max: float | None = None  # the second's highest bucket (clamped to the exact maximum)
    dropped: float | None = None  # open model: iterations dropped per second
    uncorrected_p95: float | None = None  # open model: p95 timed from the actual sends
    endpoints: dict[str, float] | None = None  # p95 (ms) of this second's busiest endpoints


def _endpoint_rows(snapshot: Snapshot) -> Iterator[list[str]]:
    for stats in [*snapshot.endpoints, snapshot.total]:
        p50, p95, p99 = stats.percentiles([50, 95, 99])
        yield [
            stats.method,
            stats.name,
            str(stats.requests),
            str(stats.failures),
            format_ms(p50),
            format_ms(p95),
            format_ms(p99),
            format_ms(stats.avg_ms),
            format_ms(stats.min_ms),
            format_ms(stats.max_ms),
            f"{stats.avg_content_length:.0f}",
            f"{stats.rps(snapshot.duration_s):.2f}",
        ]


def write_breakdown(stream: TextIO, snapshot: Snapshot) -> None:
    """ "Where the time went": each endpoint's connect, TLS and time to first byte; nothing
    when no request had a breakdown (a custom client's)."""
    if not snapshot.total.phases:
        return
    headers = ["Type", "Name", "New connections", "Connect p50 ms", "Connect p95 ms",
               "TLS p50 ms", "TLS p95 ms", "TTFB p50 ms", "TTFB p95 ms", "TTFB p99 ms"]  # fmt: skip
    stream.write(
        "<h2>Where the time went</h2><p>Connecting (new connections only), the TLS handshake "
        "and the wait from the request sent to the first byte of its response.</p>"
    )
    _write_table(stream, headers, _breakdown_rows(snapshot), "breakdown sortable")


def _breakdown_rows(snapshot: Snapshot) -> Iterator[list[str]]:
    for stats in [*snapshot.endpoints, snapshot.total]:
        cells = [stats.method, stats.name]
        for phase, qs in (
            ("connect", [50.0, 95.0]),
            ("tls", [50.0, 95.0]),
            ("ttfb", [50.0, 95.0, 99.0]),
        ):
            times = stats.phases.get(phase)
            if phase == "connect":
                cells.append(str(times.requests if times is not None else 0))
            values = times.percentiles(qs) if times is not None else [None] * len(qs)
            cells += [format_ms(v) if v is not None else "-" for v in values]
        yield cells


def _write_table(stream: TextIO, headers: list[str], rows: Iterable[list[str]], css: str) -> None:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    stream.write(f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>')
    for row in rows:
        stream.write("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    stream.write("</tbody></table>")


#: How the report names each setting (``run_settings``' keys), in this order.
SETTING_NAMES = {
    "locustfile": "Locustfile", "user_classes": "User classes", "host": "Host",
    "users": "Users", "spawn_rate": "Spawn rate (users/s)", "run_time": "Run time (s)",
    "processes": "Worker processes", "tags": "Tags", "exclude_tags": "Excluded tags",
    "stop_timeout": "Stop timeout (s)", "iterations": "Iterations", "shape": "Load shape",
    "checks": "Checks", "arrival_rate": "Arrival rate (iterations/s)",
    "arrivals": "Arrivals", "max_users": "Most users (open model)",
}  # fmt: skip


def _setting_text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def settings_table(settings: dict[str, object]) -> str:
    """The settings that were given (not empty), one row each, with readable names."""
    rows = [
        [SETTING_NAMES.get(key, key), _setting_text(value)]
        for key, value in settings.items()
        if value not in (None, False, (), [], "")
    ]
    return _table(["Setting", "Value"], rows, "settings")


def exceptions_html(snapshot: Snapshot) -> str:
    """User-code exceptions: how often, the message, and the traceback as code."""
    if not snapshot.exceptions:
        return "<p>No exceptions in user code.</p>"
    items = "".join(
        f'<div class="exception"><p><b>{e.count}</b> &times; <code>{html.escape(e.message)}'
        f"</code></p><pre>{html.escape(e.traceback)}</pre></div>"
        for e in snapshot.exceptions
    )
    return f'<div class="exceptions">{items}</div>'


def checks_html(checks: list[CheckResult] | None) -> str:
    """The checks: expression, measured value, verdict."""
    if not checks:
        return ""
    rows = "".join(
        f'<tr class="{"passed" if r.passed else "failed"}"><td>{html.escape(r.check.expression)}'
        f"</td><td>{html.escape(r.describe().split(': ', 1)[1].rsplit(' (', 1)[0])}</td>"
        f"<td>{'passed' if r.passed else 'FAILED'}</td></tr>"
        for r in checks
    )
    return (
        '<h2>Checks</h2><table class="checks"><thead><tr><th>Check</th><th>Measured</th>'
        f"<th>Verdict</th></tr></thead><tbody>{rows}</tbody></table>"
    )


#: Click a column's header to sort the table by it (again: the other way). Numbers sort as
#: numbers; "N/A" last.
_SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var down = th.getAttribute("aria-sort") !== "descending";
    th.closest("tr").querySelectorAll("th").forEach(function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", down ? "descending" : "ascending");
    function key(row) {
      var text = row.cells[column].textContent, number = parseFloat(text);
      return isNaN(number) ? text : number;
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }
      return (x < y ? -1 : x > y ? 1 : 0) * (down ? -1 : 1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _table(headers: list[str], rows: list[list[str]], css: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd}
td{text-align:right} td:nth-child(-n+2){text-align:left}
.chart{width:100%;max-width:1100px;margin:.5em 0}
.failed{color:#b00;font-weight:600} .passed{color:#070}
table.settings td{text-align:left} table.checks td{text-align:left}
table.sortable th{cursor:pointer;user-select:none}
th[aria-sort=descending]::after{content:" \\25BC"}
th[aria-sort=ascending]::after{content:" \\25B2"}
.exception pre{background:#f4f4f4;padding:.6em;overflow-x:auto;font-size:.8em;text-align:left;
white-space:pre;font-family:ui-monospace,monospace}
.verdict{font-size:1.2em;font-weight:700} .verdict.passed{color:#070} .verdict.failed{color:#b00}
"""


def write_html(
    snapshot: Snapshot,
    stream: TextIO,
    series: list[Point],
    settings: dict[str, object],
    checks: list[CheckResult] | None = None,
) -> None:
    """Write the report; why the run ended is said at the top, below the totals."""
    started = datetime.datetime.fromtimestamp(snapshot.started_at).isoformat(timespec="seconds")
    endpoint_headers = [
        "Type",
        "Name",
        "Requests",
        "Failures",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "Avg ms",
        "Min ms",
        "Max ms",
        "Size B",
        "req/s",
    ]
    errors = (
        _table(
            ["Occurrences", "Type", "Name", "Error"],
            [[str(e.occurrences), e.method, e.name, e.error] for e in snapshot.errors],
            "errors",
        )
        if snapshot.errors
        else "<p>No errors.</p>"
    )
    check_html = checks_html(checks)
    saturation = snapshot.saturation
    saturation_html = ""
    if saturation is not None and saturation.saturated_seconds:
        marked = ", ".join(f"{p.t:.0f}" for p in series if p.saturated) or "-"
        saturation_html = (
            f'<p class="failed">The load generator was saturated {saturation.share:.0%} of '
            f"the run (worst event-loop lag {saturation.worst_loop_lag_ms:.0f} ms): response "
            f"times from those seconds may be inflated (seconds: {html.escape(marked)}).</p>"
        )
    events = snapshot.recovery_events
    if events:
        saturation_html += "<h2>Recovery events</h2>" + _table(
            ["At (s)", "Worker", "Pid", "Cause", "Action"],
            [[f"{e.at_s:.1f}", str(e.worker), str(e.pid), e.cause, e.action] for e in events],
            "recovery",
        )
    hosts_lost = snapshot.hosts_lost
    if hosts_lost:
        saturation_html += "<h2>Hosts lost</h2>" + _table(
            ["At (s)", "Host", "Cause", "Action"],
            [[f"{h.at_s:.1f}", str(h.name), h.cause, h.action] for h in hosts_lost],
            "hosts-lost",
        )
    if snapshot.open_model:
        saturation_html += f'<p class="open-model">{html.escape(open_model_text(snapshot))}</p>'
    endpoint_chart = (
        '<div id="chart-endpoints" class="chart"></div>\n'
        if any(p.endpoints for p in series)
        else ""
    )
    open_model_chart = (
        '<div id="chart-open-model" class="chart"></div>\n' if snapshot.open_model else ""
    )
    stop = snapshot.stop
    stop_html = ""
    if stop is not None:
        css = "stop failed" if stop.failed else "stop"
        stop_html = f'<p class="{css}">{html.escape(stop_text(stop))}</p>'
    said = verdict(snapshot, checks or [])
    verdict_html = (
        f'<p class="verdict {"passed" if said == "PASSED" else "failed"}">{html.escape(said)}</p>'
    )
    stream.write(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mpswarm report</title>
<style>{_STYLE}</style></head><body>
<h1>mpswarm report</h1>
<p>Started {html.escape(started)}, ran {snapshot.duration_s:.1f} s:
{snapshot.total.requests} requests, {snapshot.total.failures} failures,
{snapshot.iterations} iterations; received {format_bytes(snapshot.total.content_bytes)},
sent {format_bytes(snapshot.sent_bytes)}.</p>
{verdict_html}
{stop_html}
<h2>Settings</h2>
{settings_table(settings)}
{check_html}
{saturation_html}
<h2>Over time</h2>
<div id="chart-rps" class="chart"></div>
<div id="chart-users" class="chart"></div>
<div id="chart-times" class="chart"></div>
{endpoint_chart}{open_model_chart}<h2>Response time distribution</h2>
<div id="chart-distribution" class="chart"></div>
<div id="chart-percentiles" class="chart"></div>
<h2>Endpoints</h2>
""")
    # Row by row: 10 000 endpoints held as one string would be 11 MB more at the peak.
    _write_table(stream, endpoint_headers, _endpoint_rows(snapshot), "endpoints sortable")
    write_breakdown(stream, snapshot)
    stream.write(f"""
<h2>Errors</h2>
{errors}
<h2>Exceptions</h2>
{exceptions_html(snapshot)}
<script>{_SORT_SCRIPT}</script>
""")
    # plotly.js (4.8 MB) and the figures, written as they are: not one more copy in memory.
    stream.write("<script>")
    stream.write(plotly_js())
    stream.write(f"</script>\n<script>{DRAW_SCRIPT}\ndrawFigures(")
    stream.write(figures_json(snapshot, series))
    stream.write(");\n</script>\n</body></html>\n")
