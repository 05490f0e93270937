from __future__ import annotations

import itertools
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpswarm.runner.dispatch import class_counts, dispatch_users, spawn_order, split_spawn_rate


def make_class(name: str, weight: float = 1, fixed_count: int = 0) -> type:
    return type(name, (), {"weight": weight, "fixed_count": fixed_count})


A, B, C = make_class("A", 3), make_class("B", 1), make_class("C", 1)
FIXED = make_class("Fixed", weight=100, fixed_count=2)


@pytest.mark.parametrize(
    ("classes", "total", "expected"),
    [
        ([A, B], 4, {"A": 3, "B": 1}),
        ([A, B], 8, {"A": 6, "B": 2}),
        ([A, B], 5, {"A": 4, "B": 1}),  # 3.75 / 1.25: nearest
        ([A, B], 1, {"A": 1, "B": 0}),
        ([B, C], 3, {"B": 2, "C": 1}),  # tie: the first declared gets the odd user
        ([A, B, C], 0, {"A": 0, "B": 0, "C": 0}),
        ([FIXED, A, B], 10, {"Fixed": 2, "A": 6, "B": 2}),
        ([FIXED, A], 1, {"Fixed": 1, "A": 0}),  # fixed first, as far as the total allows
        ([A, B, C], 100, {"A": 60, "B": 20, "C": 20}),
    ],
)
def test_class_counts_table(classes: list[type], total: int, expected: dict[str, int]) -> None:
    assert class_counts(classes, total) == expected


@given(
    st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=1000),
)
def test_class_counts_sum_and_nearness(weights: list[int], total: int) -> None:
    classes = [make_class(f"U{i}", w) for i, w in enumerate(weights)]
    counts = class_counts(classes, total)
    assert sum(counts.values()) == total
    for cls in classes:
        share = total * cls.weight / sum(weights)
        assert abs(counts[cls.__name__] - share) < 1


@pytest.mark.parametrize(
    ("counts", "workers", "expected"),
    [
        ({"A": 4}, 2, [{"A": 2}, {"A": 2}]),
        ({"A": 5}, 2, [{"A": 3}, {"A": 2}]),
        ({"A": 1, "B": 1}, 2, [{"A": 1, "B": 0}, {"A": 0, "B": 1}]),
        ({"A": 3, "B": 3}, 2, [{"A": 2, "B": 1}, {"A": 1, "B": 2}]),
        ({"A": 0}, 3, [{"A": 0}, {"A": 0}, {"A": 0}]),
    ],
)
def test_dispatch_users_table(
    counts: dict[str, int], workers: int, expected: list[dict[str, int]]
) -> None:
    assert dispatch_users(counts, workers) == expected


@given(
    st.dictionaries(st.sampled_from("ABCDE"), st.integers(0, 500), min_size=1),
    st.integers(min_value=1, max_value=32),
)
def test_dispatch_is_exact_and_balanced(counts: dict[str, int], workers: int) -> None:
    shares = dispatch_users(counts, workers)
    for name, count in counts.items():
        per_worker = [share[name] for share in shares]
        assert sum(per_worker) == count
        assert max(per_worker) - min(per_worker) <= 1
    totals = [sum(share.values()) for share in shares]
    assert max(totals) - min(totals) <= 1


def test_spawn_rate_split_adds_up_and_follows_users() -> None:
    rates = split_spawn_rate(50.0, [{"A": 3}, {"A": 1}])
    assert rates == pytest.approx([37.5, 12.5])
    assert sum(split_spawn_rate(7.0, [{"A": 0}, {"A": 0}])) == pytest.approx(7.0)


def test_spawn_order_interleaves_by_share() -> None:
    order = list(spawn_order({"A": 3, "B": 1}))
    assert sorted(order) == ["A", "A", "A", "B"]
    assert order.index("B") in (1, 2)  # not last: B ramps with A
    assert list(spawn_order({"A": 0})) == []


def test_spawn_order_costs_what_is_started_not_the_target() -> None:
    """A shape may ask for sys.maxsize users: the order is made as users start."""
    order = spawn_order({"A": sys.maxsize, "B": sys.maxsize // 3})
    first = list(itertools.islice(order, 8))
    assert first.count("B") == 2, first  # its share from the start
