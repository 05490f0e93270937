"""HttpUser's client: the one session layer (``_session``) on urllib3's response handling.

``HttpSession`` behaves as the ``requests.Session`` Locust's HttpUser client is: the same
defaults (requests' headers, with mpswarm's User-Agent; the codings urllib3 decodes), the same
semantics (``_session``), ``response.raw`` urllib3's response. Its transport is
``_urllib3.Urllib3Transport``.
"""

from __future__ import annotations

from typing import Any

import urllib3
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_ACCEPT_ENCODING, default_headers

from mpswarm.http._session import USER_AGENT, Session, split_credentials
from mpswarm.http._urllib3 import Urllib3Transport
from mpswarm.http.response import Response, ResponseContextManager


def _headers() -> CaseInsensitiveDict:
    headers = default_headers()
    headers["User-Agent"] = USER_AGENT
    headers["Accept-Encoding"] = DEFAULT_ACCEPT_ENCODING  # what urllib3 decodes here
    return headers


#: What urllib3 and http.client add on the wire to a request without these headers (a
#: session whose User-Agent or Accept-Encoding was removed: requests sends these then).
_URLLIB3_WIRE = (
    ("User-Agent", f"python-urllib3/{urllib3.__version__}"),
    ("Accept-Encoding", "identity"),
)


class HttpSession(Session):
    """requests' Session API and behaviour, each request recorded (HttpUser's client).

    Args:
        base_url: the user's host; see ``Session``.
        request_event: fired once per request.
        user: the owning user.
        max_body_size: the cap on a response body (default ``max_body_size``, 32 MiB).
        pool_manager: sessions given the same object share their idle connections
            (Locust's attribute, where it is a urllib3 PoolManager: any object will do).
        insecure: verify no TLS certificate (``--insecure``).
    """

    default_headers = _headers()
    _wire_defaults = _URLLIB3_WIRE

    def __init__(
        self,
        base_url: str,
        request_event: Any,
        user: Any = None,
        max_body_size: int | None = None,
        pool_manager: Any = None,
        insecure: bool = False,
    ) -> None:
        super().__init__(base_url, request_event, user, max_body_size, insecure)
        self._transport = Urllib3Transport(pool_manager)


#: Locust's names for what its ``locust.clients`` module holds.
LocustResponse = Response

__all__ = [
    "HttpSession",
    "LocustResponse",
    "Response",
    "ResponseContextManager",
    "split_credentials",
]
