"""``locust.log``: the logging helpers locustfiles import from Locust."""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

from mpswarm._text import PrintableFormatter

HOSTNAME = socket.gethostname().split(".")[0]

# Locust sets this when a greenlet dies of an unhandled exception; kept for locustfiles that
# read it. mpswarm users are not greenlets, so only ``greenlet_exception_logger`` sets it.
unhandled_greenlet_exception = False


def setup_logging(loglevel: str, logfile: str | None = None) -> None:
    """Log at ``loglevel`` to stderr, or to ``logfile``, in Locust's format.

    Args:
        loglevel: a level name such as ``"INFO"`` or ``"debug"``.
        logfile: a file to append to instead of stderr.
    """
    handler: logging.Handler = (
        logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(
        PrintableFormatter(f"[%(asctime)s] {HOSTNAME}/%(levelname)s/%(name)s: %(message)s")
    )
    logging.basicConfig(level=loglevel.upper(), handlers=[handler], force=True)


def greenlet_exception_logger(logger: logging.Logger, level: int = logging.CRITICAL) -> Any:
    """A callback logging the exception of a failed greenlet-like object (``.exc_info``).

    Args:
        logger: where to log.
        level: the level for exceptions; ``SystemExit`` is logged at INFO at most.

    Returns:
        A function taking the object, as ``Greenlet.link_exception`` expects.
    """

    def exception_handler(greenlet: Any) -> None:
        global unhandled_greenlet_exception
        exc_info = greenlet.exc_info
        if exc_info[0] is SystemExit:
            logger.log(
                min(logging.INFO, level),
                f"sys.exit({exc_info[1]}) called (use log level DEBUG for callstack)",
            )
            logger.debug("Unhandled exception in greenlet: %s", greenlet, exc_info=exc_info)
        else:
            logger.log(level, "Unhandled exception in greenlet: %s", greenlet, exc_info=exc_info)
        unhandled_greenlet_exception = True

    return exception_handler
