"""Smaller parts of Locust's API that locustfiles import: modules, helpers and checks.

In-process tests install the ``locust`` alias for the test only; behaviour that crosses the
wire runs a locustfile through the real CLI against the demo server.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mpswarm import _locust_alias
from mpswarm.exceptions import UsageError
from tests.compat.test_locustfiles import run_locustfile
from tests.runner.test_run import summary_counts


@pytest.fixture()
def locust() -> Iterator[Any]:
    """``import locust`` resolves to mpswarm for the duration of the test."""
    _locust_alias.install()
    try:
        import locust

        yield locust
    finally:
        _locust_alias.uninstall()


def test_submodules_import_by_name_from_the_package(locust: Any) -> None:
    from locust import clients, contrib, env, event, exception, runners, stats, user

    import mpswarm.env
    import mpswarm.exceptions
    import mpswarm.runner.base

    assert env.Environment is mpswarm.env.Environment
    assert exception.StopUser is mpswarm.exceptions.StopUser
    assert runners.MasterRunner is mpswarm.runner.base.MasterRunner
    assert user.HttpUser is locust.HttpUser and callable(user.task)
    assert event.EventHook and clients.HttpSession and stats.RequestStats
    from locust.contrib import fasthttp

    assert contrib.fasthttp is fasthttp and fasthttp.FastHttpUser is locust.FastHttpUser


FAST_USER = """
from locust import FastHttpUser, task, env, runners, stats, exception, event, user, clients
from locust import contrib

class Api(FastHttpUser):
    client_pool = object()  # users of this class share their connections

    @task
    def create(self):
        assert env.Environment and runners.STATE_RUNNING and stats.RequestStats
        assert event.EventHook and user.User and clients.HttpSession and contrib.fasthttp
        with self.rest("POST", "/api/items", json={"name": "w"}) as resp:
            assert resp.js["name"] == "w"
        with self.rest("GET", "/", name="not-json"):
            pass
        raise exception.StopUser()
"""


def test_fasthttpuser_rest_on_the_user(run_cli, demo, tmp_path: Path) -> None:
    run = run_locustfile(run_cli, demo, tmp_path, FAST_USER, "-u", "2", "-r", "100", "-t", "2s")
    counts = summary_counts(run.stdout)
    assert counts[("POST", "/api/items")] == (2, 0), run
    assert counts[("GET", "not-json")] == (2, 2), run
    assert "Could not parse response as JSON" in run.stdout


def test_log_setup_logging_writes_locusts_format(locust: Any, tmp_path: Path) -> None:
    from locust.log import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logfile = tmp_path / "run.log"
    try:
        setup_logging("debug", logfile=str(logfile))
        logging.getLogger("locustfile.part").debug("hello")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved[0], saved[1]
    line = logfile.read_text()
    assert "/DEBUG/locustfile.part: hello" in line and line.startswith("[")


def test_log_greenlet_exception_logger(locust: Any, caplog: pytest.LogCaptureFixture) -> None:
    import locust.log

    class Failed:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()

    handler = locust.log.greenlet_exception_logger(logging.getLogger("lf"), logging.ERROR)
    with caplog.at_level(logging.DEBUG):
        handler(Failed())
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "Unhandled exception in greenlet" in caplog.text and "boom" in caplog.text
    assert locust.log.unhandled_greenlet_exception is True


def test_locust_argument_parser_takes_locusts_keywords(
    locust: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from locust.argument_parser import LocustArgumentParser

    monkeypatch.setenv("MPSWARM_TEST_TOKEN", "from-env")
    parser = LocustArgumentParser()
    parser.add_argument("--token", env_var="MPSWARM_TEST_TOKEN", is_secret=True)
    parser.add_argument("--hidden", default=1, type=int, include_in_web_ui=False)
    parser.add_argument("--names", action="append", is_multiple=True, is_required=True)
    options = parser.parse_args(["--names", "a"])
    assert (options.token, options.hidden, options.names) == ("from-env", 1, ["a"])
    assert set(parser.args_included_in_web_ui) == {"token", "names"}
    assert set(parser.secret_args_included_in_web_ui) == {"token"}
    assert set(parser.multiple_args_included_in_web_ui) == {"names"}
    assert set(parser.required_args_included_in_web_ui) == {"names"}


LOADABLE = """
'''A locustfile to load.'''
from locust import HttpUser, LoadTestShape, task

class Base(HttpUser):
    abstract = True

class Shopper(Base):
    @task
    def index(self):
        pass

class Ramp(LoadTestShape):
    def tick(self):
        return None
"""


def test_util_load_locustfile(locust: Any, tmp_path: Path) -> None:
    from locust.util.load_locustfile import is_user_class, load_locustfile

    path = tmp_path / "lf_api_surface_loadable.py"
    path.write_text(LOADABLE)
    try:
        users, shapes = load_locustfile(str(path))
    finally:
        sys.modules.pop("lf_api_surface_loadable", None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
    assert list(users) == ["Shopper"] and is_user_class(users["Shopper"])
    assert [type(shape).__name__ for shape in shapes] == ["Ramp"]


def test_inspectuser_task_ratios(locust: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from locust import HttpUser, TaskSet, task
    from locust.user.inspectuser import get_ratio, print_task_ratio, print_task_ratio_json

    class Browse(TaskSet):
        @task
        def page(self) -> None: ...

    class Reader(HttpUser):
        tasks = {Browse: 2}

        @task(3)
        def home(self) -> None: ...

    class Writer(HttpUser):
        weight = 3

        @task
        def post(self) -> None: ...

    tree = get_ratio([Reader, Writer], {"Reader": 1, "Writer": 3}, True)
    assert tree["Reader"]["ratio"] == 0.25
    assert tree["Reader"]["tasks"]["home"]["ratio"] == pytest.approx(0.15)
    assert tree["Reader"]["tasks"]["Browse"]["tasks"]["page"]["ratio"] == pytest.approx(0.1)
    assert get_ratio([Writer], {"Writer": 1}, False)["Writer"]["tasks"]["post"]["ratio"] == 1
    print_task_ratio([Reader, Writer], 0, False)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines] == [
        ["25.0", "Reader"],
        ["40.0", "Browse"],
        ["100.0", "page"],
        ["60.0", "home"],
        ["75.0", "Writer"],
        ["100.0", "post"],
    ]
    print_task_ratio_json([Reader, Writer], 4)
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["Writer"]["tasks"]["post"]["ratio"] == 0.75
    assert data["per_class"]["Reader"]["tasks"]["home"]["ratio"] == 0.6


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        (
            "def plain(self): ...",
            "NoMarkovTasksError",
            "No Markov tasks defined in class Chain. Use the @transition(s) decorators to "
            "define some.",
        ),
        (
            "@transition('nowhere')\n    def a(self): ...",
            "InvalidTransitionError",
            "Transition to nowhere from a is invalid since no such element exists on class Chain",
        ),
        (
            "@transition('plain')\n    def a(self): ...\n    def plain(self): ...",
            "NonMarkovTaskTransitionError",
            "Chain.plain cannot be used as a target for a transition since it does not define "
            "any transitions of its own. Used as a transition from a.",
        ),
        (
            "@tag('x')\n    @transition('a')\n    def a(self): ...",
            "MarkovTaskTagError",
            "Tags are unsupported for MarkovTaskSet since they can make the markov chain "
            "invalid. Tags detected on Chain.a: {'x'}",
        ),
    ],
)
def test_markov_chain_is_checked_when_defined(
    locust: Any, body: str, error: str, message: str
) -> None:
    from locust.user import markov_taskset

    source = f"class Chain(MarkovTaskSet):\n    {body}\n"
    scope = {"MarkovTaskSet": locust.MarkovTaskSet, "transition": locust.transition}
    scope["tag"] = locust.tag
    with pytest.raises(getattr(markov_taskset, error)) as caught:
        exec(source, scope)
    assert str(caught.value) == message
    assert isinstance(caught.value, locust.exception.LocustError)


def test_markov_unreachable_tasks_warn_and_abstract_skips_checks(
    locust: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from locust import MarkovTaskSet, transition

    with caplog.at_level(logging.WARNING):

        class Chain(MarkovTaskSet):
            @transition("b")
            def a(self) -> None: ...

            @transition("a")
            def b(self) -> None: ...

            @transition("a", 0)
            @transition("orphan")
            def c(self) -> None: ...

            @transition("c")
            def orphan(self) -> None: ...

    assert "The following markov tasks are unreachable in class Chain: ['c', 'orphan']" in (
        caplog.text
    )

    class Base(MarkovTaskSet):
        abstract = True

    assert Base.abstract and not Chain.abstract


def test_locust_package_has_a_location(locust: Any) -> None:
    # Flask(__name__) in a module of a "locust" package asks where the package lives.
    import importlib.util

    spec = importlib.util.find_spec("locust")
    assert spec is not None and spec.origin is not None
    assert spec.origin.endswith("locust_compat/__init__.py")


def test_locustfile_option_and_paths(
    locust: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from locust.argument_parser import parse_locustfile_option, parse_locustfile_paths

    (tmp_path / "a.py").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("")
    (tmp_path / "sub" / "_helper.py").write_text("")
    monkeypatch.chdir(tmp_path)
    assert parse_locustfile_option(["-f", "a.py", "--headless"]) == [str(tmp_path / "a.py")]
    assert parse_locustfile_paths(["sub"]) == [str(tmp_path / "sub" / "b.py")]
    monkeypatch.setenv("LOCUST_LOCUSTFILE", "a.py,sub")
    assert len(parse_locustfile_option([])) == 2
    with pytest.raises(UsageError, match="not found"):
        parse_locustfile_paths(["missing.py"])
