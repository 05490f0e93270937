"""Every option of the ``mpswarm`` run command, declared once: ``OPTIONS``.

Each ``Option`` is plain data: its flags, value type, default, help line and help group, its
configuration-file key, its two environment variables, and the ``RunConfig`` field it fills.
The rest derives from the table: the click command (``run_options``), the RunConfig's fields
(``config_fields``), and the command lines that ``mpswarm.run()``, ``mpswarm replay`` /
``capacity`` and the ``--ray`` hosts rebuild (``argv_for``, ``config_argv``). A value that
cannot be parsed is a one-line usage error here, before the locustfile is imported.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from mpswarm._version import __version__
from mpswarm.config import RunConfig, parse_buckets, parse_rate, parse_size, parse_timespan
from mpswarm.exceptions import UsageError

EXIT_OK = 0
EXIT_ERROR = 1  # requests failed, user code raised (--exit-code-on-error)
EXIT_USAGE = 2

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _converter(parse: Callable[[str], Any]) -> Callable[..., Any]:
    """A click callback: ``parse`` the value (None when absent); its UsageError, one line."""

    def convert(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            return parse(value)
        except UsageError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


_timespan = _converter(parse_timespan)
_size = _converter(parse_size)
_arrival_rate = _converter(parse_rate)


class Finite(click.FloatRange):
    """click's FloatRange that also refuses nan and inf: nan passes every bound (it compares
    false with anything), and an infinite rate or interval cannot work."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number is not None and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _duration_ms(ctx: click.Context, param: click.Parameter, value: Any) -> float:
    text = str(value).strip().lower()
    try:
        if text.endswith("ms"):
            ms = float(text[:-2])
            if not 0 <= ms < math.inf:
                raise ValueError(text)
            return ms
        return parse_timespan(text) * 1000.0
    except (UsageError, ValueError):
        raise click.BadParameter(f"invalid duration {value!r}: use e.g. 50ms or 0.1s") from None


def _split_tags(ctx: click.Context, param: click.Parameter, value: Any) -> tuple[str, ...] | None:
    if not value:
        return None
    tags = [part.strip() for item in value for part in str(item).split(",") if part.strip()]
    return tuple(tags) or None


def _ms_text(ms: float) -> str:
    return f"{ms!r}ms"


def _buckets_text(buckets: Iterable[float]) -> str:
    return ",".join(repr(edge) for edge in buckets)


def _replay_spec(text: str) -> dict[str, Any] | None:
    return json.loads(text) if text else None


#: The help groups, in the order a grouped ``--help`` would show them.
GROUPS = ("Run", "Load", "Open model", "Web UI", "Reports", "Checks", "Resources", "Cluster",
          "Other", "Subcommands")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of the run command, declared once.

    Attributes:
        flags: its spellings (``("-u", "--users")``); ``argv_for`` writes the first.
        name: its Python name: click's parameter, ``environment.parsed_options``' attribute.
        help: its help line (None: hidden options have none).
        group: its help topic, one of ``GROUPS``.
        default: its default, as it would be typed (None: none).
        type: its click type (None: text).
        parse: a click callback that turns the text into the value (timespans, sizes...).
        flag: an on/off switch that takes no value.
        multiple: may be given several times; its value is a tuple.
        several: as Locust's, takes several values after one flag (``-T a b``).
        metavar: the value's placeholder in ``--help``.
        show_default: ``--help`` shows the default.
        hidden: not in ``--help`` (a subcommand sets it).
        field: the ``RunConfig`` field it fills, or None.
        to_config: turns the parsed value into the field's (None: as it is).
        to_text: writes a field's value (each item's, for ``multiple``) as this option's text.
        in_files: configuration files may set it, under ``config_keys``.
        coordinator_only: under ``--ray``, the coordinator's alone: the hosts do not get it.
        mpswarm_env: the variable mpswarm reads for it where not ``MPSWARM_<NAME>``.
    """

    flags: tuple[str, ...]
    name: str
    help: str | None
    group: str
    default: Any = None
    type: Any = None
    parse: Callable[[click.Context, click.Parameter, Any], Any] | None = None
    flag: bool = False
    multiple: bool = False
    several: bool = False
    metavar: str | None = None
    show_default: bool = False
    hidden: bool = False
    field: str | None = None
    to_config: Callable[[Any], Any] | None = None
    to_text: Callable[[Any], str] = str
    in_files: bool = True
    coordinator_only: bool = False
    mpswarm_env: str | None = None

    @property
    def long(self) -> str:
        """Its first long flag (``--users``): Locust's variable is named after it."""
        return next(flag for flag in self.flags if flag.startswith("--"))

    @property
    def config_key(self) -> str | None:
        """Its key in configuration files, as Locust's: the long flag without its dashes
        (``run-time``, ``csv``); None where no file sets it. ``config_keys`` lists them all."""
        return self.long[2:] if self.in_files else None

    @property
    def config_keys(self) -> tuple[str, ...]:
        """Every key that sets it, dashes written as underscores: Locust's (``csv``) and its
        name (``csv_prefix``, as mpswarm's files have always named it)."""
        if not self.in_files:
            return ()
        return tuple(dict.fromkeys((self.long[2:].replace("-", "_"), self.name)))

    @property
    def envvars(self) -> tuple[str, str]:
        """The environment variables it reads, mpswarm's first (it wins), then Locust's."""
        ours, theirs = envvar_names(self.name, self.long)
        return self.mpswarm_env or ours, theirs


def envvar_names(name: str, long: str) -> tuple[str, str]:
    """``MPSWARM_<NAME>`` (click's own name for an option) and ``LOCUST_<LONG_OPTION>``."""
    return f"MPSWARM_{name.upper()}", f"LOCUST_{long[2:].replace('-', '_').upper()}"


_O = Option

#: Every option of the run command, in ``--help``'s order.
OPTIONS: tuple[Option, ...] = (
    _O(("-f", "--locustfile"), "locustfile", group="Run", default="locustfile.py",
       show_default=True, metavar="PATH", field="locustfile", coordinator_only=True,
       help="Python file defining User classes; as in Locust, also a directory of them or a "
       "comma-separated list."),
    _O(("-H", "--host"), "host", group="Run", metavar="URL", field="host",
       help="Base URL of the target, e.g. http://127.0.0.1:8088 (mpswarm serve's)."),
    _O(("-u", "--users"), "users", group="Load", type=click.IntRange(min=0), default=1,
       show_default=True, field="users", help="Peak number of concurrent users."),
    _O(("-r", "--spawn-rate"), "spawn_rate", group="Load", type=Finite(min=0, min_open=True),
       default=1.0, show_default=True, field="spawn_rate",
       help="Users started per second, over all workers."),
    _O(("-t", "--run-time"), "run_time", group="Run", parse=_timespan, metavar="TIME",
       field="run_time",
       help="Stop after e.g. 30s, 5m, 1h30m."),
    _O(("--processes",), "processes", group="Run", type=int, default=1, show_default=True,
       field="processes", coordinator_only=True,
       help="Worker processes; -1 for one per CPU core."),
    _O(("--headless",), "headless", group="Run", flag=True,
       help="Run at once, without the web UI (as in CI); without it the UI waits for a start."),
    _O(("--web-host",), "web_host", group="Web UI", default="127.0.0.1", show_default=True,
       field="web_host",
       help="Interface of the web UI; any other than loopback needs --web-auth or the printed "
       "token."),
    _O(("--web-port",), "web_port", group="Web UI", type=click.IntRange(0, 65535),
       default=8089, show_default=True, field="web_port", help="Port of the web UI."),
    _O(("--web-auth",), "web_auth", group="Web UI", field="web_auth",
       help="user:password required by the web UI (HTTP Basic)."),
    _O(("--web-allowed-host",), "web_allowed_host", group="Web UI", multiple=True,
       metavar="NAME", field="web_allowed_hosts",
       help="Another name the web UI is reached as, any port (repeatable; e.g. behind a proxy). "
       "Requests for other Host names are refused (421)."),
    _O(("--prometheus",), "prometheus", group="Reports", metavar="[HOST:]PORT",
       field="prometheus",
       help="Serve Prometheus metrics on /metrics (127.0.0.1 unless HOST; off loopback with "
       "--web-auth)."),
    _O(("--prometheus-buckets",), "prometheus_buckets", group="Reports", metavar="TIMES",
       parse=_converter(parse_buckets), field="prometheus_buckets", to_text=_buckets_text,
       help="Response-time histogram boundaries for --prometheus, e.g. 5ms,50ms,0.5,2s "
       "[default: 1ms to 60s]."),
    _O(("--prometheus-linger",), "prometheus_linger", group="Reports", type=Finite(min=0),
       default=0.0, metavar="SECONDS", field="prometheus_linger",
       help="After the run, keep serving its final metrics this long (for a last scrape)."),
    _O(("--profile",), "profile", group="Load", metavar="NAME[:K=V,...]",
       help="A built-in load profile instead of a LoadTestShape: steady, ramp, step, spike, soak, "
       "diurnal, e.g. 'spike:base=50,peak=500,every=2m,for=20s' (users; 50/s for rates)."),
    # set by `mpswarm capacity`: its search's settings
    _O(("--capacity",), "capacity", None, group="Subcommands", hidden=True),
    # set by `mpswarm replay`: its spec, as JSON
    _O(("--replay",), "replay", None, group="Subcommands", hidden=True, field="replay",
       to_config=_replay_spec, to_text=json.dumps),
    _O(("--autostart",), "autostart", group="Web UI", flag=True, field="autostart",
       help="Web UI: start the run at once."),
    _O(("--autoquit",), "autoquit", group="Web UI", type=Finite(min=0), field="autoquit",
       help="Web UI: quit this many seconds after a run ends."),
    _O(("-T", "--tags"), "tags", group="Run", multiple=True, several=True, parse=_split_tags,
       field="tags",
       help="Only run tasks with one of these tags (comma-separated, repeatable; -T a b)."),
    _O(("-E", "--exclude-tags"), "exclude_tags", group="Run", multiple=True, several=True,
       parse=_split_tags, field="exclude_tags",
       help="Never run tasks with one of these tags (comma-separated, repeatable; -E a b)."),
    _O(("-l", "--list"), "list_classes", group="Run", flag=True,
       help="List the User classes of the locustfile and exit."),
    _O(("--loglevel", "-L"), "loglevel", group="Other",
       type=click.Choice(_LOG_LEVELS, case_sensitive=False), default="INFO", show_default=True,
       field="loglevel", to_config=str.upper, help="Log level; DEBUG shows tracebacks."),
    _O(("--exit-code-on-error",), "exit_code_on_error", group="Checks", type=int,
       default=EXIT_ERROR, show_default=True, field="exit_code_on_error",
       help="Exit code when requests failed or user code raised."),
    _O(("-s", "--stop-timeout"), "stop_timeout", group="Run", parse=_timespan, default="0",
       metavar="TIME", field="stop_timeout",
       help="Time users get to finish their task when the run stops (default 0)."),
    _O(("--csv",), "csv_prefix", group="Reports", metavar="PREFIX", field="csv_prefix",
       help="Write Locust-compatible CSV files PREFIX_stats.csv, ... every second."),
    _O(("--csv-full-history",), "csv_full_history", group="Reports", flag=True,
       field="csv_full_history",
       help="Add a row per endpoint to PREFIX_stats_history.csv every second."),
    _O(("--json",), "json_stdout", group="Reports", flag=True, field="json_stdout",
       help="Print the final stats as JSON on stdout (the summary goes to stderr)."),
    _O(("--json-file",), "json_file", group="Reports", metavar="FILE", field="json_file",
       help="Write the final stats as JSON to FILE."),
    _O(("--hdr-log",), "hdr_log", group="Reports", metavar="FILE", field="hdr_log",
       help="Write the response times as an HdrHistogram interval log (one histogram per "
       "endpoint per interval)."),
    _O(("--hdr-interval",), "hdr_interval", group="Reports", type=Finite(), default=1.0,
       show_default=True, metavar="SECONDS", field="hdr_interval",
       help="The --hdr-log interval."),
    _O(("--html",), "html_file", group="Reports", metavar="FILE", field="html_file",
       help="Write a self-contained HTML report with charts to FILE."),
    _O(("--junit",), "junit_file", group="Reports", metavar="FILE", field="junit_file",
       help="Write JUnit XML to FILE: one testcase per --check."),
    _O(("--summary-file",), "summary_file", group="Reports", metavar="FILE",
       field="summary_file",
       help="Write the end-of-run summary (the tables and the verdict) to FILE too."),
    _O(("--check",), "checks", group="Checks", multiple=True, metavar="EXPR", field="checks",
       help="Threshold, e.g. 'p95<300ms', 'fail_ratio<0.01', 'GET /login: p99<1s'; "
       "repeatable. A failed check sets exit code 3."),
    _O(("--check-abort",), "check_abort", group="Checks", flag=True, field="check_abort",
       help="Stop early once a check has been failing for --check-grace."),
    _O(("--check-grace",), "check_grace", group="Checks", parse=_timespan, default="10s",
       show_default=True, metavar="TIME", field="check_grace",
       help="How long a check may fail before --check-abort stops the run."),
    _O(("--print-interval",), "print_interval", group="Reports",
       type=Finite(min=0, min_open=True), default=10.0, show_default=True,
       field="print_interval", help="Seconds between status lines when not on a terminal."),
    _O(("--only-summary",), "only_summary", group="Reports", flag=True, field="only_summary",
       help="No live status: only the final summary."),
    _O(("--cpu-warn",), "cpu_warn", group="Resources", type=Finite(min=0, min_open=True),
       default=90.0, show_default=True, field="cpu_warn",
       help="Worker CPU % (of one core) counted as saturation."),
    _O(("--lag-warn",), "lag_warn", group="Resources", parse=_duration_ms, default="50ms",
       show_default=True, metavar="TIME", field="lag_warn_ms", to_text=_ms_text,
       help="Worker event-loop lag p99 counted as saturation (e.g. 50ms)."),
    _O(("--max-worker-memory",), "max_worker_memory", group="Resources", parse=_size,
       metavar="SIZE", field="max_worker_memory",
       help="Recycle a worker whose RSS exceeds SIZE (e.g. 512MB)."),
    _O(("--max-memory",), "max_memory", group="Resources", parse=_size, metavar="SIZE",
       field="max_memory",
       help="Stop the run (exit 4) when all processes together exceed SIZE."),
    _O(("--max-restarts",), "max_restarts", group="Resources", type=click.IntRange(min=0),
       default=5, show_default=True, field="max_restarts",
       help="Worker deaths tolerated within a minute before the run stops (exit 4)."),
    _O(("--insecure",), "insecure", group="Run", flag=True,
       help="Skip TLS certificate verification (HttpUser and FastHttpUser)."),
    _O(("--reset-stats",), "reset_stats", group="Run", flag=True, field="reset_stats",
       help="Start the statistics afresh once all users are spawned."),
    _O(("-i", "--iterations"), "iterations", group="Run", type=click.IntRange(min=1),
       field="iterations", help="Stop after exactly this many task runs in total."),
    _O(("--arrival-rate",), "arrival_rate", group="Open model", parse=_arrival_rate,
       metavar="RATE", field="arrival_rate",
       help="Open model: start iterations (one task run) at this rate, e.g. 500/s, 30000/m, "
       "whatever the responses take. -u then pre-allocates users."),
    # replay: mpswarm replay's own
    _O(("--arrivals",), "arrivals", group="Open model",
       type=click.Choice(["constant", "poisson", "replay"]), default="constant",
       show_default=True, field="arrivals",
       help="Open model: evenly spaced iterations, or Poisson arrivals."),
    _O(("--max-users",), "max_users", group="Open model", type=click.IntRange(min=1),
       field="max_users",
       help="Open model: most users at once; an iteration due when all are busy is dropped "
       "[default: 1000, or -u if larger]."),
    _O(("--max-endpoints",), "max_endpoints", group="Resources", type=click.IntRange(min=1),
       default=10_000, show_default=True, field="max_endpoints",
       help="Distinct request names in the whole run before further ones fold into one row."),
    _O(("--ray",), "ray", group="Cluster", metavar="ADDRESS", coordinator_only=True,
       help="Run the workers on every node of this Ray cluster (auto: the one this machine is "
       "in; local: a throwaway one here); --processes is then per node. Needs mpswarm[ray]."),
    _O(("--ray-hosts",), "ray_hosts", group="Cluster", type=click.IntRange(min=1),
       metavar="N", coordinator_only=True,
       help="Under --ray: use N of the cluster's nodes (default: all)."),
    _O(("--config",), "config_file", group="Other", in_files=False, coordinator_only=True,
       metavar="FILE", mpswarm_env="MPSWARM_CONFIG",
       help="Config file (key = value lines) to read."),
)  # fmt: skip

#: The options by name.
BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
#: Configuration-file keys (dashes written as underscores) to the option each sets.
CONFIG_KEYS: dict[str, str] = {key: option.name for option in OPTIONS for key in option.config_keys}

#: RunConfig fields no option fills as it is: the run command works them out.
COMPUTED_FIELDS = {
    "user_classes": "the User classes selected (USER_CLASSES, or all of the locustfile's)",
    "shape": "the locustfile's LoadTestShape, --profile's, or mpswarm capacity's search",
    "max_errors": "no option: RunConfig's own default",
}


def click_option(option: Option) -> click.Option:
    """The click option of ``option``, reading its two environment variables."""
    settings: dict[str, Any] = {"help": option.help, "envvar": list(option.envvars)}
    if option.flag:
        settings["is_flag"] = True
    else:
        settings.update(type=option.type, multiple=option.multiple, callback=option.parse)
    # Only what is set: click tells an absent default or show_default from None / False.
    settings.update({key: value for key, value in (
        ("default", option.default), ("metavar", option.metavar),
        ("show_default", option.show_default or None), ("hidden", option.hidden or None),
    ) if value is not None})  # fmt: skip
    return click.Option([*option.flags, option.name], **settings)


class GroupedCommand(click.Command):
    """A command whose ``--help`` lists its options by topic (``GROUPS``), as Locust's does.

    The locustfile's own options (``init_command_line_parser``) come under their own heading;
    ``--help`` and ``--version`` under "Other".
    """

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write the options, one section per topic, in ``GROUPS`` order."""
        sections: dict[str, list[tuple[str, str]]] = {group: [] for group in GROUPS}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or isinstance(param, click.Argument):  # (the usage line's)
                continue
            option = BY_NAME.get(param.name or "")
            if option is not None:
                group = option.group
            elif {"--help", "--version"} & set(param.opts):
                group = "Other"
            else:
                group = "The locustfile's options"
            sections.setdefault(group, []).append(record)
        for group, records in sections.items():
            if records:
                with formatter.section(group):
                    formatter.write_dl(records)


def run_options(func: Callable[..., int]) -> click.Command:
    """``func`` as the run command, taking every option of ``OPTIONS`` as a keyword argument."""
    command = click.command(
        cls=GroupedCommand,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
        epilog="Also: 'mpswarm serve --help' for the built-in demo target. Every option can be set "
        "as MPSWARM_<OPTION> in the environment or in mpswarm.conf / [tool.mpswarm] in "
        "pyproject.toml; the command line wins over the environment, which wins over files.",
        params=[click.Argument(["user_classes"], nargs=-1), *map(click_option, OPTIONS)],
    )(func)
    return click.version_option(__version__, "-V", "--version", prog_name="mpswarm")(command)


def config_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """The RunConfig fields the parsed ``options`` fill; an absent value (None) leaves the
    field's default."""
    fields = {}
    for option in OPTIONS:
        value = options[option.name]
        if option.field is not None and value is not None:
            fields[option.field] = value if option.to_config is None else option.to_config(value)
    return fields


def argv_for(values: Mapping[str, Any]) -> list[str]:
    """The command line that gives the options named in ``values`` those values (None:
    left out; a flag: given when true; ``multiple``: a flag per item)."""
    argv: list[str] = []
    for name, value in values.items():
        option = BY_NAME[name]
        if value is None or (option.flag and not value):
            continue
        if option.flag:
            argv.append(option.flags[0])
        else:
            for item in value if option.multiple else (value,):
                argv += [option.flags[0], str(item)]
    return argv


def config_argv(config: RunConfig) -> list[str]:
    """A command line that parses back to ``config`` (a RunConfig) but for its computed
    fields: each field that differs from RunConfig's default, written by its option."""
    defaults = RunConfig()
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.field is None or option.field in COMPUTED_FIELDS:
            continue
        value = getattr(config, option.field)
        if value == getattr(defaults, option.field):
            continue
        write = option.to_text
        values[option.name] = (
            value if option.flag else [write(v) for v in value] if option.multiple else write(value)
        )
    return [*config.user_classes, *argv_for(values)]


def flags_of(options: Iterable[Option]) -> tuple[str, ...]:
    """Every spelling of ``options``."""
    return tuple(flag for option in options for flag in option.flags)


__all__ = [
    "BY_NAME", "COMPUTED_FIELDS", "CONFIG_KEYS", "EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "GROUPS",
    "OPTIONS", "Finite", "Option", "argv_for", "click_option", "config_argv", "config_fields",
    "envvar_names", "flags_of", "run_options",
]  # fmt: skip
