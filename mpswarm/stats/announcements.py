"""What a recorder announces: one small record per piece of news about its segment's rows.

The ``Recorder`` hands each to its ``announce`` callback before the row it names is used; a
worker sends it to its parent as it is (these are also records of ``runner.messages``, which
re-exports them: stats/ knows no runner), and ``apply_to`` tells an aggregator what it needs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol


class NameBook(Protocol):
    """What an announcement updates (an ``Aggregator``)."""

    def on_row(self, source_id: Any, row: int, method: str, name: str) -> None:
        """``row`` of ``source_id``'s segment counts (method, name)."""

    def on_error(self, source_id: Any, index: int, method: str, name: str, text: str) -> None:
        """Error counter ``index`` of ``source_id``'s segment counts (method, name, text)."""


@dataclasses.dataclass(frozen=True)
class RowAnnounced:
    """Row ``row`` of the worker's segment counts (method, name)."""

    row: int
    method: str
    name: str

    def apply_to(self, book: NameBook, source_id: Any) -> None:
        """Tell ``book`` the row's name."""
        book.on_row(source_id, self.row, self.method, self.name)


@dataclasses.dataclass(frozen=True)
class ErrorAnnounced:
    """Error counter ``index`` of the worker's segment counts (method, name, text)."""

    index: int
    method: str
    name: str
    text: str

    def apply_to(self, book: NameBook, source_id: Any) -> None:
        """Tell ``book`` the counter's key."""
        book.on_error(source_id, self.index, self.method, self.name, self.text)


@dataclasses.dataclass(frozen=True)
class NamesOverflowed:
    """The worker folded its first name into the overflow row."""

    method: str
    name: str

    def apply_to(self, book: NameBook, source_id: Any) -> None:
        """Nothing: the overflow row has its own ``RowAnnounced``; this is for a warning."""


Announcement = RowAnnounced | ErrorAnnounced | NamesOverflowed

__all__ = ["Announcement", "ErrorAnnounced", "NameBook", "NamesOverflowed", "RowAnnounced"]
