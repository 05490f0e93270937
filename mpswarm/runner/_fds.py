"""File descriptors the parent keeps in reserve for supervision.

Whatever else holds descriptors in the parent (the web UI's and the metrics endpoint's
connections, a locustfile's listeners on its events), replacing a dead worker (a segment, a
socket pair) and writing the reports must not fail for want of one. At start the parent lifts
its soft limit to the hard one and opens ``RESERVE`` descriptors it does not use; an action
that fails with EMFILE gives them back and tries once more.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
from typing import Any

logger = logging.getLogger(__name__)

#: Descriptors held back: a replacement takes 3 (its segment and a socket pair), a report 2.
RESERVE = 16
#: The errors of a process (or a system) out of descriptors.
EXHAUSTED = (errno.EMFILE, errno.ENFILE)


def raise_soft_limit() -> None:
    """The soft RLIMIT_NOFILE up to the hard one (1 024 is a common default; a run with many
    users, or a UI with many viewers, needs more)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


class FdReserve:
    """``RESERVE`` descriptors held open (on /dev/null), given back by ``release()``."""

    def __init__(self, count: int = RESERVE) -> None:
        self._fds: list[int] = []
        for _ in range(count):
            try:
                self._fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                break

    def release(self, needed: bool = True) -> bool:
        """Close the reserve (``needed``: say so); False when it was already used."""
        if not self._fds:
            return False
        for fd in self._fds:
            os.close(fd)
        if needed:
            logger.warning("out of file descriptors: the %d held in reserve are used now",
                           len(self._fds))  # fmt: skip
        self._fds = []
        return True

    def retry(self, action: Any) -> Any:
        """``action()``; when it fails for want of a descriptor, once more with the reserve."""
        try:
            return action()
        except OSError as exc:
            if exc.errno not in EXHAUSTED or not self.release():
                raise
        return action()
