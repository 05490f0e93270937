"""The worker side of stats: record each request into this worker's segment.

``Recorder.on_request`` is the first listener of the ``request`` event in a worker. A request
costs a dictionary lookup and about a dozen int64 updates through a ``memoryview``; no message
is sent except the first time a (method, name) or error text is seen, when its row index and
text go to the parent once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gevent import getcurrent

from mpswarm.stats.histogram import NUM_BUCKETS, SUB_BITS, bucket_index
from mpswarm.stats.segment import (
    H_ERRORS,
    H_ROWS,
    HEADER_WORDS,
    INT64_MAX,
    MIN_US,
    Segment,
)

OVERFLOW_METHOD = "*"
OVERFLOW_ERROR_TEXT = "other errors (too many distinct error texts)"

Announce = Callable[[tuple[Any, ...]], None]


def overflow_name(max_endpoints: int) -> str:
    """Name of the row where names past the cap are counted."""
    return f"other names (more than {max_endpoints} distinct)"


def failure_text(exc: BaseException | str) -> str:
    """How an exception passed to the request event reads in the errors table."""
    if isinstance(exc, str):
        return exc
    module = type(exc).__module__
    if module.startswith("mpswarm.http"):  # our client's texts are already complete sentences
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Recorder:
    """Writes request statistics into a segment; announces new rows through ``announce``.

    Args:
        segment: this worker's segment.
        announce: sends a small message to the parent (called before a new row is used, so the
            parent always learns a row's name before it can see the row's counts change).
    """

    def __init__(self, segment: Segment, announce: Announce) -> None:
        self._segment = segment
        self._words = segment.words
        self._announce = announce
        self._rows: dict[tuple[str, str], int] = {}
        self._errors: dict[tuple[str, str, str], int] = {}
        self._overflowed = False
        self._words[HEADER_WORDS + MIN_US] = INT64_MAX
        self._raw_shift = segment.raw_offset - HEADER_WORDS  # main row offset -> raw row offset
        #: Open model: each user greenlet's start delay (us) for its current iteration; then
        #: rows get the corrected time and raw rows the time from the send. None: closed model.
        self.delays: dict[Any, int] | None = None

    def open_model(self, delays: dict[Any, int]) -> None:
        """Record corrected times, with ``delays`` (greenlet -> start delay in us)."""
        self.delays = delays

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int | None,
        exception: BaseException | str | None = None,
        **_: Any,
    ) -> None:
        """Record one request (the ``request`` event's signature)."""
        offset = self._rows.get((request_type, name))
        if offset is None:
            offset = self._new_row(request_type, name)
        us = int(response_time * 1000.0 + 0.5) if response_time and response_time > 0 else 0
        if self.delays is not None:
            self._record_raw(offset, us)
            us += self.delays.get(getcurrent(), 0)
        if us < 128:
            bucket = us
        else:
            shift = us.bit_length() - SUB_BITS - 1
            bucket = ((shift + 1) << SUB_BITS) + (us >> shift) - 64
            if bucket >= NUM_BUCKETS:
                bucket = NUM_BUCKETS - 1
        length = response_length or 0
        w = self._words
        # Endpoint row, then this worker's total row (unrolled: this is the hot path).
        w[offset] += 1
        w[offset + 2] += us
        if us < w[offset + 3]:
            w[offset + 3] = us
        if us > w[offset + 4]:
            w[offset + 4] = us
        w[offset + 5] += length
        w[offset + 6 + bucket] += 1
        t = HEADER_WORDS
        w[t] += 1
        w[t + 2] += us
        if us < w[t + 3]:
            w[t + 3] = us
        if us > w[t + 4]:
            w[t + 4] = us
        w[t + 5] += length
        w[t + 6 + bucket] += 1
        if exception is not None:
            w[offset + 1] += 1
            w[t + 1] += 1
            self._count_error(request_type, name, exception)

    def _record_raw(self, offset: int, us: int) -> None:
        """The uncorrected time, into the raw copies of the endpoint row and the total row."""
        w = self._words
        bucket = bucket_index(us)
        for base in (offset + self._raw_shift, self._segment.raw_offset):
            w[base] += 1
            w[base + 2] += us
            if us < w[base + 3]:
                w[base + 3] = us
            if us > w[base + 4]:
                w[base + 4] = us
            w[base + 6 + bucket] += 1

    def _new_row(self, method: str, name: str) -> int:
        segment = self._segment
        count = len(self._rows)
        if count >= segment.max_endpoints:
            overflow = self._rows.get((OVERFLOW_METHOD, overflow_name(segment.max_endpoints)))
            if not self._overflowed:
                self._overflowed = True
                self._announce(("overflow", method, name))
            if overflow is not None:
                self._rows[(method, name)] = overflow
                return overflow
            row = segment.overflow_row
            key = (OVERFLOW_METHOD, overflow_name(segment.max_endpoints))
        else:
            row = count + 1
            key = (method, name)
        offset = segment.row_offset(row)
        self._words[offset + MIN_US] = INT64_MAX
        self._words[offset + self._raw_shift + MIN_US] = INT64_MAX
        self._announce(("row", row, key[0], key[1]))
        self._rows[key] = offset
        if key != (method, name):
            self._rows[(method, name)] = offset
        else:
            self._words[H_ROWS] = row
        return offset

    def _count_error(self, method: str, name: str, exception: BaseException | str) -> None:
        text = failure_text(exception)
        key = (method, name, text)
        index = self._errors.get(key)
        if index is None:
            segment = self._segment
            count = self._words[H_ERRORS]
            if count >= segment.max_errors:
                key = (OVERFLOW_METHOD, OVERFLOW_METHOD, OVERFLOW_ERROR_TEXT)
                index = self._errors.get(key)
            if index is None:
                index = segment.errors_offset + min(count, segment.overflow_error)
                self._announce(("error", index - segment.errors_offset, *key))
                if count < segment.max_errors:
                    self._words[H_ERRORS] = count + 1
                self._errors[key] = index
            self._errors[(method, name, text)] = index
        self._words[index] += 1

    @property
    def row_count(self) -> int:
        """Distinct (method, name) keys seen, overflowed ones included."""
        return len(self._rows)
