"""Dispatch arithmetic: how many users of which class run in which worker.

Pure functions, no processes: the parent calls them for every new target (start, shape tick,
recovery) and sends each worker its share through its pipe.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any


def class_counts(user_classes: Sequence[Any], total: int) -> dict[str, int]:
    """Split ``total`` users over classes: ``fixed_count`` exactly, the rest by ``weight``.

    Classes with a ``fixed_count`` get it first, in declaration order, as far as ``total``
    allows. The remaining users go to the other classes in proportion to their weights, rounded
    by largest remainder so the counts add up exactly and each is within one user of its share.

    Returns:
        Users per class name, in the classes' order.
    """
    counts = {cls.__name__: 0 for cls in user_classes}
    left = total
    for cls in user_classes:
        fixed = int(getattr(cls, "fixed_count", 0) or 0)
        if fixed > 0:
            counts[cls.__name__] = min(fixed, left)
            left -= counts[cls.__name__]
    weighted = [cls for cls in user_classes if not int(getattr(cls, "fixed_count", 0) or 0) > 0]
    weight_sum = sum(float(cls.weight) for cls in weighted)
    if left <= 0 or not weighted or weight_sum <= 0:
        return counts
    shares = [(cls, left * float(cls.weight) / weight_sum) for cls in weighted]
    for cls, share in shares:
        counts[cls.__name__] = math.floor(share)
    missing = left - sum(math.floor(share) for _, share in shares)
    # Largest remainder first; ties go to the class declared first (stable sort).
    by_remainder = sorted(shares, key=lambda item: -(item[1] - math.floor(item[1])))
    for cls, _ in by_remainder[:missing]:
        counts[cls.__name__] += 1
    return counts


def dispatch_users(counts: dict[str, int], workers: int) -> list[dict[str, int]]:
    """Spread per-class user counts over ``workers`` workers.

    Every class is split as evenly as possible, and the odd users go round-robin continuing
    from where the previous class stopped, so worker totals differ by at most one as well.

    Returns:
        One ``{class name: users}`` per worker; the sums per class equal ``counts``.
    """
    if workers < 1:
        raise ValueError("at least one worker is needed")
    shares = [dict.fromkeys(counts, 0) for _ in range(workers)]
    cursor = 0
    for name, count in counts.items():
        base, extra = divmod(count, workers)
        for share in shares:
            share[name] = base
        for step in range(extra):
            shares[(cursor + step) % workers][name] += 1
        cursor = (cursor + extra) % workers
    return shares


def split_spawn_rate(rate: float, shares: list[dict[str, int]]) -> list[float]:
    """Give each worker a spawn rate in proportion to its users, so all finish ramping together.

    The rates add up to ``rate``. A worker without users gets an equal part (it only stops).
    """
    totals = [sum(share.values()) for share in shares]
    grand = sum(totals)
    if grand == 0:
        return [rate / len(shares)] * len(shares)
    return [rate * t / grand if t else rate / len(shares) for t in totals]


def spawn_order(deficits: dict[str, int]) -> Iterator[str]:
    """Interleave the users to start so each class ramps up in proportion (smooth ramp).

    ``{"A": 3, "B": 1}`` gives ``A, B, A, A``-like orders: at every prefix, each class has
    started about its share. Lazy: the time and memory it takes are those of the users
    actually started, whatever the target (a shape may ask for ``sys.maxsize``).
    """
    total = sum(max(0, n) for n in deficits.values())
    started = dict.fromkeys(deficits, 0)
    for step in range(1, total + 1):
        # The class furthest behind its proportional share at this step goes next.
        name = max(
            (n for n in deficits if started[n] < deficits[n]),
            key=lambda n: deficits[n] * step / total - started[n],
        )
        started[name] += 1
        yield name


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares differing by at most one, larger shares first."""
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]
