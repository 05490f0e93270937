"""``mpswarm -f lf.py`` without ``--headless``: the web UI, served by the parent."""

from __future__ import annotations

import logging
import secrets
import socket
import sys
from typing import Any, TextIO

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIHandler, WSGIServer

from mpswarm.config import RunConfig
from mpswarm.exceptions import UsageError
from mpswarm.report.prometheus import MetricsEndpoint
from mpswarm.runner.run import Run
from mpswarm.web.app import WebApp
from mpswarm.web.control import Controller, RunRequest
from mpswarm.web.hosts import AllowedHosts, is_loopback, parse_allowed_names

logger = logging.getLogger(__name__)


class _Handler(WSGIHandler):
    """gevent's handler, plus ``SERVER_ADDR``: the address this connection arrived on."""

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        try:
            environ["SERVER_ADDR"] = str(self.socket.getsockname()[0])
        except (AttributeError, OSError, IndexError):
            pass  # no socket any more, or not an IP one: only the named hosts are accepted
        return environ


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
    basic_auth = None
    if config.web_auth:
        user, _, password = config.web_auth.partition(":")
        if not user or not password:
            raise UsageError("--web-auth must be user:password")
        basic_auth = (user, password)
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
        # SERVER_NAME given: gevent would otherwise look the bound address up in DNS.
        server = WSGIServer(
            (config.web_host, config.web_port), None, log=None, handler_class=_Handler,
            environ={"SERVER_NAME": config.web_host},
        )  # fmt: skip
        try:
            server.init_socket()  # bind first: the allow-list needs the port --web-port 0 got
        except OSError as exc:
            raise UsageError(
                f"cannot serve the web UI on {config.web_host}:{config.web_port}: {exc.strerror} "
                "(--web-port changes it; 0 picks a free one)"
            ) from None
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
