"""The web UI after a run it stopped: the Workers tab tells the truth (project issue #15)."""

from __future__ import annotations

import time


def test_workers_are_not_running_after_a_stop_from_the_ui(web) -> None:
    ui = web()
    assert ui.request("/api/start", {"users": 4, "spawn_rate": 20, "run_time": ""})[0] == 200
    # The users count comes from the segments, a worker's state from its "spawned" message:
    # wait for both (the message may trail the count on a busy machine).
    state = ui.wait_for(
        lambda s: (
            s["state"] == "running"
            and sum(w["users"] for w in s["workers"]) == 4
            and all(w["state"] == "running" for w in s["workers"])
        )
    )
    assert [w["state"] for w in state["workers"]] == ["running", "running"]
    assert ui.request("/api/stop", {})[0] == 200
    state = ui.wait_for(lambda s: s["state"] == "stopped", timeout=30)
    # Stopped, and it stays so: a late worker report must not turn a worker back to running.
    deadline = time.monotonic() + 3
    while True:
        workers = [(w["worker"], w["state"]) for w in state["workers"]]
        assert workers and all(s != "running" for _, s in workers), (
            f"the run stopped, yet the Workers tab says: {workers}"
        )
        if time.monotonic() > deadline:
            break
        time.sleep(0.3)
        state = ui.state()
