"""Configuration files: one value an option, whichever of its keys each file spells it with."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpswarm.cli.config_files import find_config_values


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home without a ~/.locust.conf of the machine's."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize(
    ("pyproject", "conf", "value"),
    [
        ("csv_prefix = 'a'", "csv = b", "b"),
        ("csv = 'a'", "csv_prefix = b", "b"),
        ("run_time = '1m'", "run-time = 2m", "2m"),
    ],
)
def test_a_later_file_wins_whichever_key_it_spells_the_option_with(
    tmp_path: Path, home: Path, pyproject: str, conf: str, value: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.mpswarm]\n{pyproject}\n")
    (tmp_path / "mpswarm.conf").write_text(f"{conf}\n")
    found = find_config_values(None, str(tmp_path))
    assert list(found.values.values()) == [value], found


def test_mpswarms_key_wins_over_locusts_other_key_for_the_option_and_says_so(
    tmp_path: Path, home: Path
) -> None:
    (tmp_path / "locust.conf").write_text("csv = a\nmaster = true\n")
    (tmp_path / "mpswarm.conf").write_text("csv_prefix = b\n")
    found = find_config_values(None, str(tmp_path))
    assert found.values == {"master": "true", "csv_prefix": "b"}
    assert found.locust_only == {"master"}
    where = tmp_path / "mpswarm.conf", tmp_path / "locust.conf"
    assert found.notes == (f"csv_prefix = b from {where[0]} wins over csv = a from {where[1]}",)
