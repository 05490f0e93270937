"""``locust.util.load_locustfile``: import a locustfile, as Locust's function of that name."""

from __future__ import annotations

import inspect
from typing import Any

from mpswarm import _locustfile
from mpswarm.shape import LoadTestShape
from mpswarm.user.users import User


def is_user_class(item: Any) -> bool:
    """Whether ``item`` is a runnable (not abstract) User class."""
    return inspect.isclass(item) and issubclass(item, User) and not item.abstract


def is_shape_class(item: Any) -> bool:
    """Whether ``item`` is a LoadTestShape subclass that can run."""
    return (
        inspect.isclass(item)
        and issubclass(item, LoadTestShape)
        and item is not LoadTestShape
        and not getattr(item, "abstract", False)
    )


def load_locustfile(path: str) -> tuple[dict[str, type[User]], list[LoadTestShape]]:
    """Import the locustfile at ``path`` (once per process, as mpswarm does).

    Returns:
        Locust's pair: the User classes by name, and an instance of each shape class.

    Raises:
        mpswarm.exceptions.LocustfileError: missing file, import failure, or no User class.
    """
    loaded = _locustfile.load_locustfile(path)
    return dict(loaded.user_classes), [shape() for shape in loaded.shape_classes.values()]
