"""Make ``import locust`` resolve to mpswarm inside an mpswarm run.

The entry points call ``install()`` before importing the locustfile. A finder placed first on
``sys.meta_path`` answers for ``locust`` and the submodules locustfiles import, whether or not
the real Locust is installed, and returns mpswarm's own modules. Outside a run nothing is
installed and nothing is shadowed.

``locust``, ``locust.user`` and ``locust.contrib`` are modules of their own (``_AliasModule``)
that read through to their target: Python binds an imported submodule as an attribute of its
parent, and with ``locust`` and ``locust.user`` one object, ``import locust.user.task`` replaced
the ``task`` decorator of ``locust`` with the module.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
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
    "locust.user.inspectuser": "mpswarm.locust_compat.inspectuser",
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
    "locust.log": "mpswarm.locust_compat.log",
    "locust.argument_parser": "mpswarm.locust_compat.argument_parser",
    "locust.util": "mpswarm.locust_compat.util",
    "locust.util.load_locustfile": "mpswarm.locust_compat.util.load_locustfile",
}


# Aliases that get a module of their own: those with aliased submodules (their attributes
# would be rebound by submodule imports) and those sharing a target with another alias.
_PARENTS = {name.rpartition(".")[0] for name in ALIASES if "." in name}
_SHARED = {name for name in ALIASES if list(ALIASES.values()).count(ALIASES[name]) > 1}
_OWN_MODULE = _PARENTS | _SHARED


class _AliasModule(ModuleType):
    """A module reading through to ``target``, whose names submodule imports do not rebind.

    Like Locust's own packages, which bind ``task`` and friends before any submodule import:
    the import system's ``setattr(parent, "task", <module>)`` is ignored where the target
    defines ``task`` as something other than a module.
    """

    def __init__(self, name: str, target: ModuleType) -> None:
        super().__init__(name, target.__doc__)
        object.__setattr__(self, "_alias_target", target)

    def __getattr__(self, name: str) -> Any:
        target = self.__dict__["_alias_target"]
        try:
            return getattr(target, name)
        except AttributeError:
            submodule = f"{self.__name__}.{name}"
            if submodule in ALIASES:  # ``import locust`` then ``locust.exception``, as in Locust
                return importlib.import_module(submodule)
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType):
            current = getattr(self.__dict__["_alias_target"], name, None)
            if current is not None and not isinstance(current, ModuleType):
                return  # a submodule import must not shadow ``task``, ``wait_time``...
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self.__dict__["_alias_target"])) | set(self.__dict__))


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        target = importlib.import_module(self.target)
        return _AliasModule(spec.name, target) if spec.name in _OWN_MODULE else target

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
        spec = importlib.machinery.ModuleSpec(fullname, _AliasLoader(alias), is_package=True)
        # Where the target lives: code that locates a package by its spec (Flask's
        # ``Flask(__name__)``, ``importlib.resources``) finds mpswarm's file, not None.
        target = importlib.util.find_spec(alias)
        if target is not None and target.origin is not None:
            spec.origin = target.origin
            spec.has_location = True
        return spec


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
