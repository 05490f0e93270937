"""Option values from configuration files: ``[tool.mpswarm]`` in pyproject.toml and
``mpswarm.conf``. The command line and ``MPSWARM_*`` environment variables override them."""

from __future__ import annotations

import os
import sys
from typing import Any

from mpswarm.exceptions import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONF_FILE = "mpswarm.conf"


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


def read_pyproject(path: str) -> dict[str, Any]:
    """The ``[tool.mpswarm]`` table of a pyproject.toml, or {} when it has none."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({_where(exc)})") from None
    table = data.get("tool", {}).get("mpswarm", {})
    return dict(table) if isinstance(table, dict) else {}


def _where(exc: UnicodeDecodeError) -> str:
    """Where a file's bytes stopped being UTF-8: its line and the byte, for the error line."""
    data = exc.object
    line = data.count(b"\n", 0, exc.start) + 1
    return f"line {line}, byte 0x{data[exc.start]:02x}"


def find_config_values(explicit: str | None, directory: str = ".") -> tuple[dict[str, Any], str]:
    """Merge pyproject.toml < mpswarm.conf < ``explicit`` (the --config file).

    Returns:
        The values by option name, and a description of where they came from.
    """
    merged: dict[str, Any] = {}
    sources = []
    pyproject = os.path.join(directory, "pyproject.toml")
    if os.path.isfile(pyproject):
        found = read_pyproject(pyproject)
        if found:
            merged.update(found)
            sources.append(pyproject)
    conf = os.path.join(directory, CONF_FILE)
    if os.path.isfile(conf):
        merged.update(read_conf(conf))
        sources.append(conf)
    if explicit:
        merged.update(
            read_conf(explicit) if not explicit.endswith(".toml") else read_pyproject(explicit)
        )
        sources.append(explicit)
    return merged, ", ".join(sources)


def to_default_map(values: dict[str, Any], known: dict[str, bool], source: str) -> dict[str, Any]:
    """Turn config values into click's ``default_map``.

    Args:
        values: raw values by option name (dashes or underscores).
        known: option names (underscored) to whether the option takes several values.
        source: where the values came from, for error messages.

    Raises:
        UsageError: an unknown option name.
    """
    result: dict[str, Any] = {}
    for key, value in values.items():
        name = key.strip().lstrip("-").replace("-", "_")
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
