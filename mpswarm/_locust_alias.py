"""Make ``import locust`` resolve to mpswarm inside an mpswarm run.

The entry points call ``install()`` before importing the locustfile. A finder placed first on
``sys.meta_path`` answers for ``locust`` and the submodules locustfiles import, whether or not
the real Locust is installed, and returns mpswarm's own modules. Outside a run nothing is
installed and nothing is shadowed.

``locust``, ``locust.user`` and ``locust.contrib`` are modules of their own (``_AliasModule``)
that read through to their target: Python binds an imported submodule as an attribute of its
parent, and with ``locust`` and ``locust.user`` one object, ``import locust.user.task`` replaced
the ``task`` decorator of ``locust`` with the module.

Locust's contrib modules (``locust.contrib.mqtt``, ``.socketio``, ``.csv_request_logger`` ...)
other than ``fasthttp`` are Locust's own code, run from where Locust is installed: the finder
locates the file without importing the real ``locust`` package and executes it as
``locust.contrib.<name>``, so the ``from locust import ...`` lines in it come back here.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
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
    """Answers imports of ``locust`` and ``locust.*`` with mpswarm modules, and those of
    Locust's contrib modules with the installed Locust's files."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "locust" and not fullname.startswith("locust."):
            return None
        alias = ALIASES.get(fullname)
        if alias is None and fullname.startswith(_CONTRIB):
            return _installed_contrib_spec(fullname, path)
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


_CONTRIB = "locust.contrib."


def _installed_contrib_spec(
    fullname: str, path: Sequence[str] | None
) -> importlib.machinery.ModuleSpec | None:
    """The spec of the installed Locust's ``fullname``, found without importing Locust.

    Raises:
        ModuleNotFoundError: Locust is not installed, or the installed one lacks the module.
    """
    if fullname.count(".") > 2:  # inside a contrib package: its parent is Locust's already
        return importlib.machinery.PathFinder.find_spec(fullname, path)
    # PathFinder only looks: the real ``locust/__init__.py`` (which monkey-patches at import)
    # never runs, and the spec found carries the module's real file.
    find = importlib.machinery.PathFinder.find_spec
    locust = find("locust")
    if locust is None or not locust.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{fullname} is Locust's own module, which mpswarm runs from an installed Locust, "
            "and Locust is not installed: pip install locust",
            name=fullname,
        )
    contrib = find("locust.contrib", list(locust.submodule_search_locations))
    spec = None
    if contrib is not None and contrib.submodule_search_locations:
        spec = find(fullname, list(contrib.submodule_search_locations))
    if spec is None:
        raise ModuleNotFoundError(
            f"the installed Locust ({_locust_version()}) has no {fullname}: "
            "pip install --upgrade locust, or check the name",
            name=fullname,
        )
    return spec


def _locust_version() -> str:
    try:
        return f"version {importlib.metadata.version('locust')}"
    except importlib.metadata.PackageNotFoundError:
        return "version unknown"


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
