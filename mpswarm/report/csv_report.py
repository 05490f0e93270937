"""CSV files with Locust's exact columns, so tooling that reads Locust's CSVs keeps working.

``--csv PREFIX`` writes PREFIX_stats.csv, PREFIX_stats_history.csv, PREFIX_failures.csv and
PREFIX_exceptions.csv. The run rewrites the first, third and fourth every second (write to a
temporary file, then rename: a reader never sees half a file) and appends to the history, so a
crash loses at most a second; with so many busy rows that reading them all each second would
cost the parent more than half a percent of a core, the stats file is rewritten less often
(``mpswarm.runner.reporting.ROWS_CPU_SHARE``). Values come from mpswarm's histograms, with two
decimals, where Locust rounds percentiles to whole milliseconds.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import os
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from mpswarm.report._files import write_atomically
from mpswarm.stats.snapshot import PHASE_NAMES, EndpointStats, Snapshot, percentile_table
from mpswarm.stats.window import Window

PERCENTILES = (50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0)
PERCENTILE_COLUMNS = [
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
]
STATS_COLUMNS = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *PERCENTILE_COLUMNS,
]
#: Appended after Locust's columns in PREFIX_stats.csv: the timing breakdown (ms), each phase
#: with how many requests had it ("Connect Count": new connections).
BREAKDOWN_STATISTICS = ("Count", "Median", "Average", "95%", "99%", "Max")
BREAKDOWN_COLUMNS = [
    f"{shown} {statistic}"
    for shown in ("Connect", "TLS", "TTFB")
    for statistic in BREAKDOWN_STATISTICS
]
HISTORY_COLUMNS = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *PERCENTILE_COLUMNS,
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
#: Appended after Locust's columns (readers that go by name or position are unaffected):
#: 1 when the load generator was saturated in that second, so its latencies may be inflated.
SATURATION_COLUMN = "Generator Saturated"
#: Then the open model's iterations dropped so far (always 0 in a closed-model run).
DROPPED_COLUMN = "Dropped Iterations"
#: PREFIX_stats.csv's header: Locust's columns, then the breakdown's.
STATS_HEADER = [*STATS_COLUMNS, *BREAKDOWN_COLUMNS]
FAILURES_COLUMNS = ["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"]
EXCEPTIONS_COLUMNS = ["Count", "Message", "Traceback", "Nodes"]


def _num(value: float | None) -> str:
    return "0" if value is None else f"{value:.2f}"


def _percentiles(rows: Sequence[EndpointStats]) -> list[list[str]]:
    """The PERCENTILES cells of each row ("N/A" without requests), computed together."""
    table = percentile_table(rows, PERCENTILES)
    return [
        [_num(v) for v in values] if stats.requests else ["N/A"] * len(PERCENTILES)
        for stats, values in zip(rows, table, strict=True)
    ]


def stats_rows(snapshot: Snapshot) -> Iterable[list[Any]]:
    """PREFIX_stats.csv rows: endpoints sorted by name then method, Aggregated last."""
    rows = [*snapshot.endpoints, snapshot.total]
    duration = snapshot.duration_s
    for stats, percentiles, breakdown in zip(
        rows, _percentiles(rows), _breakdown(rows), strict=True
    ):
        yield [
            stats.method,
            stats.name,
            stats.requests,
            stats.failures,
            percentiles[0] if stats.requests else "0",  # PERCENTILES[0] is the median
            _num(stats.avg_ms),
            _num(stats.min_ms),
            _num(stats.max_ms),
            _num(stats.avg_content_length),
            _num(stats.rps(duration)),
            _num(stats.failures / duration if duration > 0 else 0.0),
            *percentiles,
            *breakdown,
        ]


def _breakdown(rows: Sequence[EndpointStats]) -> list[list[Any]]:
    """The BREAKDOWN_COLUMNS of each row: empty cells for a phase it never had."""
    cells: list[list[Any]] = [[] for _ in rows]
    missing = [0] + [""] * (len(BREAKDOWN_STATISTICS) - 1)
    for phase in PHASE_NAMES:
        having = [i for i, stats in enumerate(rows) if phase in stats.phases]
        times = [rows[i].phases[phase] for i in having]
        table = percentile_table(times, (50.0, 95.0, 99.0))
        found = {i: (t, p) for i, t, p in zip(having, times, table, strict=True)}
        for i, row_cells in enumerate(cells):
            if i not in found:
                row_cells += missing
                continue
            phase_times, (median, p95, p99) = found[i]
            row_cells += [
                phase_times.requests,
                *map(_num, (median, phase_times.avg_ms, p95, p99, phase_times.max_ms)),
            ]
    return cells


def _utc(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    moment = datetime.datetime.fromtimestamp(int(timestamp), datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def failure_rows(snapshot: Snapshot) -> Iterable[list[Any]]:
    """PREFIX_failures.csv rows, most frequent first."""
    seen = snapshot.error_times
    for error in snapshot.errors:
        first, last = seen.get((error.method, error.name, error.error), (None, None))
        yield [error.method, error.name, error.error, error.occurrences, _utc(first), _utc(last)]


def exception_rows(snapshot: Snapshot) -> Iterable[list[Any]]:
    """PREFIX_exceptions.csv rows."""
    nodes = snapshot.exception_nodes
    for exc in snapshot.exceptions:
        where = ", ".join(sorted(nodes.get((exc.message, exc.traceback), ())))
        yield [exc.count, exc.message, exc.traceback, where]


def history_rows(
    snapshot: Snapshot, window: Window | None, full: bool, timestamp: float
) -> Iterable[list[Any]]:
    """PREFIX_stats_history.csv rows for one second: Aggregated, or every endpoint too.

    Rates and percentiles are those of the last seconds (the window); the totals cumulative.
    """
    chosen = [*snapshot.endpoints, snapshot.total] if full else [snapshot.total]
    saturated = int(snapshot.saturation is not None and snapshot.saturation.now)
    recents, rates = [], []
    for stats in chosen:
        key = (stats.method, stats.name)
        if window is None:
            recents.append(stats)
            rates.append((0.0, 0.0))
        elif stats is snapshot.total:
            recents.append(window.total)
            rates.append((window.rps, window.failures_per_s))
        else:
            recents.append(window.endpoints.get(key, stats))
            rates.append(window.rates(key))
    medians = percentile_table(chosen, (50.0,))
    for stats, recent, (rps, fps), (median,) in zip(
        chosen, _percentiles(recents), rates, medians, strict=True
    ):
        yield [
            int(timestamp),
            snapshot.users,
            stats.method,
            stats.name,
            f"{rps:.2f}",
            f"{fps:.2f}",
            *recent,
            stats.requests,
            stats.failures,
            _num(median),
            _num(stats.avg_ms),
            _num(stats.min_ms),
            _num(stats.max_ms),
            _num(stats.avg_content_length),
            saturated,
            snapshot.dropped,
        ]


def _rewrite(path: str, columns: list[str], rows: Iterable[list[Any]]) -> None:
    def write(handle: TextIO) -> None:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)

    write_atomically(path, write, newline="")


class CsvWriter:
    """Keeps the four CSV files of ``--csv PREFIX`` up to date.

    Args:
        prefix: path prefix of the files.
        full_history: add a row per endpoint to the history every second.
    """

    def __init__(self, prefix: str, full_history: bool = False) -> None:
        self.prefix = prefix
        self.full_history = full_history
        # No folder is made: a mistyped prefix would scatter files (the CLI checks it exists).
        # Kept open for the run (closed in close()); rows are appended whole or not at all.
        self._history = os.open(
            f"{prefix}_stats_history.csv", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666
        )
        self._history_size = 0
        self._append([[*HISTORY_COLUMNS, SATURATION_COLUMN, DROPPED_COLUMN]])

    def _append(self, rows: Iterable[list[Any]]) -> None:
        """Append ``rows`` to the history; a write that fails (a full disk) is taken back, so
        the file never ends in half a row."""
        text = io.StringIO(newline="")
        csv.writer(text).writerows(rows)
        data = memoryview(text.getvalue().encode("utf-8"))
        try:
            while data:
                data = data[os.write(self._history, data) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._history, self._history_size)
                os.lseek(self._history, self._history_size, os.SEEK_SET)
            raise
        self._history_size = os.lseek(self._history, 0, os.SEEK_CUR)

    def update(
        self, snapshot: Snapshot, window: Window | None, timestamp: float, rows: bool = True
    ) -> None:
        """Rewrite the stats, failures and exceptions files and append to the history.

        ``rows`` False: the snapshot holds the totals only (see ``RunReporting``): the stats
        file keeps its rows of the last snapshot that had them.
        """
        if rows:
            _rewrite(f"{self.prefix}_stats.csv", STATS_HEADER, stats_rows(snapshot))
        _rewrite(f"{self.prefix}_failures.csv", FAILURES_COLUMNS, failure_rows(snapshot))
        _rewrite(f"{self.prefix}_exceptions.csv", EXCEPTIONS_COLUMNS, exception_rows(snapshot))
        self._append(history_rows(snapshot, window, self.full_history, timestamp))

    def close(self) -> None:
        """Close the history file."""
        if self._history >= 0:
            os.close(self._history)
            self._history = -1
