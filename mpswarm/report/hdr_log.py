"""``--hdr-log FILE``: the response times as an HdrHistogram interval log (format 1.3).

One line per endpoint and interval (``--hdr-interval``, default 1 s), each a compressed V2
histogram of that interval's requests, so HdrHistogram's log processors, HistogramLogAnalyzer
and wrk2 users' tools read mpswarm's latencies. Lines without a tag hold all requests; an
endpoint's lines are tagged ``METHOD:NAME`` (percent-encoded: a tag has no comma or space).
In an open-model run the times are the corrected ones, and the uncorrected ones follow under
``uncorrected`` (all requests) and ``uncorrected:METHOD:NAME``.

Values are integer microseconds (the ``Interval_Max`` column is in ms: a log processor's
``-outputValueUnitRatio 1000`` prints ms). The histograms are written with 2 significant
digits (HdrHistogram's 256 sub-buckets), finer than mpswarm's own buckets: each of those
goes, with its count, to the HdrHistogram bucket of its reported value (its midpoint), so a
percentile read back is mpswarm's to within HdrHistogram's 0.4 %.

The V2 encoding is written here (a 40-byte big-endian header, then the counts as ZigZag
LEB128 varints with runs of zeros as negative lengths, deflated, behind an 8-byte header,
in base64): the ``hdrhistogram`` package only reads it back in the tests.
"""

from __future__ import annotations

import base64
import datetime
import struct
import urllib.parse
import zlib
from typing import TextIO

import numpy as np

from mpswarm.stats.histogram import MIDPOINTS_US
from mpswarm.stats.snapshot import EndpointStats, Snapshot
from mpswarm.stats.window import difference

_ENCODING_COOKIE = 0x1C849303 | 0x10  # V2, 8-byte words
_COMPRESSION_COOKIE = 0x1C849304 | 0x10
SIGNIFICANT_DIGITS = 2
_SUB_BUCKET_HALF_MAGNITUDE = 7  # 2 digits: 256 sub-buckets, half of them 128
_HIGHEST_US = (1 << 32) - 1  # mpswarm's own range: 71 minutes
#: HdrHistogram counts index of each mpswarm bucket (of its midpoint, in µs).
_INDEX = np.zeros(MIDPOINTS_US.size, dtype=np.int64)


def _counts_index(value: int) -> int:
    """HdrHistogram's index of ``value`` (lowest trackable 1, 2 significant digits)."""
    bucket = (value | 0xFF).bit_length() - (_SUB_BUCKET_HALF_MAGNITUDE + 1)
    sub_bucket = value >> bucket
    half = 1 << _SUB_BUCKET_HALF_MAGNITUDE
    return ((bucket + 1) << _SUB_BUCKET_HALF_MAGNITUDE) + sub_bucket - half


for _i, _mid in enumerate(MIDPOINTS_US.tolist()):
    _INDEX[_i] = _counts_index(int(_mid))


def encode(stats: EndpointStats) -> str:
    """``stats``' histogram as a compressed, base64 V2 HdrHistogram."""
    indexes = _INDEX[stats.buckets.astype(np.int64)]
    if indexes.size:
        counts = np.zeros(int(indexes[-1]) + 1, dtype=np.int64)
        np.add.at(counts, indexes, stats.counts)
    else:
        counts = np.zeros(0, dtype=np.int64)
    payload = bytearray()
    zeros = 0
    for count in counts.tolist():
        if count == 0:
            zeros += 1
            continue
        if zeros:
            _varint(payload, -zeros if zeros > 1 else 0)
            zeros = 0
        _varint(payload, count)
    header = struct.pack(">iiiiqqd", _ENCODING_COOKIE, len(payload), 0, SIGNIFICANT_DIGITS,
                         1, _HIGHEST_US, 1.0)  # fmt: skip
    compressed = zlib.compress(header + bytes(payload))
    blob = struct.pack(">ii", _COMPRESSION_COOKIE, len(compressed)) + compressed
    return base64.b64encode(blob).decode("ascii")


def _varint(out: bytearray, value: int) -> None:
    """ZigZag LEB128, as HdrHistogram's ZigZagEncoding (at most 9 bytes for 64 bits)."""
    value = (value << 1) ^ (value >> 63)
    for _ in range(8):
        if value < 0x80:
            out.append(value)
            return
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value & 0xFF)


def tag(method: str, name: str, prefix: str = "") -> str:
    """An endpoint's tag: ``[prefix:]METHOD:NAME``, percent-encoded (no comma, space, %)."""
    text = f"{prefix}:{method}:{name}" if prefix else f"{method}:{name}"
    return urllib.parse.quote(text, safe="/:?&=;@[]!$'()*+~")


class HdrLogWriter:
    """Writes an interval log as the run goes: ``update(snapshot)`` each second, ``close()``.

    Args:
        path: the log file (replaced).
        interval_s: the length of an interval.
    """

    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        self.path = path
        self.interval_s = interval_s
        self._file: TextIO | None = open(path, "w", encoding="ascii")  # noqa: SIM115
        self._previous: Snapshot | None = None
        self._started = False

    def update(self, snapshot: Snapshot, final: bool = False) -> None:
        """Write the interval that ends at ``snapshot`` when it is due (always when ``final``).

        ``snapshot`` must hold the endpoint rows (not a totals-only one).
        """
        if self._file is None:
            return
        if not self._started:
            self._start(snapshot.started_at)
        then = self._previous
        begin = then.duration_s if then is not None else 0.0
        length = snapshot.duration_s - begin
        if length < self.interval_s - 0.05 and not final:
            return
        if snapshot.total.requests < (then.total.requests if then is not None else 0):
            then = None  # the statistics were reset: this interval counts from zero
        lines = []
        before = {(e.method, e.name): e for e in then.endpoints} if then is not None else {}
        rows: list[tuple[str | None, EndpointStats | None, EndpointStats | None]] = [
            (None, snapshot.total, then.total if then is not None else None)
        ]
        rows += [(tag(e.method, e.name), e, before.get((e.method, e.name)))
                 for e in snapshot.endpoints]  # fmt: skip
        if snapshot.open_model:
            rows += [("uncorrected" if t is None else f"uncorrected:{t}", now.uncorrected,
                      old.uncorrected if old is not None else None)
                     for t, now, old in list(rows)
                     if now is not None and now.uncorrected is not None]  # fmt: skip
        for name, now, old in rows:
            if now is None:
                continue
            interval = difference(now, old)
            if interval.requests <= 0 and name is not None:
                continue  # an endpoint without requests in this interval
            prefix = f"Tag={name}," if name is not None else ""
            lines.append(f"{prefix}{begin:.3f},{length:.3f},{interval.max_us / 1000.0:.3f},"
                         f"{encode(interval)}\n")  # fmt: skip
        self._file.write("".join(lines))
        self._file.flush()  # a crash loses at most the interval being gathered
        self._previous = snapshot

    def _start(self, started_at: float) -> None:
        assert self._file is not None
        moment = datetime.datetime.fromtimestamp(started_at, datetime.timezone.utc)
        self._file.write(
            "#[Histogram log format version 1.3]\n"
            f"#[StartTime: {started_at:.3f} (seconds since epoch), {moment.isoformat()}]\n"
            f"#[BaseTime: {started_at:.3f} (seconds since epoch)]\n"
            "#[mpswarm: values in microseconds; Interval_Max in milliseconds]\n"
            '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n'
        )
        self._started = True

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
