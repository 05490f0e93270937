"""A response's headers as requests shows them, built from the pairs the transport read.

requests gives ``response.headers`` as a ``CaseInsensitiveDict`` made from urllib3's
``HTTPHeaderDict``: one entry per name, under the first spelling the server used, with the
values of repeated lines joined by ``", "``. ``Headers`` is that mapping, built only when a
header is first looked up: most responses of a load test are never asked for one, and building
the dict costs about 3 us a response (a tenth of a FastHttpUser request).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any


class Headers(MutableMapping[str, str]):
    """Case-insensitive response headers (requests' ``response.headers``), built lazily.

    Besides the mapping API: ``getlist(name)`` (each line's value, as urllib3's
    ``HTTPHeaderDict``), ``get_all(name, default)`` (the same, for ``http.cookiejar``), and
    ``lower_items()`` (requests').

    Args:
        pairs: the header lines as (name, value), str, or as bytes (decoded from Latin-1
            when first read).
        set_cookie: whether a Set-Cookie line is among them, where the parser knows (the
            session then looks for cookies without building the mapping).
    """

    __slots__ = ("_pairs", "_raw", "_store", "set_cookie")

    def __init__(
        self,
        pairs: list[tuple[str, str]] | list[tuple[bytes, bytes]] | Mapping[str, str] | None = None,
        set_cookie: bool | None = None,
    ) -> None:
        self._pairs: list[tuple[str, str]] | None = None
        self._raw: list[tuple[bytes, bytes]] | None = None
        if type(pairs) is not list:
            pairs = list(pairs.items()) if pairs is not None else []  # type: ignore[union-attr]
        if pairs and type(pairs[0][0]) is bytes:
            self._raw = pairs
        else:
            self._pairs = pairs  # type: ignore[assignment]
        self._store: dict[str, tuple[str, str]] | None = None
        self.set_cookie = set_cookie

    def _lines(self) -> list[tuple[str, str]]:
        pairs = self._pairs
        if pairs is None:
            raw = self._raw or []
            pairs = self._pairs = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw]
            self._raw = None
        return pairs

    def _built(self) -> dict[str, tuple[str, str]]:
        store = self._store
        if store is None:
            store = {}
            for name, value in self._lines():
                key = name.lower()
                found = store.get(key)
                store[key] = (name, value) if found is None else (found[0], f"{found[1]}, {value}")
            self._store = store
        return store

    def __getitem__(self, name: str) -> str:
        return self._built()[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._built()[name.lower()] = (name, value)
        self._pairs = [pair for pair in self._lines() if pair[0].lower() != name.lower()]
        self._pairs.append((name, value))
        self.set_cookie = None

    def __delitem__(self, name: str) -> None:
        del self._built()[name.lower()]
        self._pairs = [pair for pair in self._lines() if pair[0].lower() != name.lower()]
        self.set_cookie = None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._built()

    def get(self, name: str, default: Any = None) -> Any:
        found = self._built().get(name.lower())
        return default if found is None else found[1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._built().values())

    def __len__(self) -> int:
        return len(self._built())

    def lower_items(self) -> Iterator[tuple[str, str]]:
        """(lower-case name, value) pairs, as requests' CaseInsensitiveDict gives them."""
        return ((key, pair[1]) for key, pair in self._built().items())

    def pairs(self) -> list[tuple[str, str]]:
        """Every header line as (name, value), in the order received."""
        return list(self._lines())

    def getlist(self, name: str) -> list[str]:
        """The value of each line named ``name``, in order (urllib3's ``getlist``)."""
        lowered = name.lower()
        return [value for key, value in self._lines() if key.lower() == lowered]

    def get_all(self, name: str, default: Any = None) -> Any:
        """``getlist``, or ``default`` when there is no such line (``HTTPMessage.get_all``)."""
        return self.getlist(name) or default

    def copy(self) -> Headers:
        """A copy, as requests' ``CaseInsensitiveDict.copy``."""
        return Headers(list(self._lines()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        mine = dict(self.lower_items())
        return mine == {str(key).lower(): value for key, value in other.items()}

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dict

    def __repr__(self) -> str:
        return str(dict(self.items()))
