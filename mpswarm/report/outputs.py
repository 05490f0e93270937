"""What a finished run writes: the summary and every report file its options ask for.

Used by every entry point that ends with reports (the CLI's headless mode, the web UI when
it quits); a file that cannot be written does not cost the others.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from mpswarm._text import without_credentials
from mpswarm.config import RunConfig
from mpswarm.report._files import write_report_file
from mpswarm.report.checks import CheckResult
from mpswarm.report.console import write_summary
from mpswarm.report.html import Point, write_html
from mpswarm.report.json_report import write_json
from mpswarm.report.junit import write_junit
from mpswarm.stats.snapshot import Snapshot

logger = logging.getLogger(__name__)


def write_reports(
    config: RunConfig,
    snapshot: Snapshot,
    checks: list[CheckResult],
    series: list[Point],
    out: TextIO,
    lost: Sequence[str] = (),
    recode: Callable[[Snapshot], Snapshot] | None = None,
) -> list[str]:
    """The report files, then the summary (on ``out``, or stderr when the JSON goes to stdout).

    Each file is written atomically (``write_atomically``): one that cannot be written leaves
    nothing behind and does not stop the others. The reports after one that failed get the
    snapshot that names it (``reports_failed``). When some failed (with ``lost``, reports lost
    earlier, e.g. the CSV files), ``recode(snapshot)`` returns the snapshot whose exit code is
    settled again; when its stop reason changed, the files already written are written once
    more, so that they say so. The summary's verdict names them; one line on stderr says which
    and why.

    Returns:
        The reports not written, as ``OPTION PATH (why)``.
    """
    settings = run_settings(config)
    files: list[tuple[str, str | None, Callable[[Snapshot, TextIO], None]]] = [
        ("--json-file", config.json_file, lambda snap, s: write_json(snap, s, settings, checks)),
        ("--html", config.html_file,
         lambda snap, s: write_html(snap, s, series, settings, checks)),
        ("--junit", config.junit_file, lambda snap, s: write_junit(snap, s, checks)),
        ("--summary-file", config.summary_file,
         lambda snap, s: write_summary(snap, s, settings, series, checks)),
    ]  # fmt: skip
    failures = list(lost)
    written = []
    for option, path, write in files:
        if path:
            problem = write_report_file(path, functools.partial(write, snapshot))
            if problem is None:
                written.append((path, write))
            else:  # the reports after it (the summary file last) say so
                failures.append(f"{option} {path} ({problem})")
                snapshot = dataclasses.replace(snapshot, reports_failed=tuple(failures))
    if failures:
        snapshot = dataclasses.replace(snapshot, reports_failed=tuple(failures))
        settled = snapshot if recode is None else recode(snapshot)
        if settled.stop != snapshot.stop:
            snapshot = settled
            for path, write in written:  # (if this fails, the first version stays)
                write_report_file(path, functools.partial(write, snapshot))
    summary_stream = sys.stderr if config.json_stdout else out
    write_summary(snapshot, summary_stream, settings, series, checks)
    if config.json_stdout:
        write_json(snapshot, out, settings, checks)
        out.flush()
    if failures:
        wanted = sum(1 for _, path, _ in files if path) + (1 if config.csv_prefix else 0)
        logger.error(
            "could not write %s%s",
            ", ".join(failures),
            "; the other reports were written" if wanted > len(failures) else "",
        )
    return failures


def run_settings(config: RunConfig) -> dict[str, Any]:
    """The settings of the run, as they appear in reports."""
    keys = (
        "locustfile",
        "user_classes",
        "host",
        "users",
        "spawn_rate",
        "run_time",
        "processes",
        "tags",
        "exclude_tags",
        "stop_timeout",
        "iterations",
        "shape",
        "checks",
        "arrival_rate",
        "arrivals",
        "max_users",
    )
    settings = {key: getattr(config, key) for key in keys}
    if config.host:  # a password in -H stays out of the reports
        settings["host"] = without_credentials(config.host)
    if config.arrival_rate is not None:
        settings["max_users"] = config.user_cap
    if config.replay is not None:  # mpswarm replay: the log, its options, what it skipped
        settings["replay"] = config.replay
    return settings


__all__ = ["run_settings", "write_reports"]
