"""The fork server's protocol: one small record per message, as in ``messages``.

Three pairs speak it over a SEQPACKET socket, each record pickled whole into one packet: the
pool and its fork server (``_zygote``), the pool and the Ray bridge that stands in for one
(``_remote``, ``mpswarm.cluster.bridge``), and a node's agent and that node's fork server
(``mpswarm.cluster.agent``, ``mpswarm.cluster.host``). The records live here, in a module of
their own that imports nothing heavy, so that every one of those processes (a Ray actor on
another node included) unpickles them by the same name. Readers dispatch on the record's type
with a ``messages.Router``.
"""

from __future__ import annotations

import dataclasses
from typing import Any


# -- to a fork server ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Fork:
    """Fork a worker for ``slot``; the packet carries its descriptors (segment, pipe end)."""

    slot: int


@dataclasses.dataclass(frozen=True)
class Kill:
    """SIGKILL the worker ``worker_id`` (to the Ray bridge: its pid is another machine's)."""

    worker_id: Any


# -- from a fork server -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ServerReady:
    """A node's fork server imported the locustfile and serves (to its agent, under --ray)."""


@dataclasses.dataclass(frozen=True)
class Forked:
    """The worker of ``slot`` runs; ``worker_id`` names it from now on (a pid, or the Ray
    bridge's ``"<host>:<pid>"``)."""

    slot: int
    worker_id: Any


@dataclasses.dataclass(frozen=True)
class Exited:
    """The worker ``worker_id`` ended with waitpid ``status``; ``lost``: under --ray, why its
    host was lost when that ended it (its status is then SIGKILL's), else None."""

    worker_id: Any
    status: int
    lost: str | None = None


@dataclasses.dataclass(frozen=True)
class HostLost:
    """Under --ray: host number ``host`` (``name``) lost its agent at ``at`` (epoch seconds)
    for ``cause``; ``action``: what the bridge does (or did) about it. Sent when the loss is
    seen and again once the recovery ended."""

    host: int
    name: str
    at: float
    cause: str
    action: str


# -- from the Ray bridge as it starts -------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Started:
    """Every host has its agent and fork server: what each found, and the host of each slot."""

    hosts: list[dict[str, Any]]
    slots: list[int]


@dataclasses.dataclass(frozen=True)
class StartFailed:
    """The bridge could not start; ``usage``: the user's mistake (exit 2), else an error."""

    text: str
    usage: bool = False


__all__ = [
    "Exited",
    "Fork",
    "Forked",
    "HostLost",
    "Kill",
    "ServerReady",
    "StartFailed",
    "Started",
]
