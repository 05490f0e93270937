"""A whole headless run: prepare classes, start the Swarm, wait, stop, summarise."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import gevent

from mpswarm.config import RunConfig, parse_rate
from mpswarm.env import Environment
from mpswarm.event import events
from mpswarm.report._files import write_report_file
from mpswarm.report.checks import CheckResult
from mpswarm.report.console import write_summary
from mpswarm.report.html import Point, write_html
from mpswarm.report.json_report import write_json
from mpswarm.report.junit import write_junit
from mpswarm.runner.reporting import RunReporting
from mpswarm.runner.swarm import Swarm
from mpswarm.runner.worker import WorkerSpec
from mpswarm.shape import LoadTestShape
from mpswarm.stats.snapshot import Snapshot
from mpswarm.user.task import filter_tasks_by_tags

logger = logging.getLogger(__name__)


def prepare_classes(config: RunConfig, classes: list[type]) -> list[type]:
    """Apply -H and tag filters to the classes (before the fork, so every worker agrees).

    Classes left with no task by the tag filters are dropped with a warning.
    """
    kept = []
    for cls in classes:
        if config.host:
            cls.host = config.host  # type: ignore[attr-defined]
        if config.tags is not None or config.exclude_tags:
            filter_tasks_by_tags(
                cls,
                set(config.tags) if config.tags is not None else None,
                set(config.exclude_tags or ()),
            )
            if not cls.tasks:  # type: ignore[attr-defined]
                logger.warning("%s has no task left after tag filtering: not run", cls.__name__)
                continue
        kept.append(cls)
    return kept


EXIT_CHECKS_FAILED = 3
EXIT_RESOURCE_FAILURE = 4
#: The exit code of a run that would have passed but lost a report at the end.
EXIT_REPORT_FAILED = 1


def exit_code_for(
    snapshot: Snapshot,
    config: RunConfig,
    environment: Environment,
    checks: list[CheckResult] | None = None,
) -> int:
    """The process exit code of a finished run.

    A locustfile may decide itself by setting ``environment.process_exit_code``. With checks,
    the checks decide: 3 when one failed. Otherwise failed requests decide. Exceptions in user
    code always give ``exit_code_on_error``.
    """
    if environment.process_exit_code is not None:
        return environment.process_exit_code
    if checks and not all(result.passed for result in checks):
        return EXIT_CHECKS_FAILED
    if snapshot.exceptions or (not checks and snapshot.total.failures):
        return config.exit_code_on_error
    return 0


def run_headless(
    config: RunConfig,
    classes: list[type],
    out: TextIO,
    parsed_options: Any = None,
    shape_class: type[LoadTestShape] | None = None,
) -> int:
    """Run the load test described by ``config`` and print the summary to ``out``.

    Ctrl-C or SIGTERM stop the run gracefully; a second one stops it at once.

    Returns:
        The process exit code.
    """
    environment, swarm = build_swarm(config, classes, parsed_options)
    reporting = RunReporting(config, swarm)
    # Before any greenlet exists (init listeners may start some): see runner/_zygote.py.
    swarm.start_fork_server()
    handlers: list[Any] = []
    try:
        environment.events.init.fire(environment=environment)
        swarm.start_workers()
        handlers = install_signal_handlers(swarm)
        reporting.start()
        if config.iterations:
            swarm.set_iterations(config.iterations)
        if shape_class is not None:
            environment.shape_class = shape_class()
            logger.info(
                "running the %s load shape on %d worker process(es)",
                shape_class.__name__,
                config.processes,
            )
            drive_shape(swarm, environment.shape_class, config)
        elif config.arrival_rate is not None:
            logger.info(
                "starting iterations at %g/s (%s), at most %d users, on %d worker process(es)%s",
                config.arrival_rate,
                config.arrivals,
                config.user_cap,
                config.processes,
                f" for {config.run_time:g}s" if config.run_time else " (Ctrl-C to stop)",
            )
            swarm.set_arrival(
                config.arrival_rate, config.user_cap, config.arrivals, prealloc=config.users
            )
            swarm.wait(config.run_time)
        else:
            logger.info(
                "starting %d users at %g/s on %d worker process(es)%s",
                config.users,
                config.spawn_rate,
                config.processes,
                f" for {config.run_time:g}s" if config.run_time else " (Ctrl-C to stop)",
            )
            swarm.set_target(config.users, config.spawn_rate)
            swarm.wait(config.run_time)
        if swarm.stop_reason:
            logger.info("stopping: %s", swarm.stop_reason)
        snapshot = swarm.stop_all()
        checks = reporting.finish(snapshot)
    finally:
        for handler in handlers:
            handler.cancel()
        swarm.close()
    failed = write_reports(config, snapshot, checks, reporting.series, out, reporting.failures)
    return final_exit_code(
        swarm, snapshot, config, environment, checks, reports_failed=bool(failed)
    )


def final_exit_code(
    swarm: Swarm,
    snapshot: Snapshot,
    config: RunConfig,
    environment: Environment,
    checks: list[CheckResult],
    reports_failed: bool = False,
) -> int:
    """The exit code of a run, resource failures, dead workers and lost reports included.

    A report that could not be written at the end keeps the run's own code, but never lets it
    be 0 (1 then): CI must not pass a run whose artifact is missing.
    """
    if swarm.fatal_reason is not None:
        logger.error("the run was stopped: %s", swarm.fatal_reason)
        return EXIT_RESOURCE_FAILURE
    code = exit_code_for(snapshot, config, environment, checks)
    if swarm.stop_reason == "every worker exited":
        logger.error("the run ended early: every worker process exited")
        code = max(1, code)
    if reports_failed and code == 0:
        code = EXIT_REPORT_FAILED
    return code


def build_swarm(
    config: RunConfig, classes: list[type], parsed_options: Any = None
) -> tuple[Environment, Swarm]:
    """The parent's Environment and a Swarm for ``classes`` (workers not started yet)."""
    from mpswarm.exceptions import UsageError

    classes = prepare_classes(config, classes)
    if not classes:
        raise UsageError("no User class has a task left after --tags / --exclude-tags")
    environment = Environment(
        user_classes=classes,
        host=config.host,
        events=events,
        parsed_options=parsed_options,
        stop_timeout=config.stop_timeout,
    )
    spec = WorkerSpec(
        user_classes=tuple(classes),
        host=config.host,
        stop_timeout=config.stop_timeout,
        max_endpoints=config.max_endpoints,
        max_errors=config.max_errors,
        parsed_options=parsed_options,
        processes=config.processes,
        reset_stats_after_spawn=config.reset_stats,
    )
    swarm = Swarm(
        spec,
        config.processes,
        environment,
        supervision={
            "cpu_warn": config.cpu_warn,
            "lag_warn_ms": config.lag_warn_ms,
            "max_worker_memory": config.max_worker_memory,
            "max_memory": config.max_memory,
            "max_restarts": config.max_restarts,
        },
    )
    return environment, swarm


def write_reports(
    config: RunConfig,
    snapshot: Snapshot,
    checks: list[CheckResult],
    series: list[Point],
    out: TextIO,
    lost: Sequence[str] = (),
) -> list[str]:
    """The summary (on ``out``, or stderr when the JSON goes to stdout) and report files.

    A file that cannot be written does not stop the others; those that failed, with
    ``lost`` (reports lost earlier, e.g. the CSV files), are named in one line on stderr.

    Returns:
        The reports not written, as ``OPTION PATH (why)``.
    """
    settings = run_settings(config)
    summary_stream = sys.stderr if config.json_stdout else out
    write_summary(snapshot, summary_stream)
    if checks:
        summary_stream.write("\nChecks:\n")
        for result in checks:
            summary_stream.write(f"  {'ok  ' if result.passed else 'FAIL'} {result.describe()}\n")
        failed = sum(1 for r in checks if not r.passed)
        summary_stream.write(f"{len(checks) - failed} passed, {failed} failed\n")
        summary_stream.flush()
    if config.json_stdout:
        write_json(snapshot, out, settings, checks)
        out.flush()
    files: list[tuple[str, str | None, Callable[[TextIO], None]]] = [
        ("--json-file", config.json_file, lambda s: write_json(snapshot, s, settings, checks)),
        ("--html", config.html_file, lambda s: write_html(snapshot, s, series, settings, checks)),
        ("--junit", config.junit_file, lambda s: write_junit(snapshot, s, checks)),
    ]
    failures = list(lost)
    for option, path, write in files:
        if path:
            problem = write_report_file(path, write)
            if problem is not None:
                failures.append(f"{option} {path} ({problem})")
    if failures:
        wanted = sum(1 for _, path, _ in files if path) + (1 if config.csv_prefix else 0)
        logger.error(
            "could not write %s%s",
            ", ".join(failures),
            "; the other reports were written" if wanted > len(failures) else "",
        )
    return failures


def run_settings(config: RunConfig) -> dict[str, Any]:
    """The settings of the run, as they appear in reports."""
    keys = (
        "locustfile",
        "user_classes",
        "host",
        "users",
        "spawn_rate",
        "run_time",
        "processes",
        "tags",
        "exclude_tags",
        "stop_timeout",
        "iterations",
        "shape",
        "checks",
        "arrival_rate",
        "arrivals",
        "max_users",
    )
    settings = {key: getattr(config, key) for key in keys}
    if config.arrival_rate is not None:
        settings["max_users"] = config.user_cap
    return settings


#: Seconds between two ``LoadTestShape.tick()`` calls (Locust polls once a second).
SHAPE_TICK_S = 1.0


def drive_shape(
    swarm: Swarm, shape: LoadTestShape, config: RunConfig, host: str | None = None
) -> None:
    """Poll the shape once a second and feed its targets to the dispatch path.

    ``tick()`` returns ``(users, spawn_rate[, user_classes])`` as in Locust, or, for an
    open-model run, a dict ``{"rate": per_second, "max_users": n, "user_classes": [...]}``.
    """
    run_time = config.run_time
    shape.runner = swarm
    shape.reset_time()
    deadline = None if run_time is None else gevent.get_hub().loop.now() + run_time
    by_name = {cls.__name__: cls for cls in swarm.spec.user_classes}
    last: tuple[Any, ...] | None = None
    while True:
        target = shape.tick()
        if target is None:
            swarm.request_stop(f"{type(shape).__name__}.tick() returned None")
            return
        key = tuple(sorted(target.items(), key=str)) if isinstance(target, dict) else tuple(target)
        if key != last:
            last = key
            if isinstance(target, dict):
                names = target.get("user_classes")
                swarm.set_arrival(
                    parse_rate(target["rate"]) if target["rate"] else 0.0,
                    int(target.get("max_users", config.user_cap)),
                    config.arrivals,
                    prealloc=config.users,
                    user_classes=_classes(names, by_name),
                    host=host,
                )
            else:
                users, rate, *rest = target
                classes = _classes(rest[0] if rest else None, by_name)
                swarm.set_target(int(users), float(rate), classes, host)
        timeout = SHAPE_TICK_S
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - gevent.get_hub().loop.now()))
        swarm.wait(timeout)
        if swarm.stop_requested or (
            deadline is not None and gevent.get_hub().loop.now() >= deadline
        ):
            return


def _classes(names: Any, by_name: dict[str, type]) -> list[type] | None:
    """User classes named (or given) by a shape's tick, None for all of them."""
    if not names:
        return None
    return [by_name[c] if isinstance(c, str) else c for c in names]


def install_signal_handlers(swarm: Swarm, on_first: Any = None) -> list[Any]:
    """First SIGINT/SIGTERM: graceful stop (and ``on_first()``). Second: kill the workers now
    (data is kept)."""
    received = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            logger.info("received %s: stopping (again to stop at once)", name)
            swarm.request_stop(f"received {name}")
            if on_first is not None:
                on_first()
        else:
            logger.warning("stopping at once")
            for handle in swarm.workers:
                if handle.alive and handle.pid:
                    try:
                        os.kill(handle.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    return [
        gevent.signal_handler(signum, on_signal, signum)
        for signum in (signal.SIGINT, signal.SIGTERM)
    ]
