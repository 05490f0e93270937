"""``mpswarm --headless``: one plan from the command line, run by ``Run``, then the reports."""

from __future__ import annotations

import logging
from typing import Any, TextIO

from mpswarm.config import RunConfig
from mpswarm.report.prometheus import MetricsEndpoint
from mpswarm.runner.reporting import RunReporting
from mpswarm.runner.run import Plan, Run
from mpswarm.shape import LoadTestShape

logger = logging.getLogger(__name__)


def run_headless(
    config: RunConfig,
    classes: list[type],
    out: TextIO,
    parsed_options: Any = None,
    shape_class: type[LoadTestShape] | None = None,
    fork_server: Any = None,
) -> int:
    """Run the load test described by ``config`` and print the summary to ``out``.

    Ctrl-C or SIGTERM stop the run gracefully; a second one stops it at once.

    Returns:
        The process exit code.
    """
    metrics = MetricsEndpoint.from_config(config)  # its options checked before any worker
    run = Run(config, classes, parsed_options, fork_server)
    reporting = RunReporting(config, run.swarm)  # checks are parsed here: before any load
    try:
        try:
            run.start()
            if metrics is not None:
                metrics.start(run.swarm)
            plan = Plan.from_config(config, shape_class() if shape_class is not None else None)
            _announce(config, plan)
            outcome = run.execute(plan, reporting)
        finally:
            run.close()
        return run.conclude(outcome, out, metrics)
    finally:
        if metrics is not None:
            metrics.close()


def _announce(config: RunConfig, plan: Plan) -> None:
    span = f" for {config.run_time:g}s" if config.run_time else " (Ctrl-C to stop)"
    if plan.shape is not None:
        logger.info("running the %s load shape on %d worker process(es)",
                    type(plan.shape).__name__, config.processes)  # fmt: skip
    elif plan.arrival_rate is not None:
        logger.info(
            "starting iterations at %g/s (%s), at most %d users, on %d worker process(es)%s",
            plan.arrival_rate, plan.arrivals, plan.max_users, config.processes, span,
        )  # fmt: skip
    else:
        logger.info("starting %d users at %g/s on %d worker process(es)%s",
                    plan.users, plan.spawn_rate, config.processes, span)  # fmt: skip
