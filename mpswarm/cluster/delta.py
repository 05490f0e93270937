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


def snapshot(segment: Any, open_model: bool) -> list[tuple[int, Any]]:
    """Copies of the used word ranges: [(offset, int64 array)]."""
    flat = np.frombuffer(segment._map, dtype=np.int64)
    return [(o, flat[o : o + n].copy()) for o, n in used_ranges(segment, open_model)]


class DeltaReader:
    """Successive snapshots of one segment that leave out what did not change.

    The counters are cumulative: a row whose request and failure counts did not move since the
    last snapshot did not change at all, and a histogram's non-zero buckets only spread. So
    each snapshot holds the header, the error counters, and of every changed row its counters
    and the span of its non-zero buckets. After a ``reset_counts`` (``H_RESETS`` moved) the
    whole used range goes once more. One reader per segment: the bridge's relay of it.
    """

    def __init__(self, segment: Any, open_model: bool) -> None:
        self.segment = segment
        self.open_model = open_model
        self.flat: Any = np.frombuffer(segment._map, dtype=np.int64)
        self._seen: dict[int, tuple[int, int]] = {}  # row offset -> (requests, failures)
        self._resets = -1
        self.words_sent = 0

    def snapshot(self) -> list[tuple[int, Any]]:
        from mpswarm.stats.segment import H_RESETS, H_ROWS, HEADER_WORDS, HIST, ROW_WORDS

        segment, flat = self.segment, self.flat
        resets = int(segment.header[H_RESETS])
        if resets != self._resets:
            self._resets = resets
            self._seen.clear()
            parts = snapshot(segment, self.open_model)
        else:
            n_rows = min(int(segment.header[H_ROWS]), segment.max_endpoints)
            # (first word, rows): the rows in use and the overflow row (and their raw twins)
            blocks = [(HEADER_WORDS, n_rows + 1), (segment.row_offset(segment.overflow_row), 1)]
            if self.open_model:
                raw = segment.raw_offset
                blocks += [(raw, n_rows + 1), (raw + segment.overflow_row * ROW_WORDS, 1)]
            parts = [(0, flat[:HEADER_WORDS].copy())]
            for start, rows in blocks:
                for row in range(rows):
                    offset = start + row * ROW_WORDS
                    key = (int(flat[offset]), int(flat[offset + 1]))  # REQUESTS, FAILURES
                    if self._seen.get(offset) == key:
                        continue
                    # The worker writes REQUESTS first, its bucket last (FAILURES after it):
                    # the histogram is copied before the counters, and the row counts as
                    # sent only when the copies agree (buckets sum to REQUESTS). A row caught
                    # mid-update goes again next time.
                    hist = flat[offset + HIST : offset + ROW_WORDS].copy()
                    counters = flat[offset : offset + HIST].copy()
                    if int(hist.sum()) == int(counters[0]):
                        self._seen[offset] = (int(counters[0]), int(counters[1]))
                    else:
                        self._seen.pop(offset, None)
                    parts.append((offset, counters))
                    nonzero = np.flatnonzero(hist)
                    if len(nonzero):
                        lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
                        parts.append((offset + HIST + lo, hist[lo:hi]))
            for offset, n in used_ranges(segment, self.open_model)[2:4]:
                parts.append((offset, flat[offset : offset + n].copy()))
        self.words_sent += sum(len(words) for _, words in parts)
        return parts


def apply(flat: Any, parts: list[tuple[int, Any]]) -> None:
    """Write a snapshot into a mapped segment (``flat``: its int64 view)."""
    for offset, words in parts:
        flat[offset : offset + len(words)] = words  # a copy: Ray's arrays are read-only


__all__ = ["DeltaReader", "apply", "snapshot", "used_ranges"]
