"""``mpswarm -f lf.py`` without ``--headless``: the web UI, served by the parent."""

from __future__ import annotations

import logging
import secrets
import socket
import sys
from typing import Any, TextIO

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer

from mpswarm.config import RunConfig
from mpswarm.report.prometheus import MetricsEndpoint
from mpswarm.runner.run import Run
from mpswarm.web.app import WebApp
from mpswarm.web.control import Controller, RunRequest
from mpswarm.web.hosts import AllowedHosts, is_loopback, parse_allowed_names
from mpswarm.web.listen import BasicAuth, listening_server

logger = logging.getLogger(__name__)


def run_web(
    config: RunConfig,
    classes: list[type],
    out: TextIO,
    parsed_options: Any = None,
    shape_class: type | None = None,
    fork_server: Any = None,
) -> int:
    """Serve the UI until Ctrl-C (or ``--autoquit`` seconds after a run ended).

    Returns:
        The exit code of the last run (0 when none ran).
    """
    extra_hosts = parse_allowed_names(config.web_allowed_hosts)
    metrics = MetricsEndpoint.from_config(config)  # its options checked before any worker
    run = Run(config, classes, parsed_options, fork_server)
    basic_auth = BasicAuth(config.web_auth) if config.web_auth else None
    token = None
    if not is_loopback(config.web_host) and basic_auth is None:
        token = secrets.token_urlsafe(18)
    quit_event = Event()
    controller: Controller | None = None
    server: WSGIServer | None = None
    try:
        run.start(on_first_signal=quit_event.set)
        if metrics is not None:
            metrics.start(run.swarm)
        controller = Controller(run.swarm, config, shape_class)
        # Bound first: the allow-list needs the port --web-port 0 got.
        server = listening_server(config.web_host, config.web_port, None, "the web UI",
                                  "--web-port changes it; 0 picks a free one")  # fmt: skip
        port = server.server_port
        hosts = AllowedHosts(config.web_host, port, extra_hosts)
        server.application = WebApp(controller, hosts, basic_auth, token)
        server.start()
        logger.debug("web UI: accepted Host names: %s", ", ".join(hosts.names()))
        shown = f"[{config.web_host}]" if ":" in config.web_host else config.web_host
        if config.web_host in ("0.0.0.0", "::"):
            shown = socket.gethostname()
        url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
        sys.stderr.write(f"mpswarm web UI: {url}\n")
        sys.stderr.flush()
        if config.autostart:
            controller.start(
                RunRequest(config.users, config.spawn_rate, config.host, config.run_time)
            )
        waiters: list[Any] = [quit_event]
        if config.autoquit is not None:
            waiters.append(gevent.spawn(_autoquit, controller, config.autoquit))
        gevent.wait(waiters, count=1)
        gevent.killall(waiters[1:])
    finally:
        if server is not None:
            server.stop(timeout=1)
        if controller is not None:
            controller.close()
        run.close()
        if metrics is not None and (controller is None or controller.outcome is None):
            metrics.close()
    outcome = controller.outcome
    if outcome is None:
        return 0
    try:
        return run.conclude(outcome, out, metrics)
    finally:
        if metrics is not None:
            metrics.close()


def _autoquit(controller: Controller, seconds: float) -> None:
    """Return ``seconds`` after a run ended, unless a new run started meanwhile."""
    while True:
        controller.ended.wait()
        gevent.sleep(seconds)
        if not controller.running:
            return
