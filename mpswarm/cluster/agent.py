"""The host agent: a Ray actor pinned to one node, the run's hands on that node.

Ray's worker processes are multi-threaded, so the agent never forks: it starts a fresh
interpreter, the node's fork server (``python -m mpswarm.cluster.host``), which reruns the
coordinator's command line up to the point where a local run forks its fork server. For each
worker the agent creates the segment and the worker's pipe here, passes both to the fork
server, and relays the pipe for the bridge (``mpswarm.cluster.bridge``).

Copies: once started, one thread of the agent takes a copy of all its workers every ``COPY_S``
(sooner after a record that matters now) and appends it to the agent's log, numbered; the run's
collector (``mpswarm.cluster.collector``) reads the log as a Ray stream from the number it
last had. The log keeps ``LOG_S`` seconds of copies, so a new collector that replaces a lost
one replays what the lost one had not passed on yet: nothing is lost with a collector.

Liveness: the actor belongs to the bridge (Ray kills it when its driver dies), the fork server
dies with the agent and the workers with the fork server (PR_SET_PDEATHSIG), so a coordinator
killed with SIGKILL leaves nothing behind on any node.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from mpswarm.cluster.delta import DeltaReader, merge
from mpswarm.runner import messages as m
from mpswarm.runner.fork_messages import Exited, Fork, Forked, ServerReady

_MAX_MESSAGE = 1 << 16


def _class_marker(cls: type) -> bytes:
    """How a pickle (protocol 4 and 5) of an instance of ``cls`` names its class."""
    module, name = cls.__module__, cls.__qualname__
    return (b"\x8c" + bytes([len(module)]) + module.encode() + b"\x94\x8c"
            + bytes([len(name)]) + name.encode() + b"\x94")  # fmt: skip


#: The records a worker sends on its own every second or so (and the announcements of new
#: names, in bursts): the parent needs them no sooner than the next regular copy, so they do
#: not hurry a ``read``. Every other record (ready, spawned, stopped, custom messages) does.
#: From the classes themselves: the announcements are defined in mpswarm.stats, and a pickle
#: names a class by the module that defines it.
ROUTINE = tuple(
    _class_marker(cls)
    for cls in (m.Usage, m.Report, m.RowAnnounced, m.ErrorAnnounced, m.Exceptions,
                m.NamesOverflowed)
)  # fmt: skip


def is_routine(frame: bytes) -> bool:
    """Whether one pickled record of the worker's channel is routine (see ``ROUTINE``)."""
    head = bytes(frame[:96])
    return any(marker in head for marker in ROUTINE)


#: Seconds the node's fork server gets to import the locustfile and say it is ready.
READY_TIMEOUT_S = 60.0
#: Seconds between two copies of the workers' segments: what a lost host's last copy may lack
#: (measured: 1.0 s lost up to 0.99 s of a host's requests; 0.5 s keeps that well under a
#: second). An urgent record (see ``ROUTINE``) hurries the copy, but not sooner than GAP_S
#: after the last one: records in a burst travel together.
COPY_S = 0.5
GAP_S = 0.25
#: Seconds of copies the log keeps for a collector that replaces a lost one (one starts in
#: about 2 s), and the most bytes of arrays it keeps: a collector asking for an older copy
#: gets ``LogGap``, and the bridge treats the host as lost.
LOG_S = 20.0
LOG_BYTES = 64 << 20


class LogGap(Exception):
    """The copies after the one a reader asked for are no longer in the agent's log."""


def _tail(path: str, lines: int = 6) -> str:
    try:
        with open(path, "rb") as f:
            text = f.read()[-8192:].decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(line for line in text.splitlines()[-lines:] if line.strip())


class HostAgent:
    """Runs on one node (a Ray actor with threads; see the module docstring).

    Args:
        index: the host's number in the run (0, 1, ...).
        settings: the bridge's settings (segment sizes, open model).
    """

    def __init__(self, index: int, settings: dict[str, Any]) -> None:
        self.index = index
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.log_path = ""
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._forked: dict[int, queue.Queue[int]] = {}
        self._workers: dict[str, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self._exit_cond = threading.Condition()
        #: Guards every worker's buffer; notified when bytes or an end arrive.
        self._news = threading.Condition()
        self._last_read = 0.0
        self._stopping = threading.Event()
        #: The log of copies: (number, monotonic time, array bytes, copies, urgent), oldest
        #: first, numbered from 1 without a gap; guarded by ``_news`` with the buffers.
        self._log: list[tuple[int, float, int, dict[str, Any], bool]] = []
        self._seq = 0
        self._reader = 0  # the newest reader: an older one stops

    def facts(self) -> dict[str, Any]:
        """This node: host name, Ray node id, agent pid and the cores this process may use."""
        import ray

        return {"host": socket.gethostname(), "agent_pid": os.getpid(),
                "node_id": ray.get_runtime_context().get_node_id(),
                "cores": len(os.sched_getaffinity(0))}  # fmt: skip

    def start(self, argv: list[str], env: dict[str, str]) -> str | None:
        """Start the node's fork server with the run's arguments; None once it is ready, else
        why it is not (its last words)."""
        agent_end, host_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd, self.log_path = tempfile.mkstemp(prefix=f"mpswarm-host{self.index}-", suffix=".log")
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MPSWARM_")}
        environ.update(env)
        command = [sys.executable, "-m", "mpswarm.cluster.host", str(host_end.fileno()), *argv]
        with os.fdopen(fd, "ab") as log:
            self.proc = subprocess.Popen(
                command, pass_fds=[host_end.fileno()], env=environ, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log,
            )  # fmt: skip
        host_end.close()
        self.sock = agent_end
        threading.Thread(target=self._read_server, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                code = self.proc.poll()
                how = f"exited with {code}" if code is not None else "did not get ready"
                words = _tail(self.log_path)
                return f"mpswarm on {socket.gethostname()} {how}" + (f": {words}" if words else "")
        threading.Thread(target=self._copy_forever, daemon=True).start()
        return None

    def _read_server(self) -> None:
        assert self.sock is not None
        handlers: dict[type, m.Handler] = {
            ServerReady: lambda _, msg: self._ready.set(),
            Forked: self._forked_one,
            Exited: self._exited,
        }
        route = m.Router(handlers, f"the agent of host {self.index}")
        while True:
            try:
                data = self.sock.recv(_MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            route(None, pickle.loads(data))
        with self._exit_cond:  # the fork server is gone: its workers with it
            self._exits[-1] = -1
            self._exit_cond.notify_all()
        with self._lock:
            for replies in self._forked.values():
                replies.put(-1)

    def _forked_one(self, _: Any, msg: Forked) -> None:
        with self._lock:
            self._forked.setdefault(msg.slot, queue.Queue()).put(msg.worker_id)

    def _exited(self, _: Any, msg: Exited) -> None:
        with self._exit_cond:
            self._exits[msg.worker_id] = msg.status
            self._exit_cond.notify_all()

    def fork(self, slot: int, timeout: float = 60.0) -> str:
        """Fork a worker for ``slot`` on this node; returns its id ``"<host>:<pid>"``."""
        from mpswarm.stats.segment import Segment

        assert self.sock is not None
        segment = Segment.create(self.settings["max_endpoints"], self.settings["max_errors"],
                                 label=f"mpswarm-r{slot}")  # fmt: skip
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            replies = self._forked.setdefault(slot, queue.Queue())
        try:
            request = [pickle.dumps(Fork(slot))]
            socket.send_fds(self.sock, request, [segment.fd, theirs.fileno()])
            pid = replies.get(timeout=timeout)
        except (OSError, queue.Empty):
            pid = -1
        finally:
            theirs.close()
        if pid < 0:
            mine.close()
            segment.close()
            raise RuntimeError(f"the fork server on {socket.gethostname()} is gone")
        wid = f"{self.index}:{pid}"
        # Not read until ``activate``: the bridge must know the worker before its first bytes.
        worker = {"pid": pid, "sock": mine, "segment": segment, "buf": bytearray(),
                  "eof": False, "scan": 0, "urgent": False, "active": False, "ended": False,
                  "delta": DeltaReader(segment, self.settings["open_model"])}  # fmt: skip
        with self._news:
            self._workers[wid] = worker
        threading.Thread(target=self._read_worker, args=(worker,), daemon=True).start()
        return wid

    def activate(self, wid: str) -> None:
        """From now on ``read_all`` reports this worker (its bytes so far included)."""
        with self._news:
            self._workers[wid]["active"] = True
            self._news.notify_all()

    def _read_worker(self, worker: dict[str, Any]) -> None:
        while True:
            try:
                data = worker["sock"].recv(1 << 16)
            except OSError:
                data = b""
            with self._news:
                if not data:
                    worker["eof"] = True
                else:
                    worker["buf"] += data
                    HostAgent._scan(worker)
                self._news.notify_all()
            if not data:
                return

    @staticmethod
    def _scan(worker: dict[str, Any]) -> None:
        """Find the complete records in the worker's new bytes; note an urgent one."""
        buf, at = worker["buf"], worker["scan"]
        while len(buf) - at >= 4:
            size = int.from_bytes(buf[at : at + 4], "big")
            if len(buf) - at - 4 < size:
                break
            if not is_routine(buf[at + 4 : at + 4 + min(size, 96)]):
                worker["urgent"] = True
            at += 4 + size
        worker["scan"] = at

    def read_all(self, every: float, gap: float) -> tuple[dict[str, tuple[bytes, Any, bool]], bool]:
        """Every active worker's complete records since the last call, a delta of its segment
        taken after them, and whether its pipe closed: ``({id: (bytes, delta, ended)}, urgent)``
        (urgent: a record that matters now, or a pipe closed, is among them).

        It answers ``every`` seconds after the last answer; once an urgent record came, not
        later than ``gap`` seconds after it (records in a burst travel together); at once when
        a pipe closed. A worker whose end was reported is not reported again.
        """
        with self._news:
            while True:
                live = [w for w in self._workers.values() if w["active"] and not w["ended"]]
                if any(w["eof"] for w in live) or self._stopping.is_set():
                    break
                wait = gap if any(w["urgent"] for w in live) else every
                left = self._last_read + wait - time.monotonic()
                if left <= 0:
                    break
                self._news.wait(left)
            taken = []
            urgent = False
            for wid, worker in self._workers.items():
                if not worker["active"] or worker["ended"]:
                    continue
                eof = worker["eof"]
                urgent = urgent or eof or worker["urgent"]
                cut = len(worker["buf"]) if eof else worker["scan"]
                taken.append((wid, bytes(worker["buf"][:cut]), eof))
                del worker["buf"][:cut]
                worker["scan"], worker["urgent"], worker["ended"] = 0, False, eof
            self._last_read = time.monotonic()
        copies = {wid: (data, self._workers[wid]["delta"].snapshot(), eof)
                  for wid, data, eof in taken}  # fmt: skip
        return copies, urgent

    def _copy_forever(self) -> None:
        """The log's one writer: a copy every ``COPY_S`` (see ``read_all``), until shutdown;
        an empty one when no worker runs, so that a silent host is a host in trouble."""
        while not self._stopping.is_set():
            copies, urgent = self.read_all(COPY_S, GAP_S)
            self._append(copies, urgent)

    def _append(self, copies: dict[str, tuple[bytes, Any, bool]], urgent: bool) -> None:
        """Log one copy; forget those older than ``LOG_S`` or beyond ``LOG_BYTES``."""
        size = sum(p.nbytes + v.nbytes + len(d) for d, (p, v), _ in copies.values())
        now = time.monotonic()
        with self._news:
            self._seq += 1
            self._log.append((self._seq, now, size, copies, urgent))
            kept = sum(entry[2] for entry in self._log)
            while len(self._log) > 1 and (self._log[0][1] < now - LOG_S or kept > LOG_BYTES):
                kept -= self._log.pop(0)[2]
            self._news.notify_all()

    def stream(self, since: int, reader: int) -> Iterator[tuple[int, Any, bool]]:
        """The log's copies after number ``since``, as they come: ``(number, copies, urgent)``,
        the copies that wait merged into one (``delta.merge``). A Ray streaming generator,
        so the reader gets every copy without a call of its own. It ends at shutdown, once
        every copy went, or when a newer reader (a larger ``reader``) started.

        Raises:
            LogGap: the copies after ``since`` are no longer all in the log.
        """
        cursor = since
        with self._news:
            self._reader = max(self._reader, reader)
            self._news.notify_all()
            if self._seq > since and (not self._log or self._log[0][0] > since + 1):
                raise LogGap(f"copies {since + 1} to {self._seq} are no longer in the log")
        while True:
            with self._news:
                while self._seq <= cursor:
                    if self._reader != reader or self._stopping.is_set():
                        return
                    self._news.wait()
                if self._reader != reader:
                    return
                first = self._log[0][0]
                entries = self._log[cursor + 1 - first :]
            cursor = entries[-1][0]
            yield cursor, merge([e[3] for e in entries]), any(e[4] for e in entries)

    def write(self, wid: str, data: bytes) -> None:
        """Bytes from the parent to the worker."""
        self._workers[wid]["sock"].sendall(data)

    def close_input(self, wid: str) -> None:
        """The parent closed its end: so does the worker's pipe (the worker exits)."""
        try:
            self._workers[wid]["sock"].shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def kill(self, wid: str) -> None:
        """SIGKILL a worker of this node."""
        worker = self._workers.get(wid)
        if worker is not None:
            try:
                os.kill(worker["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass

    def exit_status(self, wid: str, timeout: float) -> int | None:
        """The worker's waitpid status once its fork server reaped it (None: not yet)."""
        pid = self._workers[wid]["pid"]
        deadline = time.monotonic() + timeout
        with self._exit_cond:
            while pid not in self._exits and -1 not in self._exits:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._exit_cond.wait(left)
            return self._exits.get(pid, signal.SIGKILL)

    def shutdown(self) -> str:
        """Stop the fork server (it kills its workers), free the segments, remove the log;
        returns the fork server's last words, if it had any."""
        self._stopping.set()
        with self._news:
            self._news.notify_all()
        if self.sock is not None:
            # shutdown, not close alone: a thread blocked in recv() on a socket keeps it open
            # (and the fork server waiting for EOF) however many times it is closed.
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for worker in self._workers.values():
            worker["sock"].close()
            worker["segment"].close()
        words = _tail(self.log_path, 20) if self.log_path else ""
        if self.log_path:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
        return words


__all__ = ["HostAgent", "LogGap"]
