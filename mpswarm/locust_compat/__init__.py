"""What ``import locust`` gives inside an mpswarm run (see ``mpswarm._locust_alias``).

``locust``, ``locust.user`` and ``locust.contrib`` all resolve to this package; the other
submodules Locust users import resolve to the mpswarm modules that implement them.
"""

from __future__ import annotations

from mpswarm._version import __version__
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
from mpswarm.shape import LoadTestShape
from mpswarm.user import wait_time
from mpswarm.user.markov import MarkovTaskSet, transition, transitions
from mpswarm.user.task import SequentialTaskSet, TaskSet, tag, task
from mpswarm.user.users import HttpUser, User
from mpswarm.user.wait_time import between, constant, constant_pacing, constant_throughput

__all__ = [
    "FastHttpUser",
    "HttpUser",
    "InterruptTaskSet",
    "LoadTestShape",
    "MarkovTaskSet",
    "RescheduleTask",
    "RescheduleTaskImmediately",
    "SequentialTaskSet",
    "StopTest",
    "StopUser",
    "TaskSet",
    "User",
    "__version__",
    "between",
    "constant",
    "constant_pacing",
    "constant_throughput",
    "events",
    "run_single_user",
    "tag",
    "task",
    "transition",
    "transitions",
    "wait_time",
]


def __getattr__(name: str) -> object:
    from mpswarm.exceptions import RENAMED_CLASSES, renamed_class_error

    if name in RENAMED_CLASSES:
        raise renamed_class_error(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
