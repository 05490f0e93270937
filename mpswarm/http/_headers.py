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
    """

    __slots__ = ("_pairs", "_store")

    def __init__(self, pairs: list[tuple[str, str]] | Mapping[str, str] | None = None) -> None:
        if isinstance(pairs, Mapping):
            pairs = list(pairs.items())
        self._pairs: list[tuple[str, str]] = pairs if pairs is not None else []
        self._store: dict[str, tuple[str, str]] | None = None

    def _built(self) -> dict[str, tuple[str, str]]:
        store = self._store
        if store is None:
            store = {}
            for name, value in self._pairs:
                key = name.lower()
                found = store.get(key)
                store[key] = (name, value) if found is None else (found[0], f"{found[1]}, {value}")
            self._store = store
        return store

    def __getitem__(self, name: str) -> str:
        return self._built()[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._built()[name.lower()] = (name, value)
        self._pairs = [pair for pair in self._pairs if pair[0].lower() != name.lower()]
        self._pairs.append((name, value))

    def __delitem__(self, name: str) -> None:
        del self._built()[name.lower()]
        self._pairs = [pair for pair in self._pairs if pair[0].lower() != name.lower()]

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
        return list(self._pairs)

    def getlist(self, name: str) -> list[str]:
        """The value of each line named ``name``, in order (urllib3's ``getlist``)."""
        lowered = name.lower()
        return [value for key, value in self._pairs if key.lower() == lowered]

    def get_all(self, name: str, default: Any = None) -> Any:
        """``getlist``, or ``default`` when there is no such line (``HTTPMessage.get_all``)."""
        return self.getlist(name) or default

    def copy(self) -> Headers:
        """A copy, as requests' ``CaseInsensitiveDict.copy``."""
        return Headers(list(self._pairs))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        mine = dict(self.lower_items())
        return mine == {str(key).lower(): value for key, value in other.items()}

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dict

    def __repr__(self) -> str:
        return str(dict(self.items()))
