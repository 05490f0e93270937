"""Every option of the ``mpswarm`` run command: its name, type, default, help and check.

``mpswarm.cli.main.run_command`` receives them as keyword arguments and builds the RunConfig; a
value that cannot be parsed is a one-line usage error here, before the locustfile is imported.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import click

from mpswarm._version import __version__
from mpswarm.config import parse_buckets, parse_rate, parse_size, parse_timespan
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


def run_options(func: Callable[..., int]) -> click.Command:
    """``func`` as the run command, taking every option below as a keyword argument."""

    @click.command(
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
        epilog="Also: 'mpswarm serve --help' for the built-in demo target. Every option can be set "
        "as MPSWARM_<OPTION> in the environment or in mpswarm.conf / [tool.mpswarm] in "
        "pyproject.toml; the command line wins over the environment, which wins over files.",
    )
    @click.argument("user_classes", nargs=-1)
    @click.option(
        "-f",
        "--locustfile",
        default="locustfile.py",
        show_default=True,
        help="Python file defining User classes; as in Locust, also a directory of them or a "
        "comma-separated list.",
    )
    @click.option("-H", "--host", help="Base URL of the target, e.g. http://127.0.0.1:8089.")
    @click.option(
        "-u",
        "--users",
        type=click.IntRange(min=0),
        default=1,
        show_default=True,
        help="Peak number of concurrent users.",
    )
    @click.option(
        "-r",
        "--spawn-rate",
        type=Finite(min=0, min_open=True),
        default=1.0,
        show_default=True,
        help="Users started per second, over all workers.",
    )
    @click.option("-t", "--run-time", callback=_timespan, help="Stop after e.g. 30s, 5m, 1h30m.")
    @click.option(
        "--processes",
        type=int,
        default=1,
        show_default=True,
        help="Worker processes; -1 for one per CPU core.",
    )
    @click.option(
        "--headless",
        is_flag=True,
        help="Run at once, without the web UI (as in CI); without it the UI waits for a start.",
    )
    @click.option(
        "--web-host",
        default="127.0.0.1",
        show_default=True,
        help="Interface of the web UI; any other than loopback needs --web-auth or the printed "
        "token.",
    )
    @click.option(
        "--web-port", type=click.IntRange(0, 65535), default=8089, show_default=True,
        help="Port of the web UI.",
    )  # fmt: skip
    @click.option("--web-auth", help="user:password required by the web UI (HTTP Basic).")
    @click.option(
        "--web-allowed-host",
        multiple=True,
        metavar="NAME",
        help="Another name the web UI is reached as, any port (repeatable; e.g. behind a proxy). "
        "Requests for other Host names are refused (421).",
    )
    @click.option(
        "--prometheus", metavar="[HOST:]PORT",
        help="Serve Prometheus metrics on /metrics (127.0.0.1 unless HOST; off loopback with "
        "--web-auth).",
    )  # fmt: skip
    @click.option(
        "--prometheus-buckets", metavar="TIMES", callback=_converter(parse_buckets),
        help="Response-time histogram boundaries for --prometheus, e.g. 5ms,50ms,0.5,2s "
        "[default: 1ms to 60s].",
    )  # fmt: skip
    @click.option(
        "--prometheus-linger", type=Finite(min=0), default=0.0, metavar="SECONDS",
        help="After the run, keep serving its final metrics this long (for a last scrape).",
    )  # fmt: skip
    @click.option(
        "--profile", metavar="NAME[:K=V,...]",
        help="A built-in load profile instead of a LoadTestShape: steady, ramp, step, spike, soak, "
        "diurnal, e.g. 'spike:base=50,peak=500,every=2m,for=20s' (users; 50/s for rates).",
    )  # fmt: skip
    @click.option("--capacity", "capacity", hidden=True)  # set by `mpswarm capacity`
    @click.option("--replay", "replay", hidden=True)  # set by `mpswarm replay`: its spec, as JSON
    @click.option("--autostart", is_flag=True, help="Web UI: start the run at once.")
    @click.option(
        "--autoquit",
        type=Finite(min=0),
        default=None,
        help="Web UI: quit this many seconds after a run ends.",
    )
    @click.option(
        "-T",
        "--tags",
        multiple=True,
        callback=_split_tags,
        help="Only run tasks with one of these tags (comma-separated, repeatable; -T a b).",
    )
    @click.option(
        "-E",
        "--exclude-tags",
        multiple=True,
        callback=_split_tags,
        help="Never run tasks with one of these tags (comma-separated, repeatable; -E a b).",
    )
    @click.option(
        "-l",
        "--list",
        "list_classes",
        is_flag=True,
        help="List the User classes of the locustfile and exit.",
    )
    @click.option(
        "--loglevel",
        "-L",
        type=click.Choice(_LOG_LEVELS, case_sensitive=False),
        default="INFO",
        show_default=True,
        help="Log level; DEBUG shows tracebacks.",
    )
    @click.option(
        "--exit-code-on-error",
        type=int,
        default=EXIT_ERROR,
        show_default=True,
        help="Exit code when requests failed or user code raised.",
    )
    @click.option(
        "-s",
        "--stop-timeout",
        callback=_timespan,
        default="0",
        help="Time users get to finish their task when the run stops (default 0).",
    )
    @click.option(
        "--csv",
        "csv_prefix",
        metavar="PREFIX",
        help="Write Locust-compatible CSV files PREFIX_stats.csv, ... every second.",
    )
    @click.option(
        "--csv-full-history",
        is_flag=True,
        help="Add a row per endpoint to PREFIX_stats_history.csv every second.",
    )
    @click.option(
        "--json",
        "json_stdout",
        is_flag=True,
        help="Print the final stats as JSON on stdout (the summary goes to stderr).",
    )
    @click.option("--json-file", metavar="FILE", help="Write the final stats as JSON to FILE.")
    @click.option(
        "--hdr-log", metavar="FILE",
        help="Write the response times as an HdrHistogram interval log (one histogram per "
        "endpoint per interval).",
    )  # fmt: skip
    @click.option(
        "--hdr-interval", type=Finite(), default=1.0, show_default=True, metavar="SECONDS",
        help="The --hdr-log interval.",
    )  # fmt: skip
    @click.option(
        "--html",
        "html_file",
        metavar="FILE",
        help="Write a self-contained HTML report with charts to FILE.",
    )
    @click.option(
        "--junit",
        "junit_file",
        metavar="FILE",
        help="Write JUnit XML to FILE: one testcase per --check.",
    )
    @click.option(
        "--summary-file",
        metavar="FILE",
        help="Write the end-of-run summary (the tables and the verdict) to FILE too.",
    )
    @click.option(
        "--check",
        "checks",
        multiple=True,
        metavar="EXPR",
        help="Threshold, e.g. 'p95<300ms', 'fail_ratio<0.01', 'GET /login: p99<1s'; "
        "repeatable. A failed check sets exit code 3.",
    )
    @click.option(
        "--check-abort",
        is_flag=True,
        help="Stop early once a check has been failing for --check-grace.",
    )
    @click.option(
        "--check-grace",
        callback=_timespan,
        default="10s",
        show_default=True,
        help="How long a check may fail before --check-abort stops the run.",
    )
    @click.option(
        "--print-interval",
        type=Finite(min=0, min_open=True),
        default=10.0,
        show_default=True,
        help="Seconds between status lines when not on a terminal.",
    )
    @click.option("--only-summary", is_flag=True, help="No live status: only the final summary.")
    @click.option(
        "--cpu-warn",
        type=Finite(min=0, min_open=True),
        default=90.0,
        show_default=True,
        help="Worker CPU % (of one core) counted as saturation.",
    )
    @click.option(
        "--lag-warn",
        callback=_duration_ms,
        default="50ms",
        show_default=True,
        help="Worker event-loop lag p99 counted as saturation (e.g. 50ms).",
    )
    @click.option(
        "--max-worker-memory",
        callback=_size,
        metavar="SIZE",
        help="Recycle a worker whose RSS exceeds SIZE (e.g. 512MB).",
    )
    @click.option(
        "--max-memory",
        callback=_size,
        metavar="SIZE",
        help="Stop the run (exit 4) when all processes together exceed SIZE.",
    )
    @click.option(
        "--max-restarts",
        type=click.IntRange(min=0),
        default=5,
        show_default=True,
        help="Worker deaths tolerated within a minute before the run stops (exit 4).",
    )
    @click.option(
        "--insecure",
        is_flag=True,
        help="Skip TLS certificate verification (HttpUser and FastHttpUser).",
    )
    @click.option(
        "--reset-stats",
        is_flag=True,
        help="Start the statistics afresh once all users are spawned.",
    )
    @click.option(
        "-i",
        "--iterations",
        type=click.IntRange(min=1),
        default=None,
        help="Stop after exactly this many task runs in total.",
    )
    @click.option(
        "--arrival-rate",
        callback=_arrival_rate,
        help="Open model: start iterations (one task run) at this rate, e.g. 500/s, 30000/m, "
        "whatever the responses take. -u then pre-allocates users.",
    )
    @click.option(
        "--arrivals",
        type=click.Choice(["constant", "poisson", "replay"]),  # replay: mpswarm replay's own
        default="constant",
        show_default=True,
        help="Open model: evenly spaced iterations, or Poisson arrivals.",
    )
    @click.option(
        "--max-users",
        type=click.IntRange(min=1),
        default=None,
        help="Open model: most users at once; an iteration due when all are busy is dropped "
        "[default: 1000, or -u if larger].",
    )
    @click.option(
        "--max-endpoints",
        type=click.IntRange(min=1),
        default=10_000,
        show_default=True,
        help="Distinct request names in the whole run before further ones fold into one row.",
    )
    @click.option(
        "--ray",
        "ray",
        metavar="ADDRESS",
        default=None,
        help="Run the workers on every node of this Ray cluster (auto: the one this machine is "
        "in; local: a throwaway one here); --processes is then per node. Needs mpswarm[ray].",
    )
    @click.option(
        "--ray-hosts",
        "ray_hosts",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Under --ray: use N of the cluster's nodes (default: all).",
    )
    @click.option("--config", "config_file", help="Config file (key = value lines) to read.")
    @click.version_option(__version__, "-V", "--version", prog_name="mpswarm")
    @functools.wraps(func)
    def run_command(**options: Any) -> int:
        return func(**options)

    return run_command
