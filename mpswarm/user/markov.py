"""``MarkovTaskSet``: the next task depends on the current one (Locust's API).

Decorate tasks with ``@transition("other_task", weight)`` or ``@transitions({...})`` /
``@transitions(["a", ("b", 2)])``. The first decorated task (in declaration order) is where a
user starts; after each task the next one is drawn from its transitions by weight.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from mpswarm.user.task import NoTasksError, TaskSet, TaskSetMeta

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


class MarkovTaskSetMeta(TaskSetMeta):
    """Collects the transition graph and checks that every target exists."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        cls = super().__new__(mcs, name, bases, namespace)
        graph: dict[str, list[tuple[str, int]]] = {}
        order: list[str] = []
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if callable(value) and hasattr(value, TRANSITIONS_ATTR):
                    if attr not in graph:
                        order.append(attr)
                    graph[attr] = getattr(value, TRANSITIONS_ATTR)
        if graph:
            for source, edges in graph.items():
                for target, _ in edges:
                    if target not in graph and not callable(getattr(cls, target, None)):
                        raise TypeError(
                            f"{name}.{source} has a transition to unknown task {target!r}"
                        )
        cls._markov_graph = graph
        cls._markov_start = order[0] if order else None
        cls.tasks = [getattr(cls, attr) for attr in order]
        return cls


class MarkovTaskSet(TaskSet, metaclass=MarkovTaskSetMeta):
    """A TaskSet walking a Markov chain of its tasks."""

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
        if self._markov_current is None:
            name = type(self)._markov_start  # type: ignore[attr-defined]
        else:
            edges = graph.get(self._markov_current) or []
            if not edges:
                name = type(self)._markov_start  # type: ignore[attr-defined]
            else:
                names = [target for target, _ in edges]
                weights = [weight for _, weight in edges]
                name = random.choices(names, weights)[0]
        self._markov_current = name
        return getattr(type(self), name)
