"""The runner surface locustfiles reach as ``environment.runner`` (Locust's API).

The parent's ``Swarm`` is a ``MasterRunner`` and each worker's runtime a ``WorkerRunner``, so
``isinstance`` checks give the answers a ``locust --processes`` run gives. ``LocalRunner``
(``local.py``, importable from here as from ``locust.runners``) runs users in the current
process: Locust's library API and ``run_single_user``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from gevent.pool import Group

logger = logging.getLogger(__name__)

# Locust's runner states, same values.
STATE_INIT = "ready"
STATE_SPAWNING = "spawning"
STATE_RUNNING = "running"
STATE_CLEANUP = "cleanup"
STATE_STOPPING = "stopping"
STATE_STOPPED = "stopped"
STATE_MISSING = "missing"


@dataclasses.dataclass
class Message:
    """A custom message as handlers receive it (Locust's ``msg``)."""

    type: str
    data: Any
    node_id: str | None


MessageHandler = Callable[..., Any]


class Runner:
    """Common part of every runner: state, custom messages, a greenlet group.

    Args:
        environment: the Environment this runner serves (its ``runner`` is set to self).
    """

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        environment.runner = self
        self.state = STATE_INIT
        #: Greenlets of this runner; user code may spawn into it (Locust's ``runner.greenlet``).
        self.greenlet = Group()
        self.custom_messages: dict[str, tuple[MessageHandler, bool]] = {}
        self.target_user_count = 0

    def register_message(
        self, msg_type: str, listener: MessageHandler, concurrent: bool = False
    ) -> None:
        """Call ``listener(environment=..., msg=...)`` for each message of ``msg_type``.

        With ``concurrent`` each call runs in its own greenlet instead of inline.
        """
        if msg_type in self.custom_messages:
            raise ValueError(f"a handler for message type {msg_type!r} is already registered")
        self.custom_messages[msg_type] = (listener, concurrent)

    def _deliver(self, msg_type: str, data: Any, node_id: str | None) -> None:
        entry = self.custom_messages.get(msg_type)
        if entry is None:
            logger.warning("no handler registered for custom message %r", msg_type)
            return
        listener, concurrent = entry
        message = Message(msg_type, data, node_id)
        if concurrent:
            self.greenlet.spawn(listener, environment=self.environment, msg=message)
        else:
            listener(environment=self.environment, msg=message)

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        """Send a custom message (see the subclasses for where it goes)."""
        raise NotImplementedError

    @property
    def user_count(self) -> int:
        """Users running now."""
        raise NotImplementedError

    def quit(self) -> None:
        """Stop the run and quit."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the users (Locust's ``runner.stop()``); here it ends the run like ``quit``."""
        self.quit()


class MasterRunner(Runner):
    """The parent process of a run (Locust's master)."""


class WorkerRunner(Runner):
    """A worker process (Locust's worker)."""


@dataclasses.dataclass
class WorkerNode:
    """The parent's record of a worker, as Locust's ``runner.clients`` values."""

    id: str
    index: int
    state: str = STATE_INIT
    user_count: int = 0
    cpu_usage: float = 0.0
    memory_usage: int = 0
    pid: int | None = None


def __getattr__(name: str) -> Any:
    # ``from locust.runners import LocalRunner``: it lives in local.py, which imports this.
    if name == "LocalRunner":
        from mpswarm.runner.local import LocalRunner

        return LocalRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
