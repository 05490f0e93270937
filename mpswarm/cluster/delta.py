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
    the same rows of ``raw_rows``. Pages outside them were never touched."""
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
        ]
    return ranges


def snapshot(segment: Any, open_model: bool) -> tuple[Any, Any]:
    """Every used word of ``segment``: (positions, values), both int64 arrays."""
    flat = np.frombuffer(segment._map, dtype=np.int64)
    positions = np.concatenate(
        [np.arange(o, o + n, dtype=np.int64) for o, n in used_ranges(segment, open_model)]
    )
    return positions, flat[positions]


class DeltaReader:
    """Successive copies of one segment that leave out what did not change.

    The counters are cumulative: a row whose request and failure counts did not move since the
    last copy did not change at all, and a histogram's non-zero buckets only spread. So each
    copy holds the header, the error counters, and of every changed row its counters and the
    span of its non-zero buckets. After a ``reset_counts`` (``H_RESETS`` moved) every used
    word goes once more. One reader per segment: the bridge's relay of it.

    A copy is (positions, values): two int64 arrays, found and applied with array operations
    (a thousand changed rows cost a few milliseconds, not a Python loop over them).
    """

    def __init__(self, segment: Any, open_model: bool) -> None:
        from mpswarm.stats.segment import HEADER_WORDS, ROW_WORDS

        self.segment = segment
        self.open_model = open_model
        self.flat: Any = np.frombuffer(segment._map, dtype=np.int64)
        capacity = segment.row_capacity
        # (first word, rows as a 2-D view, the (requests, failures) sent of each row)
        self._tables = [(HEADER_WORDS, segment.rows, np.full((capacity, 2), -1, np.int64))]
        if open_model:
            raw = self.flat[segment.raw_offset : segment.raw_offset + capacity * ROW_WORDS]
            self._tables.append(
                (segment.raw_offset, raw.reshape(capacity, ROW_WORDS),
                 np.full((capacity, 2), -1, np.int64))
            )  # fmt: skip
        self._resets = -1
        self.words_sent = 0

    def snapshot(self) -> tuple[Any, Any]:
        from mpswarm.stats.segment import H_RESETS, H_ROWS, HEADER_WORDS, HIST, ROW_WORDS

        segment, flat = self.segment, self.flat
        resets = int(segment.header[H_RESETS])
        if resets != self._resets:
            self._resets = resets
            for _, _, sent in self._tables:
                sent.fill(-1)
            positions, values = snapshot(segment, self.open_model)
            self.words_sent += len(values)
            return positions, values
        n_rows = min(int(segment.header[H_ROWS]), segment.max_endpoints)
        used = np.r_[np.arange(n_rows + 1), segment.overflow_row]
        fixed = [(0, HEADER_WORDS), *used_ranges(segment, self.open_model)[2:4]]
        pieces = [np.arange(o, o + n, dtype=np.int64) for o, n in fixed]
        words = [flat[piece] for piece in pieces]
        columns = np.arange(ROW_WORDS)
        for first, rows, sent in self._tables:
            counts = rows[used, :2]  # REQUESTS, FAILURES
            changed = used[(counts != sent[used]).any(axis=1)]
            if not len(changed):
                continue
            # The worker writes REQUESTS first and its bucket last: the rows are copied once,
            # and a row whose buckets do not sum to its REQUESTS (caught mid-update) counts
            # as not sent, so it goes again next time.
            copy = rows[changed]
            whole = copy[:, HIST:].sum(axis=1) == copy[:, 0]
            sent[changed] = np.where(whole[:, None], copy[:, :2], -1)
            nonzero = copy[:, HIST:] != 0
            low = nonzero.argmax(axis=1)
            high = nonzero.shape[1] - nonzero[:, ::-1].argmax(axis=1)
            high[~nonzero.any(axis=1)] = 0
            bucket = columns - HIST
            keep = (columns < HIST) | ((bucket >= low[:, None]) & (bucket < high[:, None]))
            pieces.append((first + changed[:, None] * ROW_WORDS + columns)[keep])
            words.append(copy[keep])  # the words checked above, not a later state
        positions, values = np.concatenate(pieces), np.concatenate(words)
        self.words_sent += len(values)
        return positions, values


def apply(flat: Any, parts: tuple[Any, Any]) -> None:
    """Write a copy into a mapped segment (``flat``: its int64 view)."""
    positions, values = parts
    flat[positions] = values  # Ray's arrays are read-only: only read from here


__all__ = ["DeltaReader", "apply", "snapshot", "used_ranges"]
