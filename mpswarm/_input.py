"""Files given as input (an access log to replay, reports to compare): read as hostile.

A path may name a FIFO, which blocks an ``open`` until a writer comes, or a device such as
``/dev/zero``, which never ends: only a regular file is read, and it is opened without
blocking to find out which it is.
"""

from __future__ import annotations

import os
import stat
from typing import IO

from mpswarm.exceptions import UsageError

_KINDS = (
    (stat.S_ISFIFO, "a FIFO or pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def open_regular(path: str, max_bytes: int | None = None) -> IO[bytes]:
    """``path`` opened for reading in binary, checked to be a regular file first.

    Args:
        path: the file.
        max_bytes: refuse a file larger than this (None: any size).

    Raises:
        UsageError: it cannot be read, is no regular file, or is larger than ``max_bytes``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd)
        for test, kind in _KINDS:
            if test(mode.st_mode):
                raise UsageError(f"cannot read {path}: it is {kind}, not a regular file")
        if max_bytes is not None and mode.st_size > max_bytes:
            raise UsageError(
                f"cannot read {path}: {mode.st_size} bytes, more than the {max_bytes // 2**20} "
                "MiB this reads"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
