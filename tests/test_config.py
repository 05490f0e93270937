from __future__ import annotations

import pytest

from mpswarm.config import RunConfig, parse_timespan, resolve_processes
from mpswarm.exceptions import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("1h2m3s", 3723),
        ("0.5s", 0.5),
        ("2h", 7200),
        (" 10s ", 10),
        (15, 15),
    ],
)
def test_parse_timespan(text: str, seconds: float) -> None:
    assert parse_timespan(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5", "5m3h", "s", "1.5.2s"])
def test_parse_timespan_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid time span"):
        parse_timespan(text)


def test_resolve_processes() -> None:
    assert resolve_processes(-1, 16) == 16
    assert resolve_processes(3, 16) == 3
    for bad in (0, -2):
        with pytest.raises(UsageError, match="--processes"):
            resolve_processes(bad, 4)


def test_run_config_validates() -> None:
    with pytest.raises(UsageError, match="--users"):
        RunConfig(users=-1)
    with pytest.raises(UsageError, match="--spawn-rate"):
        RunConfig(spawn_rate=0)
    config = RunConfig(users=3)
    with pytest.raises(AttributeError):
        config.users = 4  # type: ignore[misc]
