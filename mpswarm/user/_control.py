"""What a user shares with the parts that run it: the one seam between a ``User`` and the
HTTP clients (its requests in flight, a stop between requests) and the runner (the open
model's hand-over of iterations).

A locustfile's users own their namespace, so these facts do not live among a User's
attributes for other modules to write; each user holds one ``UserControl`` instead
(``user._mpswarm``), whose fields are this protocol: who writes each is said below.
"""

from __future__ import annotations

from typing import Any


class UserControl:
    """The shared state of one user (a slotted record: ~80 bytes a user; it replaced six
    attributes of the user's own ``__dict__``).

    Attributes:
        in_request: requests in flight (the HTTP clients count them): a stop never kills a
            user while this is non-zero.
        stop_after_request: set by the runner when it stops a user between requests: the
            HTTP clients end the user once its response is in, and send nothing new; cleared
            by the user before ``on_stop`` (whose requests go out, as under Locust).
        in_on_stop: the user is running ``on_stop`` (``begin_on_stop``): a stop lets it finish,
            its requests and what follows them, within the hard stop's grace.
        pool: open model: the scheduler (``runner.arrivals.OpenModel``) this user belongs
            to, else None (closed model: ``wait_time`` paces it).
        iteration_due: open model: the scheduled start of the iteration the scheduler
            handed this user, None until it has one.
        replay: ``mpswarm replay``: the log's request of that iteration.
        runs_on: open model: the greenlet running the iteration (its start delay's key).
    """

    __slots__ = (
        "in_on_stop",
        "in_request",
        "iteration_due",
        "pool",
        "replay",
        "runs_on",
        "stop_after_request",
    )

    def __init__(self) -> None:
        self.in_request = 0
        self.stop_after_request = False
        self.in_on_stop = False
        self.pool: Any = None
        self.iteration_due: float | None = None
        self.replay: Any = None
        self.runs_on: Any = None

    def begin_on_stop(self) -> None:
        """The user begins ``on_stop``: its requests go out (Locust sends them), and a stop
        between requests no longer cuts it short (before: a ``sys.exit()`` or a second request
        after the first was skipped when the stop timeout ran out meanwhile)."""
        self.stop_after_request = False
        self.in_on_stop = True


__all__ = ["UserControl"]
