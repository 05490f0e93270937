"""Bad input gets one clear line on stderr and exit code 2; options come from files, the
environment and the command line, in that order of precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpswarm.cli.main import several_values
from tests.conftest import write

GOOD = """
from mpswarm import HttpUser, User, task

class WebUser(HttpUser):
    @task
    def index(self):
        self.client.get("/")

class Idle(User):
    @task
    def nothing(self):
        pass
"""


def assert_one_line_error(run, code: int, *fragments: str) -> None:
    assert run.code == code, run
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run
    assert lines[0].startswith("mpswarm: error: "), run
    for fragment in fragments:
        assert fragment in lines[0], run
    assert "Traceback" not in run.stderr


def test_missing_locustfile(run_cli, tmp_path: Path) -> None:
    run = run_cli("-f", str(tmp_path / "nope.py"), "--headless", "-t", "1s")
    assert_one_line_error(run, 2, "nope.py", "not found")


def test_syntax_error_names_file_and_line(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "broken.py", "from mpswarm import User\n\ndef oops(:\n    pass\n")
    run = run_cli("-f", str(lf), "--headless")
    assert_one_line_error(run, 2, f"{lf}:3", "SyntaxError")


def test_import_error_names_file_and_line(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "imp.py", "from mpswarm import User\nimport no_such_module_here\n")
    run = run_cli("-f", str(lf), "--headless")
    assert_one_line_error(run, 2, f"{lf}:2", "ModuleNotFoundError", "no_such_module_here")


def test_exception_at_import_names_file_and_line(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "exc.py", "x = 1\nraise ValueError('bad config')\n")
    run = run_cli("-f", str(lf), "--headless")
    assert_one_line_error(run, 2, f"{lf}:2", "ValueError: bad config")


def test_traceback_with_debug_loglevel(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "exc.py", "raise ValueError('bad config')\n")
    run = run_cli("-f", str(lf), "--headless", "--loglevel", "DEBUG")
    assert run.code == 2
    assert "Traceback" in run.stderr and "mpswarm: error:" in run.stderr


def test_no_user_classes(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "empty.py", "from mpswarm import User\nX = 1\n")
    run = run_cli("-f", str(lf), "--headless")
    assert_one_line_error(run, 2, "no User class found")


def test_unknown_user_class(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", GOOD)
    run = run_cli("-f", str(lf), "--headless", "Nobody")
    assert_one_line_error(run, 2, "unknown User class 'Nobody'", "Idle", "WebUser")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-u", "-5"], "--users"),
        (["-r", "-1"], "--spawn-rate"),
        (["-r", "0"], "--spawn-rate"),
        (["--processes", "-3"], "--processes"),
        (["--processes", "0"], "--processes"),
        (["-t", "10x"], "invalid time span '10x'"),
        (["-t", "soon"], "invalid time span"),
        (["-s", "-1s"], "invalid time span"),
        (["--no-such-option"], "No such option"),
        (["-u", "many"], "'many' is not a valid integer"),
    ],
)
def test_bad_option_values(run_cli, tmp_path: Path, args: list[str], fragment: str) -> None:
    lf = write(tmp_path / "lf.py", GOOD)
    run = run_cli("-f", str(lf), "--headless", "Idle", *args)
    assert_one_line_error(run, 2, fragment)


def test_no_host_for_http_user(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", GOOD)
    run = run_cli("-f", str(lf), "--headless", "WebUser", "-t", "1s")
    assert_one_line_error(run, 2, "no host for WebUser", "-H")


def test_host_without_scheme(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", GOOD)
    run = run_cli("-f", str(lf), "--headless", "WebUser", "-H", "127.0.0.1:9")
    assert_one_line_error(run, 2, "http://")


def test_list_classes(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", GOOD)
    run = run_cli("-f", str(lf), "--list")
    assert run.code == 0, run
    assert run.stdout.split() == ["WebUser", "Idle"]


def test_version(run_cli) -> None:
    run = run_cli("--version")
    assert run.code == 0 and "mpswarm" in run.stdout


def test_unknown_key_in_config_file(run_cli, tmp_path: Path) -> None:
    write(tmp_path / "lf.py", GOOD)
    write(tmp_path / "mpswarm.conf", "users = 3\nfrobnicate = yes\n")
    run = run_cli("-f", "lf.py", "--list", cwd=tmp_path)
    assert_one_line_error(run, 2, "unknown option 'frobnicate'", "mpswarm.conf")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("mpswarm.conf", b"users = 3\n# caf\xe9\n"),
        ("pyproject.toml", b"[tool.mpswarm]\nusers = 3\n# caf\xe9\n"),
    ],
)
def test_config_file_that_is_not_utf8(run_cli, tmp_path: Path, name: str, text: bytes) -> None:
    """Before: a UnicodeDecodeError traceback, exit 1."""
    write(tmp_path / "lf.py", GOOD)
    (tmp_path / name).write_bytes(text)
    run = run_cli("-f", "lf.py", "--list", cwd=tmp_path)
    line = text.count(b"\n", 0, text.index(b"\xe9")) + 1
    assert_one_line_error(run, 2, f"{name}: not UTF-8 text (line {line}, byte 0xe9)")


def _started_users(run) -> int:
    for line in run.stderr.splitlines():
        if "starting " in line and " users at " in line:
            return int(line.split("starting ", 1)[1].split()[0])
    raise AssertionError(f"no start line in {run!r}")


def test_precedence_file_then_environment_then_command_line(run_cli, tmp_path: Path) -> None:
    write(tmp_path / "lf.py", GOOD)
    write(tmp_path / "pyproject.toml", '[tool.mpswarm]\nusers = 2\nrun-time = "1s"\n')
    base = ["-f", "lf.py", "--headless", "Idle", "-r", "100"]
    assert _started_users(run_cli(*base, cwd=tmp_path)) == 2
    write(tmp_path / "mpswarm.conf", "# overrides pyproject\nusers = 3\n")
    assert _started_users(run_cli(*base, cwd=tmp_path)) == 3
    env = {"MPSWARM_USERS": "4"}
    assert _started_users(run_cli(*base, cwd=tmp_path, env=env)) == 4
    assert _started_users(run_cli(*base, "-u", "5", cwd=tmp_path, env=env)) == 5


@pytest.mark.parametrize(
    ("argv", "read"),
    [
        (
            ["-f", "x", "-T", "raw", "get", "-u", "2"],
            ["-f", "x", "-T", "raw", "-T", "get", "-u", "2"],
        ),
        (["-T", "a,b", "c", "--", "d"], ["-T", "a,b", "-T", "c", "--", "d"]),
        (["-E", "a", "b", "-T", "c"], ["-E", "a", "-E", "b", "-T", "c"]),
        (["-f", "x", "Shopper", "-T", "a"], ["-f", "x", "Shopper", "-T", "a"]),  # classes first
        (["--tags=a", "Shopper"], ["--tags=a", "Shopper"]),  # one value with '=', as argparse
        (["-u", "2", "3"], ["-u", "2", "3"]),  # only the options Locust reads so
    ],
)
def test_several_values_after_one_flag_as_locust(argv: list[str], read: list[str]) -> None:
    assert several_values(argv) == read


@pytest.mark.parametrize("variable", ["MPSWARM_LOCUSTFILE", "LOCUST_LOCUSTFILE"])
def test_a_locustfile_named_in_the_environment_adds_its_options(
    run_cli, tmp_path: Path, variable: str
) -> None:
    lf = write(tmp_path / "lf.py", GOOD + CUSTOM_OPTION)
    run = run_cli("--my-number", "5", "-l", env={variable: str(lf)})
    assert run.code == 0, run
    assert run.stdout.split() == ["WebUser", "Idle"], run


CUSTOM_OPTION = """
from mpswarm import events

@events.init_command_line_parser.add_listener
def _(parser):
    parser.add_argument("--my-number", type=int, default=1, help="a locustfile's own option")
"""


def test_files_name_an_option_as_locusts_do(run_cli, tmp_path: Path) -> None:
    """Locust's key for an option is its long flag (csv, html), also where mpswarm's own name
    differs (csv_prefix, html_file); both are read, from either's files."""
    write(tmp_path / "lf.py", GOOD)
    write(tmp_path / "locust.conf", "html = r.html\n")
    write(tmp_path / "mpswarm.conf", "csv = out\njson_file = r.json\n")
    run = run_cli("-f", "lf.py", "--headless", "Idle", "-t", "1s", cwd=tmp_path)
    assert run.code == 0, run
    assert "no meaning" not in run.stderr, run
    for name in ("r.html", "out_stats.csv", "r.json"):
        assert (tmp_path / name).is_file(), (name, run)


def test_locust_configuration_is_read_as_locust_reads_it(run_cli, tmp_path: Path) -> None:
    """~/.locust.conf < locust.conf < [tool.locust] < mpswarm's files < LOCUST_* <
    MPSWARM_* < the command line; where mpswarm's and Locust's settings differ, a line says
    which wins; an option of Locust's that mpswarm has not is skipped with a word."""
    write(tmp_path / "lf.py", GOOD)
    home = tmp_path / "home"
    home.mkdir()
    base = ["-f", "lf.py", "--headless", "Idle", "-r", "100", "-t", "1s"]
    env = {"HOME": str(home)}
    write(home / ".locust.conf", "users = 2\nexpect-workers = 4  # Locust's own\n")
    run = run_cli(*base, cwd=tmp_path, env=env)
    assert _started_users(run) == 2
    assert "Locust's option 'expect-workers'" in run.stderr and "ignored" in run.stderr, run
    write(tmp_path / "locust.conf", "users = 3\n")
    assert _started_users(run_cli(*base, cwd=tmp_path, env=env)) == 3
    write(tmp_path / "pyproject.toml", "[tool.locust]\nusers = 4\n")
    assert _started_users(run_cli(*base, cwd=tmp_path, env=env)) == 4
    write(tmp_path / "mpswarm.conf", "users = 5\n")
    run = run_cli(*base, cwd=tmp_path, env=env)
    assert _started_users(run) == 5
    assert "users = 5 from ./mpswarm.conf wins over users = 4 from" in run.stderr, run
    assert _started_users(run_cli(*base, cwd=tmp_path, env={**env, "LOCUST_USERS": "6"})) == 6
    both = {**env, "LOCUST_USERS": "6", "MPSWARM_USERS": "7"}
    run = run_cli(*base, cwd=tmp_path, env=both)
    assert _started_users(run) == 7 and "MPSWARM_USERS='7' wins over LOCUST_USERS='6'" in run.stderr
    assert _started_users(run_cli(*base, "-u", "8", cwd=tmp_path, env=both)) == 8
    # LOCUST_<LONG OPTION> for the others too: the run time, the host, the tags...
    run = run_cli("-f", "lf.py", "--headless", "Idle", "-u", "1", cwd=tmp_path,
                  env={**env, "LOCUST_RUN_TIME": "1s"})  # fmt: skip
    assert run.code == 0 and "for 1s" in run.stderr, run
