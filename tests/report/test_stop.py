"""Why a run ended is in every report: summary, JSON, JUnit, HTML (``snapshot.stop``)."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from xml.etree import ElementTree

import pytest

from mpswarm.report.checks import evaluate_all, parse_check
from mpswarm.report.console import write_summary
from mpswarm.report.html import write_html
from mpswarm.report.json_report import report_dict, snapshot_from_dict, write_json
from mpswarm.report.junit import write_junit
from mpswarm.report.stop_reason import stop_text
from mpswarm.runner.stop import StopKind, StopReason
from mpswarm.stats.run_facts import RunStop
from mpswarm.stats.snapshot import Snapshot

CRASH = "crash loop: workers died 6 times within 60 s (more than --max-restarts 5)"


def stopped(snapshot: Snapshot, kind: str, exit_code: int | None, message: str = "") -> Snapshot:
    """``snapshot`` as the runner hands a final one to the reporters."""
    stop = RunStop.shown(kind, message or kind, exit_code, 12.345)
    return dataclasses.replace(snapshot, final=True, stop=stop)


def junit(snapshot: Snapshot, checks: Sequence[str] = ()) -> ElementTree.Element:
    out = io.StringIO()
    write_junit(snapshot, out, evaluate_all([parse_check(c) for c in checks], snapshot))
    return ElementTree.fromstring(out.getvalue().split("?>", 1)[1])


def run_case(suite: ElementTree.Element) -> ElementTree.Element | None:
    cases = [c for c in suite.findall("testcase") if c.get("classname") == "mpswarm"]
    assert len(cases) <= 1
    return cases[0] if cases else None


def test_summary_says_why_before_its_verdict(snapshot) -> None:
    out = io.StringIO()
    write_summary(stopped(snapshot, "crash_loop", 4, CRASH), out)
    *_, why, verdict = out.getvalue().rstrip("\n").splitlines()
    assert why == f"Stopped after 12.3 s: {CRASH} [crash_loop, exit code 4]"
    assert verdict == f"FAILED: {CRASH}"


def test_summary_without_a_stop_has_no_stop_line(snapshot) -> None:
    out = io.StringIO()
    write_summary(snapshot, out)
    assert "Stopped" not in out.getvalue()


def test_stop_text_without_an_exit_code() -> None:
    stop = RunStop("signal", "received SIGINT", None, 3.0)
    assert stop_text(stop) == "Stopped after 3.0 s: received SIGINT [signal]"


def test_json_has_the_stop_object_and_round_trips(snapshot) -> None:
    out = io.StringIO()
    write_json(stopped(snapshot, "crash_loop", 4, CRASH), out, {})
    data = json.loads(out.getvalue())
    assert data["stop"] == {"kind": "crash_loop", "message": CRASH, "exit_code": 4, "at": 12.345}
    rebuilt = snapshot_from_dict(data).stop
    assert rebuilt == RunStop("crash_loop", CRASH, 4, 12.345)
    assert rebuilt.as_dict() == data["stop"]
    plain = json.loads(json.dumps(report_dict(snapshot, {})))
    assert plain["stop"] is None
    assert snapshot_from_dict(plain).stop is None  # as a live Snapshot


def test_a_hostile_stop_message_is_one_printable_line() -> None:
    reason = StopReason(StopKind.USER_CODE, "StopTest: \x1b[2Jgone\nnext line", 1, 1.23456)
    stop = reason.record()  # as the runner puts it in the final Snapshot
    assert stop == RunStop("user_code", "StopTest: \\x1b[2Jgone\\x0anext line", 1, 1.235)
    read = RunStop.from_dict({"kind": "user_code", "message": "a\x1b[2J", "at": 2})
    assert read == RunStop("user_code", "a\\x1b[2J", None, 2.0)  # from a JSON report


# (snapshot fixture, kind, exit code, checks, failures, run completed failed?)
JUNIT_CASES = [
    # A clean time-limit stop is green; its 'run completed' testcase passes.
    ("clean_snapshot", "time_limit", 0, [], 0, False),
    # A crash loop (exit 4) is red, also when nothing else failed.
    ("clean_snapshot", "crash_loop", 4, [], 1, True),
    ("clean_snapshot", "memory_limit", 4, ["p95<1s"], 1, True),
    # ... and counted beside the failed requests: two causes, two failures.
    ("snapshot", "crash_loop", 4, [], 2, True),
    # Every worker gone (exit 1): its own cause.
    ("clean_snapshot", "workers_lost", 1, [], 1, True),
    # Exit 1 of failed requests without checks is the 'no failed requests' testcase, once.
    ("snapshot", "time_limit", 1, [], 1, False),
    # Exit 3 is the failed check's testcase, once (--check-abort included).
    ("clean_snapshot", "check_failed", 3, ["p95<1ms"], 1, False),
    ("clean_snapshot", "time_limit", 3, ["p95<1ms", "p95<1s"], 1, False),
    # Exit 1 that no testcase shows (exceptions in user code, checks passing): 'run completed'.
    ("snapshot", "time_limit", 1, ["p95<1s"], 1, True),
    # Exit 3 without a failed check here (the checks went elsewhere): still red.
    ("clean_snapshot", "check_failed", 3, [], 1, True),
    # A signal with exit 0 (nothing failed) is green.
    ("clean_snapshot", "signal", 0, [], 0, False),
]


@pytest.mark.parametrize(
    ("fixture", "kind", "code", "checks", "failures", "run_failed"), JUNIT_CASES
)
def test_junit_fails_whenever_the_exit_code_is_not_0_and_counts_each_cause_once(
    request: pytest.FixtureRequest,
    fixture: str,
    kind: str,
    code: int,
    checks: list[str],
    failures: int,
    run_failed: bool,
) -> None:
    base: Snapshot = request.getfixturevalue(fixture)
    suite = junit(stopped(base, kind, code, CRASH if kind == "crash_loop" else ""), checks)
    assert int(suite.get("failures", "")) == failures
    assert (failures > 0) == (code != 0)
    assert suite.get("tests") == str(max(1, len(checks)) + 1)
    case = run_case(suite)
    assert case is not None and case.get("name") == "run completed"
    failure = case.find("failure")
    assert (failure is not None) == run_failed
    if failure is not None:
        assert failure.get("type") == "stop" and f"exit code {code}" in failure.get("message", "")
        if kind == "crash_loop":
            assert CRASH in failure.get("message", "")


def test_junit_names_the_exceptions_behind_an_otherwise_unexplained_exit_code(snapshot) -> None:
    case = run_case(junit(stopped(snapshot, "time_limit", 1, "the run time is over"), ["p95<1s"]))
    assert case is not None
    failure = case.find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert message.startswith("exit code 1 with no failed check or request (3 exception(s)")
    assert message.endswith("the run time is over [time_limit, exit code 1]")


def test_junit_without_a_stop_is_as_before(snapshot) -> None:
    suite = junit(snapshot)
    assert suite.get("tests") == "1" and run_case(suite) is None


def test_junit_stays_well_formed_with_a_hostile_message(clean_snapshot) -> None:
    suite = junit(stopped(clean_snapshot, "crash_loop", 4, "bad \x00\x1b <&> \"'"))
    case = run_case(suite)
    failure = None if case is None else case.find("failure")
    assert failure is not None and "bad \\x00\\x1b <&>" in failure.get("message", "")


def test_html_says_why_near_the_top_escaped(snapshot) -> None:
    out = io.StringIO()
    write_html(
        stopped(snapshot, "user_code", 1, "StopTest: <script>alert(1)</script> & co"), out, [], {}
    )
    page = out.getvalue()
    shown = "StopTest: &lt;script&gt;alert(1)&lt;/script&gt; &amp; co [user_code, exit code 1]"
    assert f'<p class="stop failed">Stopped after 12.3 s: {shown}</p>' in page
    assert "<script>alert" not in page and page.count("<script>") == 3  # the report's own
    assert page.index('class="stop') < page.index("<h2>")  # above every section


def test_html_without_a_stop_has_no_stop_line(snapshot) -> None:
    out = io.StringIO()
    write_html(snapshot, out, [], {})
    assert 'class="stop' not in out.getvalue()
    clean = io.StringIO()
    write_html(stopped(snapshot, "time_limit", 0, "the run time is over"), clean, [], {})
    assert '<p class="stop">Stopped after 12.3 s: the run time is over' in clean.getvalue()
