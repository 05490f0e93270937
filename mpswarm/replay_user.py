"""The User class of ``mpswarm replay`` (its locustfile): each iteration sends the log's
request the open model handed it (see ``mpswarm.replay``)."""

from __future__ import annotations

from mpswarm import FastHttpUser, task


class Replay(FastHttpUser):
    """Sends the requests of an access log, one per iteration."""

    @task
    def replay(self) -> None:
        entry = self._mpswarm.replay  # the Entry of this iteration, set by the scheduler
        if entry is not None:
            # Not followed: the log holds the request that followed a redirect, if any, and
            # load goes only to -H.
            self.client.request(entry.method, entry.path, name=entry.name, allow_redirects=False)
