"""``mpswarm capacity``: the search finds the demo target's known capacity (``/capacity/<N>``
serves at most N requests a second and queues the rest)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import write

CAPACITY = 100
LOCUSTFILE = f"""
from mpswarm import FastHttpUser, task

class Client(FastHttpUser):
    @task
    def ask(self):
        self.client.get("/capacity/{CAPACITY}", name="capacity")
"""


def test_the_search_finds_a_known_capacity(run_cli, demo, tmp_path: Path) -> None:
    locustfile = write(tmp_path / "client.py", LOCUSTFILE)
    report = tmp_path / "r.json"
    # The median, not p99: over a 2-s step, a stall of a busy machine (the generator's or the
    # target's) lifts the p99 at any rate (84.4/s was found once, for 100), while a rate over
    # the capacity grows the queue through the step: at 1.1x, a median of ~100 ms.
    run = run_cli(
        "capacity", "-f", str(locustfile), "-H", demo.url, "--check", "p50<50ms",
        "--check", "fail_ratio<0.01", "--start", "25/s", "--max", "1000/s", "--step-time", "2s",
        "--json-file", str(report), "--only-summary", timeout=240, precise=True)  # fmt: skip
    assert run.code == 0, run
    search = json.loads(report.read_text())["capacity"]
    found = search["capacity_rps"]
    assert CAPACITY * 0.9 <= found <= CAPACITY * 1.1, search
    assert search["generator_limited"] is False
    rates = [step["rate"] for step in search["steps"]]
    assert rates[:3] == [25.0, 50.0, 100.0]  # doubling, then bisecting
    assert search["lowest_failed_rps"] <= found * 1.05 + 0.01  # converged within 5 %
    assert all(step["passed"] == (step["rate"] <= found) for step in search["steps"]), search
    assert f"Capacity: {found:.1f}/s" in run.stdout


def test_no_step_holding_is_exit_3_and_no_check_is_a_usage_error(
    run_cli, demo, tmp_path: Path
) -> None:
    locustfile = write(tmp_path / "client.py", LOCUSTFILE)
    report = tmp_path / "r.json"
    # Every request takes 1/N s: a p99 under 1 ms holds at no rate.
    run = run_cli("capacity", "-f", str(locustfile), "-H", demo.url, "--check", "p99<1ms",
                  "--start", "4/s", "--step-time", "2s", "--json-file", str(report),
                  "--only-summary", timeout=120)  # fmt: skip
    assert run.code == 3, run
    search = json.loads(report.read_text())["capacity"]
    assert search["capacity_rps"] is None and [s["rate"] for s in search["steps"]] == [4, 2, 1]
    assert "No step held p99<1ms" in run.stdout
    demo.reset()
    refused = run_cli("capacity", "-f", str(locustfile), "-H", demo.url)
    assert refused.code == 2 and "needs at least one --check" in refused.stderr, refused
    assert demo.stats()["total"] == 0


def test_a_generator_out_of_users_is_the_limit_not_the_target(
    run_cli, demo, tmp_path: Path
) -> None:
    locustfile = write(tmp_path / "client.py", LOCUSTFILE)
    report = tmp_path / "r.json"
    # Two users take at least 10 ms a request: past ~200/s they cannot start every iteration
    # on time whatever the target does; the search must say so, not call it the capacity.
    run = run_cli("capacity", "-f", str(locustfile), "-H", demo.url, "--check", "p99<5s",
                  "--start", "50/s", "--step-time", "2s", "--max-users", "2",
                  "--json-file", str(report), "--only-summary", timeout=120)  # fmt: skip
    assert run.code == 4, run
    search = json.loads(report.read_text())["capacity"]
    assert search["generator_limited"] is True and search["steps"][-1]["saturated"] is True
    assert search["steps"][-1]["dropped"] > 0
    assert "The load generator was the limit first" in run.stdout


def test_a_target_slower_than_the_rate_is_the_limit_even_with_users_run_out(
    run_cli, demo, tmp_path: Path
) -> None:
    """A route that serves 300 requests a second: at 400/s its queue grows, the checks fail
    and, with 40 users, iterations are dropped (they all wait on the target). That is the
    target's limit, not the generator's: the search bisects between 200 and 400 to within
    10 % of 300 (before: it blamed the generator at 400 and exited 4 with no figure)."""
    locustfile = write(tmp_path / "client.py", LOCUSTFILE.replace(str(CAPACITY), "300"))
    report = tmp_path / "r.json"
    run = run_cli(
        "capacity", "-f", str(locustfile), "-H", demo.url, "--check", "p50<50ms",
        "--start", "200/s", "--max", "1000/s", "--step-time", "2s", "--max-users", "40",
        # A neighbour's load delays the loop now and then on a busy machine: not this
        # generator's saturation, which would end the search without a figure.
        "--lag-warn", "300ms",
        "--json-file", str(report), "--only-summary", timeout=240, precise=True)  # fmt: skip
    assert run.code == 0, run
    search = json.loads(report.read_text())["capacity"]
    assert search["generator_limited"] is False, search
    # The median (see above): with a p99 check, 312.5/s on an idle machine, 262.5/s beside two
    # CPU burners, 193.75/s on a slow moment (200/s failed, 400/s was never tried).
    found = search["capacity_rps"]
    assert 300 * 0.9 <= found <= 300 * 1.1, search
    assert (search["lowest_failed_rps"] - found) / found <= 0.1, search  # narrowed to 10 %
    over = [step for step in search["steps"] if step["rate"] == 400.0]
    assert over and not over[0]["passed"] and not over[0]["saturated"], search
