"""What each worker is asked to run: its share of users, of the arrival rate, of ``-i``.

The arithmetic is in ``dispatch`` (pure, table-tested); the Dispatcher keeps the run's last
request so that a replacement worker gets its predecessor's share again (``redispatch``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mpswarm.exceptions import WorkerError
from mpswarm.runner._handle import WorkerHandle
from mpswarm.runner.arrivals import worker_shares
from mpswarm.runner.dispatch import class_counts, dispatch_users, split_evenly, split_spawn_rate
from mpswarm.runner.messages import Arrival, Iterations, Target
from mpswarm.runner.pool import WorkerPool


class Dispatcher:
    """Splits the run's targets over the pool's live workers.

    Args:
        pool: whose workers get the shares.
        user_classes: every class the run may start.
    """

    def __init__(self, pool: WorkerPool, user_classes: Sequence[type]) -> None:
        self.pool = pool
        self.user_classes = list(user_classes)
        self.target_user_count = 0
        self._rate = 1.0
        self._classes: list[type] | None = None
        self._host: str | None = None
        #: Open model: the last set_arrival() arguments, else None.
        self.arrival: dict[str, Any] | None = None
        #: When the open model's schedules began (wall clock): every worker's, a replacement's
        #: too, is timed from it, so that evenly spaced schedules interleave.
        self._arrival_start: float | None = None

    def _live(self) -> list[WorkerHandle]:
        live = self.pool.live()
        if not live:
            raise WorkerError("no worker is running")
        return live

    def set_target(
        self,
        users: int,
        spawn_rate: float,
        user_classes: Sequence[type] | None = None,
        host: str | None = None,
    ) -> None:
        """``users`` in total, started at ``spawn_rate`` per second over all workers."""
        live = self._live()
        counts = class_counts(list(user_classes or self.user_classes), users)
        for cls in self.user_classes:
            counts.setdefault(cls.__name__, 0)
        shares = dispatch_users(counts, len(live))
        rates = split_spawn_rate(spawn_rate, shares)
        self.target_user_count = users
        self._rate, self._host = spawn_rate, host
        self._classes = list(user_classes) if user_classes else None
        for handle, share, rate in zip(live, shares, rates, strict=True):
            handle.target = share
            handle.spawned.clear()
            self.pool.send(handle, Target(share, rate, host))

    def set_arrival(
        self,
        rate: float,
        max_users: int,
        kind: str = "constant",
        prealloc: int = 0,
        user_classes: Sequence[type] | None = None,
        host: str | None = None,
    ) -> None:
        """Open model: ``rate`` iterations per second in total, at most ``max_users``."""
        live = self._live()
        self.arrival = {
            "rate": rate,
            "max_users": max_users,
            "kind": kind,
            "prealloc": prealloc,
            "user_classes": user_classes,
            "host": host,
        }
        self.target_user_count = max_users
        if self._arrival_start is None:
            self._arrival_start = time.time()
        self._send_arrival(live)

    def _send_arrival(self, live: list[WorkerHandle], taking_over: WorkerHandle | None = None,
                      resume_at: float | None = None) -> None:  # fmt: skip
        """Every worker's share of the open model; ``taking_over`` (a replacement) runs its
        predecessor's schedule from ``resume_at``, when that one stopped (wall clock)."""
        assert self.arrival is not None
        arrival = self.arrival
        classes = list(arrival["user_classes"] or self.user_classes)
        shares = worker_shares(arrival["rate"], arrival["max_users"], arrival["kind"],
                               arrival["prealloc"], classes, len(live), arrival["host"],
                               self._arrival_start)  # fmt: skip
        for handle, settings in zip(live, shares, strict=True):
            if handle is taking_over:
                settings["resume_at"] = resume_at
            self.pool.send(handle, Arrival(settings))

    def set_iterations(self, total: int) -> None:
        """Exactly ``total`` task iterations over all workers."""
        live = self._live()
        for handle, share in zip(live, split_evenly(total, len(live)), strict=True):
            handle.iterations = share
            self.pool.send(handle, Iterations(share))

    def hand_over(self, old: WorkerHandle, new: WorkerHandle) -> None:
        """Give ``new`` what is left of ``old``'s share, then the run's targets again.

        With ``-i`` the replacement runs what is left of its predecessor's iterations (those
        it took are counted in its segment, which outlives it).
        """
        if old.iterations is not None:
            new.iterations = max(0, old.iterations - old.segment.iterations)
            self.pool.send(new, Iterations(new.iterations))
        if self.arrival is not None:
            self._send_arrival(self._live(), new, old.stopped_at)
        else:
            self.set_target(self.target_user_count, self._rate, self._classes, self._host)

    def forget(self) -> None:
        """Before another run on the same workers: no previous request to repeat."""
        self.arrival = None
        self._arrival_start = None
        self.target_user_count = 0


__all__ = ["Dispatcher"]
