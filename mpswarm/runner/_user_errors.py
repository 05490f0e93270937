"""Exceptions of user code in a worker: counted by kind, the first of each logged in one line.

Tasks, ``on_start``/``on_stop``, ``User.__init__``, ``wait_time`` and greenlets the
locustfile spawned all end here. Each kind is one log line with the locustfile's file:line
(the traceback only at ``-L DEBUG``); the counts go to the parent once a second, where they
become the exceptions table. ``StopTest`` is no error: it asks the run to end, and
``sys.exit(n)`` asks it to end with exit code ``n``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mpswarm._text import printable, printable_lines
from mpswarm.exceptions import StopTest
from mpswarm.runner.messages import Exceptions, StopRequested
from mpswarm.user.task import (
    describe_exception,
    format_exception,
    has_user_frame,
    user_code_place,
)

logger = logging.getLogger("mpswarm.runner.worker")


class UserErrors:
    """One worker's account of the exceptions its user code raised.

    Args:
        send: sends a record to the parent.
    """

    def __init__(self, send: Callable[[Any], None]) -> None:
        self._send = send
        self._counts: dict[tuple[str, str], int] = {}
        self._logged: set[str] = set()

    def on_exception(self, exc: BaseException) -> None:
        """An exception that user code raised (``environment.exception_sink``)."""
        if isinstance(exc, StopTest):
            self._send(StopRequested(f"StopTest raised: {exc}"))
            return
        self.count(exc)

    def exited(self, exc: SystemExit) -> None:
        """User code called ``sys.exit()``: the run ends with its code, as Locust's process
        does (``None``: 0; a text: printed, then 1, as Python does), once the reports are
        written. The worker itself goes on: its users' data is the run's."""
        code = exc.code
        if code is None:
            status = 0
        elif isinstance(code, int):
            status = code
        else:
            status = 1
            logger.error("%s", printable(str(code)))
        where = user_code_place(exc)
        message = f"sys.exit({printable(repr(code), 80)})" + (f" in {where}" if where else "")
        logger.info("%s: the run ends with exit code %d", message, status)
        self._send(StopRequested(message, status))

    def greenlet_failed(self, context: Any, kind: Any, value: Any, tb: Any) -> None:
        """The hub's ``print_exception``. A greenlet that user code spawned counts as user
        code raising; any other is logged (one line, the traceback at DEBUG)."""
        try:
            if not isinstance(value, BaseException):
                value = RuntimeError(f"{getattr(kind, '__name__', kind)}: {value!r}")
            if value.__traceback__ is None and tb is not None:
                value = value.with_traceback(tb)
            if has_user_frame(value):
                self.on_exception(value)
                return
            line = describe_exception(value, "a greenlet")
            if line not in self._logged:
                self._logged.add(line)
                logger.error("%s (further ones are not shown)", line)
                logger.debug("%s", format_exception(value))
        except Exception:  # the hub's error handler must not raise
            logger.exception("a greenlet failed, and so did reporting it")

    def count(self, exc: BaseException, where: str | None = None) -> None:
        """Count an exception of user code; the first of each kind is one line in the log."""
        # The message often quotes a server: escaped once here, for every report and the log.
        text = printable_lines(format_exception(exc))
        key = (printable(f"{type(exc).__name__}: {exc}"), text)
        line = describe_exception(exc, where)
        if line not in self._logged:
            self._logged.add(line)
            logger.error("%s (further ones are counted in the summary)", line)
            logger.debug("%s", text)
        self._counts[key] = self._counts.get(key, 0) + 1

    def flush(self) -> None:
        """Send the counts since the last flush to the parent."""
        if self._counts:
            counts, self._counts = self._counts, {}
            self._send(Exceptions(counts))

    def clear(self) -> None:
        """Forget the counts not sent yet (the statistics are reset)."""
        self._counts.clear()


__all__ = ["UserErrors"]
