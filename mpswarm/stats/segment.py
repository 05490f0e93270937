"""One worker's shared-memory segment: counters and histograms as int64 words.

The parent creates each segment before the worker starts, as an anonymous memory file
(``memfd_create``) that it passes to the worker as a file descriptor. Both map it; the worker
writes, the parent reads. It never has a name in /dev/shm, so no exit path, not even ``kill -9``
of every process, can leave it behind: the kernel frees it with the last mapping.

The file is sized for the full capacity (by default 10 000 endpoint rows, ~694 MB) but is
sparse: the kernel backs only the pages a worker touches, so an unused row costs nothing. This
replaces growing the segment in chunks with one mechanism the kernel already provides.

Layout (int64 words)::

    header[16]                   n_rows, n_errors, users, ...
    rows[capacity + 2][ROW]      row 0: this worker's total; 1..: endpoints; last: overflow
    errors[max_errors + 1]       occurrence counters; last: overflow
    raw_rows[capacity + 2][ROW]  open model only: the same rows, uncorrected response times
    connect[capacity + 2][ROW]   the timing breakdown of the same rows: TCP connect (new
    tls[capacity + 2][ROW]       connections only), TLS handshake (new TLS connections only)
    ttfb[capacity + 2][ROW]      and time to first byte, each a row's own histogram
    delay_row[ROW]               open model only: the iterations' start delays

Under ``--arrival-rate`` the rows hold response times corrected for coordinated omission
(from each iteration's scheduled start) and ``raw_rows`` the times from the actual send; in
a closed-model run ``raw_rows`` is never written, so its pages are never backed. Nor is a
row of a breakdown table that never got a time (a custom client's requests have none, TLS
happens only over https, connect only on a new connection): its row in the first table says
which do (``PHASE_BITS``), and a reader looks at no other, so it never touches, and makes the
kernel back, a page nobody wrote. Their row 0 (the worker's total) stays empty: the parent
sums the endpoint rows, which keeps a request's recording to one more histogram (see
``recorder.py``).

Every table is the same kind of row, indexed alike: ``tables[k][row]`` (``TABLES`` names them).
"""

from __future__ import annotations

import mmap
import os
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from mpswarm.stats.histogram import NUM_BUCKETS

HEADER_WORDS = 16
H_ROWS = 0  # endpoint rows allocated (row indexes 1..n)
H_ERRORS = 1  # error rows allocated
H_USERS = 2  # users running in this worker
H_LAG_P99_US = 4  # event-loop lag, p99 of the last 5 s, in microseconds
H_LAG_MAX_US = 5  # worst event-loop lag seen, in microseconds
H_ITERATIONS = 6  # task runs (the open model: iterations started on schedule)
H_DROPPED = 7  # open model: iterations dropped (no free user under --max-users)
H_RESETS = 8  # times reset_counts() ran: a reader's cached rows are stale after one
H_SENT = 10  # request bytes sent (headers and body) by requests that got a response
H_BEAT_US = 11  # CLOCK_MONOTONIC (us) of the worker's event loop's last turn (0: none yet)
H_IN_FLIGHT = 12  # requests begun and not yet recorded (mpswarm.stats.in_flight)
H_LOST = 13  # requests in flight when the worker died or was killed: never recorded
H_FORKED = 14  # 1 once a copy of the worker, forked by user code, tried to run its users

# Columns of a row.
# PHASE_BITS (first table only): which breakdown tables hold a time for this row (PHASE_BIT).
REQUESTS, FAILURES, SUM_US, MIN_US, MAX_US, BYTES, PHASE_BITS, HIST = range(8)
ROW_WORDS = HIST + NUM_BUCKETS
INT64_MAX = np.iinfo(np.int64).max

TOTAL_ROW = 0

#: The tables of rows, in segment order after the first: ``tables[k]`` for k in these.
TIMES, UNCORRECTED, CONNECT, TLS, TTFB = range(5)
#: The timing breakdown's tables and the name each has in the reports.
PHASES = ((CONNECT, "connect"), (TLS, "tls"), (TTFB, "ttfb"))
#: Each breakdown table's bit in a row's PHASE_BITS.
PHASE_BIT = {CONNECT: 1, TLS: 2, TTFB: 4}
N_TABLES = 5


class Segment:
    """A mapped segment; see the module docstring for its layout.

    Args:
        fd: the memory file's descriptor (owned: closed by ``close()``).
        max_endpoints: endpoint rows before names fold into the overflow row.
        max_errors: error rows before texts fold into the overflow error row.
    """

    def __init__(self, fd: int, max_endpoints: int, max_errors: int) -> None:
        self.fd = fd
        self.max_endpoints = max_endpoints
        self.max_errors = max_errors
        self.row_capacity = max_endpoints + 2
        self.overflow_row = max_endpoints + 1
        self.errors_offset = HEADER_WORDS + self.row_capacity * ROW_WORDS
        self.overflow_error = max_errors
        self.raw_offset = self.errors_offset + max_errors + 1
        table_words = self.row_capacity * ROW_WORDS
        #: Word offset of each table's row 0.
        self.table_offsets = [HEADER_WORDS] + [
            self.raw_offset + k * table_words for k in range(N_TABLES - 1)
        ]
        #: Open model: one row, the start delays of this worker's iterations (scheduled start
        #: to the moment a user began it), first-use like the breakdown's rows.
        self.delay_offset = self.table_offsets[-1] + table_words
        self.size_words = self.delay_offset + ROW_WORDS
        self._map: mmap.mmap | None = mmap.mmap(fd, self.size_words * 8)
        #: int64 view for the worker's hot path (indexing it is ~2x faster than numpy's).
        self.words: Any = memoryview(self._map).cast("q")
        flat = np.frombuffer(self._map, dtype=np.int64)
        self.header: npt.NDArray[np.int64] = flat[:HEADER_WORDS]
        self.rows: npt.NDArray[np.int64] = flat[HEADER_WORDS : self.errors_offset].reshape(
            self.row_capacity, ROW_WORDS
        )
        self.errors: npt.NDArray[np.int64] = flat[self.errors_offset : self.raw_offset]
        #: Every table of rows, by index (TIMES, UNCORRECTED, CONNECT, TLS, TTFB).
        self.tables: list[npt.NDArray[np.int64]] = [self.rows] + [
            flat[first : first + table_words].reshape(self.row_capacity, ROW_WORDS)
            for first in self.table_offsets[1:]
        ]
        self.raw_rows: npt.NDArray[np.int64] = self.tables[UNCORRECTED]
        self.delay_row: npt.NDArray[np.int64] = flat[self.delay_offset : self.size_words]

    @classmethod
    def create(cls, max_endpoints: int, max_errors: int, label: str = "mpswarm") -> Segment:
        """Create a new zeroed segment (a sparse anonymous memory file)."""
        fd = os.memfd_create(label, 0)
        words = HEADER_WORDS + N_TABLES * (max_endpoints + 2) * ROW_WORDS + max_errors + 1
        words += ROW_WORDS  # the start delays' row
        os.ftruncate(fd, words * 8)
        segment = cls(fd, max_endpoints, max_errors)
        segment.rows[TOTAL_ROW, MIN_US] = INT64_MAX
        segment.raw_rows[TOTAL_ROW, MIN_US] = INT64_MAX
        return segment

    def timed_rows(self, rows: npt.NDArray[np.int64], table: int) -> npt.NDArray[np.bool_]:
        """Which of ``rows`` hold anything in breakdown ``table`` (their PHASE_BITS say so)."""
        return (self.rows[rows, PHASE_BITS] & PHASE_BIT[table]) != 0

    def reset_counts(self) -> None:
        """Zero every counter, keeping the rows' names (``reset_stats``).

        Called by the segment's writer, between two recordings: numpy does it in one go, with
        no greenlet switch, so no request is half-counted.
        """
        used = int(self.header[H_ROWS]) + 1  # only rows in use: the rest were never backed
        in_use = np.r_[np.arange(used), self.overflow_row]
        for k, _ in PHASES:  # first: zeroing the first table's rows clears their PHASE_BITS
            self.tables[k][in_use[self.timed_rows(in_use, k)]] = 0
        for rows in (self.rows, self.raw_rows):
            for block in (rows[:used], rows[self.overflow_row :]):
                block[:] = 0
                block[:, MIN_US] = INT64_MAX
        self.errors[:] = 0
        if self.delay_row[REQUESTS]:
            self.delay_row[:] = 0
        self.header[H_ITERATIONS] = self.header[H_DROPPED] = self.header[H_SENT] = 0
        self.header[H_LOST] = 0
        self.header[H_RESETS] += 1

    def row_offset(self, row: int) -> int:
        """Word offset of a row's first column, for the ``words`` view."""
        return HEADER_WORDS + row * ROW_WORDS

    # -- the header's fields, by name (what each is: see H_*) ------------------------------------
    @property
    def users(self) -> int:
        """Users running in this worker (the worker writes it, the parent reads it)."""
        return int(self.header[H_USERS])

    @users.setter
    def users(self, value: int) -> None:
        self.header[H_USERS] = value

    @property
    def sent_bytes(self) -> int:
        """Request bytes this worker sent (of requests that got a response)."""
        return int(self.header[H_SENT])

    @property
    def iterations(self) -> int:
        """Iterations this worker took (``-i``, the open model)."""
        return int(self.header[H_ITERATIONS])

    def count_iteration(self) -> None:
        """One more iteration taken."""
        self.header[H_ITERATIONS] += 1

    def count_dropped(self, count: int = 1) -> None:
        """Open model: ``count`` more iterations dropped."""
        self.header[H_DROPPED] += count

    @property
    def loop_lag_us(self) -> tuple[int, int]:
        """The worker's event-loop lag: (p99 of the last 5 s, worst seen), in microseconds."""
        return int(self.header[H_LAG_P99_US]), int(self.header[H_LAG_MAX_US])

    @loop_lag_us.setter
    def loop_lag_us(self, value: tuple[int, int]) -> None:
        self.header[H_LAG_P99_US], self.header[H_LAG_MAX_US] = value

    def beat(self) -> None:
        """The worker's event loop took a turn now (the parent's watchdog reads when)."""
        self.header[H_BEAT_US] = int(time.monotonic() * 1e6)

    @property
    def last_beat_us(self) -> int:
        """CLOCK_MONOTONIC in microseconds of the last ``beat()``; 0 before the first. The
        clock is the machine's, so the parent compares it with its own."""
        return int(self.header[H_BEAT_US])

    def in_flight_word(self) -> memoryview:
        """The in-flight counter as a one-item memoryview (``word[0] += 1``: the cheapest
        write from Python, twice a request)."""
        return memoryview(self.header[H_IN_FLIGHT : H_IN_FLIGHT + 1])  # type: ignore[arg-type]

    @property
    def lost(self) -> int:
        """Requests that were in flight when this segment's worker ended without them."""
        return int(self.header[H_LOST])

    def settle(self) -> int:
        """The worker has ended: what it still had in flight is lost. Returns how many (a
        worker that stopped as asked recorded every request it began: 0)."""
        left = int(self.header[H_IN_FLIGHT])
        if left > 0:
            self.header[H_LOST] += left
        self.header[H_IN_FLIGHT] = 0
        return max(left, 0)

    def mark_forked(self) -> None:
        """A copy of the worker, forked by a task, reached its event loop (and exits)."""
        self.header[H_FORKED] = 1

    @property
    def forked(self) -> bool:
        """True once ``mark_forked()`` was called (in a copy: the memory is shared)."""
        return bool(self.header[H_FORKED])

    def close(self) -> None:
        """Unmap and close the descriptor. Views taken from this segment must be gone."""
        if self._map is None:
            return
        self.words.release()
        del self.header, self.rows, self.errors, self.raw_rows, self.tables, self.delay_row
        try:
            self._map.close()
        except BufferError:  # a numpy view still exists somewhere: the GC will unmap it
            pass
        self._map = None
        os.close(self.fd)
