"""``write_reports``: a report that cannot be written, and what the others then say."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

from mpswarm.config import RunConfig
from mpswarm.report.outputs import write_reports
from mpswarm.runner.run import with_exit_code
from mpswarm.stats.run_facts import RunStop
from mpswarm.stats.snapshot import Snapshot


def test_the_reports_after_a_failed_one_and_the_summary_name_it(
    clean_snapshot: Snapshot, tmp_path: Path
) -> None:
    """The JSON file cannot be written: the files after it (written with the snapshot that
    names it) and those before (written again once the exit code is settled at 1) say so; the
    snapshot handed in is never changed."""
    final = dataclasses.replace(
        clean_snapshot, final=True, stop=RunStop("time_limit", "the run time is over", 0, 5.0)
    )
    config = RunConfig(
        html_file=str(tmp_path / "r.html"),
        json_file=str(tmp_path / "missing" / "r.json"),
        junit_file=str(tmp_path / "r.xml"),
        summary_file=str(tmp_path / "summary.txt"),
    )
    settled: list[Snapshot] = []

    def recode(failed: Snapshot) -> Snapshot:
        settled.append(with_exit_code(failed, 1))
        return settled[-1]

    out = io.StringIO()
    failures = write_reports(config, final, [], [], out, recode=recode)
    [failure] = failures
    assert failure.startswith(f"--json-file {tmp_path / 'missing' / 'r.json'} (")
    assert final.reports_failed == () and final.stop is not None and final.stop.exit_code == 0
    [snapshot] = settled
    assert snapshot.reports_failed == (failure,) and snapshot.stop is not None
    assert snapshot.stop.exit_code == 1
    verdict = f"FAILED: could not write {failure}"
    assert out.getvalue().rstrip("\n").splitlines()[-1] == verdict
    assert (tmp_path / "summary.txt").read_text().rstrip("\n").splitlines()[-1] == verdict
    assert verdict in (tmp_path / "r.html").read_text()
    assert "[time_limit, exit code 1]" in (tmp_path / "r.xml").read_text()


def test_a_report_lost_earlier_is_named_and_the_json_on_stdout_carries_the_code(
    clean_snapshot: Snapshot,
) -> None:
    final = dataclasses.replace(
        clean_snapshot, final=True, stop=RunStop("time_limit", "the run time is over", 0, 5.0)
    )
    out = io.StringIO()
    lost = ["--csv run (disk full)"]
    failures = write_reports(
        RunConfig(json_stdout=True), final, [], [], out, lost,
        lambda failed: with_exit_code(failed, 1),
    )  # fmt: skip
    assert failures == lost
    assert json.loads(out.getvalue())["stop"]["exit_code"] == 1
