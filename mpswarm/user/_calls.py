"""One recorded call of a protocol client other than HTTP (gRPC, WebSocket): the rules HTTP
requests follow, in one place.

A call, like an HTTP request (``http._session.Session.request``):

- is not begun by a user being stopped between calls (``stop_after_request``): the user ends
  there instead, and ends once the call in progress is recorded;
- counts as in flight while it runs, in the user's ``UserControl`` (a stop never kills a user
  in the middle of one) and in the worker's segment (a worker that dies reports what it had in
  flight as lost);
- is recorded once, through the ``request`` event with Locust's arguments, whatever happens:
  cut off by a kill (``GreenletExit``) it is a failure, ``Interrupted``;
- carries its timing breakdown where it has one: ``phases`` (connect, TLS, first byte, bytes
  sent; -1 for a phase that did not happen) is what HTTP responses carry as ``_phases``.

Usage::

    with Call(user, "grpc", "/pkg.Svc/Method", url) as call:
        reply = stub_method(request)
        call.length = reply.ByteSize()
    # an exception in the block is recorded as the call's failure and raised on

``call.fail(exc)`` records a failure without raising (the block goes on, the call ends with
its ``with``).
"""

from __future__ import annotations

from typing import Any

from gevent import GreenletExit

from mpswarm.http._errors import Interrupted
from mpswarm.http._recording import Recorder
from mpswarm.stats import in_flight


class Timing:
    """What the recorder reads from a call's ``response`` argument: its phases.

    Attributes:
        _phases: (connect, TLS, first byte, bytes sent); microseconds, -1 where none.
    """

    __slots__ = ("_phases",)

    def __init__(self, phases: tuple[int, int, int, int]) -> None:
        self._phases = phases


def phases_us(connect_s: float | None, tls_s: float | None, ttfb_s: float | None, sent: int
              ) -> tuple[int, int, int, int]:  # fmt: skip
    """A call's phases from durations in seconds (None: the phase did not happen)."""

    def us(seconds: float | None) -> int:
        return -1 if seconds is None else max(int(seconds * 1e6 + 0.5), 0)

    return (us(connect_s), us(tls_s), us(ttfb_s), sent)


class Call(Recorder):
    """One call, recorded when its ``with`` block ends (see the module docstring); fired as
    HTTP's requests are (``http._recording.Recorder``).

    Args:
        user: the calling user (None: a client used outside a run; then nothing stops it).
        request_type: the statistics' method column (``grpc``, ``WS-SEND``...).
        name: the statistics' name column.
        url: the ``url`` argument of the request event.
        event: the request event (default: the user's environment's).
        context: extra data for the listeners (merged over ``user.context()``, as HTTP's).

    Attributes:
        length: the response's size in bytes (the statistics' average size).
        phases: the timing breakdown, or None.
        exception: the failure recorded, if any (``fail``, or what the block raised).
    """

    __slots__ = ("_control", "exception", "phases")

    def __init__(
        self,
        user: Any,
        request_type: str,
        name: str,
        url: str | None = None,
        event: Any = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        if event is None:
            event = user.environment.events.request
        if user is None:
            merged = dict(context or {})
        else:  # Locust's merge: a copy, whatever context() returns
            merged = {**user.context(), **context} if context else {**user.context()}
        super().__init__(event, request_type, name, url, merged)
        self.phases: tuple[int, int, int, int] | None = None
        self.exception: BaseException | str | None = None
        self._control = getattr(user, "_mpswarm", None)

    def __enter__(self) -> Call:
        control = self._control
        if control is not None:
            if control.stop_after_request:
                raise GreenletExit()  # being stopped: begin nothing new
            control.in_request += 1
        in_flight.counter[0] += 1
        return self

    def fire(self, response: Any, exception: BaseException | str | None, ms: float) -> None:
        """Fire the request event through its ``fire()``: any event with Locust's EventHook API
        will do (HTTP's hot path calls the listeners directly instead)."""
        self.event.fire(**self.meta(response, exception, ms))

    def fail(self, exception: BaseException | str) -> None:
        """Record the call as failed with ``exception`` (its text is the errors table's)."""
        self.exception = exception

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        ms = self.elapsed_ms()
        in_flight.counter[0] -= 1  # recorded just below, with no switch between
        control = self._control
        if control is not None:
            control.in_request -= 1
        if exc is not None:
            self.exception = Interrupted() if isinstance(exc, GreenletExit) else exc
        phases = self.phases
        self.fire(None if phases is None else Timing(phases), self.exception, ms)
        if exc is None and control is not None and control.stop_after_request:
            raise GreenletExit()


__all__ = ["Call", "Timing", "phases_us"]
