"""``mpswarm serve``: the demo target on the command line (optionally around a command)."""

from __future__ import annotations

import sys

import click

from mpswarm.cli.main import EXIT_OK, run_subcommand
from mpswarm.exceptions import UsageError


def serve_main(argv: list[str]) -> int:
    """``mpswarm serve``: run the demo target (optionally around a command)."""
    return run_subcommand(serve_command, argv, "mpswarm serve")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8088,
    show_default=True,
    help="Port to bind; 0 picks a free one (8088: beside the web UI's 8089).",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def serve_command(host: str, port: int, command: tuple[str, ...]) -> int:
    """Serve the demo shop and JSON API (GET /__stats shows what it served).

    With a COMMAND after '--', run it while serving and exit with its exit code, e.g.
    mpswarm serve -- mpswarm -f examples/shop.py -H http://127.0.0.1:8088 -t 10s
    """
    import signal
    import subprocess

    import gevent

    from mpswarm.demo import make_server

    server = make_server(host, port)
    try:
        server.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror} "
            "(--port changes it; 0 picks a free one)"
        ) from exc
    bound = server.address[1]
    click.echo(f"mpswarm demo target on http://{host}:{bound}", err=False)
    sys.stdout.flush()
    stop = gevent.event.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    code = EXIT_OK
    if command:
        child = subprocess.Popen(list(command))
        waiter = gevent.spawn(child.wait)
        gevent.wait([waiter, stop], count=1)
        if not waiter.ready():
            child.terminate()
        code = child.wait()
    else:
        stop.wait()
    server.stop(timeout=1)
    return code


__all__ = ["serve_command", "serve_main"]
