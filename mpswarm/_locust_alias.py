"""Make ``import locust`` resolve to mpswarm inside an mpswarm run.

The entry points call ``install()`` before importing the locustfile. A finder placed first on
``sys.meta_path`` answers for ``locust`` and the submodules locustfiles import, whether or not
the real Locust is installed, and returns mpswarm's own modules. Outside a run nothing is
installed and nothing is shadowed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

ALIASES = {
    "locust": "mpswarm.locust_compat",
    "locust.user": "mpswarm.locust_compat",
    "locust.user.users": "mpswarm.locust_compat",
    "locust.user.task": "mpswarm.user.task",
    "locust.user.wait_time": "mpswarm.user.wait_time",
    "locust.user.sequential_taskset": "mpswarm.user.task",
    "locust.user.markov_taskset": "mpswarm.user.markov",
    "locust.env": "mpswarm.env",
    "locust.runners": "mpswarm.runner.base",
    "locust.exception": "mpswarm.exceptions",
    "locust.event": "mpswarm.event",
    "locust.clients": "mpswarm.http.session",
    "locust.contrib": "mpswarm.locust_compat",
    "locust.contrib.fasthttp": "mpswarm.http.fast",
    "locust.stats": "mpswarm.stats.locust_view",
    "locust.shape": "mpswarm.shape",
    "locust.debug": "mpswarm.debug",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The target module is already executed."""


class LocustAliasFinder(importlib.abc.MetaPathFinder):
    """Answers imports of ``locust`` and ``locust.*`` with mpswarm modules."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "locust" and not fullname.startswith("locust."):
            return None
        alias = ALIASES.get(fullname)
        if alias is None:
            raise ModuleNotFoundError(
                f"mpswarm does not provide {fullname!r} (it provides: "
                f"{', '.join(sorted(ALIASES))})",
                name=fullname,
            )
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(alias), is_package=True)


_FINDER = LocustAliasFinder()


def install() -> None:
    """Shadow ``locust`` with mpswarm for the rest of this process (idempotent)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    for name in [n for n in sys.modules if n == "locust" or n.startswith("locust.")]:
        del sys.modules[name]  # a real Locust imported earlier must not leak in


def uninstall() -> None:
    """Undo ``install()``."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n in sys.modules if n == "locust" or n.startswith("locust.")]:
        del sys.modules[name]
