"""The worker side of stats: record each request into this worker's segment.

``Recorder.on_request`` is the first listener of the ``request`` event in a worker. A request
costs a dictionary lookup and about a dozen int64 updates through a ``memoryview``; no message
is sent except the first time a (method, name) or error text is seen, when its row index and
text go to the parent once.

The caps on distinct names and error rows are the run's (see ``aggregate.py``): the segment's
own cap is this worker's memory backstop, and once the parent says the run-wide cap is reached
(``limit_names``, ``limit_errors``) a name the run does not know yet goes straight to the
overflow row, unannounced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gevent import getcurrent

from mpswarm._text import printable
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
#: Folded names (or error keys) remembered for a quick lookup, per distinct row allowed: past
#: that, a folded name costs a lookup of its own on each request instead of memory (a runaway
#: name is new on every request anyway).
_FOLDED_KEPT = 2

Announce = Callable[[tuple[Any, ...]], None]


def overflow_name(max_endpoints: int) -> str:
    """Name of the row where names past the cap are counted."""
    return f"other names (more than {max_endpoints} distinct)"


def failure_text(exc: BaseException | str) -> str:
    """How an exception passed to the request event reads in the errors table.

    The text often quotes the server (a reason phrase, a body): it is made printable here,
    once, so every report and the terminal get it escaped.
    """
    if isinstance(exc, str):
        return printable(exc)
    module = type(exc).__module__
    if module.startswith("mpswarm.http"):  # our client's texts are already complete sentences
        return printable(str(exc))
    text = str(exc)
    return printable(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _shown(name: str) -> str:
    """A request name or method as reports show it: escaped, never cut (cut names could merge)."""
    return name if name.isprintable() else printable(name, limit=len(name))


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
        # (method, name) as given -> word offset of its row (folded names included, a few).
        self._rows: dict[tuple[str, str], int] = {}
        self._used_rows = 0
        self._overflow_offset = -1
        self._overflowed = False
        #: Once the run-wide cap is reached: the run's names, the only ones still given a row.
        self._run_names: set[tuple[str, str]] | None = None
        # (method, name, text) as given -> word offset of its counter, and the same by the
        # (shown) key announced; error rows of folded names count under the overflow name.
        self._errors: dict[tuple[str, str, str], int] = {}
        self._error_index: dict[tuple[str, str, str], int] = {}
        self._used_errors = 0
        self._run_errors: set[tuple[str, str, str]] | None = None
        self._words[HEADER_WORDS + MIN_US] = INT64_MAX
        self._raw_shift = segment.raw_offset - HEADER_WORDS  # main row offset -> raw row offset
        #: Open model: each user greenlet's start delay (us) for its current iteration; then
        #: rows get the corrected time and raw rows the time from the send. None: closed model.
        self.delays: dict[Any, int] | None = None

    def limit_names(self, names: Iterable[tuple[str, str]]) -> None:
        """The run reached its cap on names: only ``names`` (as announced) still get a row."""
        self._run_names = set(names)

    def limit_errors(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """The run reached its cap on error rows: only ``keys`` (as announced) still get one."""
        self._run_errors = set(keys)

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
            self._count_error(request_type, name, exception, offset)

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
        shown = (_shown(method), _shown(name))
        allowed = self._run_names
        if self._used_rows < segment.max_endpoints and (allowed is None or shown in allowed):
            # Taken before announcing: a send can yield, and another greenlet record a new name.
            self._used_rows = row = self._used_rows + 1
            offset = self._open_row(row)
            self._words[H_ROWS] = row
            self._announce(("row", row, *shown))
            self._rows[(method, name)] = offset
            return offset
        if not self._overflowed:
            self._overflowed = True
            self._announce(("overflow", *shown))
        offset = self._overflow_offset
        if offset < 0:
            offset = self._overflow_offset = self._open_row(segment.overflow_row)
            key = (OVERFLOW_METHOD, overflow_name(segment.max_endpoints))
            self._announce(("row", segment.overflow_row, *key))
        if len(self._rows) < _FOLDED_KEPT * segment.max_endpoints:
            self._rows[(method, name)] = offset
        return offset

    def _open_row(self, row: int) -> int:
        offset = self._segment.row_offset(row)
        self._words[offset + MIN_US] = INT64_MAX
        self._words[offset + self._raw_shift + MIN_US] = INT64_MAX
        return offset

    def _count_error(
        self, method: str, name: str, exception: BaseException | str, row_offset: int
    ) -> None:
        text = failure_text(exception)
        index = self._errors.get((method, name, text))
        if index is None:
            index = self._new_error(method, name, text, row_offset)
        self._words[index] += 1

    def _new_error(self, method: str, name: str, text: str, row_offset: int) -> int:
        segment = self._segment
        if row_offset == self._overflow_offset:  # one error row per text over folded names
            shown = (OVERFLOW_METHOD, overflow_name(segment.max_endpoints), text)
        else:
            shown = (_shown(method), _shown(name), text)
        index = self._error_index.get(shown)
        if index is None:
            allowed = self._run_errors
            if self._used_errors < segment.max_errors and (allowed is None or shown in allowed):
                slot = self._used_errors
                self._used_errors += 1
                self._words[H_ERRORS] = self._used_errors
            else:
                shown = (OVERFLOW_METHOD, OVERFLOW_METHOD, OVERFLOW_ERROR_TEXT)
                slot = segment.overflow_error
                index = self._error_index.get(shown)
            if index is None:
                index = segment.errors_offset + slot
                self._announce(("error", slot, *shown))
                self._error_index[shown] = index
        if len(self._errors) < _FOLDED_KEPT * (segment.max_errors + 1):
            self._errors[(method, name, text)] = index
        return index
