"""Recording a request: the request event, fired once per request with Locust's arguments.

The worker's recorder is a listener of the ``request`` event; a ``catch_response=True``
request is recorded when its ``with`` block ends, with what the block decided.
"""

from __future__ import annotations

import time
from typing import Any

from gevent import GreenletExit

from mpswarm.http.response import Response


class Recorder:
    """Fires the request event once for one request (callable by ResponseContextManager)."""

    __slots__ = ("context", "event", "length", "meta_url", "method", "name", "start", "wall")

    def __init__(
        self, event: Any, method: str, name: str | None, url: str | None, context: Any
    ) -> None:
        self.event = event
        self.method = method
        self.name: Any = name
        self.meta_url = url
        self.context = context
        self.wall = time.time()
        self.start = time.perf_counter()
        self.length = 0

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000.0

    def meta(
        self, response: Any, exception: BaseException | str | None, ms: float | None = None
    ) -> dict[str, Any]:
        """The request event's arguments, as a dict (``response.request_meta``)."""
        return {
            "request_type": self.method,
            "name": self.name,
            "response_time": response._recorded_ms if ms is None else ms,
            "response_length": self.length,
            "response": response,
            "context": self.context,
            "exception": exception,
            "start_time": self.wall,
            "url": self.meta_url,
        }

    def fire(self, response: Response | None, exception: BaseException | None, ms: float) -> None:
        if response is not None:
            response._recorded_ms = ms
        # The listeners are called directly, not through EventHook.fire: its **kwargs cost a
        # dict per request (the recorder is the first listener of every worker).
        for handler in self.event._handlers:
            handler(
                request_type=self.method,
                name=self.name,
                response_time=ms,
                response_length=self.length,
                response=response,
                context=self.context,
                exception=exception,
                start_time=self.wall,
                url=self.meta_url,
            )


def announced(response: Response) -> int:
    """The Content-Length of a streamed response (0 if none or not a number), as Locust."""
    try:
        return max(int(response.headers.get("Content-Length") or 0), 0)
    except ValueError:
        return 0


class CatchReport:
    """Records a catch_response request when its ``with`` block ends."""

    def __init__(self, recorder: Recorder, elapsed_ms: float, user: Any) -> None:
        self.recorder = recorder
        self.elapsed_ms = elapsed_ms
        self.user = user
        self.name = recorder.name

    def __call__(
        self,
        exception: BaseException | None,
        meta: dict[str, Any] | None = None,
        response: Response | None = None,
    ) -> None:
        """Fire the request event, from ``meta`` (the block's ``request_meta``) if it was read:
        what the block changed in it is what is recorded, as in Locust."""
        if meta is None:
            self.recorder.fire(response, exception, self.elapsed_ms)
        else:
            meta["exception"] = exception
            for handler in self.recorder.event._handlers:
                handler(**meta)
        if self.user is not None and self.user._mpswarm.stop_after_request:
            raise GreenletExit()
