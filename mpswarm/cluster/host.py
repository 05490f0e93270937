"""One node's fork server under ``--ray``: ``python -m mpswarm.cluster.host FD ARGV...``.

Started by the node's ``HostAgent`` (mpswarm/cluster/agent.py) in a fresh interpreter. It runs
the ordinary CLI with the coordinator's arguments (``--ray`` removed, ``-f`` relative to the
run's working directory, which Ray's runtime environment brought here) and the coordinator's
config-file values (``MPSWARM_HOST_CONFIG``), so the locustfile is imported and the WorkerSpec
built exactly as in the coordinator, up to the point where a local run forks its fork server;
there this process becomes the fork server itself, says ``ServerReady`` on descriptor FD, serves
the agent's requests on it, and never returns. Report files are the coordinator's: their
paths are not checked here.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main() -> None:
    from gevent import monkey

    monkey.patch_all()  # as the parent is when it forks its fork server
    import pickle
    import socket
    from functools import partial

    from mpswarm.cli import config_files
    from mpswarm.cli.main import main as cli_main
    from mpswarm.report import _files
    from mpswarm.runner import pool
    from mpswarm.runner._zygote import _drop_event_loop, _serve
    from mpswarm.runner.fork_messages import ServerReady
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
        sock.setblocking(True)
        sock.send(pickle.dumps(ServerReady()))
        code = 1
        try:
            _serve(sock, os.getppid(), partial(worker_main, self.spec))
            code = 0
        finally:
            os._exit(code)

    values = json.loads(os.environ.pop("MPSWARM_HOST_CONFIG", "{}"))

    def coordinator_config(explicit: Any, directory: str = ".") -> config_files.ConfigValues:
        return config_files.ConfigValues(values, "the coordinator's configuration")

    pool.WorkerPool.start_server = become_fork_server  # type: ignore[method-assign]
    config_files.find_config_values = coordinator_config
    _files.check_report_paths = lambda config: None
    code = cli_main(sys.argv[2:])
    # The CLI returned: it stopped before the fork server's place (its error is above).
    os._exit(code or 3)


if __name__ == "__main__":
    main()
