"""Requests in flight in this process, counted where the parent can read them.

Every request the HTTP clients begin adds one to ``counter[0]`` and takes it back once the
request is recorded. In a worker the counter is a word of its segment's header
(``count_in``): when the worker dies or is killed (a crash, an OOM kill, a task that held its
event loop past the stop), the parent reads what was left in flight and reports it as lost,
never silently missing. Elsewhere (a session used on its own) it counts into memory nobody
reads.
"""

from __future__ import annotations

from typing import Any

#: The counter: a one-item memoryview of 64-bit integers.
counter: Any = memoryview(bytearray(8)).cast("q")


def count_in(segment: Any) -> None:
    """Count this process's requests in flight in ``segment``'s header from now on."""
    global counter
    counter = segment.in_flight_word()
