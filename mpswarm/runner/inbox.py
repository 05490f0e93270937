"""The parent's handler table: what it does with each record a worker sends.

One function per record type (``messages``); ``parent_router`` binds them to the Swarm's
parts. Request counts never come this way: only names, state changes and small facts.
"""

from __future__ import annotations

from typing import Any, Protocol

from mpswarm.runner import messages as m
from mpswarm.runner._caps import RunCaps
from mpswarm.runner._handle import WorkerHandle
from mpswarm.runner.pool import WorkerPool
from mpswarm.runner.stop import StopKind, StopScope
from mpswarm.stats.aggregate import Aggregator


class Parent(Protocol):
    """What the handlers reach in the parent (the Swarm)."""

    aggregator: Aggregator
    caps: RunCaps
    pool: WorkerPool
    scope: StopScope
    clients: dict[str, Any]
    environment: Any
    iterations_done: set[int]

    def spawning_complete(self) -> None:
        """Every live worker started its users."""

    def request_stop(self, reason: str | None = None, kind: StopKind = StopKind.USER_CODE) -> None:
        """Ask the run to end."""

    def reset_stats(self) -> None:
        """Start the whole run's statistics afresh (every worker, one baseline)."""

    def _deliver(self, msg_type: str, data: Any, node_id: str | None) -> None:
        """Hand a custom message to its registered handler."""


def parent_router(parent: Parent) -> m.Router:
    """The Router that handles every record from ``parent``'s workers."""

    def ready(handle: WorkerHandle, msg: m.Ready) -> None:
        handle.pid = msg.pid
        parent.clients[handle.client_id].pid = msg.pid
        parent.caps.tell(handle)  # before any target: the caps the run already reached
        handle.ready.set()

    def row(handle: WorkerHandle, msg: m.RowAnnounced) -> None:
        parent.aggregator.on_row(handle.source_id, msg.row, msg.method, msg.name)
        parent.caps.after_row()

    def error(handle: WorkerHandle, msg: m.ErrorAnnounced) -> None:
        parent.aggregator.on_error(handle.source_id, msg.index, msg.method, msg.name, msg.text)
        parent.caps.after_error()

    def usage(handle: WorkerHandle, msg: m.Usage) -> None:
        node = parent.clients[handle.client_id]
        node.cpu_usage, node.memory_usage = msg.cpu, msg.rss

    def iterations_done(handle: WorkerHandle, msg: m.IterationsDone) -> None:
        parent.iterations_done.add(handle.slot)
        if all(h.slot in parent.iterations_done for h in parent.pool.live()):
            parent.scope.request(StopKind.ITERATIONS_DONE, "the requested iterations are done")

    def spawned(handle: WorkerHandle, msg: m.Spawned) -> None:
        handle.spawned.set()
        live = parent.pool.live()
        if live and all(h.spawned.is_set() for h in live):
            parent.spawning_complete()

    def stop_requested(handle: WorkerHandle, msg: m.StopRequested) -> None:
        if msg.exit_code is None:
            parent.request_stop(msg.message)
        else:  # sys.exit(n): the run ends with n, once the reports are written
            parent.scope.exit_with(msg.exit_code, msg.message)

    def report(handle: WorkerHandle, msg: m.Report) -> None:
        parent.environment.events.worker_report.fire(client_id=handle.client_id, data=msg.data)

    return m.Router(
        {
            m.Ready: ready,
            m.RowAnnounced: row,
            m.ErrorAnnounced: error,
            m.Exceptions: lambda h, msg: parent.aggregator.on_exceptions(msg.counts, h.client_id),
            m.Spawned: spawned,
            m.Stopped: lambda h, msg: h.stopped.set(),
            m.Custom: lambda h, msg: parent._deliver(msg.type, msg.data, h.client_id),
            m.Report: report,
            m.Usage: usage,
            m.IterationsDone: iterations_done,
            m.NamesOverflowed: lambda h, msg: parent.caps.warn_names(msg.method, msg.name),
            m.StopRequested: stop_requested,
            m.ResetRequested: lambda h, msg: parent.reset_stats(),
        },
        "the parent",
    )


__all__ = ["Parent", "parent_router"]
