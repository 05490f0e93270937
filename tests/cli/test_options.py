"""The option table is the one source of every option: the click command, the environment
variables, the configuration-file keys, the RunConfig and the rebuilt command lines derive
from it, and each of those ways to give an option gives the same value."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
import pytest

from mpswarm.cli.config_files import read_conf, to_default_map
from mpswarm.cli.main import _known_options, run_command, several_values
from mpswarm.cli.options import (
    BY_NAME,
    COMPUTED_FIELDS,
    CONFIG_KEYS,
    GROUPS,
    OPTIONS,
    argv_for,
    config_argv,
    config_fields,
    run_options,
)
from mpswarm.cluster.launch import host_argv, host_environment
from mpswarm.config import RunConfig

#: A value for every option, as typed (a list: one per flag; True: a flag given), none of
#: them its default: a new option without one here fails test_every_option_has_a_sample.
SAMPLES: dict[str, Any] = {
    "locustfile": "shop.py", "host": "http://127.0.0.1:9", "users": "7", "spawn_rate": "2.5",
    "run_time": "1m30s", "processes": "3", "headless": True, "web_host": "127.0.0.2",
    "web_port": "9000", "web_auth": "a:b", "web_allowed_host": ["x.example", "y.example"],
    "prometheus": "9646", "prometheus_buckets": "5ms,50ms,2s", "prometheus_linger": "1.5",
    "profile": "ramp:to=10,over=5s", "capacity": "10/s;100/s;5s",
    "replay": '{"path": "access.log", "speed": 2.0}', "autostart": True, "autoquit": "5",
    "tags": ["a", "b"], "exclude_tags": ["c"], "list_classes": True, "loglevel": "DEBUG",
    "exit_code_on_error": "9", "stop_timeout": "2.5s", "csv_prefix": "out/run",
    "csv_full_history": True, "json_stdout": True, "json_file": "r.json", "hdr_log": "h.log",
    "hdr_interval": "2", "html_file": "r.html", "junit_file": "r.xml",
    "summary_file": "s.txt", "checks": ["p95<300ms", "fail_ratio<0.01"], "check_abort": True,
    "check_grace": "4.5s", "print_interval": "3", "only_summary": True, "cpu_warn": "80",
    "lag_warn": "12.5ms", "max_worker_memory": "512MB", "max_memory": "2GiB",
    "max_restarts": "2", "insecure": True, "reset_stats": True, "iterations": "4",
    "arrival_rate": "750/m", "arrivals": "poisson", "max_users": "20", "max_endpoints": "12",
    "ray": "auto", "ray_hosts": "2", "config_file": "c.conf",
}  # fmt: skip

_parse = run_options(lambda **options: options)


def parse(argv: list[str], default_map: dict[str, Any] | None = None) -> dict[str, Any]:
    """The options the run command receives for ``argv`` (and config values)."""
    result = _parse.main(
        args=several_values(argv), prog_name="mpswarm", standalone_mode=False,
        default_map=default_map or {},
    )  # fmt: skip
    assert isinstance(result, dict)
    return result


def sample_config() -> RunConfig:
    fields = config_fields(parse(argv_for(SAMPLES)))
    return RunConfig(**fields, user_classes=("Shopper", "Browser"))


def test_every_option_has_a_sample() -> None:
    assert set(SAMPLES) == set(BY_NAME)


def test_every_click_option_is_in_the_table() -> None:
    params = [p for p in run_command.params if isinstance(p, click.Option)]
    by_name = {p.name: p for p in params if p.name not in ("help", "version")}
    assert list(by_name) == [option.name for option in OPTIONS]  # --help's order too
    for option in OPTIONS:
        param = by_name[option.name]
        assert param.opts + param.secondary_opts == list(option.flags)
        assert param.help == option.help and param.hidden == option.hidden
        assert param.envvar == list(option.envvars)
        assert option.group in GROUPS


def test_every_runconfig_field_has_one_producer() -> None:
    filled = [option.field for option in OPTIONS if option.field is not None]
    assert len(filled) == len(set(filled)), "two options fill one field"
    fields = {field.name for field in dataclasses.fields(RunConfig)}
    assert set(filled) | set(COMPUTED_FIELDS) == fields
    assert not set(filled) & {"user_classes", "shape", "max_errors"}


def test_the_samples_fill_every_field_with_other_than_its_default() -> None:
    config, default = sample_config(), RunConfig()
    same = [
        option.field
        for option in OPTIONS
        if option.field and getattr(config, option.field) == getattr(default, option.field)
    ]
    assert same == []


def test_a_config_rebuilt_as_a_command_line_parses_back_to_itself() -> None:
    config = sample_config()
    argv = config_argv(config)
    options = parse(argv)
    assert RunConfig(**config_fields(options), user_classes=options["user_classes"]) == config


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.field], ids=lambda o: o.name)
def test_each_field_round_trips_alone(option: Any) -> None:
    # A RunConfig's locustfile is always given (its default is "", the option's locustfile.py)
    config = RunConfig(
        **{"locustfile": "a.py", option.field: getattr(sample_config(), option.field)}
    )
    assert RunConfig(**config_fields(parse(config_argv(config)))) == config


def env_text(value: Any) -> str:
    return "1" if value is True else " ".join(value) if isinstance(value, list) else value


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_both_environment_variables_give_what_the_flag_gives(option: Any, monkeypatch) -> None:
    from_flag = parse(argv_for({option.name: SAMPLES[option.name]}))[option.name]
    assert from_flag != parse([])[option.name]
    ours, locust = option.envvars
    assert ours == option.mpswarm_env or ours == f"MPSWARM_{option.name.upper()}"
    assert locust == "LOCUST_" + option.long[2:].replace("-", "_").upper()
    for name in option.envvars:
        with monkeypatch.context() as env:
            env.setenv(name, env_text(SAMPLES[option.name]))
            assert parse([])[option.name] == from_flag, name


def test_no_option_of_the_table_is_set_from_a_file_by_another_key() -> None:
    keys = [key for option in OPTIONS for key in option.config_keys]
    assert len(keys) == len(set(keys)) == len(CONFIG_KEYS)
    assert [o.name for o in OPTIONS if not o.config_keys] == ["config_file"]  # names the file


@pytest.mark.parametrize(
    ("option", "key"),
    [(o, key) for o in OPTIONS for key in o.config_keys],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_each_config_file_key_gives_what_the_flag_gives(
    option: Any, key: str, tmp_path: Path
) -> None:
    value = SAMPLES[option.name]
    text = "true" if value is True else ",".join(value) if isinstance(value, list) else value
    conf = tmp_path / "mpswarm.conf"
    conf.write_text(f"{key.replace('_', '-')} = {text}\n", encoding="utf-8")
    known = _known_options(run_command)
    default_map = to_default_map(read_conf(str(conf)), known, str(conf), aliases=CONFIG_KEYS)
    from_flag = parse(argv_for({option.name: value}))[option.name]
    assert parse([], default_map)[option.name] == from_flag


def test_the_ray_hosts_get_the_command_line_without_the_coordinators_options() -> None:
    coordinator = [o for o in OPTIONS if o.coordinator_only]
    assert {o.name for o in coordinator} == {"locustfile", "processes", "ray", "ray_hosts",
                                             "config_file"}  # fmt: skip
    argv = argv_for(SAMPLES)
    kept = host_argv(argv, "/somewhere/shop.py")
    assert kept == ["-f", "shop.py", *argv_for({
        name: value for name, value in SAMPLES.items() if not BY_NAME[name].coordinator_only
    })]  # fmt: skip
    spelt = [f"{o.long}={SAMPLES[o.name]}" for o in coordinator]
    assert host_argv([*spelt, "-fother.py", "-u", "3"], "shop.py") == ["-f", "shop.py", "-u", "3"]


def test_the_ray_hosts_get_both_variables_of_their_options_and_none_of_the_coordinators() -> None:
    environ = {name: "x" for option in OPTIONS for name in option.envvars}
    environ |= {
        "MPSWARM_TEST_TAG": "t",
        "MPSWARM_MY_OPTION": "1",
        "LOCUST_MASTER": "1",
        "HOME": "/",
    }
    expected = {n for o in OPTIONS if not o.coordinator_only for n in o.envvars}
    assert set(host_environment(environ)) == expected | {"MPSWARM_TEST_TAG", "MPSWARM_MY_OPTION"}


def test_help_lists_every_option_once_under_its_topic_in_order(run_cli, tmp_path: Path) -> None:
    """``--help`` is grouped as Locust's is: a heading per topic, the table's order; the
    locustfile's own options under a heading of their own; the examples aim at the demo
    target's port (8088), not the web UI's."""
    lf = tmp_path / "lf.py"
    lf.write_text(
        "from mpswarm import HttpUser, events, task\n"
        "@events.init_command_line_parser.add_listener\n"
        "def _(parser):\n"
        "    parser.add_argument('--shop-size', default='3', help='How many shops.')\n"
        "class U(HttpUser):\n"
        "    @task\n"
        "    def t(self): pass\n"
    )
    run = run_cli("-f", str(lf), "--help", timeout=60)
    assert run.code == 0, run
    headings = [line[:-1] for line in run.stdout.splitlines() if line and line[0] != " " and
                line.endswith(":")]  # fmt: skip
    shown = [group for group in GROUPS if any(o.group == group and not o.hidden for o in OPTIONS)]
    assert headings == [*shown, "The locustfile's options"]
    sections: dict[str, list[str]] = {}  # heading -> the flags of its entries
    heading = ""
    for line in run.stdout.splitlines():
        if line[:-1] in headings:
            heading = line[:-1]
        elif heading and line.startswith("  -"):  # an entry: "  -u, --users INTEGER  help"
            spelt = line[2:].split("  ")[0]
            sections.setdefault(heading, []).extend(f.split(" ")[0] for f in spelt.split(", "))
    for option in OPTIONS:
        if not option.hidden:
            where = [h for h, flags in sections.items() if option.flags[-1] in flags]
            assert where == [option.group], (option.flags, where)
    assert "--shop-size" in sections["The locustfile's options"]
    assert "--help" in sections["Other"] and "--version" in sections["Other"]
    assert "8089" not in run.stdout.split("Web UI:")[0]  # the examples, -H's help
    assert "127.0.0.1:8088" in run.stdout
