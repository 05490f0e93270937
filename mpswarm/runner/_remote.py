"""``--ray ADDRESS``: a fork server whose workers run on the nodes of a Ray cluster.

The parent is gevent-patched and Ray's driver cannot run in it (its gRPC channel fails to
connect), so this parent-side handle starts a clean subprocess, the bridge
(``mpswarm.cluster.bridge``), which is the Ray driver. To the pool this object looks exactly like
``ForkServer``: ``request_fork`` passes the worker's segment and pipe descriptors over a UNIX
socket (SCM_RIGHTS), ``receive`` yields the same records (``fork_messages``: ``Forked``,
``Exited``), and ``HostLost`` besides.
The bridge relays each pipe's bytes to the remote worker and copies the remote segment's used
words into the local one, so the Aggregator and every reader of the pipes stay unchanged.

The ids are the bridge's (``"<host>:<pid>"``), never local pids: ``kill`` asks the bridge.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import subprocess
import sys
import time
from typing import Any

from mpswarm.exceptions import UsageError, WorkerError
from mpswarm.runner.fork_messages import Fork, Kill, Started

logger = logging.getLogger(__name__)

_MAX_MESSAGE = 1 << 16
#: Seconds the bridge gets to connect to Ray and start one agent per node.
BRIDGE_START_TIMEOUT_S = 120.0


class RemoteForkServer:
    """Parent-side handle of the Ray bridge; the interface of ``ForkServer``.

    Args:
        settings: the bridge's settings (``mpswarm.cluster.launch.start_ray``: the address,
            the hosts, the processes per host, what each host reruns).
    """

    remote = True

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.pid: int | None = None
        self.sock: socket.socket | None = None
        #: What each host's agent found (host name, node id, cores), once started.
        self.hosts: list[dict[str, Any]] = []
        #: The host of each worker slot.
        self.slots: list[int] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the bridge and wait until every host has its agent and fork server.

        Raises:
            UsageError: Ray is missing, the cluster cannot be joined, or it is too small.
            WorkerError: a host could not start (its fork server's last words).
        """
        parent_end, bridge_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        settings = {**self.settings, "parent_pid": os.getpid(), "fd": bridge_end.fileno()}
        env = {k: v for k, v in os.environ.items() if not k.startswith("MPSWARM_RAY")}
        env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "mpswarm.cluster.bridge", json.dumps(settings)],
            pass_fds=[bridge_end.fileno()],
            env=env,
        )
        bridge_end.close()
        self.pid = self._proc.pid
        self.sock = parent_end
        parent_end.settimeout(BRIDGE_START_TIMEOUT_S)
        try:
            data = parent_end.recv(_MAX_MESSAGE)
        except OSError as exc:  # socket.timeout included
            self.close(timeout=5.0)
            raise WorkerError(f"the Ray bridge did not start: {exc}") from None
        finally:
            if self.sock is not None:
                parent_end.settimeout(None)
        if not data:
            how = self.reap()
            self.close(timeout=5.0)
            raise WorkerError(f"the Ray bridge did not start{how}")
        message = pickle.loads(data)
        if not isinstance(message, Started):  # then a StartFailed
            self.close(timeout=30.0)
            raise (UsageError if message.usage else WorkerError)(message.text)
        self.hosts, self.slots = message.hosts, message.slots
        logger.info("Ray bridge (pid %d): %d host(s): %s", self.pid, len(self.hosts), self.hosts)

    def request_fork(self, slot: int, fds: list[int]) -> None:
        """Ask for a worker in ``slot``; ``fds`` (segment, pipe end) go to the bridge."""
        assert self.sock is not None
        socket.send_fds(self.sock, [pickle.dumps(Fork(slot))], fds)

    def receive(self) -> Any:
        """Next record (``fork_messages``): ``Forked``, ``Exited`` (with ``lost`` when its host
        was lost) or ``HostLost``."""
        assert self.sock is not None
        data = self.sock.recv(_MAX_MESSAGE)
        if not data:
            raise EOFError("Ray bridge gone")
        return pickle.loads(data)

    def kill(self, worker_id: Any) -> None:
        """Have the worker's host agent SIGKILL it (its pid is not this machine's)."""
        if worker_id is None or self.sock is None:
            return
        try:
            self.sock.send(pickle.dumps(Kill(worker_id)))
        except OSError:
            pass

    def reap(self, timeout: float = 1.0) -> str:
        """How the bridge ended, in words, or a generic phrase."""
        from mpswarm.runner._proc import describe_exit

        if self._proc is None:
            return ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                status = (-code) if code < 0 else (code << 8)
                return f" ({describe_exit(status)})"
            time.sleep(0.02)
        return " (its socket closed)"

    def close(self, timeout: float = 20.0) -> None:
        """Close the socket: the bridge kills the remote workers, stops its agents, exits."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self._proc is None:
            return
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
