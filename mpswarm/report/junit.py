"""JUnit XML (``--junit FILE``): one testcase per check, so CI shows pass/fail natively."""

from __future__ import annotations

from typing import TextIO
from xml.etree import ElementTree

from mpswarm.report.checks import CheckResult
from mpswarm.stats.snapshot import Snapshot


def write_junit(snapshot: Snapshot, stream: TextIO, checks: list[CheckResult]) -> None:
    """One testcase per check; without checks, a single 'no failed requests' case."""
    cases: list[tuple[str, str | None]] = []
    if checks:
        for result in checks:
            cases.append((result.check.expression, None if result.passed else result.describe()))
    else:
        failed = snapshot.total.failures
        message = (
            None if failed == 0 else (f"{failed} of {snapshot.total.requests} requests failed")
        )
        cases.append(("no failed requests", message))
    suite = ElementTree.Element(
        "testsuite",
        name="mpswarm",
        tests=str(len(cases)),
        failures=str(sum(1 for _, message in cases if message)),
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
    for name, message in cases:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname="mpswarm.checks",
            name=name,
            time=f"{snapshot.duration_s:.3f}",
        )
        if message:
            failure = ElementTree.SubElement(case, "failure", message=message, type="check")
            failure.text = message
    stream.write(ElementTree.tostring(suite, encoding="unicode", xml_declaration=True))
    stream.write("\n")
