"""``run_single_user``: run one user in this process and print each request (debugging)."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from gevent.pool import Group


def run_single_user(
    user_class: type,
    include_length: bool = False,
    include_time: bool = False,
    include_context: bool = False,
    init_listener: Any = None,
    loglevel: str | None = "WARNING",
    stream: TextIO | None = None,
) -> None:
    """Run one ``user_class`` user here until it stops, printing every request.

    Like Locust's, for stepping through a locustfile in a debugger: ``if __name__ ==
    "__main__": run_single_user(MyUser)``. Custom messages loop back to this process.
    """
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    from mpswarm.env import Environment
    from mpswarm.event import events

    if loglevel:
        logging.basicConfig(level=loglevel.upper())
    out = stream or sys.stdout
    environment = Environment(user_classes=[user_class], events=events)
    runner = environment.create_local_runner()

    def show(
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: Any = None,
        context: Any = None,
        **_: Any,
    ) -> None:
        parts = [f"{request_type:<7} {name:<40}"]
        if include_time:
            parts.append(f"{response_time:9.2f} ms")
        if include_length:
            parts.append(f"{response_length:8d} B")
        parts.append("OK" if exception is None else f"FAIL {exception}")
        if include_context:
            parts.append(repr(context))
        print("  ".join(parts), file=out, flush=True)

    events.request.add_listener(show)
    try:
        if init_listener is not None:
            init_listener(environment)
        events.init.fire(environment=environment)
        events.test_start.fire(environment=environment)
        user = user_class(environment)
        runner._users.append(user)
        user.start(Group()).join()
        events.test_stop.fire(environment=environment)
    finally:
        events.request.remove_listener(show)
