from __future__ import annotations

import pytest

from mpswarm.exceptions import UsageError
from mpswarm.report.checks import evaluate, parse_check


@pytest.mark.parametrize(
    ("text", "method", "name", "metric", "op", "value"),
    [
        ("p95<300ms", None, None, "p95", "<", 300),
        ("p95 < 0.3s", None, None, "p95", "<", 300),
        ("p99.9<=2s", None, None, "p99.9", "<=", 2000),
        ("fail_ratio<0.01", None, None, "fail_ratio", "<", 0.01),
        ("rps>500", None, None, "rps", ">", 500),
        ("GET /login: p99<1s", "GET", "/login", "p99", "<", 1000),
        ("/items/[id]: avg<20", None, "/items/[id]", "avg", "<", 20),
        ("/api:v1: requests>=10", None, "/api:v1", "requests", ">=", 10),
        ("median!=0", None, None, "median", "!=", 0),
        ("failures==0", None, None, "failures", "==", 0),
        ("max<1s", None, None, "max", "<", 1000),
        ("p100<5s", None, None, "p100", "<", 5000),
        ("ttfb_p95<200ms", None, None, "ttfb_p95", "<", 200),
        ("GET /b: connect_max<1s", "GET", "/b", "connect_max", "<", 1000),
        ("tls_median<=50", None, None, "tls_median", "<=", 50),
    ],
)
def test_parse(text: str, method, name, metric, op, value) -> None:
    check = parse_check(text)
    assert (check.method, check.name, check.metric, check.op) == (method, name, metric, op)
    assert check.value == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    [
        "p95",
        "p95<",
        "<300ms",
        "p95<<3",
        "p95<3h",
        "latency<3",
        "rps>5ms",
        "p101<3",
        "fail_ratio<1%",
        "",
        "GET /x p99<1s",
        "ttfb_rps>5",
        "ttfb_uncorrected_p95<1s",
    ],
)
def test_invalid_expressions(text: str) -> None:
    with pytest.raises(UsageError, match="invalid --check"):
        parse_check(text)


def test_evaluate(snapshot) -> None:
    assert evaluate(parse_check("requests==200"), snapshot).passed
    assert evaluate(parse_check("failures==10"), snapshot).passed
    result = evaluate(parse_check("fail_ratio<0.01"), snapshot)
    assert not result.passed and result.actual == pytest.approx(0.05)
    assert "FAILED" in result.describe()
    assert evaluate(parse_check("rps>19"), snapshot).passed
    assert evaluate(parse_check("GET /b: max<110ms"), snapshot).passed
    assert evaluate(parse_check("GET /b: max<=108ms"), snapshot).passed is False
    assert evaluate(parse_check("POST /a: p50>200ms"), snapshot).passed
    assert evaluate(parse_check("POST /b: requests==0"), snapshot).passed  # no such endpoint
    missing = evaluate(parse_check("/nowhere: p95<1s"), snapshot)
    assert missing.passed is False and missing.actual is None
