"""The ``mpswarm`` command line: parse, build a frozen RunConfig, run, exit with a code.

Exit codes: 0 success; 1 failed requests or exceptions in user code (``--exit-code-on-error``),
or a report that could not be written at the end of a run that would otherwise exit 0; 2 usage
or locustfile errors, found before any load is sent; 3 a failed ``--check``; 4 a resource
failure (``--max-memory``, a crash loop).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Any

import click

from mpswarm._text import PrintableFormatter
from mpswarm.cli.options import (
    BY_NAME,
    CONFIG_KEYS,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    OPTIONS,
    config_fields,
    envvar_names,
    flags_of,
    run_options,
)
from mpswarm.config import RunConfig, resolve_processes
from mpswarm.exceptions import MpswarmError, UsageError

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "main", "run_command", "run_main"]

logger = logging.getLogger("mpswarm")


@run_options
def run_command(**options: Any) -> int:
    """Run a locustfile's users against a target, one gevent worker per process.

    Example: mpswarm -f examples/shop.py -H http://127.0.0.1:8088 -u 200 -r 50 -t 30s
    --processes -1
    """
    _setup_logging(options["loglevel"])
    from mpswarm import _locust_alias
    from mpswarm._locustfile import (
        check_given_host,
        check_hosts,
        check_tasks,
        load_locustfile,
        select_classes,
    )
    from mpswarm.report._files import check_report_paths

    _locust_alias.install()
    locustfile = load_locustfile(options["locustfile"])
    if options["list_classes"]:
        for name in locustfile.user_classes:
            click.echo(name)
        return EXIT_OK
    classes, shape = select_classes(locustfile, options["user_classes"])
    checks = tuple(options["checks"])
    if options["capacity"]:
        from mpswarm.cli.load import capacity_shape

        shape, checks = capacity_shape(options, shape), ()  # the checks judge each step
    if options["profile"]:
        from mpswarm.profiles import parse_profile

        if shape is not None:
            raise UsageError(f"--profile and the locustfile's {shape.__name__}: choose one")
        if options["arrival_rate"] is not None:
            raise UsageError("--profile sets the load over time: give it rates (50/s), "
                             "not --arrival-rate")  # fmt: skip
        shape = parse_profile(options["profile"])
    check_tasks(classes)
    if options["headless"] or options["autostart"]:
        check_hosts(classes, options["host"])
    elif options["host"]:  # without one, the web UI's form may give it later
        check_given_host(classes, options["host"], "-H/--host")
    config = RunConfig(**{
        **config_fields(options),  # what the options fill as they are; then the worked out
        "locustfile": locustfile.path,
        "user_classes": tuple(cls.__name__ for cls in classes),
        "processes": resolve_processes(options["processes"], _cpu_count()),
        "checks": checks,
        "shape": shape.__name__ if shape is not None else None,
    })  # fmt: skip
    if not options["ray"] and config.processes > _cpu_count():
        logging.getLogger("mpswarm").warning(
            "--processes %d is more than the %d core(s) this machine gives mpswarm: the workers "
            "will share cores, and a worker waiting for a core measures that wait as response "
            "time",
            config.processes, _cpu_count(),
        )  # fmt: skip
    check_report_paths(config)  # before any worker starts: a run must not be lost at its end
    fork_server = None
    if options["ray"]:
        import dataclasses

        from mpswarm.cluster.launch import start_ray

        fork_server = start_ray(options, config, _INPUTS["argv"], _INPUTS["values"])
        config = dataclasses.replace(config, processes=len(fork_server.slots))
    from mpswarm.event import events

    run: Any
    if options["headless"]:
        from mpswarm.runner.headless import run_headless as run
    else:
        from mpswarm.web.serve import run_web as run
    try:
        code = run(config, classes, sys.stdout, parsed_options=_namespace(options),
                   shape_class=shape, fork_server=fork_server)  # fmt: skip
    finally:
        if fork_server is not None:
            fork_server.close()
    events.quit.fire(exit_code=code)
    return code


#: This run's command line and config-file values (``run_main``): the Ray hosts rerun them.
_INPUTS: dict[str, Any] = {"argv": [], "values": {}}


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _namespace(options: dict[str, Any]) -> Any:
    import argparse

    return argparse.Namespace(**options)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("[%(asctime)s] %(levelname)s/%(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


#: Options no configuration file sets (--config).
_NOT_IN_FILES = frozenset(option.name for option in OPTIONS if option.config_key is None)


def _known_options(command: click.Command) -> dict[str, bool]:
    """The names a configuration file may set (the locustfile's options too), each to whether
    it takes several values."""
    return {
        param.name: bool(getattr(param, "multiple", False))
        for param in command.params
        if isinstance(param, click.Option) and param.name and param.name not in _NOT_IN_FILES
    }


def _prescan_locustfile(argv: list[str], values: dict[str, Any]) -> str:
    """The locustfile the command line will name, before it is parsed."""
    option = BY_NAME["locustfile"]
    short = option.flags[0]  # -f
    for index, arg in enumerate(argv):
        if arg in option.flags and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(f"{option.long}="):
            return arg.split("=", 1)[1]
        if arg.startswith(short) and len(arg) > 2:
            return arg[2:]
    # Either variable, mpswarm's first, as click reads them: a LOCUST_LOCUSTFILE's own
    # options are known too.
    named = next((os.environ[name] for name in option.envvars if os.environ.get(name)), None)
    return named or str(values.get(str(option.config_key), option.default))


def _command_with_custom_arguments(path: str) -> click.Command:
    """``run_command`` plus the options the locustfile declares in init_command_line_parser.

    The locustfile has to be imported first (once; the run reuses it), so that its listeners
    exist. A locustfile that cannot be imported is reported later, by the run itself.
    """
    from mpswarm import _locust_alias
    from mpswarm._locustfile import load_locustfile
    from mpswarm.cli.custom_args import ArgumentCollector
    from mpswarm.cli.options import GroupedCommand
    from mpswarm.event import events

    _locust_alias.install()
    try:
        load_locustfile(path)
    except MpswarmError:
        return run_command
    parser = ArgumentCollector()
    events.init_command_line_parser.fire(parser=parser)
    if not parser.options:
        return run_command
    command = GroupedCommand(
        name=run_command.name,
        callback=run_command.callback,
        params=[*run_command.params, *parser.options],
        help=run_command.help,
        epilog=run_command.epilog,
        context_settings=run_command.context_settings,
    )
    return command


def _explicit_config(argv: list[str]) -> str | None:
    option = BY_NAME["config_file"]
    for index, arg in enumerate(argv):
        if arg == option.long and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(f"{option.long}="):
            return arg.split("=", 1)[1]
    return os.environ.get(option.envvars[0]) or None


#: Options that take several values after one flag, as Locust's (argparse ``nargs="*"``).
_SEVERAL_VALUES = flags_of(option for option in OPTIONS if option.several)


def several_values(argv: list[str]) -> list[str]:
    """``argv`` with Locust's ``-T raw get`` spelt as click reads it, ``-T raw -T get``.

    As under Locust, the words after such a flag are its values up to the next option (or
    ``--``): ``-f lf.py -T raw Shopper`` runs the tags raw and Shopper, not a class
    Shopper (name classes before -T, as there).
    """
    out: list[str] = []
    flag = None
    for index, arg in enumerate(argv):
        if arg == "--":
            out.extend(argv[index:])
            return out
        if flag is not None and not arg.startswith("-") and out[-1] != flag:
            out.append(flag)  # a second, third... value of the same flag
        elif arg.startswith("-"):
            flag = arg if arg in _SEVERAL_VALUES else None
        out.append(arg)
    return out


def run_main(argv: list[str]) -> int:
    """Parse ``argv`` and run; returns the exit code. Errors are one line on stderr."""
    argv = several_values(argv)
    debug = any(a.upper() in ("DEBUG", "--LOGLEVEL=DEBUG") for a in argv)
    try:
        from mpswarm.cli.config_files import find_config_values, option_name, to_default_map

        found = find_config_values(_explicit_config(argv))
        values = found.values
        command = _command_with_custom_arguments(_prescan_locustfile(argv, values))
        default_map = (
            to_default_map(values, _known_options(command), found.source, found.locust_only,
                           _note, found.locust_source, CONFIG_KEYS)
            if values
            else {}
        )  # fmt: skip
        # What reaches another host (--ray): the values that apply, not Locust's others.
        _INPUTS.update(
            argv=list(argv),
            values={
                k: v
                for k, v in values.items()
                if k not in found.locust_only or option_name(k, CONFIG_KEYS) in default_map
            },
        )
        for note in found.notes:
            _note(note)
        _envvars_as_locust(command)
        result = command.main(
            args=argv,
            prog_name="mpswarm",
            standalone_mode=False,
            auto_envvar_prefix="MPSWARM",
            default_map=default_map,
        )
        return int(result) if isinstance(result, int) else EXIT_OK
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    except click.ClickException as exc:
        _error(exc.format_message(), debug)
        return EXIT_USAGE
    except MpswarmError as exc:
        _error(str(exc), debug)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def run_subcommand(command: click.Command, argv: list[str], prog_name: str) -> int:
    """Run ``mpswarm serve`` / ``mpswarm compare``: its exit code, its errors one line each."""
    try:
        result = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
        return int(result) if isinstance(result, int) else EXIT_OK
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        _error(exc.format_message(), False)
        return EXIT_USAGE
    except MpswarmError as exc:  # a port taken, a file that is not a report: one line
        _error(str(exc), False)
        return exc.exit_code


def _note(message: str) -> None:
    click.echo(f"mpswarm: {message}", err=True)


def _envvars_as_locust(command: click.Command) -> None:
    """Each option reads ``MPSWARM_<NAME>``, then Locust's ``LOCUST_<LONG_OPTION>`` (the
    table's options name theirs already; the locustfile's get them here); when both are set,
    differently, mpswarm's wins and a line says so."""
    for param in command.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        longs = [opt for opt in param.opts if opt.startswith("--")]
        if not longs:
            continue
        if param.envvar is None:
            param.envvar = list(envvar_names(param.name, longs[0]))
        elif param.name not in BY_NAME:
            continue  # a locustfile's option that names its own
        ours, theirs = param.envvar
        mine, locust = os.environ.get(ours), os.environ.get(theirs)
        if mine is not None and locust is not None and mine != locust:
            _note(f"{ours}={mine!r} wins over {theirs}={locust!r}")


def _error(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    first = " ".join(message.split("\n")).strip()
    click.echo(f"mpswarm: error: {first}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point behind the ``mpswarm`` command (after gevent's monkey-patching)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("replay", "capacity"):
        from mpswarm.cli.load import capacity_main, replay_main

        return (replay_main if args[0] == "replay" else capacity_main)(args[1:])
    if args and args[0] == "compare":
        from mpswarm.cli.compare import compare_main

        return compare_main(args[1:])
    if args and args[0] == "serve":
        from mpswarm.cli.serve import serve_main

        return serve_main(args[1:])
    return run_main(args)
