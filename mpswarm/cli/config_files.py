"""Option values from configuration files, Locust's and mpswarm's: ``~/.locust.conf``,
``locust.conf``, ``[tool.locust]`` in pyproject.toml (read as Locust reads them, in that
order), then ``[tool.mpswarm]`` and ``mpswarm.conf``, then ``--config``; each overrides the
ones before. The environment (``LOCUST_*``, ``MPSWARM_*``: ``locust_envvars``) and the command
line override them all."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from mpswarm.cli.options import CONFIG_KEYS
from mpswarm.exceptions import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONF_FILE = "mpswarm.conf"
#: Locust's configuration files, in its order (each overrides the ones before).
LOCUST_FILES = ("~/.locust.conf", "locust.conf")


@dataclasses.dataclass(frozen=True)
class ConfigValues:
    """What the configuration files say.

    Attributes:
        values: option values by name, as written (dashes or underscores).
        source: the files they came from, for messages.
        locust_only: names that only Locust's files set: one mpswarm has no option for is
            skipped with a warning (``master``...), not refused.
        locust_source: Locust's files that gave values.
        notes: where mpswarm's files and Locust's set one option differently, which wins.
    """

    values: dict[str, Any]
    source: str
    locust_only: frozenset[str] = frozenset()
    locust_source: str = ""
    notes: tuple[str, ...] = ()


def read_conf(path: str) -> dict[str, Any]:
    """Read ``key = value`` lines (``#`` comments, an optional ``[mpswarm]`` header).

    Raises:
        UsageError: the file is missing or a line is not ``key = value``.
    """
    try:
        with open(path, "rb") as handle:  # decoded whole: an error's position is the file's
            lines = handle.read().decode("utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read config file {path!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({_where(exc)})") from None
    values: dict[str, Any] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line or (line.startswith("[") and line.endswith("]")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise UsageError(f"{path}:{number}: expected 'option = value', got {raw.strip()!r}")
        values[key.strip()] = value.strip().strip("\"'")
    return values


def read_pyproject(path: str, tool: str = "mpswarm") -> dict[str, Any]:
    """The ``[tool.<tool>]`` table of a pyproject.toml, or {} when it has none."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({_where(exc)})") from None
    table = data.get("tool", {}).get(tool, {})
    return dict(table) if isinstance(table, dict) else {}


def _where(exc: UnicodeDecodeError) -> str:
    """Where a file's bytes stopped being UTF-8: its line and the byte, for the error line."""
    data = exc.object
    line = data.count(b"\n", 0, exc.start) + 1
    return f"line {line}, byte 0x{data[exc.start]:02x}"


def find_config_values(explicit: str | None, directory: str = ".") -> ConfigValues:
    """Merge Locust's files < ``[tool.mpswarm]`` < mpswarm.conf < ``explicit`` (--config)."""
    pyproject = os.path.join(directory, "pyproject.toml")
    locust_sources = [
        *((os.path.expanduser(name) if name.startswith("~") else os.path.join(directory, name),
           read_conf) for name in LOCUST_FILES),
        (pyproject, lambda path: read_pyproject(path, "locust")),
    ]  # fmt: skip
    ours = [(pyproject, read_pyproject), (os.path.join(directory, CONF_FILE), read_conf)]
    if explicit:
        ours.append((explicit, read_conf if not explicit.endswith(".toml") else read_pyproject))
    locust, sources = _merge(locust_sources, must_exist=None)
    mpswarm, more = _merge(ours, must_exist=explicit)
    keys = {_option(key): key for key in mpswarm}  # each option's key in mpswarm's files
    notes = tuple(
        f"{keys[_option(key)]} = {mpswarm[keys[_option(key)]]} from "
        f"{more[-1] if len(more) == 1 else 'mpswarm files'} "
        f"wins over {key} = {locust[key]} from {', '.join(sources)}"
        for key in sorted(locust)
        if _option(key) in keys and str(locust[key]) != str(mpswarm[keys[_option(key)]])
    )
    locust_only = {key: value for key, value in locust.items() if _option(key) not in keys}
    return ConfigValues(
        values={**locust_only, **mpswarm},
        source=", ".join(sources + more),
        locust_only=frozenset(locust_only),
        locust_source=", ".join(sources),
        notes=notes,
    )


def _merge(
    sources: Iterable[tuple[str, Any]], must_exist: str | None
) -> tuple[dict[str, Any], list[str]]:
    """The values of the files that exist (and of ``must_exist``, which fails if missing),
    each overriding the ones before; and the files that gave some."""
    merged: dict[str, Any] = {}
    used = []
    for path, read in sources:
        if path != must_exist and not os.path.isfile(path):
            continue
        found = read(path)
        for key, value in found.items():
            # One key an option: another spelling of it before (run-time, run_time; csv,
            # csv_prefix) is overridden, not left beside it to win by its place in the dict.
            for spelling in [k for k in merged if _option(k) == _option(key)]:
                del merged[spelling]
            merged[key] = value
        if found:
            used.append(path)
    return merged, used


def _option(key: str) -> str:
    """The option a key sets, by the run command's table (a locustfile's own: the key)."""
    return option_name(key, CONFIG_KEYS)


def option_name(key: str, aliases: Mapping[str, str]) -> str:
    """The name of the option a configuration-file key sets (``run-time``: run_time, ``csv``
    with ``aliases`` {"csv": "csv_prefix"}: csv_prefix)."""
    name = key.strip().lstrip("-").replace("-", "_")
    return aliases.get(name, name)


def to_default_map(
    values: dict[str, Any],
    known: dict[str, bool],
    source: str,
    locust_only: Iterable[str] = (),
    warn: Any = None,
    locust_source: str = "",
    aliases: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Turn config values into click's ``default_map``.

    Args:
        values: raw values by option name (dashes or underscores).
        known: option names (underscored) to whether the option takes several values.
        source: where the values came from, for error messages.
        locust_only: names only Locust's files set: unknown ones are skipped, with ``warn``.
        warn: called with one line for each skipped name.
        locust_source: Locust's files, for that line.
        aliases: keys (underscored) that name an option by another of its names.

    Raises:
        UsageError: an unknown option name in mpswarm's files.
    """
    result: dict[str, Any] = {}
    lenient = set(locust_only)
    for key, value in values.items():
        name = option_name(key, aliases or {})
        if name not in known and key in lenient:
            if warn is not None:
                warn(f"Locust's option {key!r} ({locust_source or source}) has no meaning "
                     "for mpswarm: ignored")  # fmt: skip
            continue
        if name not in known:
            raise UsageError(f"unknown option {key!r} in {source}")
        if known[name]:
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            result[name] = list(value)
        elif isinstance(value, bool):
            result[name] = value
        else:
            result[name] = str(value)
    return result
