"""``--hdr-log``: HdrHistogram interval logs, read back with the ``hdrhistogram`` package."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from mpswarm.report.hdr_log import encode, tag
from mpswarm.stats.histogram import MIDPOINTS_US, NUM_BUCKETS, bucket_index
from mpswarm.stats.snapshot import EndpointStats
from tests.conftest import write


def _stats(values_us: list[int]) -> EndpointStats:
    hist = np.zeros(NUM_BUCKETS, dtype=np.int64)
    for value in values_us:
        hist[bucket_index(value)] += 1
    return EndpointStats("GET", "/x", len(values_us), 0, sum(values_us), min(values_us),
                         max(values_us), 0, hist)  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_encoded_histogram_reads_back_with_mpswarms_percentiles(seed: int) -> None:
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(8, 1.5)) + 1 for _ in range(5000)]  # 1 µs to minutes
    ours = _stats(values)
    theirs = HdrHistogram.decode(encode(ours))
    assert theirs.get_total_count() == len(values)
    for q in (50.0, 90.0, 99.0, 99.9):
        expected = ours.percentile(q) * 1000  # µs
        assert theirs.get_value_at_percentile(q) == pytest.approx(expected, rel=0.01), q


def test_tags_have_no_comma_or_space() -> None:
    assert tag("GET", "/a b,c%") == "GET:/a%20b%2Cc%25"
    assert tag("POST", "/x", "uncorrected") == "uncorrected:POST:/x"


LOCUSTFILE = """
from mpswarm import FastHttpUser, constant, task

class Mixed(FastHttpUser):
    wait_time = constant(0)

    @task(3)
    def fast(self):
        self.client.get("/")

    @task
    def slow(self):
        self.client.get("/slow?ms=20", name="slow, with a comma")
"""


def _value_at_rank(histogram: dict[str, int], rank: int) -> float:
    """The reported value (µs, the bucket's midpoint) of the rank-th smallest time."""
    seen = 0
    for index, count in sorted((int(k), v) for k, v in histogram.items()):
        seen += count
        if seen >= max(rank, 1):
            return float(MIDPOINTS_US[index])
    raise AssertionError("rank past the histogram")


def _read(path: Path) -> list[HdrHistogram]:
    reader = HistogramLogReader(str(path), HdrHistogram(1, 2**32 - 1, 2))
    found = []
    try:
        while True:
            histogram = reader.get_next_interval_histogram()
            if histogram is None:
                return found
            found.append(histogram)
    finally:
        reader.close()


def test_a_runs_log_holds_every_request_of_every_interval(run_cli, demo, tmp_path: Path) -> None:
    locustfile = write(tmp_path / "mixed.py", LOCUSTFILE)
    log, report = tmp_path / "run.hlog", tmp_path / "r.json"
    run = run_cli(
        "-f", str(locustfile), "-H", demo.url, "--headless", "-u", "4", "-r", "100", "-t", "4s",
        "--processes", "2", "--hdr-log", str(log), "--json-file", str(report),
    )  # fmt: skip
    assert run.code == 0, run
    data = json.loads(report.read_text())
    text = log.read_text()
    assert text.startswith("#[Histogram log format version 1.3]\n#[StartTime: ")
    intervals = _read(log)
    by_tag: dict[str | None, list[HdrHistogram]] = {}
    for histogram in intervals:
        by_tag.setdefault(histogram.get_tag(), []).append(histogram)
    totals = by_tag.pop(None)
    assert len(totals) >= 4  # one a second, and the last part-second
    expected_tags = {tag(e["method"], e["name"]) for e in data["endpoints"]}
    assert set(by_tag) == expected_tags
    for name, rows, stats in [(None, totals, data["total"])] + [
        (tag(e["method"], e["name"]), by_tag[tag(e["method"], e["name"])], e)
        for e in data["endpoints"]
    ]:
        # Every request is in exactly one interval ...
        assert sum(h.get_total_count() for h in rows) == stats["requests"], name
        merged = HdrHistogram(1, 2**32 - 1, 2)
        for histogram in rows:
            merged.add(histogram)
            if histogram.get_total_count():  # ... and each interval's p99 is one of the run's
                p99_ms = histogram.get_value_at_percentile(99) / 1000
                assert stats["min_ms"] * 0.99 <= p99_ms <= stats["max_ms"] * 1.01, name
        # All intervals together: the run's histogram, as the JSON has it. (HdrHistogram takes
        # the rank round(q n), mpswarm ceil(q n): compared at HdrHistogram's rank.)
        assert merged.get_total_count() == stats["requests"]
        for q in (50, 90, 99):
            expected = _value_at_rank(stats["histogram"], int(q / 100 * stats["requests"] + 0.5))
            assert merged.get_value_at_percentile(q) == pytest.approx(expected, rel=0.005), name
