"""Why a run ended, as the reports show it: ``snapshot.extra["stop"]`` of a final Snapshot.

The runner puts the run's stop reason into the final Snapshot as a plain dict (the reporters
read Snapshots only, never the runner)::

    {"kind": "crash_loop", "message": "crash loop: ...", "exit_code": 4, "at": 12.3}

``exit_code`` is the run's final process exit code (None when unknown), ``at`` the seconds into
the run when the stop was requested. A live Snapshot has no ``"stop"`` key; nor has a JSON
report written before the stop reason existed.
"""

from __future__ import annotations

from typing import Any

from mpswarm._text import printable
from mpswarm.stats.snapshot import Snapshot

#: The keys of a stop reason, in the order the JSON report writes them.
STOP_FIELDS = ("kind", "message", "exit_code", "at")

#: Kinds that are a failure by themselves (a resource failure, every worker gone), whatever
#: the requests and checks say. The runner's ``StopKind`` values, as strings.
FAILURE_KINDS = frozenset({"crash_loop", "memory_limit", "workers_lost", "descriptors"})

#: Longest message kept (characters): a crash loop's message names its worker deaths.
_MAX_MESSAGE = 1000


def stop_of(snapshot: Snapshot) -> dict[str, Any] | None:
    """The run's stop reason with exactly ``STOP_FIELDS``, or None when the Snapshot has none.

    The message is made printable (one line, no control characters): it may quote a
    ``StopTest`` raised in the locustfile. Already printable text is kept as it is.
    """
    return stop_from_dict(snapshot.extra.get("stop"))


def stop_from_dict(data: Any) -> dict[str, Any] | None:
    """A stop reason from a Snapshot's extras or a JSON report, normalized; None for None."""
    if not isinstance(data, dict):
        return None
    exit_code = data.get("exit_code")
    return {
        "kind": str(data.get("kind") or "unknown"),
        "message": printable(str(data.get("message") or ""), _MAX_MESSAGE),
        "exit_code": None if exit_code is None else int(exit_code),
        "at": round(float(data.get("at") or 0.0), 3),
    }


def stop_failed(stop: dict[str, Any]) -> bool:
    """True when the run failed: an exit code other than 0, or a failure kind without one.

    An exit code of 0 always wins: the locustfile may set ``process_exit_code`` itself.
    """
    if stop["exit_code"] is None:
        return stop["kind"] in FAILURE_KINDS
    return stop["exit_code"] != 0


def stop_text(stop: dict[str, Any]) -> str:
    """One line for a person, the last line of the console summary.

    ``Stopped after 12.3 s: crash loop: workers died 6 times ... [crash_loop, exit code 4]``;
    without an exit code the bracket holds the kind only.
    """
    tags = (
        stop["kind"]
        if stop["exit_code"] is None
        else f"{stop['kind']}, exit code {stop['exit_code']}"
    )
    return f"Stopped after {stop['at']:.1f} s: {stop['message']} [{tags}]"
