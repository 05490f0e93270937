"""pytest plugin of ``bench/locust_suite.py``: ``import locust`` is mpswarm, but for its tests.

Loaded with ``-p`` before any test module is imported. ``mpswarm.use_as_locust()`` answers
every ``locust`` import with mpswarm's modules; this plugin adds one finder in front of it for
``locust.test`` and its modules (Locust's test helpers), read from the source tree named by
``MPSWARM_LOCUST_SRC``, and leaves out the tests ``MPSWARM_SUITE_DESELECT`` names.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from typing import Any

import mpswarm

_TESTS = os.path.join(os.environ["MPSWARM_LOCUST_SRC"], "locust", "test")
#: Test ids (file.py::Class::test) not to run: those that need the internet.
_DESELECT = tuple(filter(None, os.environ.get("MPSWARM_SUITE_DESELECT", "").split("\n")))


class _LocustTestsFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "locust.test":
            search = [os.path.dirname(_TESTS)]
        elif fullname.startswith("locust.test."):
            search = [_TESTS]
        else:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, search)


mpswarm.use_as_locust()
sys.meta_path.insert(0, _LocustTestsFinder())


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    dropped = [item for item in items if item.nodeid.endswith(_DESELECT)]
    if dropped:
        items[:] = [item for item in items if item not in dropped]
        config.hook.pytest_deselected(items=dropped)
