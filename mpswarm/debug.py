"""``run_single_user``: run one user in this process and print each request (debugging)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

#: The Environment of the first ``run_single_user`` call, reused by later ones (Locust's).
_env: Any = None


def run_single_user(
    user_class: type,
    include_length: bool = False,
    include_time: bool = False,
    include_context: bool = False,
    include_payload: bool = False,
    loglevel: str | None = "WARNING",
    init_listener: Any = None,
    stream: TextIO | None = None,
) -> None:
    """Run one ``user_class`` user in the calling greenlet until it stops, printing every
    request.

    Like Locust's, for stepping through a locustfile in a debugger: ``if __name__ ==
    "__main__": run_single_user(MyUser)``. The host comes from ``MPSWARM_HOST`` or
    ``LOCUST_HOST`` when set, else the class's. ``init`` and ``test_start`` fire (once per
    process for ``init``); ``test_stop`` and ``quitting`` do not, as in Locust. Exceptions
    of the user's code are raised here (``catch_exceptions=False``), where a debugger stops;
    custom messages loop back to this process. ``environment.single_user_instance`` is the
    user.
    """
    global _env
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    from mpswarm.env import Environment
    from mpswarm.event import events

    if loglevel:
        logging.basicConfig(level=loglevel.upper())
    out = stream or sys.stdout
    if _env is None:
        host = os.environ.get("MPSWARM_HOST") or os.environ.get("LOCUST_HOST") or None
        _env = Environment(events=events, host=host, catch_exceptions=False)
        _env.create_local_runner()

        def show(
            request_type: str,
            name: str,
            response_time: float,
            response_length: int,
            exception: Any = None,
            context: Any = None,
            **kwargs: Any,
        ) -> None:
            parts = [f"{request_type:<7} {name:<40}"]
            if include_time:
                parts.append(f"{response_time:9.2f} ms")
            if include_length:
                parts.append(f"{response_length:8d} B")
            parts.append("OK" if exception is None else f"FAIL {exception}")
            if include_context:
                parts.append(repr(context))
            if include_payload:
                parts.append(repr(kwargs.get("response")))
            print("  ".join(parts), file=out, flush=True)

        events.request.add_listener(show)
        if init_listener is not None:
            init_listener(_env)
        events.init.fire(environment=_env, runner=_env.runner, web_ui=None)
    _env.user_classes = [user_class]
    _env._tasks_filtered = False
    _env._filter_tasks_by_tags()
    _env.events.test_start.fire(environment=_env)
    if _env.host:
        user_class.host = _env.host  # type: ignore[attr-defined]
    user = user_class(_env)
    _env.single_user_instance = user
    user.run()
