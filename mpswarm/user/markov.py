"""``MarkovTaskSet``: the next task depends on the current one (Locust's API).

Decorate tasks with ``@transition("other_task", weight)`` or ``@transitions({...})`` /
``@transitions(["a", ("b", 2)])``. The first decorated task (in declaration order) is where a
user starts; after each task the next one is drawn from its transitions by weight.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from mpswarm.exceptions import LocustError
from mpswarm.user.task import TAG_ATTR, NoTasksError, TaskSet, TaskSetMeta

logger = logging.getLogger(__name__)

TRANSITIONS_ATTR = "locust_transitions"


def transition(target: str, weight: int = 1) -> Callable[[Callable[..., Any]], Any]:
    """Add a transition from the decorated task to the task named ``target``."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        found: list[tuple[str, int]] = list(getattr(func, TRANSITIONS_ATTR, []))
        found.append((target, int(weight)))
        setattr(func, TRANSITIONS_ATTR, found)
        return func

    return decorate


def transitions(targets: dict[str, int] | list[Any]) -> Callable[[Callable[..., Any]], Any]:
    """Add several transitions: a dict name -> weight, or a list of names or (name, weight)."""
    items = targets.items() if isinstance(targets, dict) else targets

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for item in items:
            name, weight = item if isinstance(item, tuple) else (item, 1)
            transition(name, weight)(func)
        return func

    return decorate


class NoMarkovTasksError(LocustError):
    """A MarkovTaskSet without ``@transition(s)`` tasks (Locust's error of that name)."""


class InvalidTransitionError(LocustError):
    """A transition to a name the MarkovTaskSet does not define."""


class NonMarkovTaskTransitionError(LocustError):
    """A transition to a task that has no transitions of its own."""


class MarkovTaskTagError(LocustError):
    """A Markov task with ``@tag``: tags could cut the chain."""


class MarkovTaskSetMeta(TaskSetMeta):
    """Collects the transition graph and checks it, with Locust's errors and warning.

    A class that sets ``abstract = True`` in its body is a base class and is not checked.
    """

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        abstract = bool(namespace.get("abstract", False))
        namespace.setdefault("abstract", False)
        cls = super().__new__(mcs, name, bases, namespace)
        graph: dict[str, list[tuple[str, int]]] = {}
        order: list[str] = []
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if callable(value) and hasattr(value, TRANSITIONS_ATTR):
                    if attr not in graph:
                        order.append(attr)
                    graph[attr] = getattr(value, TRANSITIONS_ATTR)
        if not abstract:
            _check_chain(cls, name, graph, order)
        cls._markov_graph = graph
        cls._markov_start = order[0] if order else None
        # Each task's targets, repeated by weight: one uniform draw picks the next (the same
        # draws as Locust's, so a seeded random walks the same chain).
        cls._markov_next = {
            source: [target for target, weight in edges for _ in range(max(weight, 0))]
            for source, edges in graph.items()
        }
        cls.tasks = [getattr(cls, attr) for attr in order]
        return cls


def _check_chain(
    cls: type, name: str, graph: dict[str, list[tuple[str, int]]], order: list[str]
) -> None:
    if not graph:
        raise NoMarkovTasksError(
            f"No Markov tasks defined in class {name}. Use the @transition(s) decorators to "
            "define some."
        )
    for source, edges in graph.items():
        if source == "run":
            raise LocustError(
                "TaskSet.run() is a method used internally by Locust, and you must not "
                "override it or annotate it with transitions"
            )
        tags = getattr(getattr(cls, source), TAG_ATTR, None)
        if tags:
            raise MarkovTaskTagError(
                "Tags are unsupported for MarkovTaskSet since they can make the markov chain "
                f"invalid. Tags detected on {name}.{source}: {tags}"
            )
        for target, _ in edges:
            if target in graph:
                continue
            if getattr(cls, target, None) is None:
                raise InvalidTransitionError(
                    f"Transition to {target} from {source} is invalid since no such element "
                    f"exists on class {name}"
                )
            raise NonMarkovTaskTransitionError(
                f"{name}.{target} cannot be used as a target for a transition since it does "
                f"not define any transitions of its own. Used as a transition from {source}."
            )
    reachable: set[str] = set()
    pending = [order[0]]
    while pending:
        current = pending.pop()
        if current not in reachable:
            reachable.add(current)
            pending.extend(target for target, weight in graph[current] if weight > 0)
    unreachable = [task for task in order if task not in reachable]
    if unreachable:
        logger.warning(
            "The following markov tasks are unreachable in class %s: %s", name, unreachable
        )


class MarkovTaskSet(TaskSet, metaclass=MarkovTaskSetMeta):
    """A TaskSet walking a Markov chain of its tasks."""

    abstract = True

    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self._markov_current: str | None = None

    def get_next_task(self) -> Any:
        graph = type(self)._markov_graph  # type: ignore[attr-defined]
        if not graph:
            raise NoTasksError(
                f"No Markov tasks defined on {type(self).__name__}. Use the @transition(s) "
                "decorators to define some"
            )
        cls = type(self)
        name = self._markov_current or cls._markov_start  # type: ignore[attr-defined]
        following = cls._markov_next[name]  # type: ignore[attr-defined]
        # A task whose transitions all weigh 0 leads back to the start.
        self._markov_current = random.choice(following) if following else None
        return getattr(cls, name)
