"""The User class of ``mpswarm replay`` (its locustfile): each iteration sends the log's
request the open model handed it (see ``mpswarm.replay``)."""

from __future__ import annotations

from typing import Any

from mpswarm import FastHttpUser, task


class Replay(FastHttpUser):
    """Sends the requests of an access log, one per iteration."""

    _replay: Any = None  # the Entry of the current iteration, set by the scheduler

    @task
    def replay(self) -> None:
        entry = self._replay
        if entry is not None:
            # Not followed: the log holds the request that followed a redirect, if any, and
            # load goes only to -H.
            self.client.request(entry.method, entry.path, name=entry.name, allow_redirects=False)
