"""The one run driver: entry points build a ``Plan`` and pick reporters; ``Run`` does the rest.

The CLI's headless mode runs one plan, the web UI one per start from the page (on workers
started once), ``mpswarm.run()`` goes through the CLI. Whatever ends a run only requests the
stop from the Swarm's ``StopScope`` (the time limit is the scope's deadline); ``Run.execute``
then goes through the one shutdown sequence (``Swarm.stop_all``) and hands back the final,
exact snapshot with its stop reason.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from typing import Any

import gevent

from mpswarm.config import RunConfig, parse_rate
from mpswarm.env import Environment
from mpswarm.event import events
from mpswarm.exceptions import UsageError, WorkerError
from mpswarm.report.checks import CheckResult
from mpswarm.report.html import Point
from mpswarm.report.outputs import write_reports
from mpswarm.runner.reporting import RunReporting
from mpswarm.runner.stop import StopKind, StopReason
from mpswarm.runner.swarm import Swarm
from mpswarm.runner.worker import WorkerSpec
from mpswarm.shape import LoadTestShape
from mpswarm.stats.snapshot import Snapshot
from mpswarm.user.task import filter_tasks_by_tags

logger = logging.getLogger(__name__)

EXIT_CHECKS_FAILED = 3
#: The exit code of a run that would have passed but lost a report at the end.
EXIT_REPORT_FAILED = 1
#: A run a signal cut short exits 128 + the signal's number, as a shell reports it.
EXIT_SIGNAL_BASE = 128
#: Seconds between two ``LoadTestShape.tick()`` calls (Locust polls once a second).
SHAPE_TICK_S = 1.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run does: a user count, a load shape or an arrival rate, for a time.

    ``user_classes`` None means all of them; ``host`` None keeps the classes' own.
    """

    users: int = 1
    spawn_rate: float = 1.0
    run_time: float | None = None
    host: str | None = None
    user_classes: tuple[type, ...] | None = None
    shape: LoadTestShape | None = None
    arrival_rate: float | None = None
    arrivals: str = "constant"
    max_users: int = 1000
    iterations: int | None = None

    @property
    def open_ended(self) -> bool:
        """True when nothing but a stop from outside (a signal, the web UI) ends this run."""
        return (
            self.run_time is None
            and self.iterations is None
            and self.shape is None
            and self.arrivals != "replay"
        )

    @classmethod
    def from_config(cls, config: RunConfig, shape: LoadTestShape | None = None) -> Plan:
        """The plan the command line describes."""
        return cls(
            users=config.users,
            spawn_rate=config.spawn_rate,
            run_time=_run_time(config),
            shape=shape,
            arrival_rate=config.arrival_rate,
            arrivals=config.arrivals,
            max_users=config.user_cap,
            iterations=config.iterations,
        )


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A finished run: the exact final numbers, the checks, and why it ended."""

    snapshot: Snapshot
    checks: list[CheckResult]
    stop: StopReason
    series: list[Point]  # the per-second points of the charts
    lost: list[str]  # reports that could not be kept up during the run (the CSV files)


class Run:
    """Workers for one or more runs: ``start()``, ``execute(plan)`` (once or more), ``close()``.

    Args:
        config: the run's configuration (limits, outputs, supervision).
        classes: the User classes (``-H`` and tag filters are applied here, before the fork).
        parsed_options: what ``environment.parsed_options`` is.
    """

    def __init__(
        self,
        config: RunConfig,
        classes: list[type],
        parsed_options: Any = None,
        fork_server: Any = None,
    ) -> None:
        self.config = config
        self.environment, self.swarm = build_swarm(config, classes, parsed_options, fork_server)
        self._signals: list[Any] = []

    def start(self, on_first_signal: Any = None) -> None:
        """Fork the fork server, fire ``init``, start the workers, take Ctrl-C and SIGTERM.

        Raises:
            WorkerError: a worker did not come up.
        """
        # Before any greenlet exists (init listeners may start some): see runner/_zygote.py.
        self.swarm.start_fork_server()
        self.environment.events.init.fire(environment=self.environment)
        self.swarm.start_workers()
        self._signals = install_signal_handlers(self.swarm, on_first_signal)

    def execute(self, plan: Plan, reporting: RunReporting) -> Outcome:
        """Drive ``plan`` until something requests the stop, then stop and collect."""
        return execute(self.swarm, plan, reporting)

    def conclude(self, outcome: Outcome, out: Any, metrics: Any = None) -> int:
        """After the run (its workers gone): write the reports, let ``metrics`` (the
        ``--prometheus`` endpoint, or None) serve the final numbers, and return the exit code."""
        if metrics is not None:
            metrics.freeze(outcome.snapshot)
        # The reports carry the exit code: decided first, then the snapshot that says it.
        snapshot = with_exit_code(outcome.snapshot, self.exit_code(outcome))

        def recode(failed: Snapshot) -> Snapshot:  # a report was lost: the code settled again
            return with_exit_code(failed, self.exit_code(outcome, reports_failed=True))

        lost = write_reports(self.config, snapshot, outcome.checks, outcome.series, out,
                             outcome.lost, recode)  # fmt: skip
        if metrics is not None:
            metrics.linger()
        return self.exit_code(outcome, reports_failed=bool(lost))

    def exit_code(self, outcome: Outcome, reports_failed: bool = False) -> int:
        """The process exit code of ``outcome`` (see ``exit_code``)."""
        return exit_code(outcome, self.config, self.environment, reports_failed)

    def close(self) -> None:
        """Quit the workers and the fork server; give the signals back."""
        for handler in self._signals:
            handler.cancel()
        self._signals = []
        self.swarm.close()


def execute(swarm: Swarm, plan: Plan, reporting: RunReporting) -> Outcome:
    """One run on started workers: drive ``plan`` until a stop is requested, then the one
    shutdown sequence, the final snapshot and the checks. A run after another one on the same
    workers (the web UI) starts from zeroed statistics."""
    if swarm.runs:
        swarm.prepare_new_run()
    swarm.runs += 1
    reporting.start()
    try:
        drive(swarm, plan)
    except WorkerError as exc:  # every worker died before the load could be set
        swarm.scope.request(StopKind.WORKERS_LOST, str(exc), 1)
    snapshot = swarm.stop_all()
    # A built-in shape adds to the reports: a --profile its phases, the capacity search its
    # steps and result.
    report_facts = getattr(plan.shape, "report_facts", None)
    if report_facts is not None:
        snapshot = report_facts(snapshot)
    checks = reporting.finish(snapshot)
    stop = swarm.stop_reason
    assert stop is not None  # stop_all requests one when nothing did
    if stop.kind is StopKind.SIGNAL and plan.open_ended and not swarm.forced:
        # No end of its own (no -t, -i, shape or replay): Ctrl-C is how such a run ends, as
        # under Locust, so its results decide the exit code, not the signal. A second signal
        # killed the workers with their requests in flight (counted as lost): cut short, never
        # PASSED, whatever the plan.
        stop = dataclasses.replace(stop, exit_code=None)
    return Outcome(snapshot, checks, stop, reporting.series, reporting.failures)


def exit_code(
    outcome: Outcome, config: RunConfig, environment: Environment, reports_failed: bool = False
) -> int:
    """The process exit code of a finished run (``with_exit_code`` puts it in a snapshot).

    A stop reason that imposes a code decides first (4: a resource failure, 1: no worker
    left, ``n``: user code's ``sys.exit(n)``, 0 included). Then a locustfile may decide
    (``environment.process_exit_code``), then the checks (3 when one failed), then failed
    requests and user errors (``--exit-code-on-error``). A report lost at the end never lets
    the code be 0.
    """
    stop = outcome.stop
    if stop.exit_code is not None:
        code = stop.exit_code
    else:
        code = _results_code(outcome, config, environment)
    if reports_failed and code == 0:
        code = EXIT_REPORT_FAILED
    return code


def with_exit_code(snapshot: Snapshot, code: int) -> Snapshot:
    """``snapshot`` whose stop reason carries the run's exit code, as the reports show it
    (the same snapshot when it has no stop reason)."""
    if snapshot.stop is None:
        return snapshot
    return dataclasses.replace(snapshot, stop=dataclasses.replace(snapshot.stop, exit_code=code))


def _results_code(outcome: Outcome, config: RunConfig, environment: Environment) -> int:
    if environment.process_exit_code is not None:
        return int(environment.process_exit_code)
    checks = outcome.checks
    if checks and not all(result.passed for result in checks):
        return EXIT_CHECKS_FAILED
    snapshot = outcome.snapshot
    if snapshot.exceptions or (not checks and snapshot.total.failures):
        return config.exit_code_on_error
    return 0


def drive(swarm: Swarm, plan: Plan) -> None:
    """Set the plan's load and follow it until a stop is requested (the deadline included)."""
    scope = swarm.scope
    scope.move_on_after(plan.run_time)
    classes = list(plan.user_classes) if plan.user_classes else None
    if plan.iterations:
        swarm.set_iterations(plan.iterations)
    if plan.shape is not None:
        drive_shape(swarm, plan)
        return
    if plan.arrival_rate is not None:
        swarm.set_arrival(
            plan.arrival_rate, plan.max_users, plan.arrivals, plan.users, classes, plan.host
        )
    else:
        swarm.set_target(plan.users, plan.spawn_rate, classes, plan.host)
    scope.wait()


def drive_shape(swarm: Swarm, plan: Plan) -> None:
    """Poll the shape once a second and feed its targets to the dispatch path.

    ``tick()`` returns ``(users, spawn_rate[, user_classes])`` as in Locust, or, for an
    open-model run, a dict ``{"rate": per_second, "max_users": n, "user_classes": [...]}``;
    None ends the run.
    """
    shape = plan.shape
    assert shape is not None
    shape.runner = swarm
    shape.reset_time()
    swarm.environment.shape_class = shape
    by_name = {cls.__name__: cls for cls in swarm.spec.user_classes}
    last: tuple[Any, ...] | None = None
    while not swarm.scope.requested:
        target = shape.tick()
        if target is None:
            swarm.scope.request(
                StopKind.SHAPE_ENDED, f"{type(shape).__name__}.tick() returned None"
            )
            return
        key = tuple(sorted(target.items(), key=str)) if isinstance(target, dict) else tuple(target)
        if key != last:
            last = key
            if isinstance(target, dict):
                swarm.set_arrival(
                    parse_rate(target["rate"]) if target["rate"] else 0.0,
                    int(target.get("max_users", plan.max_users)),
                    plan.arrivals,
                    prealloc=plan.users,
                    user_classes=shape_classes(target.get("user_classes"), by_name),
                    host=plan.host,
                )
            else:
                users, rate, *rest = target
                classes = shape_classes(rest[0] if rest else None, by_name)
                swarm.set_target(int(users), float(rate), classes, plan.host)
        swarm.scope.wait(SHAPE_TICK_S)


def shape_classes(names: Any, by_name: dict[str, type]) -> list[type] | None:
    """User classes named (or given) by a shape's tick, None for all of them."""
    if not names:
        return None
    return [by_name[c] if isinstance(c, str) else c for c in names]


def _run_time(config: RunConfig) -> float | None:
    """-t; a replay ends with its log (after --speed) or at -t, whichever comes first."""
    if not config.replay:
        return config.run_time
    lasts = float(config.replay["counts"]["duration_s"]) + 1.0
    return lasts if config.run_time is None else min(config.run_time, lasts)


def install_signal_handlers(swarm: Swarm, on_first: Any = None) -> list[Any]:
    """First SIGINT/SIGTERM: request the stop (and call ``on_first()``). Second: the stop
    goes on without waiting for the workers (they are killed; their data is kept)."""
    received = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            logger.info("received %s: stopping (again to stop at once)", name)
            # Cut short: never PASSED, and the exit code a shell gives a process that this
            # signal ended (130 for SIGINT, 143 for SIGTERM), whatever the results so far.
            swarm.request_stop(
                f"interrupted (received {name})", StopKind.SIGNAL, EXIT_SIGNAL_BASE + signum
            )
            if on_first is not None:
                on_first()
        else:
            logger.warning("stopping at once")
            swarm.force_stop()

    return [
        gevent.signal_handler(signum, on_signal, signum)
        for signum in (signal.SIGINT, signal.SIGTERM)
    ]


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


def build_swarm(
    config: RunConfig, classes: list[type], parsed_options: Any = None, fork_server: Any = None
) -> tuple[Environment, Swarm]:
    """The parent's Environment and a Swarm for ``classes`` (workers not started yet);
    ``fork_server``: a started one to use (the Ray bridge's), else the pool forks its own."""
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
        replay=config.replay,
        counted=config.iterations is not None,
    )
    supervision = {
        "cpu_warn": config.cpu_warn,
        "lag_warn_ms": config.lag_warn_ms,
        "max_worker_memory": config.max_worker_memory,
        "max_memory": config.max_memory,
        "max_restarts": config.max_restarts,
    }
    return environment, Swarm(spec, config.processes, environment, supervision, fork_server)


__all__ = [
    "Outcome",
    "Plan",
    "Run",
    "build_swarm",
    "drive",
    "execute",
    "exit_code",
    "install_signal_handlers",
    "with_exit_code",
]
