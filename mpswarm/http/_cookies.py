"""Adapters that let ``http.cookiejar.CookieJar`` read urllib3 requests and responses."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


class CookieRequest:
    """The part of ``urllib.request.Request`` that CookieJar reads and writes."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self._url = url
        self._parts = urlsplit(url)
        self._headers = headers
        self.added: dict[str, str] = {}

    def get_full_url(self) -> str:
        return self._url

    @property
    def host(self) -> str:
        return self._parts.netloc

    @property
    def type(self) -> str:
        return self._parts.scheme

    @property
    def origin_req_host(self) -> str:
        return self._parts.hostname or ""

    @property
    def unverifiable(self) -> bool:
        return False

    def has_header(self, name: str) -> bool:
        lowered = name.lower()
        return any(key.lower() == lowered for key in (*self._headers, *self.added))

    def get_header(self, name: str, default: Any = None) -> Any:
        lowered = name.lower()
        for key, value in (*self._headers.items(), *self.added.items()):
            if key.lower() == lowered:
                return value
        return default

    def header_items(self) -> list[tuple[str, str]]:
        return [*self._headers.items(), *self.added.items()]

    def add_unredirected_header(self, name: str, value: str) -> None:
        self.added[name] = value


class CookieResponse:
    """The ``info()`` view of a response that CookieJar reads Set-Cookie from."""

    def __init__(self, headers: Any) -> None:
        self._headers = headers

    def info(self) -> CookieResponse:
        return self

    def get_all(self, name: str, default: Any = None) -> Any:
        values = self._headers.getlist(name)
        return values or default
