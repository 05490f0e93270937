"""``mpswarm.run()``: a load test from Python, returning a ``RunResult``.

The run happens in a child process (the ``mpswarm`` command with a JSON report), so the
caller's process is never monkey-patched and every process and segment of the run is gone when
``run()`` returns, also when it fails, times out or is interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpswarm.exceptions import MpswarmError, UsageError
from mpswarm.report._files import write_atomically
from mpswarm.report.checks import CheckResult, evaluate_all, parse_check
from mpswarm.report.json_report import snapshot_from_dict
from mpswarm.stats.run_facts import RunStop
from mpswarm.stats.snapshot import EndpointStats, Snapshot


class EndpointResult:
    """One endpoint's (or the total's) numbers. Every time says its unit in its name:
    ``percentile_ms(95)`` / ``percentile_s(95)``, ``avg_ms`` / ``avg_s``, ``min_ms``, ``max_s``...
    """

    def __init__(self, stats: EndpointStats, duration_s: float) -> None:
        self._stats = stats
        self.method = stats.method
        self.name = stats.name
        self.requests = stats.requests
        self.failures = stats.failures
        self.fail_ratio = stats.fail_ratio
        self.rps = stats.rps(duration_s)
        self.avg_ms, self.min_ms, self.max_ms = stats.avg_ms, stats.min_ms, stats.max_ms
        self.avg_s, self.min_s, self.max_s = (
            None if v is None else v / 1000 for v in (stats.avg_ms, stats.min_ms, stats.max_ms)
        )

    def percentile_ms(self, q: float) -> float | None:
        """The q-th percentile (0-100) of response times in milliseconds (as every report
        shows them), None without requests."""
        return self._stats.percentile(q)

    def percentile_s(self, q: float) -> float | None:
        """The q-th percentile (0-100) of response times in seconds, None without requests."""
        value = self._stats.percentile(q)
        return None if value is None else value / 1000

    def percentile(self, q: float) -> float | None:
        """Deprecated: seconds, as ``percentile_s``; say the unit with ``percentile_ms`` or
        ``percentile_s``."""
        import warnings

        warnings.warn("RunResult.percentile() returns seconds: use percentile_s() or "
                      "percentile_ms()", DeprecationWarning, stacklevel=2)  # fmt: skip
        return self.percentile_s(q)

    def __getattr__(self, name: str) -> Any:
        if name in ("avg", "min", "max"):  # the unit-less names of 0.1
            import warnings

            warnings.warn(f"RunResult.{name} is in seconds: use {name}_s or {name}_ms",
                          DeprecationWarning, stacklevel=2)  # fmt: skip
            return getattr(self, f"{name}_s")
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"<EndpointResult {self.method} {self.name}: {self.requests} requests>"


class RunResult(EndpointResult):
    """The outcome of ``run()``: totals (this object), endpoints, errors, checks, reports.

    Attributes:
        endpoints: ``{(method, name): EndpointResult}``.
        errors: ``[(method, name, error, occurrences)]``.
        exceptions: ``[(count, message)]`` raised by user code.
        recovery_events: what the supervisor did (dicts).
        checks: every ``CheckResult``; ``failed_checks`` those that failed.
        exit_code: the exit code the command line would have returned.
        stop: why the run ended (a ``RunStop``: ``kind``, ``message``, ``exit_code``, ``at``),
            None when the report does not say.
        duration_s: how long the load ran.
    """

    def __init__(
        self,
        snapshot: Snapshot,
        data: dict[str, Any],
        exit_code: int,
        checks: list[CheckResult],
        reports: str | None = None,
    ) -> None:
        super().__init__(snapshot.total, snapshot.duration_s)
        #: The folder where the run wrote its reports (``run()``: removed with this result).
        self._reports = reports
        self.snapshot = snapshot
        self.data = data
        self.exit_code = exit_code
        self.duration_s = snapshot.duration_s
        self.endpoints = {
            (e.method, e.name): EndpointResult(e, snapshot.duration_s) for e in snapshot.endpoints
        }
        self.errors = [(e.method, e.name, e.error, e.occurrences) for e in snapshot.errors]
        self.exceptions = [(e.count, e.message) for e in snapshot.exceptions]
        self.recovery_events = list(data.get("recovery_events") or [])
        self.stop = snapshot.stop
        self.checks = checks
        self.failed_checks = [c for c in checks if not c.passed]

    def endpoint(self, name: str, method: str | None = None) -> EndpointResult | None:
        """One endpoint's result, by name (and method)."""
        for (m, n), result in self.endpoints.items():
            if n == name and (method is None or m == method):
                return result
        return None

    def check(self, *expressions: str) -> list[CheckResult]:
        """Evaluate threshold expressions against this result (see ``--check``)."""
        return evaluate_all([parse_check(e) for e in expressions], self.snapshot)

    def summary(self) -> str:
        """The end-of-run summary, as the command line printed it."""
        written = self._report("summary.txt")
        if written is not None:
            return written.read_text(encoding="utf-8")
        import io

        from mpswarm.report.console import write_summary

        out = io.StringIO()  # a result not made by run(): from its JSON report alone
        write_summary(self.snapshot, out)
        return out.getvalue()

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON report."""

        def write(stream: Any) -> None:
            json.dump(self.data, stream, indent=2)
            stream.write("\n")

        write_atomically(os.fspath(path), write)

    def write_csv(self, prefix: str) -> None:
        """Write the four CSV files of ``--csv PREFIX``: PREFIX_stats.csv,
        PREFIX_stats_history.csv, PREFIX_failures.csv and PREFIX_exceptions.csv."""
        from mpswarm.report._files import CSV_SUFFIXES

        missing = [s for s in CSV_SUFFIXES if self._report("run" + s) is None]
        if missing:
            raise UsageError(
                f"this result has no {', '.join(missing)} (a run of mpswarm.run() writes them; "
                "one given its own --csv in extra_args wrote them there)"
            )
        for suffix in CSV_SUFFIXES:
            self._copy("run" + suffix, f"{prefix}{suffix}", None)

    def write_html(self, path: str | os.PathLike[str]) -> None:
        """Write the HTML report, with its charts over time (as ``--html``)."""
        from mpswarm.report.html import write_html

        self._copy(
            "report.html",
            path,
            lambda s: write_html(self.snapshot, s, [], self.data.get("settings", {}), self.checks),
        )

    def _report(self, name: str) -> Path | None:
        if self._reports is None:
            return None
        path = Path(self._reports) / name
        return path if path.is_file() else None

    def _copy(self, name: str, path: str | os.PathLike[str], fallback: Any) -> None:
        """Write the run's own ``name`` to ``path`` (atomically), or ``fallback(stream)``."""
        written = self._report(name)
        if written is None and fallback is None:
            raise UsageError(f"this result has no {name}")
        if written is None:
            write_atomically(os.fspath(path), fallback)
            return

        def copy(stream: Any) -> None:
            with open(written, encoding="utf-8", newline="") as source:
                shutil.copyfileobj(source, stream)

        write_atomically(os.fspath(path), copy, newline="")


def _locate(user_classes: Sequence[type]) -> tuple[str, list[str]]:
    """The file that defines the classes (the locustfile of the child run) and their names."""
    files = set()
    for cls in user_classes:
        module = sys.modules.get(cls.__module__)
        path = getattr(module, "__file__", None)
        if path is None or "<locals>" in cls.__qualname__:
            raise UsageError(
                f"{cls.__qualname__} must be defined at the top level of a module file so that "
                "the workers can import it (not in a function or a notebook cell): put it in a "
                "locustfile and pass locustfile=..."
            )
        files.add(path)
    if len(files) != 1:
        raise UsageError("all user classes must come from one module (or pass locustfile=...)")
    return files.pop(), [cls.__name__ for cls in user_classes]


def run(
    user_classes: type | Sequence[type] | None = None,
    *,
    locustfile: str | None = None,
    users: int = 1,
    spawn_rate: float | None = None,
    run_time: str | float = "10s",
    host: str | None = None,
    processes: int = 1,
    checks: Sequence[str] = (),
    shape: str | None = None,
    iterations: int | None = None,
    stop_timeout: str | float = 0,
    extra_args: Sequence[str] = (),
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> RunResult:
    """Run a load test and return its result; blocks until it is over.

    Args:
        user_classes: User classes (defined at module level) or None with ``locustfile``.
        locustfile: path of a locustfile (all its User classes run unless classes are given).
        users: peak number of users.
        spawn_rate: users started per second (default: all at once).
        run_time: how long, e.g. "5s", "1m" or seconds.
        host: base URL of the target.
        processes: worker processes (-1: one per core).
        checks: threshold expressions, as ``--check``.
        shape: name of a LoadTestShape class in the locustfile.
        iterations: stop after exactly this many task runs.
        stop_timeout: time users get to finish their task at the end.
        extra_args: further command-line options.
        timeout: seconds after which the run is killed (default: run_time + 120).
        env: extra environment variables for the run.

    Raises:
        UsageError: bad arguments, or the run failed before producing a report (the message
            carries its error output).
    """
    from mpswarm.config import parse_timespan

    classes: list[type] = []
    if user_classes is not None:
        classes = [user_classes] if isinstance(user_classes, type) else list(user_classes)
    if locustfile is None:
        if not classes:
            raise UsageError("pass user classes or locustfile=")
        locustfile, names = _locate(classes)
    else:
        names = [cls.__name__ for cls in classes]
    if shape:
        names.append(shape)
    seconds = parse_timespan(run_time)
    # The reports stay in this folder for the result's lifetime (removed when it is
    # collected, or at exit): the same files the command line writes, charts included.
    tmp = tempfile.mkdtemp(prefix="mpswarm-run-")
    folder = Path(tmp)
    from mpswarm.cli.options import argv_for

    args = [
        sys.executable, "-m", "mpswarm",
        *argv_for({"locustfile": str(locustfile)}),
        *names,
        *argv_for({
            "headless": True,
            "users": users,
            "spawn_rate": spawn_rate if spawn_rate else max(users, 1),
            "run_time": f"{seconds}s",
            "processes": processes,
            "stop_timeout": stop_timeout,
            "only_summary": True,
            "json_file": folder / "report.json",
            "summary_file": folder / "summary.txt",
            "csv_prefix": folder / "run",
            "html_file": folder / "report.html",
            "host": host or None,
            "iterations": iterations or None,
            "checks": checks,
        }),
    ]  # fmt: skip
    args += list(extra_args)
    try:
        data, code = _child_run(args, folder, timeout or seconds + 120, env)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    snapshot = snapshot_from_dict(data)
    check_results = evaluate_all([parse_check(e) for e in checks], snapshot)
    result = RunResult(snapshot, data, code, check_results, tmp)
    weakref.finalize(result, shutil.rmtree, tmp, True)
    return result


def _child_run(
    args: list[str], folder: Path, timeout: float, env: dict[str, str] | None
) -> tuple[dict[str, Any], int]:
    """Run the command line; (its JSON report, its exit code)."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except BaseException:  # a timeout, Ctrl-C, a test framework's own timeout
        _stop(proc)
        raise
    report = folder / "report.json"
    if not report.exists():
        last = (stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UsageError(f"the run failed (exit code {proc.returncode}): {last}")
    return json.loads(report.read_text()), proc.returncode


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop a run: SIGTERM (graceful, reports written), then SIGKILL (its workers follow)."""
    for signum, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    proc.communicate()


__all__ = ["EndpointResult", "MpswarmError", "RunResult", "RunStop", "run"]
