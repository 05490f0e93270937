"""The Environment a run's users see as ``self.environment`` (Locust's name and shape)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mpswarm.event import Events
from mpswarm.event import events as default_events

logger = logging.getLogger(__name__)


class Environment:
    """What user code may reach: events, host, options and the runner of this process.

    Args:
        user_classes: the User classes of the run.
        host: the ``-H`` host, or None.
        events: the event hooks (the shared ``mpswarm.event`` by default).
        parsed_options: the run's options as attributes (an argparse-like namespace).
        stop_timeout: seconds users get to finish their task when stopped.
    """

    def __init__(
        self,
        user_classes: list[type] | None = None,
        host: str | None = None,
        events: Events | None = None,
        parsed_options: Any = None,
        stop_timeout: float = 0.0,
    ) -> None:
        self.user_classes = list(user_classes or [])
        self.host = host
        self.events = events or default_events
        self.parsed_options = parsed_options
        self.stop_timeout = stop_timeout
        self.runner: Any = None
        self.web_ui: Any = None
        self.shape_class: Any = None
        self.process_exit_code: int | None = None
        self.catch_exceptions = True
        # Set by the process that runs users: called with every exception user code raises.
        self.exception_sink: Callable[[BaseException], None] = self._log_exception
        # Set by a worker running with -i: False once its share of iterations is used up.
        self.claim_iteration: Callable[[], bool] = _always

    @property
    def stats(self) -> Any:
        """The runner's live statistics (Locust's ``environment.stats``)."""
        return self.runner.stats if self.runner is not None else None

    def create_local_runner(self) -> Any:
        """A runner that runs users in this process (Locust's API)."""
        from mpswarm.runner.base import LocalRunner

        return LocalRunner(self)

    @staticmethod
    def _log_exception(exc: BaseException) -> None:
        logger.error("user code raised %s: %s", type(exc).__name__, exc)


def _always() -> bool:
    return True
