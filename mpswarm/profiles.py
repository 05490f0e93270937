"""``--profile NAME[:KEY=VALUE,...]``: built-in load shapes, without writing a LoadTestShape.

Levels are users (a plain number: the closed model) or arrival rates (``50/s``, ``3000/m``: the
open model); durations are ``30s``, ``2m``, ``1h``. Every level of one profile is of one kind.

==========  ==================================  ============================================
profile     parameters                          the level at time t
==========  ==================================  ============================================
steady      level                               level
ramp        to, over, from=0                    from -> to linearly over ``over``, then to
step        start, every, step=start, steps     start, + step every ``every`` (``steps``
                                                times at most, then it holds)
spike       base, peak, every, for              peak for ``for`` at the start of every
                                                ``every``, base otherwise
soak        level, ramp=1m                      0 -> level over ``ramp``, then level (a long
                                                plateau: give -t)
diurnal     min, max, period                    a day in ``period``: min at 0, max at half
                                                the period (a cosine)
==========  ==================================  ============================================

A profile runs until ``-t`` (or Ctrl-C). Its phases (the ramp, each spike, each step) are
marked on the HTML report's time charts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from mpswarm.config import parse_rate, parse_timespan
from mpswarm.exceptions import UsageError
from mpswarm.shape import LoadTestShape
from mpswarm.stats.run_facts import Phase
from mpswarm.stats.snapshot import Snapshot

#: How often a shape is polled (runner.run.SHAPE_TICK_S).
TICK_S = 1.0
_DURATIONS = {"over", "every", "for", "ramp", "period"}
#: Each profile's parameters: required ones, then optional ones with their defaults.
_PARAMETERS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "steady": (("level",), {}),
    "ramp": (("to", "over"), {"from": "0"}),
    "step": (("start", "every"), {"step": "", "steps": ""}),
    "spike": (("base", "peak", "every", "for"), {}),
    "soak": (("level",), {"ramp": "1m"}),
    "diurnal": (("min", "max", "period"), {}),
}


class ProfileShape(LoadTestShape):
    """A built-in profile (see the module docstring); made by ``parse_profile``."""

    abstract = True
    profile = ""
    open_model = False
    values: dict[str, float] = {}  # each subclass gets its own

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0

    def level(self, t: float) -> float:
        """Users (closed model) or iterations per second (open model) at ``t`` seconds."""
        v = self.values
        if self.profile == "steady":
            return v["level"]
        if self.profile == "ramp":
            share = min(1.0, t / v["over"]) if v["over"] > 0 else 1.0
            return v["from"] + (v["to"] - v["from"]) * share
        if self.profile == "step":
            done = int(t // v["every"])
            if v["steps"] >= 0:
                done = min(done, int(v["steps"]))
            return v["start"] + v["step"] * done
        if self.profile == "spike":
            return v["peak"] if t % v["every"] < v["for"] else v["base"]
        if self.profile == "soak":
            return v["level"] * min(1.0, t / v["ramp"]) if v["ramp"] > 0 else v["level"]
        # diurnal
        return v["min"] + (v["max"] - v["min"]) * (1 - math.cos(2 * math.pi * t / v["period"])) / 2

    def phases(self, duration_s: float) -> list[Phase]:
        """(start, end, label) of the profile's phases within ``duration_s`` seconds."""
        v, found = self.values, []
        if self.profile == "ramp" or self.profile == "soak":
            over = v["over"] if self.profile == "ramp" else v["ramp"]
            found.append(Phase(0.0, min(over, duration_s), "ramp"))
        elif self.profile == "spike":
            start = 0.0
            while start < duration_s:
                found.append(Phase(start, min(start + v["for"], duration_s), "spike"))
                start += v["every"]
        elif self.profile == "step":
            start, n = 0.0, 0
            while start < duration_s and (v["steps"] < 0 or n <= v["steps"]):
                found.append(Phase(start, min(start + v["every"], duration_s), f"step {n}"))
                start, n = start + v["every"], n + 1
        return found

    def report_facts(self, snapshot: Snapshot) -> Snapshot:
        """The final ``snapshot`` with what the reports show of the profile: its phases."""
        return dataclasses.replace(snapshot, phases=tuple(self.phases(snapshot.duration_s)))

    def tick(self) -> tuple[Any, ...] | dict[str, Any] | None:
        # The level holds until the next tick, a second later: the one at its middle.
        level = max(0.0, self.level(self.get_run_time() + TICK_S / 2))
        if self.open_model:
            return {"rate": level}
        users = round(level)
        spawn_rate = max(1.0, abs(users - self._last))  # reach it within the tick
        self._last = users
        return (users, spawn_rate)


def parse_profile(text: str) -> type[ProfileShape]:
    """The LoadTestShape class of ``--profile NAME[:KEY=VALUE,...]``.

    Raises:
        UsageError: an unknown profile or parameter, a missing one, a value of the wrong kind,
            or users mixed with rates.
    """
    name, _, rest = text.strip().partition(":")
    if name not in _PARAMETERS:
        raise UsageError(f"--profile {text!r}: unknown profile {name!r} (use one of "
                         f"{', '.join(_PARAMETERS)})")  # fmt: skip
    required, optional = _PARAMETERS[name]
    given: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, equals, value = part.partition("=")
        key = key.strip()
        if not equals or key not in (*required, *optional):
            raise UsageError(f"--profile {text!r}: {name} takes "
                             f"{', '.join(f'{k}=' for k in (*required, *optional))}")  # fmt: skip
        given[key] = value.strip()
    missing = [key for key in required if key not in given]
    if missing:
        raise UsageError(f"--profile {text!r}: {name} needs {', '.join(missing)}")
    raw = {**optional, **given}
    if name == "step" and not raw["step"]:
        raw["step"] = raw["start"]
    values: dict[str, float] = {}
    kinds = set()
    for key, value in raw.items():
        if key == "steps":
            values[key] = float(int(value)) if value else -1.0
        elif key in _DURATIONS:
            values[key] = parse_timespan(value)
            if values[key] <= 0:
                raise UsageError(f"--profile {text!r}: {key} must be a positive duration")
        else:
            is_rate = "/" in value
            kinds.add(is_rate)
            try:
                values[key] = parse_rate(value) if is_rate else float(value)
            except (UsageError, ValueError):
                raise UsageError(f"--profile {text!r}: {key}={value!r} is not a number of "
                                 "users or a rate such as 50/s") from None  # fmt: skip
            if values[key] < 0:
                raise UsageError(f"--profile {text!r}: {key} must not be negative")
    if kinds == {True, False} and not (raw.get("from") == "0" and "from" not in given):
        raise UsageError(f"--profile {text!r}: its levels are all users or all rates (50/s)")
    open_model = True in kinds
    attributes = {"profile": name, "values": values, "open_model": open_model,
                  "__doc__": f"--profile {text}"}  # fmt: skip
    return type(f"profile {text.strip()}", (ProfileShape,), attributes)
