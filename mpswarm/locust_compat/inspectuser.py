"""``locust.user.inspectuser``: the task ratios Locust's ``--show-task-ratio`` prints.

A class's share of users comes from mpswarm's own split (``runner.dispatch.class_counts``);
a task's share within its class or TaskSet from its weight, which ``tasks`` holds as repeats.
"""

from __future__ import annotations

import inspect
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from mpswarm.runner.dispatch import class_counts
from mpswarm.user.task import TaskSet
from mpswarm.user.users import User


def print_task_ratio(user_classes: Sequence[type[User]], num_users: int, total: bool) -> None:
    """Print each class's and task's share of the work, indented by nesting.

    Args:
        user_classes: the User classes of the run.
        num_users: the users to split over them (0: one per unit of weight).
        total: shares of the whole run, not of the enclosing class or TaskSet.
    """
    _print_ratios(get_ratio(user_classes, _distribution(user_classes, num_users), total))


def print_task_ratio_json(user_classes: Sequence[type[User]], num_users: int) -> None:
    """Print both views (``per_class`` and ``total``) as JSON."""
    spawned = _distribution(user_classes, num_users)
    data = {
        "per_class": get_ratio(user_classes, spawned, False),
        "total": get_ratio(user_classes, spawned, True),
    }
    print(json.dumps(data, indent=4))


def get_ratio(
    user_classes: Sequence[type[User]], user_spawned: dict[str, int], total: bool
) -> dict[str, Any]:
    """The ratio tree: ``{class: {"ratio": r, "tasks": {task: {"ratio": r, ...}}}}``.

    Args:
        user_classes: the User classes.
        user_spawned: users per class name.
        total: task ratios multiplied down from the class's share of users.

    Returns:
        Nested dicts keyed by class and task name, as Locust's ``get_ratio``.
    """
    users = sum(user_spawned.values()) or 1
    tree: dict[str, Any] = {}
    for cls in user_classes:
        ratio = user_spawned.get(cls.__name__, 0) / users
        tree[cls.__name__] = {"ratio": ratio, "tasks": _task_ratios(cls.tasks, total, ratio)}
    return tree


def _distribution(user_classes: Sequence[type[User]], num_users: int) -> dict[str, int]:
    if not num_users:
        fixed = any(getattr(cls, "fixed_count", 0) for cls in user_classes)
        weights = sum(float(cls.weight) for cls in user_classes if not cls.fixed_count)
        num_users = 1 if fixed else max(1, round(weights))
    return class_counts(list(user_classes), num_users)


def _task_ratios(tasks: Sequence[Any], total: bool, parent: float) -> dict[str, Any]:
    scale = parent if total else 1.0
    tree: dict[str, Any] = {}
    for task, count in Counter(tasks).items():
        ratio = count * scale / len(tasks)
        node: dict[str, Any] = {"ratio": ratio}
        if inspect.isclass(task) and issubclass(task, TaskSet):
            node["tasks"] = _task_ratios(task.tasks, total, ratio)
        tree[task.__name__] = node
    return tree


def _print_ratios(tree: dict[str, Any], level: int = 0) -> None:
    padding = "  " * level
    for name, node in tree.items():
        percent = f"{node.get('ratio', 1) * 100:<6.1f}"
        print(f" {padding + percent:<10} {padding + name:<50}")
        if "tasks" in node:
            _print_ratios(node["tasks"], level + 1)
