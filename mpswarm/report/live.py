"""The live status while a run goes on: a refreshed block on a terminal, plain lines in logs."""

from __future__ import annotations

import dataclasses
from typing import TextIO

from mpswarm.report.console import format_ms
from mpswarm.stats.snapshot import Snapshot
from mpswarm.stats.window import Window

_BAR_WIDTH = 30


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What the status shows besides the statistics."""

    elapsed_s: float
    run_time_s: float | None
    target_users: int
    worker_cpu: list[tuple[int, float]]


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def status_lines(snapshot: Snapshot, window: Window | None, info: RunInfo) -> list[str]:
    """The status block, one string per line."""
    if info.run_time_s:
        done = min(1.0, info.elapsed_s / info.run_time_s)
        filled = int(done * _BAR_WIDTH)
        progress = (
            f"{_clock(info.elapsed_s)} / {_clock(info.run_time_s)} "
            f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {done:4.0%}"
        )
    else:
        progress = f"{_clock(info.elapsed_s)} (until stopped)"
    if window is not None:
        rps, fps = window.rps, window.failures_per_s
        p50, p95 = window.total.percentiles([50.0, 95.0])
    else:
        rps = fps = 0.0
        p50 = p95 = None
    cpu = "  ".join(f"w{slot}: {value:3.0f}%" for slot, value in info.worker_cpu) or "-"
    if snapshot.saturation is not None and snapshot.saturation.now:
        cpu += "  SATURATED: response times may be inflated"
    dropped = f"   dropped iterations {snapshot.dropped}" if snapshot.open_model else ""
    return [
        f"mpswarm  {progress}",
        f"  users {snapshot.users}/{info.target_users}   requests {snapshot.total.requests}"
        f"   failures {snapshot.total.failures} ({snapshot.total.fail_ratio:.2%}){dropped}",
        f"  last 10 s: {rps:.1f} req/s, {fps:.1f} failures/s, "
        f"p50 {format_ms(p50)} ms, p95 {format_ms(p95)} ms",
        f"  worker CPU: {cpu}",
    ]


class LiveStatus:
    """Writes the status: redrawn in place on a terminal, appended as one line otherwise.

    Args:
        stream: where to write.
        interval: seconds between two lines when ``stream`` is not a terminal.
        tty_interval: seconds between two redraws on a terminal.
    """

    def __init__(self, stream: TextIO, interval: float = 10.0, tty_interval: float = 2.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = tty_interval if self.tty else interval
        self._last = float("-inf")
        self._drawn = 0

    def due(self, elapsed_s: float) -> bool:
        """True when it is time to write again."""
        return elapsed_s - self._last >= self.interval - 1e-6

    def show(self, snapshot: Snapshot, window: Window | None, info: RunInfo) -> None:
        """Write the status now."""
        self._last = info.elapsed_s
        lines = status_lines(snapshot, window, info)
        if self.tty:
            up = f"\x1b[{self._drawn}F" if self._drawn else ""
            self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
            self._drawn = len(lines)
        else:
            self.stream.write(" | ".join(part.strip() for part in lines) + "\n")
        self.stream.flush()
