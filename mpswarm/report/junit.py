"""JUnit XML (``--junit FILE``): one testcase per check, so CI shows pass/fail natively."""

from __future__ import annotations

from typing import TextIO
from xml.etree import ElementTree

from mpswarm.report.checks import CheckResult
from mpswarm.report.stop_reason import FAILURE_KINDS, RunStop, stop_text
from mpswarm.stats.snapshot import Snapshot

#: The testcase that says whether the run ended as planned (written when the stop is known).
RUN_CASE = ("mpswarm", "run completed")
_CHECK_CLASS = "mpswarm.checks"


def write_junit(snapshot: Snapshot, stream: TextIO, checks: list[CheckResult]) -> None:
    """One testcase per check; without checks, a single 'no failed requests' case.

    When the Snapshot carries the run's stop reason, one more testcase, ``mpswarm`` / ``run
    completed``, says whether the run ended as planned. So that CI never shows a failed run
    green, and never counts one cause twice, it fails when

    - the stop is a failure by itself (a crash loop, the memory limit, lost workers) and the
      exit code is not 0, whatever the other testcases say: none of them shows that cause; or
    - the exit code is not 0 and no other testcase failed: the code comes from something they
      do not show (exceptions in user code, ``process_exit_code``, a lost report).

    Otherwise it passes: exit code 3 is the failed checks' testcases, exit code 1 of failed
    requests without checks is the failed 'no failed requests' testcase. The suite's
    ``failures`` is therefore at least 1 whenever the run's exit code is not 0.
    """
    cases: list[tuple[str, str, str | None]] = []
    if checks:
        for result in checks:
            message = None if result.passed else result.describe()
            cases.append((_CHECK_CLASS, result.check.expression, message))
    else:
        failed = snapshot.total.failures
        message = (
            None if failed == 0 else (f"{failed} of {snapshot.total.requests} requests failed")
        )
        cases.append((_CHECK_CLASS, "no failed requests", message))
    stop = snapshot.stop
    if stop is not None:
        others_failed = any(message for _, _, message in cases)
        cases.append((*RUN_CASE, _run_failure(stop, snapshot, others_failed)))
    suite = ElementTree.Element(
        "testsuite",
        name="mpswarm",
        tests=str(len(cases)),
        failures=str(sum(1 for *_, message in cases if message)),
        errors="0",
        time=f"{snapshot.duration_s:.3f}",
    )
    if snapshot.open_model:
        properties = ElementTree.SubElement(suite, "properties")
        for key, value in (
            ("iterations", snapshot.iterations),
            ("dropped_iterations", snapshot.dropped),
        ):
            ElementTree.SubElement(properties, "property", name=key, value=str(value))
    for classname, name, message in cases:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=classname,
            name=name,
            time=f"{snapshot.duration_s:.3f}",
        )
        if message:
            kind = "stop" if classname == RUN_CASE[0] else "check"
            failure = ElementTree.SubElement(case, "failure", message=message, type=kind)
            failure.text = message
    stream.write(ElementTree.tostring(suite, encoding="unicode", xml_declaration=True))
    stream.write("\n")


def _run_failure(stop: RunStop, snapshot: Snapshot, others_failed: bool) -> str | None:
    """The 'run completed' failure message, None when it passes (rule: ``write_junit``)."""
    if not stop.failed:
        return None
    if stop.kind in FAILURE_KINDS:
        return stop_text(stop)
    if others_failed:
        return None
    cause = f"exit code {stop.exit_code} with no failed check or request"
    raised = sum(e.count for e in snapshot.exceptions)
    if raised:
        cause += f" ({raised} exception(s) in user code)"
    return f"{cause}. {stop_text(stop)}"
