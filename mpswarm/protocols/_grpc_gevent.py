"""grpc's gevent mode, bound to each process's own hub, through grpc's public API only.

``grpc.experimental.gevent.init_gevent()`` ties grpc to the hub of the process that calls it
(the hub's thread pool, and a greenlet that runs grpc's callbacks). mpswarm destroys the
parent's hub before it forks (``runner/_zygote._drop_event_loop``) and each worker makes its
own, so every grpc call then waited forever (seen with grpcio 1.85). The mode is bound again
in each process that uses it:

- a locustfile that turned it on at import (Locust's gRPC example imports
  ``grpc.experimental.gevent`` and calls ``init_gevent()``): in the parent once the fork server
  is forked, and in each worker after ``gevent.reinit()`` (``rebind``);
- ``GrpcUser`` turns it on in its worker, for its first user (``bind``).

Whether a locustfile turned it on is read from ``sys.modules``: grpc's own flag is private (a
global of its Cython core), and a file imports ``grpc.experimental.gevent`` to call
``init_gevent()``. ``GrpcUser`` imports that module only when it binds, in a worker.
This module imports nothing of grpc until it binds.
"""

from __future__ import annotations

import importlib
import os
import sys

_MODULE = "grpc.experimental.gevent"
#: The process whose hub this module bound grpc to (0: none yet).
_bound_in = 0


def used() -> bool:
    """Whether grpc's gevent mode is in use in this process (or the parent it was forked from)."""
    return _MODULE in sys.modules


def bind() -> None:
    """Turn grpc's gevent mode on for this process's hub, once per process."""
    global _bound_in
    if _bound_in != os.getpid():
        importlib.import_module(_MODULE).init_gevent()
        _bound_in = os.getpid()


def rebind() -> None:
    """After a fork and a new hub: bind grpc's gevent mode to it, if it was in use."""
    if used():
        bind()


__all__ = ["bind", "rebind", "used"]
