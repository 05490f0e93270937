"""FastHttpUser's client: the one session layer (``_session``) on the lean transport.

Everything a locustfile touches is the session's, shared with HttpUser's client; what differs
is where Locust's documentation says FastHttpUser differs: its options (``insecure``,
``connection_timeout``, ``network_timeout``, ``client_pool``, ``ssl_context_factory``),
``json=`` also asking for JSON (``Accept: application/json``), ``text`` None without a
response, ``client.cookiejar`` for the jar, and the codings it accepts (gzip and deflate, which
its transport inflates).
"""

from __future__ import annotations

from typing import Any

from requests.structures import CaseInsensitiveDict
from requests.utils import default_headers

from mpswarm.http._lean import LeanTransport
from mpswarm.http._session import USER_AGENT, Session

_DEFAULT_TIMEOUT_S = 60.0


def _headers() -> CaseInsensitiveDict:
    headers = default_headers()
    headers["User-Agent"] = USER_AGENT
    headers["Accept-Encoding"] = "gzip, deflate"  # what the lean transport inflates
    return headers


def _h2_transport() -> Any:
    """The HTTP/2 transport class, imported only when asked for (h2 is an optional extra)."""
    try:
        from mpswarm.http._h2 import H2Transport
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith(("h2", "hpack", "hyperframe")):
            raise  # (a module of ours: a bug, not a missing extra)
        from mpswarm.protocols import missing_extra

        raise missing_extra("http2 = True", "h2", "http2", exc) from None
    return H2Transport


class FastHttpSession(Session):
    """requests' Session API on the lean client, with Locust's FastHttpSession options.

    Args:
        base_url: the user's host (credentials in it are sent as basic auth).
        request_event: fired once per request.
        user: the owning user.
        insecure: skip TLS certificate verification.
        connection_timeout: seconds to connect.
        network_timeout: seconds to wait for each read.
        max_redirects: redirects followed before giving up (30, as Locust's).
        max_body_size: the cap on a response body (default ``max_body_size``, 32 MiB).
        client_pool: sessions given the same object share their idle connections.
        ssl_context_factory: makes the ``ssl.SSLContext`` of each new https connection.
        http2: speak HTTP/2 (httpx's ``http2=True``): h2c with prior knowledge on http://,
            ALPN on https:// (a server choosing HTTP/1.1 gets it); requests the user's
            greenlets issue at once share one connection per origin. Needs the ``h2``
            package (``pip install 'mpswarm[http2]'``).
    """

    default_headers = _headers()
    _json_accepts = True
    _no_text = None

    def __init__(
        self,
        base_url: str,
        request_event: Any,
        user: Any = None,
        insecure: bool = False,
        connection_timeout: float = _DEFAULT_TIMEOUT_S,
        network_timeout: float = _DEFAULT_TIMEOUT_S,
        max_redirects: int = 30,
        max_body_size: int | None = None,
        client_pool: Any = None,
        ssl_context_factory: Any = None,
        http2: bool = False,
    ) -> None:
        super().__init__(base_url, request_event, user, max_body_size, insecure)
        if max_redirects != self.max_redirects:
            self.max_redirects = max_redirects
        if (connection_timeout, network_timeout) != self._timeouts:
            self._timeouts = (connection_timeout, network_timeout)
        if http2:
            self._transport = _h2_transport()(client_pool, ssl_context_factory)
        else:
            self._transport = LeanTransport(client_pool, ssl_context_factory)

    _timeouts = (_DEFAULT_TIMEOUT_S, _DEFAULT_TIMEOUT_S)

    @property
    def http2(self) -> bool:
        """Whether this client speaks HTTP/2 (given when it was made: ``http2=True``)."""
        return type(self._transport) is not LeanTransport

    @property
    def cookiejar(self) -> Any:
        """The session's cookie jar, by the name Locust's FastHttpSession gives it."""
        return self.cookies

    @property
    def connection_timeout(self) -> float | None:
        """Seconds to connect when a request gives no timeout."""
        return self._timeouts[0]

    @property
    def network_timeout(self) -> float | None:
        """Seconds to wait for each read when a request gives no timeout."""
        return self._timeouts[1]
