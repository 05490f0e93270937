"""The parent side of stats: sum every worker's segment into a Snapshot with numpy.

Workers announce each row once (``on_row``); the Aggregator maps a worker's local row to a
global row and sums all segments with vectorised numpy operations. Segments stay registered
after their worker exits, so a crashed or replaced worker's requests stay counted.

**Run-wide caps.** ``max_endpoints`` distinct request names and ``max_errors`` distinct error
rows bound the whole run, not each worker: once that many names are known, a new name from any
worker maps to the one overflow row ("other names (more than N distinct)"), and a new error
row to the overflow error row. The parent is the source of truth: each worker keeps the same
cap on its own segment as a memory backstop, and once the run-wide cap is reached it is sent
the run's names (``row_names()``) so that it folds every other name itself, without announcing
it. Several local rows can map to one global row (the overflow row above all), so every sum is
an unbuffered ``ufunc.at``: ``a[idx] += b`` would count a repeated index once. The numpy work
on rows (reading and summing them, splitting histograms, building the statistics) is in
``_rows.py``; this module decides which rows to read and where each goes.

**Memory.** A global row is kept as one :class:`EndpointStats` with a sparse histogram (its
non-empty buckets only), rebuilt only when one of its local rows changed: a snapshot reads the
request count and time sum of every local row (two words), then only the rows that moved since
the snapshot before, and of those only the buckets between the row's fastest and slowest
response (so it never touches the pages of a segment that a worker did not write). Unchanged
rows are the same objects from one snapshot to the next, so a snapshot kept for the 10 s window
costs 8 bytes per unchanged row. Measured (tracemalloc, bench/many_names.py): 0.75 KB per row
that saw one request (0.2 KB its name and mappings, 0.5 KB its statistics), plus 10 bytes per
histogram bucket in use: at most 18 KB for a row using all 1 728 buckets. Dense, a row cost
13.8 KB in every snapshot, plus as much again while summing; a parent summing 20 000 one-request
rows grew by 380 MB, and by 270 MB more for each snapshot kept. A row with a timing breakdown
costs about 1 KB more (its connect and time-to-first-byte statistics: bench/many_names.py
``run``, 10 001 names, 63 -> 73 MB), and only the breakdown rows that hold a time are read
(``Segment.timed_rows``).
"""

from __future__ import annotations

import time
from array import array
from typing import Any

import numpy as np
import numpy.typing as npt

from mpswarm.stats._rows import (
    FIRST,
    empty,
    fold,
    gather,
    row_stats,
    same_stats,
    split,
    total_stats,
)
from mpswarm.stats.histogram import NUM_BUCKETS
from mpswarm.stats.recorder import OVERFLOW_ERROR_TEXT, OVERFLOW_METHOD, overflow_name
from mpswarm.stats.segment import (
    BYTES,
    FAILURES,
    H_DROPPED,
    H_ITERATIONS,
    H_RESETS,
    HIST,
    PHASE_BIT,
    PHASE_BITS,
    PHASES,
    REQUESTS,
    SUM_US,
    TIMES,
    TOTAL_ROW,
    UNCORRECTED,
    Segment,
)
from mpswarm.stats.snapshot import (
    EndpointStats,
    ErrorStats,
    ExceptionStats,
    Snapshot,
    merged_phases,
)

RowKey = tuple[str, str]
ErrorKey = tuple[str, str, str]

#: The key of the overflow error row.
ERROR_OVERFLOW_KEY: ErrorKey = (OVERFLOW_METHOD, OVERFLOW_METHOD, OVERFLOW_ERROR_TEXT)

# Global rows rebuilt together: a (256, 1 728) int64 scratch histogram is 3.5 MB.
_CHUNK_ROWS = 256


def _int_array(values: array[int]) -> npt.NDArray[np.int64]:
    """A numpy copy of an ``array('q')`` (a copy: a view would pin the array's size)."""
    return np.frombuffer(values, dtype=np.int64).copy() if values else np.zeros(0, np.int64)


class _Source:
    """One segment, the global rows of its local rows, and what the last snapshot saw."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        # 8 bytes per entry (a list of ints costs 36).
        self.local_rows: array[int] = array("q")
        self.global_rows: array[int] = array("q")
        self.local_errors: list[int] = []
        self.global_errors: list[int] = []
        self._arrays: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None
        #: (requests, sum_us) of each entry at the last snapshot that read rows.
        self.seen = np.zeros((0, 2), dtype=np.int64)
        #: Entries that moved at that snapshot: read once more, in case it saw a request
        #: half-recorded (the counters of a row are not written atomically together).
        self.moving = np.zeros(0, dtype=bool)
        self.resets = -1

    def add_row(self, local: int, gid: int) -> None:
        self.local_rows.append(local)
        self.global_rows.append(gid)
        self._arrays = None

    def arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(local rows, their global rows) as numpy arrays."""
        if self._arrays is None:
            self._arrays = (_int_array(self.local_rows), _int_array(self.global_rows))
        return self._arrays

    def dirty(self, local: npt.NDArray[np.int64], everything: bool) -> npt.NDArray[np.bool_]:
        """Which entries to read again: those whose row moved now or at the snapshot before."""
        segment = self.segment
        now = np.empty((local.size, 2), dtype=np.int64)
        now[:, 0] = segment.rows[local, REQUESTS]
        now[:, 1] = segment.rows[local, SUM_US]
        seen = np.full((local.size, 2), -1, dtype=np.int64)
        seen[: self.seen.shape[0]] = self.seen
        moved = (now != seen).any(axis=1)
        moving = np.zeros(local.size, dtype=bool)
        moving[: self.moving.size] = self.moving
        resets = int(segment.header[H_RESETS])
        dirty = moved | moving
        if everything or resets != self.resets:
            dirty[:] = True
        self.seen, self.moving, self.resets = now, moved, resets
        return dirty


class Aggregator:
    """Knows every segment and every announced name; builds Snapshots.

    Args:
        max_endpoints: distinct request names in the whole run before further names fold
            into the overflow row (None: no cap, as in a worker's own view of its segment).
        max_errors: distinct error rows in the whole run before further ones fold into the
            overflow error row (None: no cap).
    """

    def __init__(self, max_endpoints: int | None = None, max_errors: int | None = None) -> None:
        self.max_endpoints = max_endpoints
        self.max_errors = max_errors
        self._sources: dict[Any, _Source] = {}
        self._row_ids: dict[RowKey, int] = {}
        self._row_keys: list[RowKey] = []
        self._named_rows = 0
        self._overflow_key: RowKey | None = (
            None if max_endpoints is None else (OVERFLOW_METHOD, overflow_name(max_endpoints))
        )
        #: The first name folded into the overflow row by the run-wide cap, if any.
        self.first_folded_name: RowKey | None = None
        self._error_ids: dict[ErrorKey, int] = {}
        self._error_keys: list[ErrorKey] = []
        self._named_errors = 0
        self._exceptions: dict[tuple[str, str], int] = {}
        self._exception_nodes: dict[tuple[str, str], set[str]] = {}
        # (first seen, last seen) wall-clock times per error row, for the failures CSV.
        self._error_times: dict[ErrorKey, list[float]] = {}
        self._last_error_counts = np.zeros(0, dtype=np.int64)
        # Per global row: its statistics as last built (None: no request yet).
        self._stats: list[EndpointStats | None] = []
        self._order: list[int] = []  # global rows sorted by (name, method)
        #: Open model: snapshots also sum the raw rows (uncorrected times).
        self.open_model = False

    def add_segment(self, source_id: Any, segment: Segment) -> None:
        """Start summing ``segment``, announced under ``source_id``."""
        self._sources[source_id] = _Source(segment)

    @property
    def segments(self) -> list[Segment]:
        """Every segment ever added."""
        return [source.segment for source in self._sources.values()]

    # -- names -----------------------------------------------------------------------------------
    def on_row(self, source_id: Any, row: int, method: str, name: str) -> None:
        """A worker announced that ``row`` of its segment holds (method, name)."""
        key = (method, name)
        gid = self._row_ids.get(key)
        if gid is None:
            if key == self._overflow_key:
                gid = self._new_row(key)
            elif self.names_full:
                assert self._overflow_key is not None
                gid = self._row_ids.get(self._overflow_key)
                if gid is None:
                    gid = self._new_row(self._overflow_key)
                if self.first_folded_name is None:
                    self.first_folded_name = key
            else:
                self._named_rows += 1
                gid = self._new_row(key)
        self._sources[source_id].add_row(row, gid)

    def _new_row(self, key: RowKey) -> int:
        gid = self._row_ids[key] = len(self._row_keys)
        self._row_keys.append(key)
        self._stats.append(None)
        return gid

    @property
    def names_full(self) -> bool:
        """True once the run has ``max_endpoints`` distinct names: new ones fold."""
        return self.max_endpoints is not None and self._named_rows >= self.max_endpoints

    @property
    def names_folded(self) -> bool:
        """True once some requests are counted in the overflow row."""
        return self._overflow_key is not None and self._overflow_key in self._row_ids

    def row_names(self) -> list[RowKey]:
        """The run's distinct names (the overflow row's excluded), in announcement order."""
        return [key for key in self._row_keys if key != self._overflow_key]

    def on_error(self, source_id: Any, index: int, method: str, name: str, text: str) -> None:
        """A worker announced that error counter ``index`` counts (method, name, text).

        An error of a name that was folded into the overflow row is counted under that row's
        name, so that one error text over thousands of runaway names stays one error row.
        """
        if (
            self._overflow_key is not None
            and (method, name) not in self._row_ids
            and self.names_full
        ):
            method, name = self._overflow_key
        key = (method, name, text)
        gid = self._error_ids.get(key)
        if gid is None:
            if key != ERROR_OVERFLOW_KEY and self.errors_full:
                key = ERROR_OVERFLOW_KEY
                gid = self._error_ids.get(key)
            elif key != ERROR_OVERFLOW_KEY:
                self._named_errors += 1
        if gid is None:
            gid = self._error_ids[key] = len(self._error_keys)
            self._error_keys.append(key)
            now = time.time()
            self._error_times[key] = [now, now]
        source = self._sources[source_id]
        source.local_errors.append(index)
        source.global_errors.append(gid)

    @property
    def errors_full(self) -> bool:
        """True once the run has ``max_errors`` distinct error rows: new ones fold."""
        return self.max_errors is not None and self._named_errors >= self.max_errors

    @property
    def errors_folded(self) -> bool:
        """True once some errors are counted in the overflow error row."""
        return ERROR_OVERFLOW_KEY in self._error_ids

    def error_keys(self) -> list[ErrorKey]:
        """The run's distinct error rows (the overflow row's excluded)."""
        return [key for key in self._error_keys if key != ERROR_OVERFLOW_KEY]

    # -- exceptions ------------------------------------------------------------------------------
    def on_exceptions(self, counts: dict[tuple[str, str], int], node: str = "") -> None:
        """Add user-code exception counts ((message, traceback) -> new occurrences)."""
        for key, count in counts.items():
            self._exceptions[key] = self._exceptions.get(key, 0) + count
            self._exception_nodes.setdefault(key, set()).add(node)

    def reset_exceptions(self) -> None:
        """Forget the exceptions counted so far."""
        self._exceptions.clear()
        self._exception_nodes.clear()

    @property
    def exception_count(self) -> int:
        """User-code exceptions so far."""
        return sum(self._exceptions.values())

    # -- snapshots -------------------------------------------------------------------------------
    def totals(self) -> np.ndarray:
        """The sum of every worker's total row: cheap (one row per segment)."""
        total = empty(1)
        for source in self._sources.values():
            fold(total, FIRST, source.segment.rows[TOTAL_ROW : TOTAL_ROW + 1, :HIST])
        return total[0]

    def snapshot(
        self,
        started_at: float,
        duration_s: float,
        users: int,
        final: bool = False,
        totals_only: bool = False,
    ) -> Snapshot:
        """Sum every segment into a frozen Snapshot (copies: it outlives the segments).

        With ``totals_only`` the endpoint rows are skipped: each worker's total row and the
        error counters are enough for the live status. A ``final`` snapshot reads every row
        again (exact: the workers have stopped); others rebuild only rows that moved.
        """
        total = empty(1)
        raw_total = empty(1)
        total_hist = np.zeros(NUM_BUCKETS, dtype=np.int64)
        raw_hist = np.zeros(NUM_BUCKETS, dtype=np.int64)
        errors = np.zeros(len(self._error_keys), dtype=np.int64)
        iterations = dropped = sent = lost = 0
        delay_total, delay_hist = empty(1), np.zeros(NUM_BUCKETS, dtype=np.int64)
        for source in self._sources.values():
            segment = source.segment
            fold(total, FIRST, segment.rows[TOTAL_ROW : TOTAL_ROW + 1, :HIST])
            total_hist += segment.rows[TOTAL_ROW, HIST:]
            if self.open_model:
                fold(raw_total, FIRST, segment.raw_rows[TOTAL_ROW : TOTAL_ROW + 1, :HIST])
                raw_hist += segment.raw_rows[TOTAL_ROW, HIST:]
                if segment.delay_row[REQUESTS]:
                    fold(delay_total, FIRST, segment.delay_row[None, :HIST])
                    delay_hist += segment.delay_row[HIST:]
            iterations += int(segment.header[H_ITERATIONS])
            dropped += int(segment.header[H_DROPPED])
            sent += segment.sent_bytes
            lost += segment.lost
            if source.local_errors:
                counts = segment.errors[np.asarray(source.local_errors)]
                np.add.at(errors, np.asarray(source.global_errors), counts)
        self._note_error_times(errors)
        endpoints: tuple[EndpointStats, ...] = ()
        if not totals_only:
            self._refresh_rows(everything=final)
            endpoints = self._endpoints()
        raw = None
        if self.open_model:  # raw rows hold times only: failures and sizes are the row's own
            raw_total[0, FAILURES], raw_total[0, BYTES] = total[0, FAILURES], total[0, BYTES]
            raw = total_stats("", "Aggregated", raw_total[0], raw_hist)
        return Snapshot(
            endpoints=endpoints,
            # The breakdown is kept per endpoint only (see recorder.py): the total's is theirs.
            total=total_stats(
                "", "Aggregated", total[0], total_hist, raw, merged_phases(endpoints)
            ),
            errors=self._error_rows(errors),
            exceptions=tuple(
                sorted(
                    (
                        ExceptionStats(count, msg, tb)
                        for (msg, tb), count in self._exceptions.items()
                    ),
                    key=lambda row: -row.count,
                )
            ),
            started_at=started_at,
            duration_s=duration_s,
            users=users,
            final=final,
            error_times={k: (v[0], v[1]) for k, v in self._error_times.items()},
            exception_nodes={k: frozenset(v) for k, v in self._exception_nodes.items()},
            open_model=self.open_model,
            iterations=iterations,
            dropped=dropped,
            sent_bytes=sent,
            lost=lost,
            start_delay=total_stats("", "start delay", delay_total[0], delay_hist)
            if self.open_model
            else None,
        )

    def _error_rows(self, errors: np.ndarray) -> tuple[ErrorStats, ...]:
        keys = self._error_keys
        return tuple(
            sorted(
                (
                    ErrorStats(keys[gid][0], keys[gid][1], keys[gid][2], int(errors[gid]))
                    for gid in np.flatnonzero(errors > 0).tolist()
                ),
                key=lambda row: (-row.occurrences, row.name, row.error),
            )
        )

    def _endpoints(self) -> tuple[EndpointStats, ...]:
        if len(self._order) != len(self._row_keys):
            keys = self._row_keys
            self._order = sorted(range(len(keys)), key=lambda gid: (keys[gid][1], keys[gid][0]))
        stats = self._stats
        return tuple(row for row in map(stats.__getitem__, self._order) if row is not None)

    def _refresh_rows(self, everything: bool) -> None:
        """Rebuild the global rows one of whose local rows moved (all of them: ``everything``)."""
        changed = np.zeros(len(self._row_keys), dtype=bool)
        readers = []
        for source in self._sources.values():
            local, gids = source.arrays()
            if local.size:
                changed[gids[source.dirty(local, everything)]] = True
                readers.append((source, local, gids))
        rebuild = np.flatnonzero(changed)
        if not rebuild.size:
            return
        position = np.full(changed.size, -1, dtype=np.int64)
        position[rebuild] = np.arange(rebuild.size)
        # Per source: the entries of the rebuilt rows, ordered by the rebuilt row's position.
        picks = []
        for source, local, gids in readers:
            entries = np.flatnonzero(changed[gids])
            order = np.argsort(position[gids[entries]], kind="stable")
            entries = entries[order]
            picks.append((source.segment, local[entries], position[gids[entries]]))
        # The tables to read: the open model's raw times, the breakdown where a row has one.
        tables = [TIMES, UNCORRECTED] if self.open_model else [TIMES]
        bits = 0  # only the breakdown tables some row has a time in: the others stay unread
        for segment, local, _ in picks:
            bits |= int(np.bitwise_or.reduce(segment.rows[local, PHASE_BITS]))
        tables += [k for k, _ in PHASES if bits & PHASE_BIT[k]]
        scratch = [np.zeros((_CHUNK_ROWS, NUM_BUCKETS), dtype=np.int64) for _ in tables]
        spans = [(0, 0) for _ in tables]  # the buckets each scratch may hold: (first, stop)
        for start in range(0, rebuild.size, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, rebuild.size)
            columns = [empty(stop - start) for _ in tables]
            for block, hist in enumerate(scratch):
                hist[:, spans[block][0] : spans[block][1]] = 0
                spans[block] = (NUM_BUCKETS, 0)
            for segment, local, pos in picks:
                first, last = np.searchsorted(pos, [start, stop], side="left")
                if first == last:
                    continue
                rows, at = local[first:last], pos[first:last] - start
                for block, table in enumerate(tables):
                    if table in PHASE_BIT:  # only rows that hold a time: no other page is read
                        timed = segment.timed_rows(rows, table)
                        rows_read, at_read = rows[timed], at[timed]
                    else:
                        rows_read, at_read = rows, at
                    low, high = gather(segment.tables[table], rows_read, at_read, columns[block],
                                       scratch[block])  # fmt: skip
                    spans[block] = (min(spans[block][0], low), max(spans[block][1], high))
            sparse = [
                split(hist[: stop - start], *span)
                for hist, span in zip(scratch, spans, strict=True)
            ]
            self._build(rebuild[start:stop], tables, columns, sparse)

    def _build(
        self,
        gids: npt.NDArray[np.intp],
        tables: list[int],
        columns: list[np.ndarray],
        sparse: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ) -> None:
        """New EndpointStats for ``gids`` from their summed columns and histograms (``split``),
        one of each per table in ``tables`` (TIMES first).

        A row read again but found unchanged (read once more after it moved, or by a final
        snapshot) keeps its object: snapshots kept for the window then share it.
        """
        values = [block.tolist() for block in columns]
        main = values[0]
        raw = tables.index(UNCORRECTED) if UNCORRECTED in tables else -1
        phases = [(tables.index(k), phase) for k, phase in PHASES if k in tables]
        keys = self._row_keys
        for i, gid in enumerate(gids.tolist()):
            row = main[i]
            if row[REQUESTS] <= 0:
                self._stats[gid] = None
                continue
            old = self._stats[gid]
            times = None
            if raw >= 0:
                times = values[raw][i]
                times[FAILURES], times[BYTES] = row[FAILURES], row[BYTES]  # the row's own
            same = old is not None and same_stats(old, row, sparse[0], i)
            if same and times is not None:
                raw_old = old.uncorrected if old is not None else None
                same = raw_old is not None and same_stats(raw_old, times, sparse[raw], i)
            for block, phase in phases if same else ():
                had = old.phases.get(phase) if old is not None else None
                timed = values[block][i]
                same = (not timed[REQUESTS] and had is None) or (
                    had is not None and same_stats(had, timed, sparse[block], i)
                )
                if not same:
                    break
            if same:
                continue
            method, name = keys[gid]
            uncorrected = None if times is None else row_stats(method, name, times, sparse[raw], i)
            breakdown = {
                phase: row_stats(method, name, values[block][i], sparse[block], i)
                for block, phase in phases
                if values[block][i][REQUESTS] > 0
            }
            self._stats[gid] = row_stats(
                method, name, row, sparse[0], i, uncorrected, breakdown or None
            )

    def _note_error_times(self, errors: np.ndarray) -> None:
        previous = self._last_error_counts
        grown = np.flatnonzero(errors[: previous.size] > previous)
        now = time.time()
        for gid in [*grown.tolist(), *range(previous.size, errors.size)]:
            times = self._error_times.get(self._error_keys[gid])
            if times is not None and errors[gid] > 0:
                times[1] = now
        self._last_error_counts = errors.copy()
