"""Bad input is refused at the start, with one line and exit 2, before any load is sent; what
goes wrong later (a report that cannot be written, user code that raises, a target that is
down) is one clear line too, never a traceback."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from mpswarm.user.users import HttpUser
from tests.conftest import write
from tests.test_cli import assert_one_line_error

HITTING = """
from mpswarm import HttpUser, constant, task

class Web(HttpUser):
    wait_time = constant(0.05)
    @task
    def index(self):
        self.client.get("/")
"""


def _closed_port() -> int:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line or "error:" in line]


# -- 5: reports that cannot be written -------------------------------------------------------


@pytest.mark.parametrize("option", ["--json-file", "--html", "--junit", "--csv"])
def test_report_into_a_missing_folder_is_refused_before_any_load(
    run_cli, demo, tmp_path: Path, option: str
) -> None:
    lf = write(tmp_path / "lf.py", HITTING)
    target = tmp_path / "no-such-folder" / "report"
    run = run_cli("-f", str(lf), "-H", demo.url, "--headless", "-t", "2s", option, str(target))
    assert_one_line_error(run, 2, option, str(target), "does not exist")
    assert demo.stats()["total"] == 0
    assert not target.parent.exists()  # --csv does not create folders


def test_report_path_that_is_a_folder_or_under_a_file(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", HITTING)
    base = ["-f", str(lf), "-H", demo.url, "--headless", "-t", "2s"]
    run = run_cli(*base, "--html", str(tmp_path))
    assert_one_line_error(run, 2, "--html", str(tmp_path), "is a folder")
    plain = write(tmp_path / "plain.txt", "x")
    run = run_cli(*base, "--junit", str(plain / "out.xml"))
    assert_one_line_error(run, 2, "--junit", str(plain / "out.xml"), "not a folder")
    assert demo.stats()["total"] == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_report_into_an_unwritable_folder(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", HITTING)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        run = run_cli(
            "-f", str(lf), "-H", demo.url, "--headless", "-t", "2s",
            "--json-file", str(locked / "out.json"),
        )  # fmt: skip
    finally:
        locked.chmod(stat.S_IRWXU)
    assert_one_line_error(run, 2, "--json-file", str(locked / "out.json"), "not writable")
    assert demo.stats()["total"] == 0


REMOVING = """
import os, shutil
from mpswarm import HttpUser, constant, task

class Web(HttpUser):
    wait_time = constant(0.05)
    @task
    def index(self):
        self.client.get("/")
        shutil.rmtree(os.environ["DOOMED_FOLDER"], ignore_errors=True)
"""


@pytest.mark.parametrize(("check", "code"), [(None, 1), ("requests<1", 3)])
def test_report_that_fails_at_the_end_leaves_the_others(
    run_cli, demo, tmp_path: Path, check: str | None, code: int
) -> None:
    """A folder removed mid-run: its reports are named in one line, the others are written;
    the exit code is never 0, a failed check keeps its 3."""
    lf = write(tmp_path / "lf.py", REMOVING)
    doomed, kept = tmp_path / "doomed", tmp_path / "kept"
    doomed.mkdir()
    kept.mkdir()
    args = [
        "-f", str(lf), "-H", demo.url, "--headless", "-t", "3s", "--only-summary",
        "--json-file", str(doomed / "out.json"), "--csv", str(doomed / "run"),
        "--html", str(kept / "out.html"), "--junit", str(kept / "out.xml"),
    ]  # fmt: skip
    if check:
        args += ["--check", check]
    run = run_cli(*args, env={"DOOMED_FOLDER": str(doomed)})
    assert run.code == code, run
    assert "Traceback" not in run.stderr, run
    failed = [line for line in run.stderr.splitlines() if "could not write" in line]
    assert len(failed) == 1, run
    assert f"--json-file {doomed / 'out.json'}" in failed[0], run
    assert f"--csv {doomed / 'run'}" in failed[0], run
    assert "the other reports were written" in failed[0], run
    assert (kept / "out.html").stat().st_size > 0 and (kept / "out.xml").stat().st_size > 0
    assert not doomed.exists()
    assert demo.stats()["total"] > 0
    # Never PASSED (before: the summary said PASSED and the JUnit file was green, exit 1).
    verdict = run.stdout.rstrip().splitlines()[-1]
    if check is None:
        assert verdict.startswith("FAILED: could not write --csv"), run
        assert f"--json-file {doomed / 'out.json'}" in verdict, run
        assert "<failure" in (kept / "out.xml").read_text(), "the JUnit report says it passed"
    else:
        assert verdict == "FAILED: 1 check failed", run
    assert not list(kept.glob(".*.tmp")), "a temporary file was left behind"


def test_a_report_that_fails_to_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    """A full disk shows up as an OSError while writing: the file that was there stays as it
    was, and no temporary file is left beside it."""
    import errno

    from mpswarm.report._files import write_atomically, write_report_file

    path = tmp_path / "report.json"
    path.write_text("the previous report\n")

    def full_disk(stream) -> None:
        stream.write("half of a new report")
        stream.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    assert write_report_file(str(path), full_disk) == "No space left on device"
    assert path.read_text() == "the previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    write_atomically(str(path), lambda stream: stream.write("the new one"))
    assert path.read_text() == "the new one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


# -- 6: hosts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("http://[::1", "not a valid URL"),
        ("http://127.0.0.1:99999", "port"),
        ("http://127.0.0.1:0", "port"),
        ("http://127.0.0.1:http", "port"),
        ("http://", "no host name"),
        ("http://:8080", "no host name"),
        ("ftp://127.0.0.1:21", "http:// or https://"),
    ],
)
def test_invalid_host_is_a_usage_error(
    run_cli, demo, tmp_path: Path, host: str, fragment: str
) -> None:
    lf = write(tmp_path / "lf.py", HITTING)
    run = run_cli("-f", str(lf), "-H", host, "--headless", "-t", "2s")
    assert_one_line_error(run, 2, repr(host), "-H", fragment)
    assert demo.stats()["total"] == 0


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["-r", "nan"], ["--spawn-rate", "'nan' is not a finite number"]),
        (["-r", "inf"], ["--spawn-rate", "'inf' is not a finite number"]),
        (["-r", "1e400"], ["--spawn-rate", "not a finite number"]),
        (["-r", "0"], ["--spawn-rate"]),
        (["-u", "10000000000"], ["--users 10000000000", "more users than this machine"]),
        (["--arrival-rate", "inf/s"], ["arrival rate"]),
        (["--lag-warn", "nanms"], ["--lag-warn"]),
        (["--print-interval", "nan"], ["--print-interval", "not a finite number"]),
    ],
)
def test_rates_and_user_counts_that_cannot_work_are_refused_before_any_load(
    run_cli, demo, tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    """Before this, -r nan/inf and -u 1e10 started no user (or spun building the spawn list)
    and the run said PASSED, exit 0."""
    lf = write(tmp_path / "lf.py", HITTING)
    run = run_cli("-f", str(lf), "-H", demo.url, "--headless", "-t", "2s", *args)
    assert_one_line_error(run, 2, *fragments)
    assert demo.stats()["total"] == 0


def test_invalid_host_attribute_names_the_class(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", HITTING + "    host = 'http://127.0.0.1:99999'\n")
    run = run_cli("-f", str(lf), "--headless", "-t", "2s")
    assert_one_line_error(run, 2, "'http://127.0.0.1:99999'", "Web.host", "port")
    assert demo.stats()["total"] == 0


def test_invalid_host_is_refused_by_the_web_ui_too(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", HITTING)
    run = run_cli("-f", str(lf), "-H", "http://[::1", "--web-port", "0", timeout=30)
    assert_one_line_error(run, 2, "'http://[::1'", "not a valid URL")


def test_target_that_refuses_every_connection_gets_a_warning(run_cli, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", HITTING)
    host = f"http://127.0.0.1:{_closed_port()}"
    run = run_cli("-f", str(lf), "-H", host, "--headless", "-t", "5s", "--only-summary")
    assert run.code == 1, run
    warnings = [line for line in run.stderr.splitlines() if "every request" in line]
    assert len(warnings) == 1, run
    assert "WARNING" in warnings[0] and host in warnings[0], run
    assert "Connection refused" in warnings[0] and "is the target up?" in warnings[0], run
    assert "Traceback" not in run.stderr


# -- 7: user code that raises in a worker -------------------------------------------------------

INIT_RAISES = """
import itertools, os
from mpswarm import HttpUser, constant, task

_created = itertools.count()

class ShopUser(HttpUser):
    wait_time = constant(0.1)

    def __init__(self, environment):
        super().__init__(environment)
        self.number = os.getpid() * 1000 + next(_created)
        if self.number % 2 == 0:
            raise ValueError("boom")

    def on_start(self):
        self.client.get(f"/items/{self.number}", name="/items/<n>")

    @task
    def index(self):
        self.client.get("/")
"""


def test_user_init_that_raises_is_a_user_error_and_the_others_run(
    run_cli, demo, tmp_path: Path
) -> None:
    lf = write(tmp_path / "shop.py", INIT_RAISES)
    run = run_cli(
        "-f", str(lf), "-H", demo.url, "--headless", "-u", "4", "-r", "100", "-t", "2s",
        "--only-summary",
    )  # fmt: skip
    assert run.code == 1, run
    stats = demo.stats()
    started = [path for path in stats["paths"] if path.startswith("GET /items/")]
    assert len(started) == 2, stats  # the two users whose __init__ did not raise
    assert stats["paths"].get("GET /", 0) > 0
    assert "Traceback" not in run.stderr, run
    errors = _error_lines(run.stderr)
    assert len(errors) == 1, run
    assert f"ValueError in ShopUser.__init__ ({lf}:14): boom" in errors[0], run
    assert "ValueError: boom" in run.stdout  # counted in the summary's exceptions


def test_user_init_that_raises_in_the_open_model(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "shop.py", INIT_RAISES)
    run = run_cli(
        "-f", str(lf), "-H", demo.url, "--headless", "--arrival-rate", "20/s", "-u", "2",
        "-t", "2s", "--only-summary",
    )  # fmt: skip
    assert run.code == 1, run
    assert demo.stats()["paths"].get("GET /", 0) > 0
    assert "Traceback" not in run.stderr, run
    errors = _error_lines(run.stderr)
    assert len(errors) == 1 and "ValueError in ShopUser.__init__" in errors[0], run


WHERE_IT_RAISES = {
    "on_start": ("def on_start(self):\n        raise ValueError('boom')", "Web.on_start", 5),
    "on_stop": ("def on_stop(self):\n        raise ValueError('boom')", "Web.on_stop", 5),
    "task": ("@task\n    def other(self):\n        raise ValueError('boom')", "Web.other", 6),
    "wait_time": ("def wait_time(self):\n        raise ValueError('boom')", "Web.wait_time", 5),
    "greenlet": (
        "@task\n    def other(self):\n        import gevent; gevent.spawn(self.helper).join()\n\n"
        "    def helper(self):\n        raise ValueError('boom')",
        "Web.helper",
        9,
    ),
}


@pytest.mark.parametrize("where", sorted(WHERE_IT_RAISES))
def test_user_code_errors_are_one_line_with_file_and_line(
    run_cli, demo, tmp_path: Path, where: str
) -> None:
    code, qualname, line = WHERE_IT_RAISES[where]
    lf = write(
        tmp_path / "lf.py",
        "from mpswarm import HttpUser, task\n\n"
        "class Web(HttpUser):\n"
        f"    {code}\n\n"
        "    @task\n"
        "    def index(self):\n"
        "        self.client.get('/')\n",
    )
    run = run_cli(
        "-f", str(lf), "-H", demo.url, "--headless", "-u", "2", "-r", "100", "-t", "1s",
        "--only-summary",
    )  # fmt: skip
    assert run.code == 1, run
    assert "Traceback" not in run.stderr, run
    errors = _error_lines(run.stderr)
    assert len(errors) == 1, run
    assert f"ValueError in {qualname} ({lf}:{line}): boom" in errors[0], run


def test_user_code_traceback_with_debug_loglevel(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "shop.py", INIT_RAISES)
    run = run_cli(
        "-f", str(lf), "-H", demo.url, "--headless", "-u", "2", "-r", "100", "-t", "1s",
        "--only-summary", "-L", "DEBUG",
    )  # fmt: skip
    assert run.code == 1, run
    assert "Traceback" in run.stderr and "ValueError in ShopUser.__init__" in run.stderr


# -- 8: nothing to run, and a locustfile that exits ---------------------------------------------


def test_user_class_without_tasks_is_a_usage_error(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", HITTING + "\nclass Lazy(HttpUser):\n    pass\n")
    run = run_cli("-f", str(lf), "-H", demo.url, "--headless", "-t", "2s")
    assert_one_line_error(
        run, 2, "User class Lazy has no tasks (add @task methods or a tasks list)"
    )
    assert demo.stats()["total"] == 0


def test_taskset_without_tasks_is_a_usage_error(run_cli, demo, tmp_path: Path) -> None:
    lf = write(
        tmp_path / "lf.py",
        HITTING + "\nfrom mpswarm import TaskSet\n\n"
        "class Empty(TaskSet):\n    pass\n\n"
        "class Outer(TaskSet):\n    tasks = [Empty]\n\n"
        "class Base(HttpUser):  # abstract, without tasks: fine\n    abstract = True\n\n"
        "class Nested(Base):\n    tasks = {Outer: 1}\n",
    )
    run = run_cli("-f", str(lf), "-H", demo.url, "--headless", "-t", "2s")
    assert_one_line_error(run, 2, "TaskSet Empty", "Nested", "has no tasks")
    assert demo.stats()["total"] == 0


def test_abstract_user_without_tasks_is_not_run(run_cli, demo, tmp_path: Path) -> None:
    lf = write(tmp_path / "lf.py", HITTING + "\nclass Base(HttpUser):\n    abstract = True\n")
    run = run_cli("-f", str(lf), "-H", demo.url, "--headless", "-t", "1s", "--only-summary")
    assert run.code == 0, run
    assert demo.stats()["total"] > 0


@pytest.mark.parametrize(
    ("call", "shown"),
    [
        ("sys.exit(3)", "sys.exit(3)"),
        ("sys.exit()", "sys.exit()"),
        ("exit('bye')", "sys.exit('bye')"),
    ],
)
def test_locustfile_that_exits_while_imported(
    run_cli, tmp_path: Path, call: str, shown: str
) -> None:
    lf = write(tmp_path / "lf.py", f"import sys\nfrom mpswarm import User\n{call}\n")
    run = run_cli("-f", str(lf), "--headless", "-t", "1s")
    assert_one_line_error(run, 2, f"{lf}:3", f"called {shown} while being imported")


class _Schemed(HttpUser):
    """A user class whose host takes other schemes, as GrpcUser's (a bare HOST:PORT too)."""

    abstract = True
    _host_schemes = ("grpc", "grpcs", "")


def _schemed(name: str, host: str | None = None) -> type:
    return type(name, (_Schemed,), {"host": host, "abstract": False, "tasks": [lambda u: None]})


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("http://127.0.0.1:50051", "it must start with grpc:// or grpcs://"),
        ("grpc://127.0.0.1:0", "port"),
        ("127.0.0.1:99999", "port"),
        ("grpc://", "no host name"),
    ],
)
def test_a_class_names_the_schemes_its_host_may_have(host: str, fragment: str) -> None:
    from mpswarm._locustfile import UsageError, check_hosts

    with pytest.raises(UsageError, match=fragment) as raised:
        check_hosts([_schemed("Rpc", host)], None)
    assert "Rpc.host" in str(raised.value)
    with pytest.raises(UsageError, match=fragment) as raised:
        check_hosts([_schemed("Rpc")], host)
    assert "-H/--host" in str(raised.value)


def test_a_host_for_every_class_is_checked_for_each() -> None:
    from mpswarm._locustfile import UsageError, check_given_host, check_hosts

    for good in ("grpc://127.0.0.1:50051", "grpcs://[::1]:443", "127.0.0.1:50051"):
        check_hosts([_schemed("Rpc", good)], None)
        check_given_host([_schemed("Rpc")], good, "the form's host")
    web = type("Web2", (HttpUser,), {"abstract": False, "tasks": [lambda u: None]})
    with pytest.raises(UsageError, match=r"for Rpc\): it must start with grpc://"):
        check_given_host([web, _schemed("Rpc")], "http://127.0.0.1:8088", "-H/--host")
    with pytest.raises(UsageError, match=r"for Web2\): it must start with http://"):
        check_given_host([web, _schemed("Rpc")], "grpc://127.0.0.1:8088", "-H/--host")
    with pytest.raises(UsageError, match="no host for Rpc: pass -H/--host grpc://HOST:PORT"):
        check_hosts([_schemed("Rpc")], None)
