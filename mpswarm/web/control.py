"""What the web UI steers: runs on a live Swarm, started, changed and stopped from the page.

The workers start once, with the UI; each run (from the start form) resets the statistics,
sends targets through the same dispatch path as the command line and shapes, samples once a
second like a headless run (history, charts, CSV files for download), and ends on Stop, at
the end of its run time, or on a failed ``--check-abort`` check. A new run can follow.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import shutil
import tempfile
from typing import Any

import gevent
from gevent.event import Event

from mpswarm._locustfile import check_given_host
from mpswarm._text import without_credentials
from mpswarm.config import RunConfig, check_spawn_rate, check_users, parse_timespan
from mpswarm.exceptions import UsageError
from mpswarm.report.charts import figures
from mpswarm.report.checks import CheckResult
from mpswarm.report.html import write_html
from mpswarm.report.json_report import endpoint_dict, write_json
from mpswarm.report.outputs import run_settings
from mpswarm.runner.reporting import RunReporting
from mpswarm.runner.run import Outcome, Plan, execute, exit_code, with_exit_code
from mpswarm.runner.stop import StopKind
from mpswarm.runner.swarm import Swarm
from mpswarm.stats.snapshot import Snapshot

logger = logging.getLogger(__name__)

#: Files offered for download: name -> content type.
DOWNLOADS = {
    "stats.csv": "text/csv",
    "stats_history.csv": "text/csv",
    "failures.csv": "text/csv",
    "exceptions.csv": "text/csv",
    "report.json": "application/json",
    "report.html": "text/html",
}


@dataclasses.dataclass
class RunRequest:
    """A start (or change) from the page, validated."""

    users: int
    spawn_rate: float
    host: str | None = None
    run_time: float | None = None
    user_classes: tuple[str, ...] = ()


class Controller:
    """Runs on ``swarm`` as the page asks; ``config`` gives the defaults and output options."""

    def __init__(self, swarm: Swarm, config: RunConfig, shape_class: type | None = None) -> None:
        self.swarm = swarm
        self.config = config
        self.shape_class = shape_class
        self.classes = {cls.__name__: cls for cls in swarm.spec.user_classes}
        self.request: RunRequest | None = None
        self.reporting: RunReporting | None = None
        self.final: Snapshot | None = None
        self.checks: list[CheckResult] = []
        self.outcome: Outcome | None = None  # the last run's, once it ended
        self.runs = 0
        self._runner: gevent.Greenlet | None = None
        self._folder = tempfile.mkdtemp(prefix="mpswarm-web-")
        self.ended = Event()  # set whenever a run has ended

    @property
    def running(self) -> bool:
        """True while a run is in progress."""
        return self._runner is not None and not self._runner.dead

    # -- steering ------------------------------------------------------------------------------
    def start(self, request: RunRequest) -> None:
        """Start a new run (statistics from zero)."""
        if self.running:
            raise UsageError("a run is already in progress: stop it first")
        unknown = [name for name in request.user_classes if name not in self.classes]
        if unknown:
            raise UsageError(f"unknown user class(es): {', '.join(unknown)}")
        chosen = [self.classes[n] for n in request.user_classes] or list(self.classes.values())
        if request.host is not None:
            check_given_host(chosen, request.host, "the form's host")
        missing = [c.__name__ for c in chosen if not (request.host or getattr(c, "host", None))]
        if missing:
            raise UsageError(f"no host for {', '.join(missing)}: give one in the form")
        self.request = request
        self.final = None
        self.checks = []
        self.runs += 1
        self.ended.clear()
        self._runner = gevent.spawn(self._run, request)

    def change(self, users: int, spawn_rate: float) -> None:
        """Change the user count and spawn rate of the run in progress."""
        if not self.running or self.request is None:
            raise UsageError("no run is in progress")
        if self.mode != "users":
            raise UsageError(f"the {self.mode} decides the load of this run, not the page")
        self.request.users, self.request.spawn_rate = users, spawn_rate
        self.swarm.set_target(users, spawn_rate, self._chosen_classes(), self.request.host)

    def stop(self) -> None:
        """End the run in progress (its final numbers stay on the page)."""
        if not self.running:
            raise UsageError("no run is in progress")
        self.swarm.request_stop("stopped from the web UI", StopKind.WEB_UI)

    def reset(self) -> None:
        """Zero the statistics (the run goes on)."""
        self.swarm.reset_stats()
        if self.reporting is not None:
            self.reporting.series.clear()

    @property
    def mode(self) -> str:
        """What drives a run: "users" (the form), "load shape", or "arrival rate"."""
        if self.shape_class is not None:
            return "load shape"
        return "arrival rate" if self.config.arrival_rate is not None else "users"

    def _chosen_classes(self) -> list[type] | None:
        assert self.request is not None
        names = self.request.user_classes
        return [self.classes[name] for name in names] if names else None

    def _run(self, request: RunRequest) -> None:
        prefix = os.path.join(self._folder, f"run{self.runs}")
        config = dataclasses.replace(self.config, csv_prefix=prefix, only_summary=True)
        self.reporting = RunReporting(config, self.swarm)
        classes = self._chosen_classes()
        plan = dataclasses.replace(
            Plan.from_config(config, self.shape_class() if self.shape_class else None),
            users=request.users,
            spawn_rate=request.spawn_rate,
            run_time=request.run_time,
            host=request.host,
            user_classes=tuple(classes) if classes else None,
            iterations=None,
        )
        try:
            self.outcome = execute(self.swarm, plan, self.reporting)
            code = exit_code(self.outcome, self.config, self.swarm.environment)
            self.checks = self.outcome.checks
            self.final = with_exit_code(self.outcome.snapshot, code)  # the page's stop says it
        except Exception:
            logger.exception("the run failed")
            raise
        finally:
            self.ended.set()

    # -- what the page shows -------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The final numbers of the last run, or the live ones."""
        return self.final if self.final is not None else self.swarm.snapshot()

    @property
    def run_state(self) -> str:
        """The run's state: running, stopped (once a run has ended) or ready (before any)."""
        return "running" if self.running else ("stopped" if self.runs else "ready")

    def state(self) -> dict[str, Any]:
        """Everything the page draws, as JSON-ready data.

        ``stop`` is why the last run ended (``kind``, ``message``, ``exit_code``, ``at``, as in
        the JSON report) once it has, None while it runs or before the first one.
        """
        host = self.config.host or ""
        snapshot = self.snapshot()
        duration = snapshot.duration_s
        series = self.reporting.series if self.reporting is not None else []
        final = None if self.running else self.final
        return {
            "state": self.run_state,
            "stop": final.stop.as_dict() if final is not None and final.stop else None,
            "mode": self.mode,
            "shape": self.shape_class.__name__ if self.shape_class is not None else None,
            "arrival_rate": self.config.arrival_rate,
            "open_model": (
                {"iterations": snapshot.iterations, "dropped": snapshot.dropped}
                if snapshot.open_model
                else None
            ),
            "swarm_state": self.swarm.state,
            "run": dataclasses.asdict(self.request) if self.request else None,
            "defaults": {
                "users": self.config.users,
                "spawn_rate": self.config.spawn_rate,
                # A host with a password is not put in the page: the form then sends none,
                # and the run uses -H as given.
                "host": host if host == without_credentials(host) else "",
                "run_time": self.config.run_time,
            },
            "user_classes": list(self.classes),
            "elapsed_s": duration,
            "users": snapshot.users,
            "total": endpoint_dict(snapshot.total, duration),
            "endpoints": [endpoint_dict(e, duration) for e in snapshot.endpoints],
            "errors": [dataclasses.asdict(e) for e in snapshot.errors],
            "exceptions": [dataclasses.asdict(e) for e in snapshot.exceptions],
            "series": [dataclasses.asdict(p) for p in series],
            "figures": figures(snapshot, series),
            "workers": self._workers(),
            "recovery_events": [e.as_dict() for e in self.swarm.supervisor.events],
            "saturation": self.swarm.supervisor.summary().as_dict(),
            "checks": [
                {"check": r.check.expression, "passed": r.passed, "text": r.describe()}
                for r in self.checks
            ],
        }

    def _workers(self) -> list[dict[str, Any]]:
        """One row per worker; between runs, a live worker's state is the run's.

        The parent's record of a worker (``node.state``) keeps "running" from the last spawn
        after the run has stopped; "missing" (it died) is kept.
        """
        run_state = self.run_state
        rows = []
        for handle in self.swarm.workers:
            node = self.swarm.clients.get(handle.client_id)
            state = node.state if node is not None else "unknown"
            if run_state != "running" and state not in ("missing", "unknown"):
                state = run_state
            rows.append(
                {
                    "worker": handle.slot,
                    "pid": handle.pid,
                    "state": state,
                    "alive": handle.alive,
                    "users": handle.user_count,
                    "cpu_percent": node.cpu_usage if node is not None else 0.0,
                    "rss_bytes": node.memory_usage if node is not None else 0,
                    "loop_lag_p99_ms": handle.segment.loop_lag_us[0] / 1000.0,
                }
            )
        return rows

    def download(self, name: str) -> bytes:
        """One of DOWNLOADS for the current (or last) run."""
        if name not in DOWNLOADS:
            raise KeyError(name)
        snapshot = self.snapshot()
        if name.endswith(".csv"):
            if self.reporting is None:
                raise KeyError(name)
            # As last written: the run's reporting rewrites them every second.
            path = os.path.join(self._folder, f"run{self.runs}_{name}")
            with open(path, "rb") as handle:
                return handle.read()
        settings = run_settings(self.config)
        if self.request is not None:
            settings.update(
                users=self.request.users,
                spawn_rate=self.request.spawn_rate,
                host=without_credentials(self.request.host or self.config.host or ""),
                run_time=self.request.run_time,
            )
        text = io.StringIO()
        if name == "report.json":
            write_json(snapshot, text, settings, self.checks)
        else:
            series = self.reporting.series if self.reporting is not None else []
            write_html(snapshot, text, series, settings, self.checks)
        return text.getvalue().encode()

    def close(self) -> None:
        """End any run and drop the temporary files."""
        if self.running:
            self.swarm.request_stop("the web UI is closing", StopKind.WEB_UI)
            assert self._runner is not None
            self._runner.join(timeout=self.config.stop_timeout + 15)
        shutil.rmtree(self._folder, ignore_errors=True)


def parse_run_request(data: dict[str, Any], config: RunConfig) -> RunRequest:
    """Validate the start form's fields.

    Raises:
        UsageError: a field is missing or invalid.
    """
    try:
        users = int(data.get("users", config.users))
        spawn_rate = float(data.get("spawn_rate", config.spawn_rate))
    except (TypeError, ValueError):
        raise UsageError("users must be a whole number and spawn_rate a number") from None
    check_users(users, "users")
    check_spawn_rate(spawn_rate, "spawn_rate")
    host = str(data.get("host") or "").strip() or None  # checked for the classes it is for
    run_time_text = str(data.get("run_time") or "").strip()
    run_time = parse_timespan(run_time_text) if run_time_text else None
    classes = data.get("user_classes") or []
    if isinstance(classes, str):
        classes = [c for c in classes.split(",") if c.strip()]
    return RunRequest(users, spawn_rate, host, run_time, tuple(str(c).strip() for c in classes))


__all__ = ["DOWNLOADS", "Controller", "RunRequest", "parse_run_request"]
