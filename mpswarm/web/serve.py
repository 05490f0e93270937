"""``mpswarm -f lf.py`` without ``--headless``: the web UI, served by the parent."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import sys
from typing import Any, TextIO

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer

from mpswarm.config import RunConfig
from mpswarm.exceptions import UsageError
from mpswarm.runner.headless import (
    build_swarm,
    final_exit_code,
    install_signal_handlers,
    write_reports,
)
from mpswarm.web.app import WebApp
from mpswarm.web.control import Controller, RunRequest

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_web(
    config: RunConfig,
    classes: list[type],
    out: TextIO,
    parsed_options: Any = None,
    shape_class: type | None = None,
) -> int:
    """Serve the UI until Ctrl-C (or ``--autoquit`` seconds after a run ended).

    Returns:
        The exit code of the last run (0 when none ran).
    """
    environment, swarm = build_swarm(config, classes, parsed_options)
    basic_auth = None
    if config.web_auth:
        user, _, password = config.web_auth.partition(":")
        if not user or not password:
            raise UsageError("--web-auth must be user:password")
        basic_auth = (user, password)
    token = None
    if not is_loopback(config.web_host) and basic_auth is None:
        token = secrets.token_urlsafe(18)
    swarm.start_fork_server()
    quit_event = Event()
    handlers: list[Any] = []
    controller: Controller | None = None
    server: WSGIServer | None = None
    try:
        environment.events.init.fire(environment=environment)
        swarm.start_workers()
        handlers = install_signal_handlers(swarm, on_first=quit_event.set)
        controller = Controller(swarm, config, shape_class)
        server = WSGIServer(
            (config.web_host, config.web_port), WebApp(controller, basic_auth, token), log=None
        )
        try:
            server.start()
        except OSError as exc:
            raise UsageError(
                f"cannot serve the web UI on {config.web_host}:{config.web_port}: {exc.strerror}"
            ) from None
        port = server.server_port
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
        for handler in handlers:
            handler.cancel()
        if server is not None:
            server.stop(timeout=1)
        if controller is not None:
            controller.close()
        swarm.close()
    if controller.final is None or controller.reporting is None:
        return 0
    write_reports(config, controller.final, controller.checks, controller.reporting.series, out)
    return final_exit_code(swarm, controller.final, config, environment, controller.checks)


def _autoquit(controller: Controller, seconds: float) -> None:
    """Return ``seconds`` after a run ended, unless a new run started meanwhile."""
    while True:
        controller.ended.wait()
        gevent.sleep(seconds)
        if not controller.running:
            return
