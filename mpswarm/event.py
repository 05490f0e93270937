"""Event hooks, with Locust's names and argument names.

``events`` is the instance every run uses; locustfiles attach listeners to it at import time
(``@events.request.add_listener``), before the parent forks its workers, so the listeners exist
in every process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)


class EventHook:
    """A list of listeners called in order with keyword arguments."""

    def __init__(self) -> None:
        self._handlers: list[Callable[..., Any]] = []

    def add_listener(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Add a listener; returns it, so this works as a decorator."""
        self._handlers.append(handler)
        return handler

    def remove_listener(self, handler: Callable[..., Any]) -> None:
        """Remove a listener added before."""
        self._handlers.remove(handler)

    def fire(self, *, reverse: bool = False, **kwargs: Any) -> None:
        """Call every listener with ``kwargs``; a listener's exception propagates."""
        handlers = reversed(self._handlers) if reverse else self._handlers
        for handler in handlers:
            handler(**kwargs)

    @contextmanager
    def measure(
        self, request_type: str, name: str, response_length: int = 0, context: Any = None
    ) -> Iterator[dict[str, Any]]:
        """Time a block of custom client code and fire this (request) event for it.

        Yields the event's keyword arguments; set ``exception`` or ``response_length`` in it.
        An exception raised in the block is recorded as the request's failure and not raised
        further, as Locust's ``measure`` does (a GreenletExit, not an Exception, goes on).
        """
        start_time = time.time()
        start = time.perf_counter()
        meta: dict[str, Any] = {
            "request_type": request_type,
            "name": name,
            "response_length": response_length,
            "context": context or {},
            "exception": None,
            "start_time": start_time,
            "response": None,
            "url": None,
        }
        try:
            yield meta
        except Exception as exc:  # the failure is recorded, and the task goes on
            meta["exception"] = exc
        finally:
            meta["response_time"] = (time.perf_counter() - start) * 1000.0
            self.fire(**meta)


class DeprecatedEventHook(EventHook):
    """An event Locust still names but mpswarm never fires on its own."""


class Events:
    """The set of event hooks of a run. Attribute names follow Locust."""

    request: EventHook
    user_error: EventHook
    report_to_master: EventHook
    worker_report: EventHook
    spawning_complete: EventHook
    quitting: EventHook
    quit: EventHook
    init: EventHook
    init_command_line_parser: EventHook
    test_start: EventHook
    test_stopping: EventHook
    test_stop: EventHook
    reset_stats: EventHook
    usage_monitor: EventHook
    cpu_warning: EventHook
    heartbeat_sent: EventHook
    heartbeat_received: EventHook
    worker_connect: EventHook

    def __init__(self) -> None:
        for name, kind in type(self).__annotations__.items():
            if kind in ("EventHook", EventHook):
                setattr(self, name, EventHook())


events = Events()
