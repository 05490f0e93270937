"""Copies of a worker's segment that travel: only the words in use, and of those only what moved.

The Ray bridge (``mpswarm.cluster.bridge``) mirrors each remote worker's segment into the
parent's local one, so the parent's Aggregator sums remote and local workers alike. Every
counter is cumulative, so a mirrored copy is exact once the last delta is applied.
"""

from __future__ import annotations

from typing import Any

import numpy as np


# -- the segment's used words ---------------------------------------------------------------------
def used_ranges(segment: Any, open_model: bool) -> list[tuple[int, int]]:
    """(word offset, length) of every part of ``segment`` in use: header and rows 0..n (one
    run), the overflow row, the error counters and their overflow, and under the open model
    the same rows of ``raw_rows``. Pages outside them were never touched (the timing
    breakdown's rows are read row by row: see ``DeltaReader``)."""
    from mpswarm.stats.segment import H_ERRORS, H_ROWS, HEADER_WORDS, ROW_WORDS

    n_rows = min(int(segment.header[H_ROWS]), segment.max_endpoints)
    n_errors = min(int(segment.header[H_ERRORS]) + 1, segment.max_errors)
    ranges = [
        (0, HEADER_WORDS + (n_rows + 1) * ROW_WORDS),
        (segment.row_offset(segment.overflow_row), ROW_WORDS),
        (segment.errors_offset, n_errors),
        (segment.errors_offset + segment.overflow_error, 1),
    ]
    if open_model:
        ranges += [
            (segment.raw_offset, (n_rows + 1) * ROW_WORDS),
            (segment.raw_offset + segment.overflow_row * ROW_WORDS, ROW_WORDS),
            (segment.delay_offset, ROW_WORDS),
        ]
    return ranges


class DeltaReader:
    """Successive copies of one segment that leave out what the reader's copy already holds.

    The reader keeps the words it sent of every row in use (so it knows the receiver's copy
    exactly): a copy holds the header, the error counters, and of every row whose request or
    failure count moved since it was last sent (or that was caught mid-update then) the words
    that differ from what was sent. Of the timing breakdown's tables it reads only the rows
    that hold a time (``PHASE_BITS``) or that it sent one of (zeroed since by a reset). A
    request usually changes five words of its row; under a thousand names a second of requests
    is a few hundred words, not the rows' histograms.
    After a ``reset_counts`` (``H_RESETS`` moved) every row in use is compared once more.

    A copy is (positions, values): two int64 arrays, found and applied with array operations.
    """

    def __init__(self, segment: Any, open_model: bool) -> None:
        from mpswarm.stats.segment import ROW_WORDS

        self.segment = segment
        self.open_model = open_model
        self.flat: Any = np.frombuffer(segment._map, dtype=np.int64)
        # Every table's first word and rows (the raw times under the open model only).
        self._tables = list(zip(segment.table_offsets, segment.tables, strict=True))
        # What the receiver holds of each table's rows in use, by compact index (rows 0..n,
        # then the overflow row); grown as rows come into use. Its copy starts as zeros.
        self._sent = [np.zeros((0, ROW_WORDS), np.int64) for _ in self._tables]
        self._torn = [np.zeros(0, dtype=bool) for _ in self._tables]
        self._resets = 0
        self.words_sent = 0

    def _grow(self, table: int, n_rows: int) -> tuple[Any, Any]:
        """The sent rows of ``table`` and whether each was torn, with room for rows 0..n_rows
        and the overflow row last."""
        sent, torn = self._sent[table], self._torn[table]
        if len(sent) < n_rows + 2:
            size = max(n_rows + 2, 2 * len(sent))
            grown, grown_torn = np.zeros((size, sent.shape[1]), np.int64), np.zeros(size, bool)
            if len(sent):
                grown[: len(sent) - 1], grown_torn[: len(sent) - 1] = sent[:-1], torn[:-1]
                grown[-1], grown_torn[-1] = sent[-1], torn[-1]  # the overflow row stays last
            self._sent[table], self._torn[table] = sent, torn = grown, grown_torn
        return sent, torn

    def snapshot(self) -> tuple[Any, Any]:
        from mpswarm.stats.segment import (
            H_RESETS,
            H_ROWS,
            HEADER_WORDS,
            HIST,
            PHASE_BIT,
            PHASES,
            REQUESTS,
            ROW_WORDS,
            TIMES,
            UNCORRECTED,
        )

        segment, flat = self.segment, self.flat
        resets = int(segment.header[H_RESETS])
        every_row = resets != self._resets
        self._resets = resets
        n_rows = min(int(segment.header[H_ROWS]), segment.max_endpoints)
        fixed = [(0, HEADER_WORDS), *used_ranges(segment, self.open_model)[2:4]]
        if self.open_model:  # the start delays' one row, whole
            fixed.append((segment.delay_offset, ROW_WORDS))
        pieces = [np.arange(o, o + n, dtype=np.int64) for o, n in fixed]
        words = [flat[piece] for piece in pieces]
        columns = np.arange(ROW_WORDS)
        in_use = np.r_[np.arange(n_rows + 1), segment.overflow_row]
        tables = [TIMES, UNCORRECTED] if self.open_model else [TIMES]
        for table in tables + [k for k, _ in PHASES]:
            first, rows = self._tables[table]
            sent, torn = self._grow(table, n_rows)
            used = in_use
            compact = np.r_[np.arange(n_rows + 1), len(sent) - 1]
            if table in PHASE_BIT:
                keep = segment.timed_rows(used, table) | (sent[compact, REQUESTS] != 0)
                used, compact = used[keep], compact[keep]
                if not used.size:
                    continue
            if every_row:
                moved = np.ones(len(used), dtype=bool)
            else:
                # A row caught mid-update (its buckets short of its REQUESTS: the worker writes
                # REQUESTS first, its bucket last) goes again even if its counts did not move.
                moved = (rows[used, :2] != sent[compact, :2]).any(axis=1) | torn[compact]
            if not moved.any():
                continue
            copy = rows[used[moved]]
            differs = copy != sent[compact[moved]]
            pieces.append((first + used[moved][:, None] * ROW_WORDS + columns)[differs])
            words.append(copy[differs])
            sent[compact[moved]] = copy
            torn[compact[moved]] = copy[:, HIST:].sum(axis=1) != copy[:, 0]
        positions, values = np.concatenate(pieces), np.concatenate(words)
        self.words_sent += len(values)
        return positions, values


def apply(flat: Any, parts: tuple[Any, Any]) -> None:
    """Write a copy into a mapped segment (``flat``: its int64 view)."""
    positions, values = parts
    flat[positions] = values  # Ray's arrays are read-only: only read from here


def merge(copies: list[dict[str, tuple[bytes, Any, bool]]]) -> dict[str, tuple[bytes, Any, bool]]:
    """Successive copies of the same workers (``{id: (records, (positions, values), ended)}``,
    oldest first) as one: each worker's records end to end, of each word its latest value,
    ended once any copy says so. Applying the result equals applying the copies in turn."""
    if len(copies) == 1:
        return copies[0]
    found: dict[str, list[Any]] = {}
    for copy in copies:
        for wid, (data, parts, ended) in copy.items():
            if wid in found:
                entry = found[wid]
                entry[0] += data
                entry[1].append(parts)
                entry[2] = entry[2] or ended
            else:
                found[wid] = [bytearray(data), [parts], ended]
    merged = {}
    for wid, (data, parts, ended) in found.items():
        if len(parts) > 1:
            # The last write of a word wins; numpy does not promise which of repeated indices
            # an assignment keeps, so repeated positions are dropped here.
            positions = np.concatenate([p for p, _ in parts])[::-1]
            values = np.concatenate([v for _, v in parts])[::-1]
            positions, last = np.unique(positions, return_index=True)
            parts = [(positions, values[last])]
        merged[wid] = (bytes(data), parts[0], ended)
    return merged


__all__ = ["DeltaReader", "apply", "merge", "used_ranges"]
