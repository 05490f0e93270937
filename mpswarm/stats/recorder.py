"""The worker side of stats: record each request into this worker's segment.

``Recorder.on_request`` is the first listener of the ``request`` event in a worker. A request
costs a dictionary lookup and about a dozen int64 updates through a ``memoryview``; no message
is sent except the first time a (method, name) or error text is seen, when its row index and
text go to the parent once.

**Timing breakdown.** A response of mpswarm's HTTP clients carries ``_phases``: the
microseconds its TCP connect, TLS handshake and wait for the first byte took (-1 for a phase
that did not happen: a kept-alive connection has no connect), and the bytes its request took
on the wire (counted in the header's ``H_SENT``). Each goes into the row's own
histogram in that phase's table, written before the row's request count moves: a reader that
sees the count move sees the breakdown complete. A row's first time in a table sets its
minimum and maximum (a breakdown row starts as zeros, never written before) and its bit in
the row's ``PHASE_BITS``, which is how readers know which breakdown rows to look at. The
breakdown is kept per endpoint only (the parent sums the endpoints for the total): time to
first byte, on every request, then costs one histogram more, not two (``bench/recording.py``).

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
from mpswarm.stats.announcements import (
    Announcement,
    ErrorAnnounced,
    NamesOverflowed,
    RowAnnounced,
)
from mpswarm.stats.histogram import NUM_BUCKETS, SUB_BITS, bucket_index
from mpswarm.stats.segment import (
    CONNECT,
    H_ERRORS,
    H_ROWS,
    H_SENT,
    HEADER_WORDS,
    HIST,
    INT64_MAX,
    MIN_US,
    PHASE_BIT,
    PHASE_BITS,
    TLS,
    TTFB,
    Segment,
)

OVERFLOW_METHOD = "*"
OVERFLOW_ERROR_TEXT = "other errors (too many distinct error texts)"
#: Folded names (or error keys) remembered for a quick lookup, per distinct row allowed: past
#: that, a folded name costs a lookup of its own on each request instead of memory (a runaway
#: name is new on every request anyway).
_FOLDED_KEPT = 2

Announce = Callable[[Announcement], None]


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
        announce: sends a small record (``announcements``) to the parent (called before a new
            row is used, so the parent always learns a row's name before it can see the row's
            counts change).
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
        # A row's offset in the first table -> its offset in another.
        shifts = [first - HEADER_WORDS for first in segment.table_offsets]
        self._raw_shift = shifts[1]
        self._connect_shift, self._tls_shift = shifts[CONNECT], shifts[TLS]
        self._ttfb_shift = shifts[TTFB]
        self._raw_offset = segment.raw_offset
        #: Open model: each user greenlet's start delay (us) for its current iteration; then
        #: rows get the corrected time and raw rows the time from the send. None: closed model.
        self.delays: dict[Any, int] | None = None
        #: Records one request: a listener of the ``request`` event, with its signature.
        self.on_request, self._set_delays = self._hot_path()

    def limit_names(self, names: Iterable[tuple[str, str]]) -> None:
        """The run reached its cap on names: only ``names`` (as announced) still get a row."""
        self._run_names = set(names)

    def limit_errors(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """The run reached its cap on error rows: only ``keys`` (as announced) still get one."""
        self._run_errors = set(keys)

    def open_model(self, delays: dict[Any, int]) -> None:
        """Record corrected times, with ``delays`` (greenlet -> start delay in us)."""
        self.delays = delays
        self._set_delays(delays)

    def _hot_path(self) -> tuple[Callable[..., None], Callable[[dict[Any, int]], None]]:
        """``on_request`` and the setter of its delays, as closures over what they use.

        Everything the hot path reads is a local of this frame: a closure's cell costs less
        to read than an attribute of ``self`` (measured by bench/recording.py).
        """
        w = self._words
        rows_get = self._rows.get
        new_row = self._new_row
        count_error = self._count_error
        record_at, record_phase = self._record_at, self._record_phase
        connect_shift, tls_shift = self._connect_shift, self._tls_shift
        ttfb_shift, raw_shift, raw_total = self._ttfb_shift, self._raw_shift, self._raw_offset
        t = HEADER_WORDS
        ttfb_bit = PHASE_BIT[TTFB]
        delays: dict[Any, int] | None = None

        def set_delays(given: dict[Any, int]) -> None:
            nonlocal delays
            delays = given

        def on_request(
            request_type: str,
            name: str,
            response_time: float,
            response_length: int | None,
            exception: BaseException | str | None = None,
            response: Any = None,
            context: Any = None,
            start_time: Any = None,
            url: Any = None,
            **_: Any,
        ) -> None:
            """Record one request (the ``request`` event's signature).

            Every argument the HTTP clients pass is named, unused or not: then no call needs
            a dictionary for the rest.
            """
            offset = rows_get((request_type, name))
            if offset is None:
                offset = new_row(request_type, name)
            phases = getattr(response, "_phases", None)
            if phases is not None:  # before the row's count moves (see the module docstring)
                connect, tls, ttfb, sent = phases
                w[H_SENT] += sent
                if connect >= 0:
                    record_phase(offset, connect_shift, PHASE_BIT[CONNECT], connect)
                    if tls >= 0:
                        record_phase(offset, tls_shift, PHASE_BIT[TLS], tls)
                if ttfb >= 0:  # as record_phase, unrolled: nearly every request has one
                    p = offset + ttfb_shift
                    if ttfb < 128:
                        bucket = ttfb
                    else:
                        shift = ttfb.bit_length() - SUB_BITS - 1
                        bucket = ((shift + 1) << SUB_BITS) + (ttfb >> shift) - 64
                        if bucket >= NUM_BUCKETS:
                            bucket = NUM_BUCKETS - 1
                    n = w[p]
                    if n:
                        w[p] = n + 1
                        w[p + 2] += ttfb
                        if ttfb < w[p + 3]:
                            w[p + 3] = ttfb
                        if ttfb > w[p + 4]:
                            w[p + 4] = ttfb
                    else:
                        w[p] = 1
                        w[p + 2] = ttfb
                        w[p + 3] = w[p + 4] = ttfb
                        w[offset + PHASE_BITS] |= ttfb_bit
                    w[p + HIST + bucket] += 1
            us = int(response_time * 1000.0 + 0.5) if response_time and response_time > 0 else 0
            if delays is not None:  # the open model: the time from the send, then corrected
                record_at(offset + raw_shift, us)
                record_at(raw_total, us)
                us += delays.get(getcurrent(), 0)
            if us < 128:
                bucket = us
            else:
                shift = us.bit_length() - SUB_BITS - 1
                bucket = ((shift + 1) << SUB_BITS) + (us >> shift) - 64
                if bucket >= NUM_BUCKETS:
                    bucket = NUM_BUCKETS - 1
            length = response_length or 0
            # Endpoint row, then this worker's total row (unrolled: this is the hot path).
            w[offset] += 1
            w[offset + 2] += us
            if us < w[offset + 3]:
                w[offset + 3] = us
            if us > w[offset + 4]:
                w[offset + 4] = us
            w[offset + 5] += length
            w[offset + HIST + bucket] += 1
            w[t] += 1
            w[t + 2] += us
            if us < w[t + 3]:
                w[t + 3] = us
            if us > w[t + 4]:
                w[t + 4] = us
            w[t + 5] += length
            w[t + HIST + bucket] += 1
            if exception is not None:
                w[offset + 1] += 1
                w[t + 1] += 1
                count_error(request_type, name, exception, offset)

        return on_request, set_delays

    def _record_at(self, base: int, us: int) -> None:
        """One time into the row at word offset ``base``: count, sum, min, max, its bucket."""
        w = self._words
        w[base] += 1
        w[base + 2] += us
        if us < w[base + 3]:
            w[base + 3] = us
        if us > w[base + 4]:
            w[base + 4] = us
        w[base + HIST + bucket_index(us)] += 1

    def record_delay(self, us: int) -> None:
        """Open model: one iteration's start delay, into the segment's delay row."""
        self._record_first_use(self._segment.delay_offset, us)

    def _record_phase(self, offset: int, shift: int, bit: int, us: int) -> None:
        """One time into a breakdown row (``shift`` from the row at ``offset``), its first
        setting its bit in the row's PHASE_BITS."""
        if self._record_first_use(offset + shift, us):
            self._words[offset + PHASE_BITS] |= bit

    def _record_first_use(self, base: int, us: int) -> bool:
        """One time into a row that starts as zeros (never opened with a minimum): its first
        time sets the minimum and maximum. True when it was the first."""
        w = self._words
        if w[base]:
            self._record_at(base, us)
            return False
        w[base] = 1
        w[base + 2] = w[base + 3] = w[base + 4] = us
        w[base + HIST + bucket_index(us)] += 1
        return True

    def _new_row(self, method: str, name: str) -> int:
        segment = self._segment
        shown = (_shown(method), _shown(name))
        allowed = self._run_names
        if self._used_rows < segment.max_endpoints and (allowed is None or shown in allowed):
            # Taken before announcing: a send can yield, and another greenlet record a new name.
            self._used_rows = row = self._used_rows + 1
            offset = self._open_row(row)
            self._words[H_ROWS] = row
            self._announce(RowAnnounced(row, *shown))
            self._rows[(method, name)] = offset
            return offset
        if not self._overflowed:
            self._overflowed = True
            self._announce(NamesOverflowed(*shown))
        offset = self._overflow_offset
        if offset < 0:
            offset = self._overflow_offset = self._open_row(segment.overflow_row)
            key = (OVERFLOW_METHOD, overflow_name(segment.max_endpoints))
            self._announce(RowAnnounced(segment.overflow_row, *key))
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
                self._announce(ErrorAnnounced(slot, *shown))
                self._error_index[shown] = index
        if len(self._errors) < _FOLDED_KEPT * (segment.max_errors + 1):
            self._errors[(method, name, text)] = index
        return index
