"""The collector: one Ray actor that gathers every host's copies and passes them on as one stream.

Each host agent logs a copy of its workers' segments and records twice a second
(``mpswarm.cluster.agent``). If the coordinator's Ray driver (the bridge) read every host's
stream itself, each of those items would cost it about a millisecond of CPU, whatever it
holds: with 4 hosts, 8 items a second and more than the coordinator's whole budget. The
collector runs on a load node instead (never the coordinator's own, when there is another),
reads every host's log there, and hands the bridge one item every ``FORWARD_S`` with the
copies of all hosts that came since the last one (sooner when one of them is urgent: a
worker's "spawned", "stopped" or end). The coordinator's cost no longer grows with the number
of hosts' messages, only with what changed.

Nothing is lost with a collector: each host's copies are numbered, the bridge keeps the number
it last applied, and the collector that replaces a lost one reads each host's log from there
(``HostAgent.stream``). A host whose stream fails (its agent died, its node is lost, or its log
no longer reaches back) is named in the next item, at once; the bridge recovers it and tells
the collector to ``follow`` the new agent.

Ray reports a broken connection to an actor only after waiting up to a second for the cluster's
word on its death; the collector and the bridge run with ``RAY_timeout_ms_task_wait_for_death_info``
at 0 (``NO_DEATH_WAIT``): a host whose connection breaks is lost at once, and a lost node is
noticed in under a second instead of about two.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from mpswarm.cluster.delta import merge

#: Seconds between two items to the bridge: the coordinator's stats are at most this plus a
#: host's copy interval old. An urgent copy goes after ``FORWARD_GAP_S``, so that the copies of
#: a burst (every worker's "stopped") travel together.
FORWARD_S = 0.5
FORWARD_GAP_S = 0.05
#: Ray's wait for an actor's death info once a call to it failed (ms): see the module docstring.
NO_DEATH_WAIT = {"RAY_timeout_ms_task_wait_for_death_info": "0"}


def describe(exc: BaseException) -> str:
    """An exception as one short line (Ray's are long and span lines)."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


class Collector:
    """Runs on one node of the cluster (see the module docstring); its hosts are named by keys
    (``"index.generation"``) so that copies of a lost agent and its successor never mix."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        #: Copies not yet passed on, by host key: [number, copies, urgent].
        self._pending: dict[str, list[Any]] = {}
        #: Hosts whose stream failed since the last item: why.
        self._failed: dict[str, str] = {}
        self._following: set[str] = set()
        self._stopping = False
        # A reader number larger than any earlier collector's: a host's older stream stops.
        self._reader = time.time_ns()

    def facts(self) -> dict[str, Any]:
        """Where it runs: the node id and its pid."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def follow(self, key: str, agent: Any, since: int) -> None:
        """Read ``agent``'s copies after number ``since`` from now on, as host ``key``."""
        with self._cond:
            self._following.add(key)
        threading.Thread(target=self._read, args=(key, agent, since), daemon=True).start()

    def _read(self, key: str, agent: Any, since: int) -> None:
        import ray

        stream = agent.stream.options(num_returns="streaming").remote(since, self._reader)
        try:
            for ref in stream:
                number, copies, urgent = ray.get(ref)
                with self._cond:
                    waiting = self._pending.get(key)
                    if waiting is None:
                        self._pending[key] = [number, copies, urgent]
                    else:
                        waiting[:] = [number, merge([waiting[1], copies]), waiting[2] or urgent]
                    self._cond.notify_all()
        except Exception as exc:  # the agent died, its node is lost, or its log has a gap
            with self._cond:
                if key in self._following and not self._stopping:
                    self._failed[key] = describe(exc)
                    self._cond.notify_all()
        # A stream that ends was superseded or its agent shut down: nothing to say.

    def stream(self, every: float, gap: float) -> Iterator[dict[str, Any]]:
        """Every host's copies since the last item: ``{"copies": {key: (number, copies)},
        "failed": {key: why}}``, ``every`` seconds after the last item, ``gap`` seconds after
        an urgent copy or a failure; until ``shutdown``."""
        last = 0.0
        while True:
            with self._cond:
                while True:
                    news = bool(self._pending or self._failed)
                    if self._stopping and not news:
                        return
                    left = None
                    if news:
                        urgent = (
                            self._stopping
                            or bool(self._failed)
                            or any(p[2] for p in self._pending.values())
                        )
                        left = last + (gap if urgent else every) - time.monotonic()
                        if left <= 0:
                            break
                    self._cond.wait(left)
                item = {
                    "copies": {key: (p[0], p[1]) for key, p in self._pending.items()},
                    "failed": dict(self._failed),
                }
                self._pending.clear()
                for key in self._failed:
                    self._following.discard(key)
                self._failed.clear()
            last = time.monotonic()
            yield item

    def shutdown(self) -> None:
        """End the stream to the bridge."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()


__all__ = ["FORWARD_GAP_S", "FORWARD_S", "NO_DEATH_WAIT", "Collector", "describe"]
