"""The requests-like Response objects HttpUser's client returns."""

from __future__ import annotations

import datetime
import json as jsonlib
import re
from typing import Any

from mpswarm.exceptions import CatchResponseError, HTTPError, ResponseError

_CHARSET = re.compile(r"charset=([\w.:-]+)", re.IGNORECASE)


class Request:
    """What was sent: method, url, headers and body (``response.request``)."""

    def __init__(self, method: str, url: str, headers: dict[str, str], body: Any) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body

    @property
    def path_url(self) -> str:
        """Path and query of the URL, as requests names it."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class Response:
    """A finished HTTP exchange, or a failed attempt (``status_code`` 0 and ``error`` set).

    Attributes:
        status_code: the HTTP status, 0 when no response arrived.
        reason: the status line's reason phrase.
        headers: case-insensitive response headers.
        content: the (decoded) body bytes.
        url: the final URL, after redirects.
        history: the redirect responses that led here, oldest first.
        elapsed: time from sending the request to having the whole response.
        error: the exception when the request failed before a response, else None.
        request: the last request sent.
    """

    def __init__(
        self,
        status_code: int = 0,
        reason: str = "",
        headers: Any = None,
        content: bytes = b"",
        url: str = "",
        request: Request | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers if headers is not None else _empty_headers()
        self.content = content
        self.url = url
        self.request = request
        self.error = error
        self.history: list[Response] = []
        self._elapsed_ms = 0.0
        self.encoding: str | None = None
        self._cookies: dict[str, str] | None = None

    @property
    def elapsed(self) -> datetime.timedelta:
        """Time from sending the request to having the whole response."""
        return datetime.timedelta(milliseconds=self._elapsed_ms)

    @elapsed.setter
    def elapsed(self, value: datetime.timedelta) -> None:
        self._elapsed_ms = value.total_seconds() * 1000.0

    @property
    def ok(self) -> bool:
        """True when a response arrived with a status below 400."""
        return self.error is None and 0 < self.status_code < 400

    @property
    def text(self) -> str:
        """The body decoded with the declared charset (UTF-8 when none)."""
        encoding = self.encoding
        if encoding is None:
            match = _CHARSET.search(self.headers.get("Content-Type", ""))
            encoding = match.group(1) if match else "utf-8"
        try:
            return self.content.decode(encoding, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.content, **kwargs)

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies this response set, by name."""
        if self._cookies is None:
            found: dict[str, str] = {}
            for header in self.headers.getlist("Set-Cookie"):
                pair = header.split(";", 1)[0]
                if "=" in pair:
                    key, value = pair.split("=", 1)
                    found[key.strip()] = value.strip()
            self._cookies = found
        return self._cookies

    def raise_for_status(self) -> None:
        """Raise the connection error, or HTTPError for a 4xx/5xx status."""
        if self.error is not None:
            raise self.error
        if self.status_code >= 400:
            raise HTTPError(status_error_text(self), response=self)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


def status_error_text(response: Response, name: str | None = None) -> str:
    """Locust-style failure text for a 4xx/5xx response."""
    kind = "Client" if response.status_code < 500 else "Server"
    where = name if name is not None else response.url
    return f"{response.status_code} {kind} Error: {response.reason} for url: {where}"


def _empty_headers() -> Any:
    from urllib3 import HTTPHeaderDict

    return HTTPHeaderDict()


class ResponseContextManager(Response):
    """The response of a ``catch_response=True`` request, used as a context manager.

    Inside the ``with`` block call ``success()`` or ``failure(message)``; the request is recorded
    when the block ends. Without either call, a 4xx/5xx status or connection error is a failure.
    """

    def __init__(self, response: Response, report: Any) -> None:
        self.__dict__.update(response.__dict__)
        self._report = report
        self._manual: BaseException | bool | None = None
        self._entered = False

    def __enter__(self) -> ResponseContextManager:
        self._entered = True
        return self

    def success(self) -> None:
        """Record this request as successful, whatever its status."""
        self._manual = True

    def failure(self, exc: Any) -> None:
        """Record this request as failed with ``exc`` (an exception or a message)."""
        if not isinstance(exc, BaseException):
            exc = CatchResponseError(str(exc))
        self._manual = exc

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self._manual is True:
            self._report(None)
        elif isinstance(self._manual, BaseException):
            self._report(self._manual)
        elif exc is None or _is_control_flow(exc):
            # Steering the user (StopUser, RescheduleTask...) says nothing about the request.
            self._report(self._default_failure())
        else:
            # An exception escaped the block: the request still happened and is recorded as a
            # failure naming it (Locust drops such a request; we never lose a sent request).
            self._report(exc)
            return isinstance(exc, ResponseError)
        return exc is None

    def _default_failure(self) -> BaseException | None:
        if self.error is not None:
            return self.error
        if self.status_code >= 400:
            return HTTPError(status_error_text(self, self._report.name), response=self)
        return None


def _is_control_flow(exc: BaseException) -> bool:
    from gevent import GreenletExit

    from mpswarm.exceptions import (
        InterruptTaskSet,
        RescheduleTask,
        RescheduleTaskImmediately,
        StopTest,
        StopUser,
    )

    return isinstance(
        exc,
        (
            GreenletExit,
            StopUser,
            StopTest,
            InterruptTaskSet,
            RescheduleTask,
            RescheduleTaskImmediately,
        ),
    )
