"""mpswarm: run Locust-style locustfiles across every core, with honest numbers.

The names below are the locustfile API. They are imported on first use, so that
``import mpswarm`` has no side effects and the command line can monkey-patch the standard
library (gevent) before any networking module is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mpswarm._version import __version__

if TYPE_CHECKING:
    from mpswarm.api import RunResult, run
    from mpswarm.debug import run_single_user
    from mpswarm.event import events
    from mpswarm.exceptions import (
        InterruptTaskSet,
        RescheduleTask,
        RescheduleTaskImmediately,
        StopTest,
        StopUser,
    )
    from mpswarm.http.fast import FastHttpUser
    from mpswarm.protocols.grpc import GrpcUser
    from mpswarm.protocols.websocket import WebSocketUser
    from mpswarm.shape import LoadTestShape
    from mpswarm.user.markov import MarkovTaskSet, transition, transitions
    from mpswarm.user.task import SequentialTaskSet, TaskSet, tag, task
    from mpswarm.user.users import HttpUser, User
    from mpswarm.user.wait_time import between, constant, constant_pacing, constant_throughput

__all__ = [
    "FastHttpUser",
    "GrpcUser",
    "HttpUser",
    "InterruptTaskSet",
    "LoadTestShape",
    "MarkovTaskSet",
    "RescheduleTask",
    "RescheduleTaskImmediately",
    "RunResult",
    "SequentialTaskSet",
    "StopTest",
    "StopUser",
    "TaskSet",
    "User",
    "WebSocketUser",
    "__version__",
    "between",
    "constant",
    "constant_pacing",
    "constant_throughput",
    "events",
    "run",
    "run_single_user",
    "tag",
    "task",
    "transition",
    "transitions",
    "use_as_locust",
]

_WHERE = {
    "User": "mpswarm.user.users",
    "HttpUser": "mpswarm.user.users",
    "TaskSet": "mpswarm.user.task",
    "SequentialTaskSet": "mpswarm.user.task",
    "task": "mpswarm.user.task",
    "tag": "mpswarm.user.task",
    "between": "mpswarm.user.wait_time",
    "constant": "mpswarm.user.wait_time",
    "constant_pacing": "mpswarm.user.wait_time",
    "constant_throughput": "mpswarm.user.wait_time",
    "events": "mpswarm.event",
    "LoadTestShape": "mpswarm.shape",
    "FastHttpUser": "mpswarm.http.fast",
    "MarkovTaskSet": "mpswarm.user.markov",
    "transition": "mpswarm.user.markov",
    "transitions": "mpswarm.user.markov",
    "run_single_user": "mpswarm.debug",
    "run": "mpswarm.api",
    "RunResult": "mpswarm.api",
    "StopUser": "mpswarm.exceptions",
    "StopTest": "mpswarm.exceptions",
    "InterruptTaskSet": "mpswarm.exceptions",
    "RescheduleTask": "mpswarm.exceptions",
    "RescheduleTaskImmediately": "mpswarm.exceptions",
    "WebSocketUser": "mpswarm.protocols.websocket",
    "GrpcUser": "mpswarm.protocols.grpc",
}


def use_as_locust(patch: bool = True) -> None:
    """Make ``import locust`` (and ``locust.*``) resolve to mpswarm in this process.

    For scripts and test suites that use Locust as a library (``Environment``,
    ``create_local_runner()``) and should run on mpswarm unchanged: call it before they import
    ``locust``. A real Locust imported earlier is dropped from ``sys.modules``. With ``patch``
    (the default) gevent monkey-patches the standard library first, as ``import locust`` does.
    Idempotent; ``mpswarm._locust_alias.uninstall()`` undoes the alias.
    """
    if patch:
        from gevent import monkey

        if not monkey.is_module_patched("socket"):
            monkey.patch_all()
    from mpswarm import _locust_alias

    _locust_alias.install()


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mpswarm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)  # (a protocol's missing library
    # is named with its extra by its module: ``protocols.missing_extra``)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
