"""The run-wide caps on names and error rows, as the parent tells them to its workers.

The Aggregator decides (it folds what is past a cap); once a cap is reached every worker is
told the names the run keeps, once, so it folds the others itself instead of announcing them.
A worker that starts later (a replacement) is told when it is ready, before any target.
"""

from __future__ import annotations

import logging
from typing import Any

from mpswarm.runner._handle import WorkerHandle
from mpswarm.runner.messages import ErrorsFull, NamesFull
from mpswarm.runner.pool import WorkerPool
from mpswarm.stats.aggregate import Aggregator

logger = logging.getLogger(__name__)


class RunCaps:
    """Warns once per run when names or errors fold, and tells the workers.

    Args:
        aggregator: the run's aggregator (it holds the caps).
        pool: whose workers are told.
        max_endpoints, max_errors: the caps, for the warnings.
    """

    def __init__(
        self, aggregator: Aggregator, pool: WorkerPool, max_endpoints: int, max_errors: int
    ) -> None:
        self._aggregator = aggregator
        self._pool = pool
        self._max_endpoints = max_endpoints
        self._max_errors = max_errors
        self._sent: dict[str, Any] = {}
        self._names_warned = False
        self._errors_warned = False

    def after_row(self) -> None:
        """After a row announcement: warn once when names fold, tell workers the cap is hit."""
        aggregator = self._aggregator
        if aggregator.first_folded_name is not None:
            self.warn_names(*aggregator.first_folded_name)
        if aggregator.names_full and "names" not in self._sent:
            self._broadcast("names", NamesFull(aggregator.row_names()))

    def after_error(self) -> None:
        """After an error announcement: the same for error rows."""
        aggregator = self._aggregator
        if aggregator.errors_folded and not self._errors_warned:
            self._errors_warned = True
            logger.warning(
                "more than %d distinct errors (method, name and text) in this run: further "
                "ones are counted in one 'other errors' row",
                self._max_errors,
            )
        if aggregator.errors_full and "errors" not in self._sent:
            self._broadcast("errors", ErrorsFull(aggregator.error_keys()))

    def _broadcast(self, kind: str, message: Any) -> None:
        # Sent once (up to --max-endpoints names, ~40 bytes each); until a worker reads it,
        # the parent folds what that worker announces, so nothing depends on its timing.
        self._sent[kind] = message
        ready = [h for h in self._pool.spawned if h.alive and h.ready.is_set()]
        self._pool.broadcast(message, ready)  # one not ready yet is told when it is

    def tell(self, handle: WorkerHandle) -> None:
        """A worker that just started learns the caps already reached, before any target."""
        told = 0
        while told < len(self._sent):  # a send may switch greenlets: a cap may be added
            self._pool.send(handle, list(self._sent.values())[told])
            told += 1

    def warn_names(self, method: str, name: str) -> None:
        """Once per run: names folded into the overflow row (the first one named)."""
        if self._names_warned:
            return
        self._names_warned = True
        logger.warning(
            "more than %d distinct request names in this run: further names are counted in one "
            "'other names' row (first one: %s %s). Group URLs with name=, e.g. "
            "self.client.get(f'/items/{id}', name='/items/[id]')",
            self._max_endpoints,
            method,
            name,
        )


__all__ = ["RunCaps"]
