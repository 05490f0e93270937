"""Why a run ended, as the reports show it: ``snapshot.stop`` of a final Snapshot.

The runner puts the run's stop reason into the final Snapshot as a ``RunStop`` (the reporters
read Snapshots only, never the runner), whose JSON form is::

    {"kind": "crash_loop", "message": "crash loop: ...", "exit_code": 4, "at": 12.3}

``exit_code`` is the run's final process exit code (None when unknown), ``at`` the seconds into
the run when the stop was requested. A live Snapshot has no stop reason; nor has a JSON report
written before the stop reason existed.
"""

from __future__ import annotations

from mpswarm.stats.run_facts import FAILURE_KINDS, RunStop


def stop_text(stop: RunStop) -> str:
    """One line for a person, the last line of the console summary.

    ``Stopped after 12.3 s: crash loop: workers died 6 times ... [crash_loop, exit code 4]``;
    without an exit code the bracket holds the kind only.
    """
    tags = stop.kind if stop.exit_code is None else f"{stop.kind}, exit code {stop.exit_code}"
    return f"Stopped after {stop.at:.1f} s: {stop.message} [{tags}]"


__all__ = ["FAILURE_KINDS", "RunStop", "stop_text"]
