"""One node's fork server under ``--ray``: ``python -m mpswarm.ray_host FD ARGV...``.

Started by the node's ``HostAgent`` (mpswarm/ray_bridge.py) in a fresh interpreter. It runs the
ordinary CLI with the run's own arguments (``--ray`` removed), so the locustfile is imported and
the WorkerSpec built exactly as in the parent, up to the point where the parent would fork its
fork server; there this process becomes the fork server itself, serving the agent's requests
on descriptor FD, and never returns.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from gevent import monkey

    monkey.patch_all()  # as the parent is when it forks its fork server
    import socket
    from functools import partial

    from mpswarm.runner import pool
    from mpswarm.runner._zygote import _drop_event_loop, _serve
    from mpswarm.runner.worker import worker_main

    fd = int(sys.argv[1])
    # Ray starts its worker processes at nice 15 (its worker_niceness), so the actor that
    # started this process passed it on: load generators that yield the CPU to everything
    # else measure their own delays. Back to the default where allowed.
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except PermissionError:
        print(f"mpswarm: warning: the workers run at nice {os.nice(0)} (Ray's)", file=sys.stderr)

    def become_fork_server(self: pool.WorkerPool) -> None:
        _drop_event_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fd)
        code = 1
        try:
            _serve(sock, os.getppid(), partial(worker_main, self.spec))
            code = 0
        finally:
            os._exit(code)

    pool.WorkerPool.start_server = become_fork_server  # type: ignore[method-assign]
    from mpswarm.cli import main as cli_main

    cli_main(sys.argv[2:])
    os._exit(3)  # the CLI returned: it stopped before the fork server's place (see the log)


if __name__ == "__main__":
    main()
