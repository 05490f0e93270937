"""Structure of every report format."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from xml.etree import ElementTree

import pytest

from mpswarm.report.checks import evaluate_all, parse_check
from mpswarm.report.csv_report import (
    EXCEPTIONS_COLUMNS,
    FAILURES_COLUMNS,
    HISTORY_COLUMNS,
    STATS_COLUMNS,
    STATS_HEADER,
    exception_rows,
    failure_rows,
    history_rows,
    stats_rows,
)
from mpswarm.report.html import Point, write_html
from mpswarm.report.json_report import write_json
from mpswarm.report.junit import write_junit

# Locust 2.x's headers, in order (facts from Locust's CSV output, kept here to compare with).
LOCUST_PERCENTILES = [
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
]
LOCUST_STATS = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *LOCUST_PERCENTILES,
]
LOCUST_HISTORY = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *LOCUST_PERCENTILES,
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
LOCUST_FAILURES = ["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"]
LOCUST_EXCEPTIONS = ["Count", "Message", "Traceback", "Nodes"]


def test_csv_headers_are_locusts() -> None:
    assert STATS_COLUMNS == LOCUST_STATS
    assert STATS_HEADER[: len(LOCUST_STATS)] == LOCUST_STATS  # the breakdown comes after
    assert HISTORY_COLUMNS == LOCUST_HISTORY
    assert FAILURES_COLUMNS == LOCUST_FAILURES
    assert EXCEPTIONS_COLUMNS == LOCUST_EXCEPTIONS


def test_stats_rows(snapshot) -> None:
    rows = list(stats_rows(snapshot))
    assert [(r[0], r[1]) for r in rows] == [("POST", "/a"), ("GET", "/b"), ("", "Aggregated")]
    assert all(len(r) == len(STATS_HEADER) for r in rows)
    get_b = rows[1]
    assert get_b[2:4] == [100, 0]
    assert float(get_b[6]) == 10.0 and float(get_b[7]) == 109.0  # exact min and max
    percentiles = [float(v) for v in get_b[11 : len(STATS_COLUMNS)]]
    assert percentiles == sorted(percentiles) and percentiles[-1] == 109.0
    assert rows[-1][2:4] == [200, 10]
    # No breakdown (a custom client's requests): each phase's count 0, its times empty.
    assert get_b[len(STATS_COLUMNS) :] == ([0] + [""] * 5) * 3


def test_empty_endpoint_percentiles_are_na(snapshot) -> None:
    from mpswarm.stats.snapshot import EndpointStats

    empty = EndpointStats("GET", "/none", 0, 0, 0, 0, 0, 0, snapshot.total.histogram * 0)
    row = next(
        iter(
            stats_rows(
                type(snapshot)(
                    endpoints=(empty,),
                    total=empty,
                    errors=(),
                    exceptions=(),
                    started_at=0,
                    duration_s=1,
                    users=0,
                )
            )
        )
    )
    assert row[11 : len(STATS_COLUMNS)] == ["N/A"] * 11


def test_failure_exception_and_history_rows(snapshot) -> None:
    [failure] = list(failure_rows(snapshot))
    assert failure[:4] == ["POST", "/a", "RuntimeError: boom", 10]
    assert failure[4].endswith("Z") and failure[5].endswith("Z")
    [exception] = list(exception_rows(snapshot))
    assert exception == [3, "KeyError: 'x'", "Traceback...\nKeyError: 'x'", "node0"]
    short = list(history_rows(snapshot, None, False, 1_700_000_010))
    assert [r[3] for r in short] == ["Aggregated"]
    full = list(history_rows(snapshot, None, True, 1_700_000_010))
    assert [r[3] for r in full] == ["/a", "/b", "Aggregated"]
    assert all(len(r) == len(HISTORY_COLUMNS) + 2 for r in full)  # + saturated, dropped


def test_json_schema(snapshot) -> None:
    checks = evaluate_all([parse_check("p95<1s")], snapshot)
    out = io.StringIO()
    write_json(snapshot, out, {"users": 5}, checks)
    data = json.loads(out.getvalue())
    assert set(data) == {
        "schema",
        "settings",
        "started_at",
        "duration_s",
        "stop",
        "iterations",
        "sent_bytes",
        "lost_requests",
        "total",
        "endpoints",
        "errors",
        "exceptions",
        "checks",
        "recovery_events",
        "hosts_lost",
        "saturation",
        "phases",
        "capacity",
        "open_model",
    }
    assert data["phases"] == [] and data["capacity"] is None  # no --profile, no capacity search
    assert data["open_model"] is None  # a closed-model run
    assert data["stop"] is None  # a live Snapshot: the runner adds the stop to the final one
    assert data["total"]["requests"] == 200 and data["total"]["name"] == "Aggregated"
    endpoint = data["endpoints"][0]
    assert set(endpoint) == {
        "method",
        "name",
        "requests",
        "failures",
        "fail_ratio",
        "rps",
        "avg_ms",
        "min_ms",
        "max_ms",
        "median_ms",
        "avg_content_length",
        "percentiles_ms",
        "total_us",
        "min_us",
        "max_us",
        "content_bytes",
        "histogram",
        "connect",
        "tls",
        "ttfb",
    }
    assert endpoint["ttfb"] is None  # no breakdown in this snapshot's rows
    assert list(endpoint["percentiles_ms"]) == [
        "50",
        "66",
        "75",
        "80",
        "90",
        "95",
        "98",
        "99",
        "99.9",
        "99.99",
        "100",
    ]
    assert endpoint["percentiles_ms"]["100"] == endpoint["max_ms"]
    assert data["checks"] == [
        {
            "check": "p95<1s",
            "scope": "all requests",
            "metric": "p95",
            "passed": True,
            "actual": checks[0].actual,
        }
    ]


def test_json_round_trip_is_exact(snapshot) -> None:
    from mpswarm.report.json_report import report_dict, snapshot_from_dict

    again = snapshot_from_dict(json.loads(json.dumps(report_dict(snapshot, {}))))
    for before, after in zip(
        [*snapshot.endpoints, snapshot.total], [*again.endpoints, again.total], strict=True
    ):
        assert (before.method, before.name, before.requests, before.failures) == (
            after.method,
            after.name,
            after.requests,
            after.failures,
        )
        assert before.percentiles([50, 99.9, 100]) == after.percentiles([50, 99.9, 100])
    assert again.errors == snapshot.errors


def test_junit(snapshot) -> None:
    checks = evaluate_all([parse_check("p95<1s"), parse_check("fail_ratio<0.01")], snapshot)
    out = io.StringIO()
    write_junit(snapshot, out, checks)
    suite = ElementTree.fromstring(out.getvalue().split("?>", 1)[1])
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["p95<1s", "fail_ratio<0.01"]
    assert cases[0].find("failure") is None and cases[1].find("failure") is not None
    plain = io.StringIO()
    write_junit(snapshot, plain, [])
    assert "no failed requests" in plain.getvalue() and "10 of 200" in plain.getvalue()


def test_html_is_self_contained(snapshot) -> None:
    series = [
        Point(t=i, users=5, rps=20.0, fps=1.0, p50=10.0 + i, p95=50.0, p99=None)
        for i in range(1, 11)
    ]
    out = io.StringIO()
    write_html(snapshot, out, series, {"users": 5})
    page = out.getvalue()
    # Outside its inline scripts (its own, plotly.js), the page names no URL and loads nothing.
    outside = re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    assert "http://" not in outside and "https://" not in outside and " src=" not in outside
    assert "<link" not in outside and page.count("<script>") == 3
    assert page.count('class="chart"') == 5 and "RuntimeError: boom" in page
    figures = json.loads(page.rsplit("drawFigures(", 1)[1].rsplit(");", 1)[0])
    assert [f["id"] for f in figures] == [
        "chart-rps",
        "chart-users",
        "chart-times",
        "chart-distribution",
        "chart-percentiles",
    ]
    assert figures[0]["data"][0]["y"] == [20.0] * 10  # req/s, each second
    assert figures[2]["data"][0]["y"] == [p.p50 for p in series]
    assert "/a" in page and "Aggregated" in page


def test_the_runs_facts_round_trip_through_the_json_report(snapshot) -> None:
    """What the runner adds to a final Snapshot is written, and read back by ``compare`` and
    ``mpswarm.run()``, as the records it was."""
    from mpswarm.report.json_report import report_dict, snapshot_from_dict
    from mpswarm.stats.run_facts import HostLost, RecoveryEvent, RunStop, Saturation

    final = dataclasses.replace(
        snapshot,
        final=True,
        stop=RunStop("crash_loop", "crash loop", 4, 12.5),
        saturation=Saturation(0.25, 2, 8, 61.5, False),
        recovery_events=(RecoveryEvent(2.5, 1, 4242, "died", "replaced"),),
        hosts_lost=(HostLost(4.0, 2, "node-b", "agent died", "a new agent started"),),
    )
    data = json.loads(json.dumps(report_dict(final, {})))
    assert data["saturation"] == {"share": 0.25, "saturated_seconds": 2, "seconds": 8,
                                  "worst_loop_lag_ms": 61.5, "now": False}  # fmt: skip
    assert data["recovery_events"] == [
        {"at_s": 2.5, "worker": 1, "pid": 4242, "cause": "died", "action": "replaced"}
    ]
    assert data["hosts_lost"] == [
        {"at_s": 4.0, "host": 2, "name": "node-b", "cause": "agent died",
         "action": "a new agent started"}
    ]  # fmt: skip
    again = snapshot_from_dict(data)
    for fact in ("stop", "saturation", "recovery_events", "hosts_lost"):
        assert getattr(again, fact) == getattr(final, fact), fact


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"recovery_events": [{"at_s": 1.0, "worker": "w", "pid": 1, "cause": "", "action": ""}]},
         "recovery_events[0].worker"),
        ({"recovery_events": [{"at_s": 1.0, "worker": 0, "cause": "", "action": ""}]},
         "recovery_events[0].pid"),
        ({"hosts_lost": [{"at_s": 1.0, "host": 0, "name": None, "cause": "", "action": ""}]},
         "hosts_lost[0].name"),
        ({"saturation": {"share": 0.5, "saturated_seconds": 1, "seconds": 2,
                         "worst_loop_lag_ms": 1.0}}, "saturation.now"),
    ],
)  # fmt: skip
def test_a_report_with_a_wrong_fact_is_refused_naming_it(snapshot, edit, named) -> None:
    from mpswarm.report._schema import ReportSchemaError
    from mpswarm.report.json_report import report_dict, snapshot_from_dict

    data = {**json.loads(json.dumps(report_dict(snapshot, {}))), **edit}
    with pytest.raises(ReportSchemaError, match=re.escape(named)):
        snapshot_from_dict(data)
