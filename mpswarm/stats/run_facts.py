"""What a Snapshot knows beside its numbers: the run's facts, as immutable records.

The runner builds them (the supervisor's saturation figures and recovery events, the hosts
lost, why the run stopped, a profile's phases, a capacity search's steps) and hands them to
the reporters inside the frozen ``Snapshot``, never in a dict written after it was built. Each
has the form of its JSON report key (``as_dict``); a JSON report read back (``mpswarm
compare``, ``mpswarm.run()``) rebuilds them (``from_dict``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from mpswarm._text import printable

#: Kinds that are a failure by themselves (a resource failure, every worker gone), whatever
#: the requests and checks say. The runner's ``StopKind`` values, as strings.
FAILURE_KINDS = frozenset({"crash_loop", "memory_limit", "workers_lost", "descriptors"})

#: Longest stop message kept (characters): a crash loop's message names its worker deaths.
MAX_STOP_MESSAGE = 1000


@dataclasses.dataclass(frozen=True)
class RunStop:
    """Why a run ended: the ``stop`` object of its JSON report.

    Attributes:
        kind: what ended it: ``"time_limit"``, ``"iterations_done"``, ``"shape_ended"``,
            ``"check_failed"``, ``"signal"``, ``"user_code"``, ``"web_ui"``, ``"crash_loop"``,
            ``"memory_limit"``, ``"workers_lost"`` or ``"descriptors"``.
        message: one line for a person (``the run time is over``, ``crash loop: ...``).
        exit_code: the run's exit code (0 passed, 1 failed requests or errors, 3 failed
            checks, 4 a resource failure), None when the run did not say.
        at: seconds into the run when the stop was requested.
    """

    kind: str
    message: str
    exit_code: int | None
    at: float

    @classmethod
    def shown(cls, kind: str, message: str, exit_code: int | None, at: float) -> RunStop:
        """A stop reason as the reports show it: its message one printable line (it may quote
        a ``StopTest`` raised in the locustfile), at most ``MAX_STOP_MESSAGE`` characters,
        ``at`` rounded to the millisecond."""
        return cls(kind, printable(message, MAX_STOP_MESSAGE), exit_code, round(at, 3))

    @classmethod
    def from_dict(cls, data: Any) -> RunStop | None:
        """From a JSON report's ``stop`` (None for null or a report without one)."""
        if not isinstance(data, dict):
            return None
        exit_code = data.get("exit_code")
        return cls.shown(
            str(data.get("kind") or "unknown"),
            str(data.get("message") or ""),
            None if exit_code is None else int(exit_code),
            float(data.get("at") or 0.0),
        )

    @property
    def failed(self) -> bool:
        """True when the run failed: an exit code other than 0, or a failure kind without one.

        An exit code of 0 always wins: the locustfile may set ``process_exit_code`` itself.
        """
        if self.exit_code is None:
            return self.kind in FAILURE_KINDS
        return self.exit_code != 0

    def as_dict(self) -> dict[str, Any]:
        """The JSON report's ``stop``: ``kind``, ``message``, ``exit_code``, ``at``."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Saturation:
    """How often the load generator itself was the bottleneck (see runner/supervisor.py).

    Attributes:
        share: saturated seconds over all seconds sampled (0 before any).
        saturated_seconds: seconds in which a worker's CPU or event-loop lag hit the limits.
        seconds: seconds sampled.
        worst_loop_lag_ms: the highest event-loop lag seen.
        now: a worker was saturated in the last second.
    """

    share: float
    saturated_seconds: int
    seconds: int
    worst_loop_lag_ms: float
    now: bool

    @classmethod
    def from_dict(cls, data: Any) -> Saturation | None:
        """From a JSON report's ``saturation`` (None for null)."""
        if not isinstance(data, dict):
            return None
        return cls(
            data["share"],
            data["saturated_seconds"],
            data["seconds"],
            data["worst_loop_lag_ms"],
            data["now"],
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RecoveryEvent:
    """Something the supervisor did: when (seconds into the run), to which worker, why."""

    at_s: float
    worker: int
    pid: int | None
    cause: str
    action: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecoveryEvent:
        """From an item of a JSON report's ``recovery_events``."""
        return cls(data["at_s"], data["worker"], data["pid"], data["cause"], data["action"])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class HostLost:
    """Under --ray: a host whose agent died, when (seconds into the run) and what was done."""

    at_s: float
    host: int  # its index among the run's hosts
    name: str
    cause: str
    action: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostLost:
        """From an item of a JSON report's ``hosts_lost``."""
        return cls(data["at_s"], data["host"], data["name"], data["cause"], data["action"])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


class Phase(NamedTuple):
    """One phase of a ``--profile`` (a ramp, a spike, a step), in seconds into the run."""

    start: float
    end: float
    label: str


@dataclasses.dataclass(frozen=True)
class CapacityStep:
    """``mpswarm capacity``: one rate held, and what its measured half showed."""

    rate: float
    achieved_rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    fail_ratio: float
    dropped: int
    saturated: bool  # the generator was the limit at this step (see mpswarm/capacity.py)
    passed: bool
    failed_checks: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CapacityResult:
    """``mpswarm capacity``: the search's steps and its result.

    Attributes:
        capacity_rps: the highest rate at which every check held (None: none did, or the
            generator was the limit first).
        generator_limited: the load generator was the limit before the target.
        highest_held_rps: the highest rate that held.
        lowest_failed_rps: the lowest rate that failed.
        checks: the checks each step was judged by.
        steps: every step, in the order run.
    """

    capacity_rps: float | None
    generator_limited: bool
    highest_held_rps: float | None
    lowest_failed_rps: float | None
    checks: tuple[str, ...]
    steps: tuple[CapacityStep, ...]

    def as_dict(self) -> dict[str, Any]:
        """The JSON report's ``capacity``."""
        return {
            "capacity_rps": self.capacity_rps,
            "generator_limited": self.generator_limited,
            "highest_held_rps": self.highest_held_rps,
            "lowest_failed_rps": self.lowest_failed_rps,
            "checks": list(self.checks),
            "steps": [step.as_dict() for step in self.steps],
        }


__all__ = [
    "FAILURE_KINDS",
    "CapacityResult",
    "CapacityStep",
    "HostLost",
    "Phase",
    "RecoveryEvent",
    "RunStop",
    "Saturation",
]
