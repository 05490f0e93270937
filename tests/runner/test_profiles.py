"""``--profile``: built-in load shapes, followed by the users (closed model) and the arrival rate
(open model) of real runs against the demo target."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mpswarm.exceptions import UsageError
from mpswarm.profiles import parse_profile
from tests.conftest import write

LOCUSTFILE = """
from mpswarm import FastHttpUser, constant, task

class Quick(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def home(self):
        self.client.get("/")
"""


def test_levels_follow_each_profile() -> None:
    def at(spec: str, t: float) -> float:
        return parse_profile(spec)().level(t)

    assert at("steady:level=7", 100) == 7
    assert [at("ramp:to=40/s,over=4s", t) for t in (0, 2, 4, 9)] == [0, 20, 40, 40]
    assert [at("step:start=2,every=3s,steps=2", t) for t in (0, 3, 6, 30)] == [2, 4, 6, 6]
    assert [at("spike:base=1,peak=9,every=10s,for=2s", t) for t in (0, 1.9, 2, 10.5)] == [
        9, 9, 1, 9,
    ]  # fmt: skip
    assert [at("soak:level=10,ramp=10s", t) for t in (0, 5, 60)] == [0, 5, 10]
    assert [round(at("diurnal:min=10/s,max=30/s,period=8s", t)) for t in (0, 2, 4, 8)] == [
        10, 20, 30, 10,
    ]  # fmt: skip
    assert parse_profile("ramp:to=40/s,over=4s").open_model
    assert not parse_profile("spike:base=1,peak=9,every=10s,for=2s").open_model
    assert parse_profile("spike:base=1,peak=9,every=10s,for=2s")().phases(25) == [
        (0.0, 2.0, "spike"), (10.0, 12.0, "spike"), (20.0, 22.0, "spike"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("wobble:level=3", "unknown profile 'wobble'"),
        ("spike:base=1,peak=9", "needs every, for"),
        ("ramp:to=9,over=5s,speed=2", "ramp takes"),
        ("spike:base=1,peak=9/s,every=5s,for=1s", "all users or all rates"),
        ("ramp:to=lots,over=5s", "is not a number of users"),
        ("ramp:to=5,over=0s", "positive duration"),
    ],
)
def test_wrong_profiles_are_usage_errors(spec: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        parse_profile(spec)


def _run(run_cli, demo, tmp_path: Path, spec: str, seconds: int) -> tuple[dict, list[dict]]:
    locustfile = write(tmp_path / "quick.py", LOCUSTFILE)
    prefix, report = tmp_path / "run", tmp_path / "r.json"
    run = run_cli("-f", str(locustfile), "-H", demo.url, "--headless", "-t", f"{seconds}s",
                  "--profile", spec, "--csv", str(prefix), "--json-file", str(report),
                  "--html", str(tmp_path / "r.html"))  # fmt: skip
    assert run.code == 0, run
    with open(f"{prefix}_stats_history.csv", newline="") as handle:
        history = [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]
    return json.loads(report.read_text()), history


@pytest.mark.parametrize(
    "spec",
    ["spike:base=2,peak=8,every=4s,for=2s", "step:start=2,every=2s,step=3", "soak:level=6,ramp=2s"],
)
def test_users_follow_a_profile(run_cli, demo, tmp_path: Path, spec: str) -> None:
    data, history = _run(run_cli, demo, tmp_path, spec, 7)
    shape = parse_profile(spec)()
    # Each second's user count is within the profile's levels from a second before to a
    # second after (a tick, and a sample, a second apart; users start at their spawn rate).
    started = int(history[0]["Timestamp"]) - 1
    for row in history[:-1]:  # the last row: the users stopping
        t = int(row["Timestamp"]) - started
        expected = {round(shape.level(t + d)) for d in (-1.5, -0.5, 0.5, 1.5) if t + d >= 0}
        users = int(row["User Count"])
        assert min(expected) <= users <= max(expected), (t, users, expected)
    assert data["phases"] == [list(p) for p in shape.phases(data["duration_s"])]


@pytest.mark.parametrize(
    "spec", ["ramp:to=40/s,over=4s", "diurnal:min=10/s,max=40/s,period=6s", "steady:level=25/s"]
)
def test_the_arrival_rate_follows_a_profile(run_cli, demo, tmp_path: Path, spec: str) -> None:
    data, _ = _run(run_cli, demo, tmp_path, spec, 6)
    shape = parse_profile(spec)()
    seconds = data["duration_s"]
    # Every tick holds the level at the middle of its second: the iterations are its integral.
    expected = sum(shape.level(k + 0.5) for k in range(int(seconds)))
    expected += shape.level(int(seconds) + 0.5) * (seconds - int(seconds))
    started = data["open_model"]["iterations"]
    assert data["open_model"]["dropped"] == 0
    assert expected * 0.9 <= started <= expected * 1.1, (started, expected)
    page = (tmp_path / "r.html").read_text()
    if shape.phases(seconds):
        assert '"name": "ramp"' in page  # the ramp is marked on the time charts
