"""The run's configuration: one frozen record built once by an entry point."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from mpswarm.exceptions import UsageError

#: --prometheus-buckets' default, in seconds: 1 ms to 60 s (moved to exact edges: see
#: mpswarm.report.prometheus).
PROMETHEUS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

_TIMESPAN = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+(?:\.\d+)?)s?)?$")


def parse_timespan(text: str | int | float) -> float:
    """Parse a duration such as ``30``, ``30s``, ``5m``, ``1h30m`` or ``1h2m3s`` into seconds.

    Args:
        text: the duration; a bare number means seconds.

    Returns:
        The duration in seconds.

    Raises:
        UsageError: the text is not a duration.
    """
    if isinstance(text, (int, float)):
        if not 0 <= text < math.inf:
            raise UsageError(f"invalid time span {text!r}: must be a finite, positive number")
        return float(text)
    cleaned = text.strip().lower().replace(" ", "")
    match = _TIMESPAN.match(cleaned)
    if not cleaned or match is None or not any(match.groupdict().values()):
        raise UsageError(f"invalid time span {text!r}: use e.g. 30, 30s, 5m, 1h30m")
    hours = int(match["h"] or 0)
    minutes = int(match["m"] or 0)
    seconds = float(match["s"] or 0)
    return hours * 3600 + minutes * 60 + seconds


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str | int) -> int:
    """Parse a memory size such as ``512MB``, ``1.5G``, ``800MiB`` or ``1048576`` into bytes.

    Units are powers of 1024 (as ``free`` and ``ps`` count memory).

    Raises:
        UsageError: the text is not a size.
    """
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if match is None:
        raise UsageError(f"invalid size {text!r}: use e.g. 512MB, 2GB, 800MiB")
    unit = match[2].lower().rstrip("b").rstrip("i")
    return int(float(match[1]) * _UNITS[unit])


_RATE_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([a-z]+))?\s*$")


#: The least memory a user takes, in bytes: an idle FastHttpUser with a kept-alive connection
#: measured 2.2-2.5 KB (bench/idle_users.py). More users than memory / this cannot run.
USER_BYTES_FLOOR = 2048


def user_limit() -> int:
    """The most users a run may ask for: this machine's memory at the least a user costs."""
    import psutil

    return int(psutil.virtual_memory().total // USER_BYTES_FLOOR)


def check_users(users: int, what: str = "--users") -> None:
    """Refuse a user count that is negative or more than this machine could ever hold.

    Raises:
        UsageError: with the limit and where it comes from.
    """
    if users < 0:
        raise UsageError(f"{what} must not be negative, not {users}")
    cap = user_limit()
    if users > cap:
        raise UsageError(
            f"{what} {users} is more users than this machine could hold: at most {cap} "
            f"({USER_BYTES_FLOOR} bytes each, the least a user takes)"
        )


def check_spawn_rate(rate: float, what: str = "--spawn-rate") -> None:
    """Refuse a spawn rate that is not a positive, finite number (nan, inf, 0, negative)."""
    if not 0 < rate < math.inf:
        raise UsageError(f"{what} must be a positive, finite number, not {rate}")


def parse_rate(text: str | float) -> float:
    """Iterations per second from ``500/s``, ``30000/m``, ``10/h`` or a number (per second).

    Raises:
        UsageError: not a positive rate in that form.
    """
    if isinstance(text, (int, float)):
        rate = float(text)
    else:
        match = _RATE.match(text.lower())
        if match is None or (match[2] and match[2] not in _RATE_UNITS):
            raise UsageError(
                f"invalid arrival rate {text!r}: use e.g. '500/s', '30000/m' or '10/h'"
            )
        rate = float(match[1]) / _RATE_UNITS[match[2] or "s"]
    if not rate > 0 or math.isinf(rate):
        raise UsageError(f"the arrival rate must be positive, not {text!r}")
    return rate


def resolve_processes(processes: int, cpu_count: int) -> int:
    """Turn ``--processes`` into a worker count: -1 means one per CPU core.

    Raises:
        UsageError: zero or a negative number other than -1.
    """
    if processes == -1:
        return max(1, cpu_count)
    if processes < 1:
        raise UsageError(f"--processes must be -1 (one per core) or at least 1, not {processes}")
    return processes


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run needs to know, fixed before any process starts.

    Attributes:
        locustfile: path of the locustfile that was loaded.
        user_classes: names of the User classes to run (empty: all of them).
        host: base URL overriding the classes' ``host`` attribute, or None.
        users: peak number of concurrent users.
        spawn_rate: users started per second, in total over all workers.
        run_time: seconds to run, or None to run until stopped.
        processes: number of worker processes (already resolved, >= 1).
        tags: only run tasks with one of these tags (None: no filter).
        exclude_tags: never run tasks with one of these tags.
        stop_timeout: seconds users get to finish their current task when stopping.
        exit_code_on_error: exit code when requests failed or user code raised.
        max_endpoints: distinct (method, name) rows in the whole run before folding into one row.
        max_errors: distinct error rows in the whole run before folding into one row.
        loglevel: logging level name.
        iterations: stop after exactly this many task runs in total (None: no limit).
        shape: name of the LoadTestShape class driving the run, or None.
        reset_stats: zero the statistics once the first spawning completes.
        csv_prefix: write Locust-compatible CSV files with this prefix.
        csv_full_history: add per-endpoint rows to the CSV history.
        json_stdout: print the JSON report on stdout (the summary then goes to stderr).
        json_file, html_file, junit_file, summary_file: reports to write at the end.
        checks: threshold expressions (``--check``).
        check_abort: stop early once a check has failed for ``check_grace`` seconds.
        print_interval: seconds between status lines when stderr is not a terminal.
        only_summary: no live status, only the summary at the end.
        cpu_warn: a worker at or above this CPU % (of one core) counts as saturated.
        lag_warn_ms: a worker whose event-loop lag p99 reaches this counts as saturated.
        max_worker_memory: recycle a worker whose RSS exceeds this many bytes.
        max_memory: stop the run (exit 4) when all processes together exceed this.
        max_restarts: worker deaths tolerated within a minute before the run stops (exit 4).
        arrival_rate: open model: iterations started per second in total (None: closed model).
        arrivals: open model schedule: "constant" (evenly spaced) or "poisson".
        max_users: open model: most users at once (None: 1000, or ``users`` if larger).
        web_host, web_port: where the web UI listens (without --headless).
        web_auth: ``user:password`` the web UI requires, or None.
        web_allowed_hosts: more names the web UI answers as (``--web-allowed-host``), any port.
        autostart: web UI: start a run at once; autoquit: quit this long after a run ended.
        prometheus: ``[HOST:]PORT`` of the ``/metrics`` endpoint, or None;
            prometheus_buckets: its histogram boundaries (seconds); prometheus_linger: seconds
            it keeps serving the final numbers after the run.
        hdr_log: the HdrHistogram interval log to write, or None; hdr_interval: its interval.
    """

    locustfile: str = ""
    user_classes: tuple[str, ...] = ()
    host: str | None = None
    users: int = 1
    spawn_rate: float = 1.0
    run_time: float | None = None
    processes: int = 1
    tags: tuple[str, ...] | None = None
    exclude_tags: tuple[str, ...] | None = None
    stop_timeout: float = 0.0
    exit_code_on_error: int = 1
    max_endpoints: int = 10_000
    max_errors: int = 1_000
    loglevel: str = "INFO"
    iterations: int | None = None
    shape: str | None = None
    reset_stats: bool = False
    csv_prefix: str | None = None
    csv_full_history: bool = False
    json_stdout: bool = False
    json_file: str | None = None
    html_file: str | None = None
    junit_file: str | None = None
    summary_file: str | None = None
    checks: tuple[str, ...] = ()
    check_abort: bool = False
    check_grace: float = 10.0
    print_interval: float = 10.0
    only_summary: bool = False
    cpu_warn: float = 90.0
    lag_warn_ms: float = 50.0
    max_worker_memory: int | None = None
    max_memory: int | None = None
    max_restarts: int = 5
    arrival_rate: float | None = None
    arrivals: str = "constant"
    max_users: int | None = None
    web_host: str = "127.0.0.1"
    web_port: int = 8089
    web_auth: str | None = None
    web_allowed_hosts: tuple[str, ...] = ()
    autostart: bool = False
    autoquit: float | None = None
    prometheus: str | None = None
    prometheus_buckets: tuple[float, ...] = PROMETHEUS_BUCKETS
    prometheus_linger: float = 0.0
    replay: dict[str, Any] | None = None  # mpswarm replay: its ReplaySpec (as a dict)
    hdr_log: str | None = None
    hdr_interval: float = 1.0

    def __post_init__(self) -> None:
        check_users(self.users)
        check_spawn_rate(self.spawn_rate)
        if self.processes < 1:
            raise UsageError(f"--processes must be at least 1, not {self.processes}")
        if self.stop_timeout < 0:
            raise UsageError(f"--stop-timeout must not be negative, not {self.stop_timeout}")
        if self.iterations is not None and self.iterations < 1:
            raise UsageError(f"--iterations must be at least 1, not {self.iterations}")
        if self.print_interval <= 0:
            raise UsageError(f"--print-interval must be positive, not {self.print_interval}")
        if self.arrival_rate is not None and not self.arrival_rate > 0:
            raise UsageError(f"--arrival-rate must be positive, not {self.arrival_rate}")
        if self.arrivals not in ("constant", "poisson", *(("replay",) if self.replay else ())):
            raise UsageError(f"--arrivals must be constant or poisson, not {self.arrivals!r}")
        if self.max_users is not None:
            if self.max_users < 1:
                raise UsageError(f"--max-users must be at least 1, not {self.max_users}")
            check_users(self.max_users, "--max-users")
        if self.prometheus is not None:
            parse_address(self.prometheus)
        if not self.hdr_interval >= 1.0:
            raise UsageError(f"--hdr-interval must be at least 1 s, not {self.hdr_interval:g}")
        if self.prometheus_linger < 0:
            raise UsageError(f"--prometheus-linger must not be negative: {self.prometheus_linger}")
        if self.max_endpoints < 1:
            raise UsageError(f"--max-endpoints must be at least 1, not {self.max_endpoints}")

    @property
    def user_cap(self) -> int:
        """Open model: the most users at once (``--max-users``, default 1000 or ``users``)."""
        return self.max_users if self.max_users is not None else max(1000, self.users)


_ADDRESS = re.compile(r"^(?:(?P<host>\[[0-9a-fA-F:.]+\]|[^:\[\]]+):)?(?P<port>\d{1,5})$")
_SECONDS = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)?$")


def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (HOST defaults to 127.0.0.1; IPv6 in brackets).

    Raises:
        UsageError: not of that form, or the port is out of range.
    """
    match = _ADDRESS.match(text.strip())
    if match is None or int(match["port"]) > 65535:
        raise UsageError(f"--prometheus {text!r}: use PORT or HOST:PORT, e.g. 9646")
    host = (match["host"] or "127.0.0.1").strip("[]")
    return host, int(match["port"])


def parse_buckets(text: str) -> tuple[float, ...]:
    """``--prometheus-buckets``: comma-separated boundaries, in seconds or with ``ms``/``s``.

    Raises:
        UsageError: a value that is not a positive time, or none at all.
    """
    values = []
    for part in (p.strip() for p in text.split(",")):
        match = _SECONDS.match(part)
        if match is None or float(match["number"]) <= 0:
            raise UsageError(
                f"--prometheus-buckets {text!r}: use positive times separated by commas, "
                "in seconds or with ms, e.g. 5ms,50ms,0.5,2s"
            )
        values.append(float(match["number"]) / (1000.0 if match["unit"] == "ms" else 1.0))
    return tuple(sorted(set(values)))
