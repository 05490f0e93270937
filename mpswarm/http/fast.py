"""``FastHttpUser``: Locust's FastHttpUser API on mpswarm's lean client (``fastclient``)."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mpswarm.http.fastclient import FastHttpSession as _LeanSession
from mpswarm.http.fastclient import _h2_transport
from mpswarm.http.response import ResponseContextManager
from mpswarm.user.users import HttpUser


class RestResponseContextManager(ResponseContextManager):
    """A catch_response response with the body parsed as JSON in ``js`` (None if empty)."""

    js: Any = None


class FastHttpSession(_LeanSession):
    """FastHttpUser's client: the lean transport plus Locust's ``rest()``."""

    def iter_lines(self, url: str, method: str = "GET", **kwargs: Any) -> Iterator[str]:
        """Send a streamed request and yield its body's lines as text (Locust's method).

        Raises:
            requests.HTTPError: a 4xx or 5xx status (or the request's error: no response).
        """
        response = self.request(method, url, stream=True, **kwargs)
        try:
            response.raise_for_status()
            buffer = ""
            for chunk in response.iter_content(chunk_size=None):
                buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
                *lines, buffer = buffer.split("\n")
                yield from lines
            if buffer:
                yield buffer
        finally:
            response.close()  # a body not read to its end drops the connection

    @contextmanager
    def rest(
        self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Iterator[RestResponseContextManager]:
        """Send a JSON request; yields the response with ``js``, to check inside ``with``.

        A body that is not JSON, a 4xx/5xx status, or an exception inside the block (an
        assertion, a missing key) marks the request as failed instead of raising.
        """
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **(headers or {}),
        }
        with self.request(method, url, headers=headers, catch_response=True, **kwargs) as r:
            response = r
            response.__class__ = RestResponseContextManager
            response.js = None
            if response.error is not None:
                response.failure(str(response.error))
            elif response.content:
                try:
                    response.js = response.json()
                except json.JSONDecodeError as exc:
                    response.failure(
                        f"Could not parse response as JSON. {response.text[:250]!r}, "
                        f"response code {response.status_code}, error {exc}"
                    )
            try:
                yield response
            except AssertionError as exc:
                response.failure(f"assert failed: {exc}" if str(exc) else "assert failed")
            except Exception as exc:
                where = traceback.extract_tb(exc.__traceback__)[-1]
                response.failure(
                    f"{type(exc).__name__}: {exc} at {where.filename}:{where.lineno}. "
                    f"Response was {response.text[:100]!r}"
                )


class FastHttpUser(HttpUser):
    """A user whose client is the lean HTTP/1.1 client, with Locust's FastHttpUser API.

    Class attributes, as Locust's: ``insecure`` (skip TLS verification; also ``--insecure``),
    ``connection_timeout``, ``network_timeout`` (seconds) and ``max_redirects`` (30); and
    ``max_body_size``, HttpUser's cap on a response body (32 MiB by default). Unlike
    Locust's, ``insecure`` is False by default: certificates are verified unless asked not to.

    ``client_pool``: users whose classes name the same object share their idle connections
    (any object: Locust's is a geventhttpclient ``HTTPClientPool``, whose ``concurrency`` is
    not read). ``ssl_context_factory``: a function returning the ``ssl.SSLContext`` of each
    new https connection.

    ``http2 = True``: the client speaks HTTP/2 (h2c with prior knowledge on http://, ALPN on
    https://), the same Response API and timing breakdown per request; requests a user's
    greenlets issue at once are multiplexed on one connection per origin.
    """

    abstract = True
    client: FastHttpSession
    insecure = False
    connection_timeout = 60.0
    network_timeout = 60.0
    max_redirects = 30
    client_pool: Any = None
    ssl_context_factory: Any = None
    http2 = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("http2"):
            _h2_transport()  # h2 missing: the locustfile fails to load, naming the extra

    @contextmanager
    def rest(
        self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Iterator[RestResponseContextManager]:
        """``self.client.rest(...)``, as Locust's ``FastHttpUser.rest``."""
        with self.client.rest(method, url, headers=headers, **kwargs) as response:
            yield response

    def _create_client(self, host: str, request_event: Any, insecure: bool) -> Any:
        return FastHttpSession(
            base_url=host,
            request_event=request_event,
            user=self,
            insecure=self.insecure or insecure,
            connection_timeout=self.connection_timeout,
            network_timeout=self.network_timeout,
            max_redirects=self.max_redirects,
            max_body_size=self.max_body_size,
            client_pool=self.client_pool,
            ssl_context_factory=self.ssl_context_factory,
            http2=self.http2,
        )


FastResponse = ResponseContextManager


def __getattr__(name: str) -> object:
    if name == "FastHttpLocust":
        from mpswarm.exceptions import renamed_class_error

        raise renamed_class_error(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
