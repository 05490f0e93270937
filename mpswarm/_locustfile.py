"""Import a locustfile and find its User and LoadTestShape classes."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import logging
import os
import sys
import traceback
import urllib.parse
from types import ModuleType
from typing import Any

from mpswarm.exceptions import LocustfileError, UsageError
from mpswarm.shape import LoadTestShape
from mpswarm.user.task import TaskSet, is_taskset_class
from mpswarm.user.users import HttpUser, User

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Locustfile:
    """What a locustfile defines."""

    path: str
    module: ModuleType
    user_classes: dict[str, type[User]]
    shape_classes: dict[str, type[LoadTestShape]]


#: What ``-f`` named (its files' absolute paths, comma-separated) -> the run's classes.
_LOADED: dict[str, Locustfile] = {}
#: Each file imported (absolute path) -> its own classes.
_FILES: dict[str, Locustfile] = {}


def load_locustfile(path: str) -> Locustfile:
    """Import the locustfile(s) ``path`` names once in this process (later calls reuse them).

    As Locust's ``-f``: a file, a directory (its ``.py`` files, those under it included, but
    not ones whose name starts with ``_``), or a comma-separated list of them; the User and
    LoadTestShape classes of every file are the run's.

    Raises:
        LocustfileError: missing file, import failure (with file:line), or no User class.
    """
    paths = locustfile_paths(path)
    key = ",".join(os.path.abspath(file) for file in paths)
    known = _LOADED.get(key)
    if known is not None:
        return known
    files = [_import_one(file) for file in paths]
    users = {name: cls for file in files for name, cls in file.user_classes.items()}
    shapes = {name: cls for file in files for name, cls in file.shape_classes.items()}
    if not users:
        raise LocustfileError(
            f"no User class found in {path}: define a class that subclasses User or HttpUser"
        )
    loaded = dataclasses.replace(files[0], user_classes=users, shape_classes=shapes)
    if len(files) > 1:
        loaded = dataclasses.replace(loaded, path=path)
    _LOADED[key] = loaded
    return loaded


def locustfile_paths(spec: str) -> list[str]:
    """The files ``-f`` names (see ``load_locustfile``), in order.

    Raises:
        LocustfileError: a name that is neither a file nor a directory, or a directory
            without a ``.py`` file.
    """
    found: list[str] = []
    for part in (item.strip() for item in spec.split(",")):
        if not part:
            continue
        if os.path.isdir(part):
            inside = sorted(
                os.path.join(root, name)
                for root, _dirs, names in os.walk(part)
                for name in names
                if name.endswith(".py") and not name.startswith("_")
            )
            if not inside:
                raise LocustfileError(f"no locustfile (.py) in the directory {part!r}")
            found.extend(inside)
        elif not os.path.exists(part) and os.path.isfile(part + ".py"):
            found.append(part + ".py")
        elif os.path.isfile(part):
            found.append(part)
        else:
            raise LocustfileError(f"locustfile {part!r} not found: pass -f PATH to a locustfile")
    if not found:
        raise LocustfileError("no locustfile given: pass -f PATH to a locustfile")
    return found


def _import_one(path: str) -> Locustfile:
    """One file of ``-f``, imported once (its classes, maybe none)."""
    full = os.path.abspath(path)
    known = _FILES.get(full)
    if known is not None:
        return known
    directory = os.path.dirname(full)
    # As Locust: the working directory and the locustfile's own are importable, the latter
    # first (a project's `common` package imported by locustfiles in a folder of their own,
    # run from the project's root; the console script's sys.path[0] is its bin folder).
    package, root = _package_of(directory)
    for folder in (root, os.getcwd(), directory):
        if folder is not None and folder not in sys.path:
            sys.path.insert(0, folder)
    name = os.path.splitext(os.path.basename(full))[0]
    # In a package (a folder with __init__.py, as `-f shop/` names one), the file is also its
    # package's module, so its relative imports (`from .common import X`) work; Locust's bare
    # name stays an alias of the same module object, so `import browse` gets no second copy.
    qualified = f"{package}.{name}" if package else name
    try:
        if package:
            importlib.import_module(package)
        module = _imported_already(qualified, full) if package else None
        if module is None:  # (a sibling imported it first: not run twice)
            spec = importlib.util.spec_from_file_location(qualified, full)
            if spec is None or spec.loader is None:
                raise LocustfileError(f"cannot import {path!r}: it is not a Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = sys.modules[qualified] = module
            spec.loader.exec_module(module)
        else:
            sys.modules[name] = module
    except LocustfileError:
        raise
    except SyntaxError as exc:
        where = f"{path}:{exc.lineno}" if exc.lineno else path
        raise LocustfileError(f"{where}: SyntaxError: {exc.msg}") from exc
    except SystemExit as exc:
        # Left alone, this would end mpswarm with the locustfile's code and no word (and 3
        # means "a check failed").
        raise LocustfileError(
            f"{_import_location(exc, full, path)}: the locustfile called "
            f"sys.exit({'' if exc.code is None else repr(exc.code)}) while being imported"
        ) from exc
    except Exception as exc:
        raise LocustfileError(
            f"{_import_location(exc, full, path)}: importing the locustfile failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    users = {
        value.__name__: value
        for value in vars(module).values()
        if inspect.isclass(value) and issubclass(value, User) and not value.abstract
    }
    shapes = {
        value.__name__: value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, LoadTestShape)
        and value is not LoadTestShape
        and not getattr(value, "abstract", False)
    }
    loaded = Locustfile(path=path, module=module, user_classes=users, shape_classes=shapes)
    _FILES[full] = loaded
    return loaded


def _imported_already(qualified: str, full: str) -> ModuleType | None:
    """The module ``qualified`` when it is already imported from the file ``full``."""
    module = sys.modules.get(qualified)
    file = getattr(module, "__file__", None)
    return module if file and os.path.abspath(file) == full else None


def _package_of(directory: str) -> tuple[str | None, str | None]:
    """The dotted name of the package ``directory`` is (folders with ``__init__.py``, up to
    the outermost), and the folder that holds that outermost one; ``(None, None)`` outside
    a package."""
    parts: list[str] = []
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, part = os.path.split(directory)
        if not part.isidentifier():
            return None, None  # not importable by name: a plain folder of locustfiles
        parts.insert(0, part)
    return (".".join(parts), directory) if parts else (None, None)


def _import_location(exc: BaseException, full: str, shown: str) -> str:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == full:
            line = frame.lineno
    return f"{shown}:{line}" if line else shown


def select_classes(
    locustfile: Locustfile, names: tuple[str, ...]
) -> tuple[list[type[User]], type[LoadTestShape] | None]:
    """The User classes and the LoadTestShape named on the command line.

    Without User class names, all User classes run. A single LoadTestShape in the locustfile
    is used automatically, as in Locust; with several, one must be named.

    Raises:
        UsageError: an unknown name, or several shapes and none named.
    """
    users, shapes = locustfile.user_classes, locustfile.shape_classes
    chosen: list[type[User]] = []
    picked_shapes = []
    for name in names:
        if name in users:
            chosen.append(users[name])
        elif name in shapes:
            picked_shapes.append(shapes[name])
        else:
            known = ", ".join(sorted([*users, *shapes]))
            raise UsageError(f"unknown User class {name!r} (the locustfile defines: {known})")
    if len(picked_shapes) > 1:
        raise UsageError("name at most one LoadTestShape class")
    if not picked_shapes and len(shapes) > 1:
        raise UsageError(
            f"the locustfile defines several LoadTestShape classes ({', '.join(sorted(shapes))}):"
            " name the one to use on the command line"
        )
    shape = picked_shapes[0] if picked_shapes else next(iter(shapes.values()), None)
    return (chosen or list(users.values())), shape


#: What an HttpUser's host starts with.
HTTP_SCHEMES: tuple[str, ...] = HttpUser._host_schemes


def check_host_url(url: str, source: str, schemes: tuple[str, ...] = HTTP_SCHEMES) -> None:
    """A base URL must be ``SCHEME://HOST[:PORT][/path]`` with a port in 1-65535.

    Args:
        url: the URL to check.
        source: where it came from, for the message (``-H/--host``, ``ShopUser.host``).
        schemes: the schemes the user class takes (``http``, ``https`` for HttpUser); ``""``
            among them: a bare ``HOST:PORT`` is taken too (gRPC's, as in Locust's example).

    Raises:
        UsageError: the URL is not usable, with the reason.
    """
    problem = _host_problem(url, schemes)
    if problem is not None:
        raise UsageError(f"invalid host {url!r} ({source}): {problem}")


def host_schemes(cls: type) -> tuple[str, ...] | None:
    """The schemes a user class's host may have (``User._host_schemes``), or None when its
    host is its own client's business (an MQTT broker's name), as in Locust: not checked."""
    return getattr(cls, "_host_schemes", None)


def _host_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    named = [scheme for scheme in schemes if scheme]
    if "" in schemes and "://" not in url:
        url = f"{named[0]}://{url}"  # a bare HOST:PORT
    if not url.startswith(tuple(f"{scheme}://" for scheme in named)):
        return f"it must start with {' or '.join(f'{scheme}://' for scheme in named)}"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unclosed [
        return f"not a valid URL ({exc})"
    if not parts.hostname:
        return f"no host name after the scheme, e.g. {named[0]}://127.0.0.1:8080"
    try:
        port = parts.port
    except ValueError:  # out of range, or not a number
        port = -1
    if port is not None and not 1 <= port <= 65535:
        after = parts.netloc.rpartition(":")[2]
        return f"the port must be a number from 1 to 65535, not {after!r}"
    if any(char.isspace() for char in parts.netloc):
        return "the host name contains a space"
    return None


def check_given_host(classes: list[type[User]], host: str, source: str) -> None:
    """A host given for every class (``-H``, the web form's) must suit each class it is for.

    Raises:
        UsageError: the host is not usable by one of the classes (or, when no class checks its
            host, not an http(s) URL).
    """
    checked = [(cls, schemes) for cls in classes if (schemes := host_schemes(cls)) is not None]
    if not checked:
        check_host_url(host, source)
    for cls, schemes in checked:
        shown = source if len(checked) == 1 else f"{source}, for {cls.__name__}"
        check_host_url(host, shown, schemes)


def check_hosts(classes: list[type[User]], host: str | None) -> None:
    """Every HttpUser (every class with ``_host_schemes``) needs a valid host, from -H or the
    class.

    The host of another kind of user (an MQTT broker's name, a database's address) is its
    client's business, as in Locust: it is not checked.

    Raises:
        UsageError: a class has no usable host.
    """
    if host:
        check_given_host(classes, host, "-H/--host")
        return
    for cls in classes:
        schemes = host_schemes(cls)
        if schemes is None:
            continue
        if not cls.host:
            raise UsageError(
                f"no host for {cls.__name__}: pass -H/--host {schemes[0]}://HOST:PORT or set "
                "host on the class"
            )
        if schemes == HTTP_SCHEMES and "://" not in cls.host:
            # Locust runs it: a locustfile that builds absolute URLs from its host works, and a
            # relative request raises requests' MissingSchema naming the URL, as there.
            logger.warning("%s.host %r has no scheme: a request to a relative path will fail; "
                           "absolute URLs work", cls.__name__, cls.host)  # fmt: skip
        else:
            check_host_url(cls.host, f"{cls.__name__}.host", schemes)


def check_tasks(classes: list[type[User]]) -> None:
    """Every User class to run, and every TaskSet it can reach, needs a task (as in Locust).

    Without one, a user would pick a task, fail, and pick again, at full CPU.

    Raises:
        UsageError: the first class or TaskSet without tasks.
    """
    for cls in classes:
        if cls.run is not User.run:  # a user that runs its own loop needs no tasks
            continue
        if not cls.tasks:
            raise UsageError(
                f"User class {cls.__name__} has no tasks (add @task methods or a tasks list)"
            )
        _check_taskset_tasks(cls, cls.tasks, set())


def _check_taskset_tasks(user: type[User], tasks: list[Any], seen: set[type]) -> None:
    for item in tasks:
        if not is_taskset_class(item) or item in seen:
            continue
        seen.add(item)
        if item.run is TaskSet.run and not item.tasks:
            raise UsageError(
                f"TaskSet {item.__name__} (reached from User class {user.__name__}) has no "
                "tasks (add @task methods or a tasks list)"
            )
        _check_taskset_tasks(user, item.tasks, seen)
