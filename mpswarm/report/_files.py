"""Report files: checked before a run sends anything, written at its end so that one that
fails does not cost the others."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable
from typing import TextIO

from mpswarm.config import RunConfig
from mpswarm.exceptions import UsageError

#: What ``--csv PREFIX`` adds to the prefix (report/csv_report.py writes them).
CSV_SUFFIXES = ("_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv")


def check_report_paths(config: RunConfig) -> None:
    """Every report file of ``config`` can be written: its folder exists and is writable, and
    the path is not a folder. Nothing is created.

    Raises:
        UsageError: the first report that could not be written, naming the option and path.
    """
    for option, path in (
        ("--json-file", config.json_file),
        ("--html", config.html_file),
        ("--junit", config.junit_file),
        ("--summary-file", config.summary_file),
        ("--hdr-log", config.hdr_log),
    ):
        if path:
            _check_file(option, path, path)
    if config.csv_prefix:
        for suffix in CSV_SUFFIXES:
            _check_file("--csv", config.csv_prefix, config.csv_prefix + suffix)


def check_report_path(option: str, path: str) -> None:
    """``path`` can be written (see check_report_paths); UsageError naming ``option`` if not."""
    _check_file(option, path, path)


def _check_file(option: str, shown: str, path: str) -> None:
    folder = os.path.dirname(path) or "."
    problem = None
    if not os.path.isdir(folder):
        exists = os.path.exists(folder)
        problem = f"{folder} is not a folder" if exists else f"the folder {folder} does not exist"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = f"the folder {folder} is not writable"
    elif os.path.isdir(path):
        problem = "it is a folder, give a file name" if path == shown else f"{path} is a folder"
    elif os.path.exists(path) and not os.access(path, os.W_OK):
        problem = f"the file {path} is not writable"
    if problem is not None:
        raise UsageError(f"cannot write {option} {shown}: {problem}")


def write_report_file(path: str, write: Callable[[TextIO], None]) -> str | None:
    """Write one report to ``path`` with ``write(stream)``, atomically (see ``write_atomically``).

    Returns:
        None when written, else why not (e.g. ``No space left on device``).
    """
    try:
        write_atomically(path, write)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def write_atomically(
    path: str, write: Callable[[TextIO], None], newline: str | None = None
) -> None:
    """Write a file with ``write(stream)`` into a temporary file beside ``path``, then rename
    it over ``path``: a reader sees the old file or the whole new one, and a write that fails
    (a full disk) leaves neither half a file nor the temporary one.

    Raises:
        OSError: the file could not be written (``path`` is then as it was).
    """
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.{next(_serial)}.tmp")
    # O_EXCL: never through a link someone left there; 0o666 and the umask, as open() makes it.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


_serial = itertools.count()
