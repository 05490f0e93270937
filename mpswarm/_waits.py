"""Waiting on a libev watcher from a greenlet with a direct switch (the hot path's wait).

gevent's ``hub.wait`` allocates a Waiter per wait; the request and task loops wait a few
times per request, so they start watchers they keep and switch to the hub themselves.
"""

from __future__ import annotations

from typing import Any

from gevent import getcurrent
from greenlet import greenlet as _raw_greenlet

_switch = _raw_greenlet.switch


def wait_for(hub: Any, watcher: Any, timer: Any = None) -> Any:
    """Sleep until ``watcher`` (or ``timer``, when given) fires; returns the one that did.

    Both must be stopped watchers of ``hub``'s loop; they are stopped again on return, also
    when the greenlet is killed while waiting. Stopping also drops a callback that became
    pending in the same loop iteration, so neither can switch in later.

    A timer counts from the loop's cached time (that of its last poll), so a caller waiting a
    duration after running code calls ``hub.loop.update_now()`` first (``User._sleep`` does);
    this function adds nothing to the zero-wait yield.
    """
    current = getcurrent()
    # The unbound switch with the greenlet as argument: no bound method per wait.
    watcher.start(_switch, current, watcher)
    if timer is not None:
        timer.start(_switch, current, timer)
    try:
        woken_by = hub.switch()
    finally:
        watcher.stop()
        if timer is not None:
            timer.stop()
    if woken_by is not watcher and woken_by is not timer:
        raise RuntimeError(f"unexpected switch into a waiting greenlet: {woken_by!r}")
    return woken_by
