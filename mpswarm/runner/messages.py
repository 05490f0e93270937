"""The control-plane protocol between the parent and its workers: one small record per message.

Each side reads its pipe and calls the handler its table has for the record's type
(``Router``), so a message kind is a class with named fields, not a tuple of strings compared
in an ``if``/``elif`` chain. The records are pickled (``_channel.Channel``); request
statistics never travel here, only rare, small facts. The fork server's records are in
``fork_messages``; ``Router`` serves its readers too.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from mpswarm.stats.announcements import ErrorAnnounced, NamesOverflowed, RowAnnounced

logger = logging.getLogger(__name__)


# -- parent -> worker ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Target:
    """Run ``counts`` users per class, started at ``rate`` per second (``host``: new base)."""

    counts: dict[str, int]
    rate: float
    host: str | None = None


@dataclasses.dataclass(frozen=True)
class Arrival:
    """Open model: this worker's share of the arrival rate (``runner/arrivals.py``)."""

    settings: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Iterations:
    """``-i``: this worker's share of the task iterations."""

    count: int


@dataclasses.dataclass(frozen=True)
class StopUsers:
    """Stop every user as at the end of a run; answer ``Stopped``."""


@dataclasses.dataclass(frozen=True)
class Quit:
    """Kill what is left and exit."""


@dataclasses.dataclass(frozen=True)
class ResetStats:
    """Zero this worker's counters."""


@dataclasses.dataclass(frozen=True)
class NamesFull:
    """The run-wide cap on names is reached: only these (method, name) keys get a row."""

    names: Any


@dataclasses.dataclass(frozen=True)
class ErrorsFull:
    """The run-wide cap on error rows is reached: only these keys get a row."""

    keys: Any


@dataclasses.dataclass(frozen=True)
class Custom:
    """A custom message (``runner.send_message``), either way."""

    type: str
    data: Any


# -- worker -> parent ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Ready:
    """The worker runs and listens (its ``init`` listeners have run)."""

    pid: int


# RowAnnounced, ErrorAnnounced and NamesOverflowed: the recorder's news, passed on as it is
# (``mpswarm.stats.announcements``, imported above).


@dataclasses.dataclass(frozen=True)
class Exceptions:
    """Exceptions of user code since the last such message: (message, traceback) -> count."""

    counts: dict[tuple[str, str], int]


@dataclasses.dataclass(frozen=True)
class Spawned:
    """Every user of the last target has started."""

    users: int


@dataclasses.dataclass(frozen=True)
class Stopped:
    """Every user stopped (answer to ``StopUsers``)."""


@dataclasses.dataclass(frozen=True)
class Report:
    """What ``report_to_master`` listeners added to ``data``."""

    data: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Usage:
    """The worker's own CPU (% of one core) and RSS (bytes)."""

    cpu: float
    rss: int


@dataclasses.dataclass(frozen=True)
class IterationsDone:
    """This worker ran its share of ``-i``."""


@dataclasses.dataclass(frozen=True)
class StopRequested:
    """User code in the worker asked the run to end (``StopTest``, ``runner.quit()``), or,
    with ``exit_code``, to end and exit with that code (``sys.exit(n)``)."""

    message: str
    exit_code: int | None = None


@dataclasses.dataclass(frozen=True)
class ResetRequested:
    """User code in the worker reset the statistics (``runner.stats.reset_all()``): the whole
    run's, as the web UI's reset does."""


Handler = Callable[[Any, Any], None]


class Router:
    """Calls the handler registered for each record's type, with where it came from.

    Args:
        handlers: record type -> handler taking (source, record).
        where: names the reader in the warning about an unknown record.
    """

    def __init__(self, handlers: dict[type, Handler], where: str) -> None:
        self._handlers = handlers
        self._where = where

    def __call__(self, source: Any, message: Any) -> None:
        """Hand ``message`` from ``source`` to its handler (an unknown kind is logged)."""
        handler = self._handlers.get(type(message))
        if handler is None:
            logger.warning("%s: unexpected message %r", self._where, message)
            return
        handler(source, message)


__all__ = [
    "Arrival",
    "Custom",
    "ErrorAnnounced",
    "ErrorsFull",
    "Exceptions",
    "Iterations",
    "IterationsDone",
    "NamesFull",
    "NamesOverflowed",
    "Quit",
    "Ready",
    "Report",
    "ResetRequested",
    "ResetStats",
    "Router",
    "RowAnnounced",
    "Spawned",
    "StopRequested",
    "StopUsers",
    "Stopped",
    "Target",
    "Usage",
]
