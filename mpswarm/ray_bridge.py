"""The Ray bridge: a clean interpreter (no gevent patching) that is the run's Ray driver.

Started by ``RemoteForkServer`` (mpswarm/runner/_remote.py) with one JSON argument. It starts
one ``HostAgent`` actor per node, then serves the parent's fork-server protocol on the passed
SEQPACKET socket: for each ``("fork", slot)`` with the parent's (segment fd, worker-end pipe fd)
it asks the agent of host ``slot // per_host`` for a worker, then relays the pipe's bytes in
both directions and copies the remote segment's used words into the parent's segment.

Consistency: the agent's ``read`` returns the worker's bytes together with a segment snapshot
taken after those bytes were read, and the bridge writes the snapshot into the parent's
segment before it forwards the bytes. So when the parent reads a record (``Stopped`` at the
end of a run), the counters it sums hold at least what the worker had recorded when it sent
it. Between records, the snapshot is refreshed every ``POLL_S``.

``python -m mpswarm.ray_bridge --count-nodes ADDRESS`` prints the number of alive nodes.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

logger = logging.getLogger("mpswarm.ray_bridge")

POLL_S = 0.5
_MAX_MESSAGE = 1 << 16


# -- the segment's used words ---------------------------------------------------------------------
def used_ranges(segment: Any, open_model: bool) -> list[tuple[int, int]]:
    """(word offset, length) of every part of ``segment`` in use: header and rows 0..n (one
    run), the overflow row, the error counters and their overflow, and under the open model
    the same rows of ``raw_rows``. Pages outside them were never touched."""
    from mpswarm.stats.segment import H_ERRORS, H_ROWS, HEADER_WORDS, ROW_WORDS

    n_rows = min(int(segment.header[H_ROWS]), segment.max_endpoints)
    n_errors = min(int(segment.header[H_ERRORS]) + 1, segment.max_errors)
    ranges = [
        (0, HEADER_WORDS + (n_rows + 1) * ROW_WORDS),
        (segment.row_offset(segment.overflow_row), ROW_WORDS),
        (segment.errors_offset, n_errors),
        (segment.errors_offset + segment.overflow_error, 1),
    ]
    if open_model:
        ranges += [
            (segment.raw_offset, (n_rows + 1) * ROW_WORDS),
            (segment.raw_offset + segment.overflow_row * ROW_WORDS, ROW_WORDS),
        ]
    return ranges


def snapshot(segment: Any, open_model: bool) -> list[tuple[int, Any]]:
    """Copies of the used word ranges: [(offset, int64 array)]."""
    flat = np.frombuffer(segment._map, dtype=np.int64)
    return [(o, flat[o : o + n].copy()) for o, n in used_ranges(segment, open_model)]


class DeltaReader:
    """Successive snapshots of one segment that leave out what did not change.

    The counters are cumulative: a row whose request and failure counts did not move since the
    last snapshot did not change at all, and a histogram's non-zero buckets only spread. So
    each snapshot holds the header, the error counters, and of every changed row its counters
    and the span of its non-zero buckets. After a ``reset_counts`` (``H_RESETS`` moved) the
    whole used range goes once more. One reader per segment: the bridge's relay of it.
    """

    def __init__(self, segment: Any, open_model: bool) -> None:
        self.segment = segment
        self.open_model = open_model
        self.flat: Any = np.frombuffer(segment._map, dtype=np.int64)
        self._seen: dict[int, tuple[int, int]] = {}  # row offset -> (requests, failures)
        self._resets = -1
        self.words_sent = 0

    def snapshot(self) -> list[tuple[int, Any]]:
        from mpswarm.stats.segment import H_RESETS, H_ROWS, HEADER_WORDS, HIST, ROW_WORDS

        segment, flat = self.segment, self.flat
        resets = int(segment.header[H_RESETS])
        if resets != self._resets:
            self._resets = resets
            self._seen.clear()
            parts = snapshot(segment, self.open_model)
        else:
            n_rows = min(int(segment.header[H_ROWS]), segment.max_endpoints)
            # (first word, rows): the rows in use and the overflow row (and their raw twins)
            blocks = [(HEADER_WORDS, n_rows + 1), (segment.row_offset(segment.overflow_row), 1)]
            if self.open_model:
                raw = segment.raw_offset
                blocks += [(raw, n_rows + 1), (raw + segment.overflow_row * ROW_WORDS, 1)]
            parts = [(0, flat[:HEADER_WORDS].copy())]
            for start, rows in blocks:
                for row in range(rows):
                    offset = start + row * ROW_WORDS
                    key = (int(flat[offset]), int(flat[offset + 1]))  # REQUESTS, FAILURES
                    if self._seen.get(offset) == key:
                        continue
                    # The worker writes REQUESTS first, its bucket last (FAILURES after it):
                    # the histogram is copied before the counters, and the row counts as
                    # sent only when the copies agree (buckets sum to REQUESTS). A row caught
                    # mid-update goes again next time.
                    hist = flat[offset + HIST : offset + ROW_WORDS].copy()
                    counters = flat[offset : offset + HIST].copy()
                    if int(hist.sum()) == int(counters[0]):
                        self._seen[offset] = (int(counters[0]), int(counters[1]))
                    else:
                        self._seen.pop(offset, None)
                    parts.append((offset, counters))
                    nonzero = np.flatnonzero(hist)
                    if len(nonzero):
                        lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
                        parts.append((offset + HIST + lo, hist[lo:hi]))
            for offset, n in used_ranges(segment, self.open_model)[2:4]:
                parts.append((offset, flat[offset : offset + n].copy()))
        self.words_sent += sum(len(words) for _, words in parts)
        return parts


def apply(flat: Any, parts: list[tuple[int, Any]]) -> None:
    """Write a snapshot into a mapped segment (``flat``: its int64 view)."""
    for offset, words in parts:
        flat[offset : offset + len(words)] = words  # a copy: Ray's arrays are read-only


# -- the actor on each node ----------------------------------------------------------------------
class HostAgent:
    """Runs on one node (a Ray actor, threaded: it must never fork itself).

    It starts a fresh interpreter running this node's fork server (``mpswarm.ray_host``,
    which imports the locustfile and so rebuilds the WorkerSpec), creates each worker's
    segment and socketpair here, and relays the worker's pipe for the bridge.
    """

    def __init__(self, index: int, settings: dict[str, Any]) -> None:
        self.index = index
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._forked: dict[int, queue.Queue[int]] = {}
        self._workers: dict[str, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self._exit_cond = threading.Condition()

    def start(self) -> dict[str, Any]:
        """Start the node's fork server; returns facts about this node."""
        agent_end, host_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {k: v for k, v in os.environ.items() if k != "MPSWARM_RAY"}
        log_path = f"/tmp/mpswarm-ray-host{self.index}-{os.getpid()}.log"
        command = [sys.executable, "-m", "mpswarm.ray_host", str(host_end.fileno())]
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*command, *self.settings["argv"]],
                pass_fds=[host_end.fileno()],
                cwd=self.settings["cwd"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        host_end.close()
        self.sock = agent_end
        threading.Thread(target=self._read_server, daemon=True).start()
        import ray

        return {"host": socket.gethostname(), "agent_pid": os.getpid(),
                "node_id": ray.get_runtime_context().get_node_id()[:12],
                "server_pid": self.proc.pid, "log": log_path}  # fmt: skip

    def _read_server(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data = self.sock.recv(_MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            message = pickle.loads(data)
            if message[0] == "forked":
                _, slot, pid = message
                with self._lock:
                    self._forked.setdefault(slot, queue.Queue()).put(pid)
            elif message[0] == "exited":
                _, pid, status = message
                with self._exit_cond:
                    self._exits[pid] = status
                    self._exit_cond.notify_all()
        with self._exit_cond:  # the fork server is gone: its workers with it
            self._exits[-1] = -1
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
        socket.send_fds(self.sock, [pickle.dumps(("fork", slot))], [segment.fd, theirs.fileno()])
        theirs.close()
        pid = replies.get(timeout=timeout)
        wid = f"{self.index}:{pid}"
        worker = {"pid": pid, "sock": mine, "segment": segment, "buf": bytearray(),
                  "eof": False, "cond": threading.Condition(),
                  "delta": DeltaReader(segment, self.settings["open_model"])}  # fmt: skip
        with self._lock:
            self._workers[wid] = worker
        threading.Thread(target=self._read_worker, args=(worker,), daemon=True).start()
        return wid

    @staticmethod
    def _read_worker(worker: dict[str, Any]) -> None:
        while True:
            try:
                data = worker["sock"].recv(1 << 16)
            except OSError:
                data = b""
            with worker["cond"]:
                if not data:
                    worker["eof"] = True
                else:
                    worker["buf"] += data
                worker["cond"].notify_all()
            if not data:
                return

    def read(self, wid: str, timeout: float) -> tuple[bytes, list[tuple[int, Any]], bool]:
        """The worker's bytes since the last call (waiting up to ``timeout`` for some), a
        snapshot of its segment taken after them, and whether its pipe closed."""
        worker = self._workers[wid]
        with worker["cond"]:
            if not worker["buf"] and not worker["eof"]:
                worker["cond"].wait(timeout)
            data, worker["buf"] = bytes(worker["buf"]), bytearray()
            eof = worker["eof"]
        return data, worker["delta"].snapshot(), eof

    def words_sent(self, wid: str) -> int:
        """int64 words of segment snapshots sent for this worker so far."""
        return int(self._workers[wid]["delta"].words_sent)

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

    def shutdown(self) -> None:
        """Stop the fork server (it kills its workers) and free the segments."""
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


# -- the bridge ------------------------------------------------------------------------------------
class Bridge:
    """The driver side: see the module docstring."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=settings["fd"])
        # The parent (gevent) made its sockets non-blocking; the flag travels with the fd.
        self.sock.setblocking(True)
        self._send_lock = threading.Lock()
        self.agents: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()

    def send(self, message: Any) -> None:
        with self._send_lock:
            try:
                self.sock.send(pickle.dumps(message))
            except OSError:
                pass

    def start(self) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray.init(address=self.settings["address"], logging_level=logging.WARNING,
                 log_to_driver=False)  # fmt: skip
        nodes = sorted((n for n in ray.nodes() if n["Alive"]), key=lambda n: n["NodeID"])
        if self.settings["hosts"]:
            nodes = nodes[: self.settings["hosts"]]
        # By module name, not __main__'s copy: the actors import mpswarm.ray_bridge.
        from mpswarm.ray_bridge import HostAgent as agent_class

        actor = ray.remote(agent_class)
        for index, node in enumerate(nodes):
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            self.agents.append(
                actor.options(num_cpus=0, max_concurrency=64, scheduling_strategy=strategy)
                .remote(index, self.settings)
            )  # fmt: skip
        facts = ray.get([agent.start.remote() for agent in self.agents])
        self.send(("started", len(self.agents), facts))

    def serve(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, _MAX_MESSAGE, 8)
            except OSError as exc:
                logger.error("the parent's socket failed: %r", exc)
                data, fds = b"", []
            if not data:
                break
            message = pickle.loads(data)
            logger.debug("from the parent: %r %r", message, fds)
            if message[0] == "fork":
                slot = message[1]
                thread = threading.Thread(target=self._worker, args=(slot, fds), daemon=True)
                thread.start()
                self._threads.append(thread)
            elif message[0] == "kill":
                wid = message[1]
                self.agents[int(wid.split(":")[0])].kill.remote(wid)
        self._closing.set()

    def _worker(self, slot: int, fds: list[int]) -> None:
        import ray

        from mpswarm.stats.segment import Segment

        segment_fd, pipe_fd = fds
        host = min(slot // self.settings["per_host"], len(self.agents) - 1)
        agent = self.agents[host]
        pipe = socket.socket(fileno=pipe_fd)
        pipe.setblocking(True)  # non-blocking as the parent's gevent made it
        segment = Segment(segment_fd, self.settings["max_endpoints"], self.settings["max_errors"])
        flat: Any = np.frombuffer(segment._map, dtype=np.int64)  # type: ignore[arg-type]
        try:
            wid = ray.get(agent.fork.remote(slot))
        except Exception as exc:  # the parent sees the pipe close
            logger.error("slot %d: no worker on host %d: %s", slot, host, exc)
            pipe.close()
            return
        logger.debug("slot %d: worker %s on host %d", slot, wid, host)
        self.send(("forked", slot, wid))
        up = threading.Thread(target=self._up, args=(agent, wid, pipe), daemon=True)
        up.start()
        polls = 0
        try:
            while True:
                data, parts, eof = ray.get(agent.read.remote(wid, POLL_S))
                apply(flat, parts)
                polls += 1
                if data:
                    pipe.sendall(data)
                if eof:
                    break
        except Exception as exc:  # the agent or its node is gone
            logger.error("slot %d (%s): relay ended: %s", slot, wid, exc)
        try:
            pipe.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        status = None
        try:
            status = ray.get(agent.exit_status.remote(wid, 10.0))
        except Exception:
            pass
        self.send(("exited", wid, signal.SIGKILL if status is None else status))
        up.join(1.0)
        try:
            sent = ray.get(agent.words_sent.remote(wid), timeout=5) * 8 / 1e6
        except Exception:
            sent = float("nan")
        logger.debug("slot %d (%s): %d reads, %.2f MB of segment words", slot, wid, polls, sent)

    @staticmethod
    def _up(agent: Any, wid: str, pipe: socket.socket) -> None:
        import ray

        while True:
            try:
                data = pipe.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                try:
                    ray.get(agent.close_input.remote(wid))
                except Exception:
                    pass
                return
            try:
                ray.get(agent.write.remote(wid, data))  # one at a time: keeps the order
            except Exception:
                return

    def close(self) -> None:
        import ray

        deadline = time.monotonic() + 5.0  # the relays' last words (exit statuses, logs)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

        logger.debug("closing: relays done")
        try:
            ray.get([agent.shutdown.remote() for agent in self.agents], timeout=20)
            logger.debug("closing: agents shut down")
        except Exception as exc:
            logger.warning("agents did not shut down: %s", exc)
        for agent in self.agents:
            ray.kill(agent)
        ray.shutdown()
        logger.debug("closing: Ray shut down")


def _count_nodes(address: str) -> int:
    import ray

    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        return sum(1 for n in ray.nodes() if n["Alive"])
    finally:
        ray.shutdown()


def main(argv: list[str]) -> int:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    level = os.environ.get("MPSWARM_RAY_BRIDGE_LOG", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[ray-bridge %(asctime)s] %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    if argv and argv[0] == "--count-nodes":
        print(_count_nodes(argv[1]))
        return 0
    settings = json.loads(argv[0])
    import faulthandler

    faulthandler.register(signal.SIGUSR1)  # a stack dump on demand, for debugging
    from mpswarm.runner._proc import die_with_parent

    die_with_parent(settings["parent_pid"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent alone decides how to stop
    bridge = Bridge(settings)
    try:
        bridge.start()
    except Exception as exc:
        logger.exception("start failed")
        bridge.send(("failed", f"{type(exc).__name__}: {exc}"))
        return 1
    try:
        bridge.serve()
    finally:
        bridge.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
