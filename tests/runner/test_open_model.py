"""Open-model load (--arrival-rate): the schedule, its accuracy on the wire, dropped
iterations, and latency corrected for coordinated omission, against real servers on loopback."""

from __future__ import annotations

import itertools
import json
import random
import statistics
import time
import uuid
from pathlib import Path

import pytest

from mpswarm.config import parse_rate
from mpswarm.exceptions import UsageError
from mpswarm.report.json_report import snapshot_from_dict
from mpswarm.runner.arrivals import Schedule, _Picker
from tests.conftest import wait_until_gone, write
from tests.runner.conftest import TimedServer, assert_follows
from tests.runner.test_recovery import kill_a_worker
from tests.runner.test_run import start_background, wait_for_workers

LOCUSTFILE = """
from mpswarm import FastHttpUser, between, constant, task

class Visitor(FastHttpUser):
    wait_time = between(5, 10)  # ignored by the open model

    @task
    def visit(self):
        self.client.get("/{path}")
"""


# -- the schedule ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "per_second"),
    [("500/s", 500.0), ("30000/m", 500.0), ("36/h", 0.01), ("12.5", 12.5), (" 2 / min ", 2 / 60)],
)
def test_parse_rate(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["0/s", "-5/s", "5/day", "fast", "", "1/s/s"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="rate"):
        parse_rate(text)


def test_constant_schedule_is_evenly_spaced_and_catches_up() -> None:
    schedule = Schedule("constant", 200.0, start=100.0, phase=0.002)
    times = [schedule.pop() for _ in range(1000)]
    assert times[0] == pytest.approx(100.002)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(0.005) and max(gaps) == pytest.approx(0.005)
    schedule.set_rate(400.0, now=times[-1])
    assert schedule.pop() - times[-1] == pytest.approx(0.0025)


def test_a_late_schedule_skips_what_fell_due_before_it_came() -> None:
    """A replacement worker's schedule is timed from the run's start: what fell due before it
    came (less a second of catching up) is skipped and counted, never sent late."""
    constant = Schedule("constant", 100.0, start=0.0, phase=0.004)
    assert constant.skip_before(0.0) == 0
    assert constant.skip_before(10.0) == 1000  # 0.004, 0.014, ... 9.994
    assert constant.pop() == pytest.approx(10.004)  # still on the run's grid
    poisson = Schedule("poisson", 100.0, start=0.0, rng=random.Random(3))
    assert poisson.skip_before(10.0) == pytest.approx(1000, abs=1)
    assert poisson.pop() >= 10.0


def test_poisson_schedule_mean_and_variance() -> None:
    rate = 100.0
    schedule = Schedule("poisson", rate, start=0.0, rng=random.Random(7))
    times = [schedule.pop() for _ in range(50_000)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Exponential gaps: mean 1/rate, variance 1/rate^2.
    assert statistics.fmean(gaps) == pytest.approx(1 / rate, rel=0.03)
    assert statistics.pvariance(gaps) == pytest.approx(1 / rate**2, rel=0.06)
    # Arrivals per second: Poisson, so the variance equals the mean.
    per_second = [0] * int(times[-1])
    for t in times:
        if int(t) < len(per_second):
            per_second[int(t)] += 1
    assert statistics.fmean(per_second) == pytest.approx(rate, rel=0.03)
    assert statistics.pvariance(per_second) == pytest.approx(rate, rel=0.25)


def test_class_picker_follows_weights() -> None:
    picker = _Picker({"A": 3, "B": 1, "C": 0})
    picks = [picker.pick() for _ in range(400)]
    assert picks.count("A") == 300 and picks.count("B") == 100 and "C" not in picks


# -- runs -----------------------------------------------------------------------------------
def test_rate_is_held_within_one_percent_over_every_10_s_window(
    run_cli, tmp_path: Path, timed: TimedServer
) -> None:
    lf = write(tmp_path / "lf.py", LOCUSTFILE.format(path="fast"))
    report = tmp_path / "r.json"
    run = run_cli(
        "-f", str(lf), "-H", timed.url, "--headless", "--only-summary", "--processes", "2",
        "--arrival-rate", "12000/m", "-t", "14s", "--json-file", str(report), precise=True,
    )  # fmt: skip
    assert run.code == 0, run
    times = timed.times()
    data = json.loads(report.read_text())
    assert data["total"]["requests"] == len(times) == data["open_model"]["iterations"]
    assert data["open_model"]["dropped"] == 0
    assert data["settings"]["arrival_rate"] == 200.0
    # Every 10 s window of the run (sliding by 1 s) got 2 000 requests within 1 %: two
    # workers at 100/s each, their schedules interleaved within a few ms of one at 200/s.
    scheduled = [i / 200 for i in range(len(times))]
    assert_follows(times, scheduled, data, window=10, step=1)
    assert "Open model:" in run.stdout and "0 dropped" in run.stdout


def test_stall_shows_in_open_model_p99_not_in_closed_model_p99(
    run_cli, tmp_path: Path, timed: TimedServer
) -> None:
    """The server stalls 2 s (from 4 s to 6 s) in a 12 s run."""
    lf = write(tmp_path / "lf.py", LOCUSTFILE.format(path="stall"))
    closed_lf = write(
        tmp_path / "closed.py",
        LOCUSTFILE.format(path="stall").replace("between(5, 10)", "constant(0.02)"),
    )
    common = ["--headless", "--only-summary", "--processes", "2", "-t", "12s"]
    open_run = run_cli(
        "-f", str(lf), "-H", timed.url, *common, "--arrival-rate", "100/s", "--max-users", "400",
        "--json-file", str(tmp_path / "open.json"),
    )  # fmt: skip
    assert open_run.code == 0, open_run
    opened = json.loads((tmp_path / "open.json").read_text())["total"]
    timed.close()
    fresh = TimedServer()
    try:
        closed_run = run_cli(
            "-f", str(closed_lf), "-H", fresh.url, *common, "-u", "4", "-r", "4",
            "--json-file", str(tmp_path / "closed.json"), precise=True,
        )  # fmt: skip
    finally:
        fresh.close()
    assert closed_run.code == 0, closed_run
    closed = json.loads((tmp_path / "closed.json").read_text())["total"]
    # Open model: a sixth of the iterations fall in the stall and wait for it.
    assert opened["percentiles_ms"]["99"] >= 1000, opened["percentiles_ms"]
    # Closed model: 4 users each wait out the stall once; thousands of fast requests hide it.
    assert closed["percentiles_ms"]["99"] < 200, closed["percentiles_ms"]
    assert closed["requests"] > 1000
    # Corrected times are never below the uncorrected ones.
    for q in ("50", "95", "99"):
        assert opened["percentiles_ms"][q] >= opened["uncorrected"]["percentiles_ms"][q]


def test_too_few_users_drop_iterations_and_a_check_can_fail_on_it(
    run_cli, tmp_path: Path, timed: TimedServer
) -> None:
    """2 users and a 100 ms answer serve at most ~20 iterations/s of the 100/s scheduled."""
    lf = write(tmp_path / "lf.py", LOCUSTFILE.format(path="slow"))
    prefix = tmp_path / "csv" / "run"
    prefix.parent.mkdir()  # --csv makes no folders
    run = run_cli(
        "-f", str(lf), "-H", timed.url, "--headless", "--only-summary", "--processes", "1",
        "--arrival-rate", "100/s", "--max-users", "2", "-t", "5s",
        "--json-file", str(tmp_path / "r.json"), "--junit", str(tmp_path / "j.xml"),
        "--html", str(tmp_path / "r.html"),
        "--csv", str(prefix), "--check", "dropped<1", "--check", "dropped_ratio<0.9",
        "--check", "uncorrected_p50>90ms",
    )  # fmt: skip
    assert run.code == 3, run  # the 'dropped<1' check failed
    data = json.loads((tmp_path / "r.json").read_text())
    model = data["open_model"]
    served = len(timed.times())
    assert model["iterations"] == data["total"]["requests"] == served
    assert 60 <= served <= 130, model
    assert model["dropped"] >= 300 and model["scheduled"] == model["iterations"] + model["dropped"]
    assert abs(model["scheduled"] - 500) <= 10, model
    rebuilt = snapshot_from_dict(data)  # what mpswarm.run() returns is built from this
    assert rebuilt.open_model and rebuilt.dropped == model["dropped"]
    assert rebuilt.total.uncorrected is not None
    assert rebuilt.total.uncorrected.percentile(50) == data["total"]["uncorrected"]["median_ms"]
    results = {c["check"]: c["passed"] for c in data["checks"]}
    assert results == {"dropped<1": False, "dropped_ratio<0.9": True, "uncorrected_p50>90ms": True}
    assert f"{model['dropped']} dropped" in run.stdout
    assert 'name="dropped_iterations"' in (tmp_path / "j.xml").read_text()
    page = (tmp_path / "r.html").read_text()
    assert f"{model['dropped']} dropped" in page
    figures = json.loads(page.rsplit("drawFigures(", 1)[1].rsplit(");", 1)[0])
    [chart] = [f for f in figures if f["id"] == "chart-open-model"]
    assert '<div id="chart-open-model" class="chart">' in page
    corrected, uncorrected, dropped = (trace["y"] for trace in chart["data"])
    assert sum(d for d in dropped if d) > 100  # ~80 dropped a second, after the first
    # Timed from the schedule, the p95 includes the wait for a free user: above the raw one.
    pairs = [(c, u) for c, u in zip(corrected, uncorrected, strict=True) if c and u]
    assert pairs and all(c >= u for c, u in pairs), pairs
    history = Path(f"{prefix}_stats_history.csv").read_text().splitlines()
    assert history[0].endswith(",Dropped Iterations")
    assert int(history[-1].rsplit(",", 1)[1]) > 0


def test_shape_can_return_an_arrival_rate(run_cli, tmp_path: Path, timed: TimedServer) -> None:
    lf = write(
        tmp_path / "lf.py",
        LOCUSTFILE.format(path="fast")
        + """
from mpswarm import LoadTestShape

class Ramp(LoadTestShape):
    def tick(self):
        t = self.get_run_time()
        if t < 4:
            return {"rate": 50, "max_users": 100}
        if t < 8:
            return {"rate": "150/s", "max_users": 100}
        return None
""",
    )
    run = run_cli(
        "-f", str(lf), "-H", timed.url, "--headless", "--only-summary", "--processes", "2"
    )
    assert run.code == 0, run
    times = timed.times()
    first = sum(1 for t in times if 0.5 <= t < 3.5)
    second = sum(1 for t in times if 4.5 <= t < 7.5)
    assert first == pytest.approx(150, rel=0.05) and second == pytest.approx(450, rel=0.05)


def test_bad_open_model_options_are_one_line_errors(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", LOCUSTFILE.format(path="fast"))
    for args, fragment in (
        (["--arrival-rate", "fast"], "invalid arrival rate"),
        (["--arrival-rate", "0/s"], "must be positive"),
        (["--arrival-rate", "5/s", "--max-users", "0"], "--max-users"),
        (["--arrivals", "bursty"], "--arrivals"),
        (["--check", "GET /x: dropped<1"], "applies to the whole run"),
    ):
        run = run_cli("-f", str(lf), "-H", "http://127.0.0.1:9", "--headless", "-t", "1s", *args)
        assert run.code == 2, run
        assert fragment in run.stderr, run


def test_a_killed_worker_is_replaced_on_the_runs_schedule(timed: TimedServer, tmp_path) -> None:
    """kill -9 of one of two workers at 100/s: its replacement takes up its share on the run's
    schedule (what fell due while it started is sent, a little late, not forgotten), and every
    request the target got is one the report counts (or counts as lost)."""
    tag = uuid.uuid4().hex
    lf = write(tmp_path / "lf.py", LOCUSTFILE.format(path="fast"))
    args = ["-f", str(lf), "-H", timed.url, "--headless", "--only-summary", "--processes", "2",
            "--arrival-rate", "100/s", "-t", "8s",
            "--json-file", str(tmp_path / "r.json")]  # fmt: skip
    proc = start_background(args, tag)
    try:
        wait_for_workers(tag, 4)
        deadline = time.monotonic() + 30
        while len(timed.times()) < 200:  # two seconds of load
            assert time.monotonic() < deadline, "no load"
            time.sleep(0.05)
        kill_a_worker(proc, tag)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "died (signal 9 (SIGKILL))" in stdout and "replaced" in stdout, stdout
    data = json.loads((tmp_path / "r.json").read_text())
    arrived = timed.times()
    assert len(arrived) == data["total"]["requests"] + data["lost_requests"]
    model = data["open_model"]
    # Every iteration due over the run was begun or counted as dropped, once (796-799 of
    # 801 here): nothing twice (a replacement that ran its schedule from the run's start
    # counted 904, 58 of them dropped), the killed worker's share while its replacement
    # started not missing (at most the ~0.1 s it took here: 5 requests).
    expected = 100 * data["duration_s"]
    assert abs(model["scheduled"] - expected) <= 0.01 * expected + 2, (model, expected)
    assert len(arrived) == model["iterations"], model
    assert not wait_until_gone(tag)
