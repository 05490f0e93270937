"""The parent's view of one worker process (see swarm.py)."""

from __future__ import annotations

import socket
from typing import Any

import gevent
import psutil
from gevent.event import Event

from mpswarm.runner._channel import Channel
from mpswarm.stats.segment import Segment


class WorkerHandle:
    """The parent's view of one worker process."""

    def __init__(self, slot: int, generation: int, channel: Channel, segment: Segment) -> None:
        self.slot = slot
        self.generation = generation
        self.channel = channel
        self.segment = segment
        self.pid: int | None = None
        #: The fork server's id of the worker (its pid, or the Ray bridge's id): for ``kill``.
        self.server_id: Any = None
        #: Runs on another host (Ray): its pid is not this machine's; never signal or psutil it.
        self.remote = False
        #: Why its host was lost, when it died with its host (``--ray``): one loss, one death.
        self.lost_with_host: str | None = None
        self.ready = Event()
        self.spawned = Event()
        self.stopped = Event()
        self.gone = Event()
        self.exit_description: str | None = None
        self.target: dict[str, int] = {}
        self.reader: gevent.Greenlet | None = None
        self.process: psutil.Process | None = None
        self.exited = Event()  # set when the fork server reported how it ended
        self.retiring = False  # being replaced on purpose (memory recycling)
        #: When it stopped starting work (wall clock): it died, or was told to stop its users.
        #: Its replacement's open-model schedule takes over from there.
        self.stopped_at: float | None = None
        self.iterations: int | None = None  # its share of -i, when -i is used

    @property
    def client_id(self) -> str:
        """The worker's id in ``runner.clients`` and custom messages."""
        return f"{socket.gethostname()}_{self.slot}"

    @property
    def source_id(self) -> tuple[int, int]:
        """Key of this worker's segment in the aggregator."""
        return (self.slot, self.generation)

    @property
    def alive(self) -> bool:
        """True until the worker's pipe closed."""
        return not self.gone.is_set()

    @property
    def user_count(self) -> int:
        """Users running in this worker, read from its segment."""
        return self.segment.users if self.alive else 0
