"""The Ray bridge: a clean interpreter (no gevent patching) that is the run's Ray driver.

Started by ``RemoteForkServer`` (mpswarm/runner/_remote.py) with one JSON argument. It joins
the cluster, starts one ``HostAgent`` actor per node (each starts its node's fork server) and
says how many worker slots each host has. Then it serves the parent's fork-server protocol on
the passed SEQPACKET socket: for each ``Fork`` record with the parent's (segment fd,
worker-end pipe fd) it asks the slot's host for a worker, relays the pipe's bytes in both
directions and mirrors the remote segment into the parent's (``mpswarm.cluster.delta``).

One stream for the whole run, whatever its number of hosts and workers: every agent logs its
workers' new records and segment deltas twice a second, the collector
(``mpswarm.cluster.collector``, an actor on a load node) reads every host's log and hands this
driver one item with all of them every ``FORWARD_S``, so the coordinator's cost does not grow
with the number of hosts' messages. Consistency: each delta is taken after that worker's
bytes were read, and the bridge writes the delta into the parent's segment before it forwards
the bytes. So when the parent reads a record (``Stopped`` at the end of a run), the counters it
sums hold at least what the worker had recorded when it sent it. The bridge keeps the number
of each host's last copy: a collector that replaces a lost one replays every host's log from
there, so a lost collector costs nothing.

A host whose agent dies (its process killed, its node lost) is named by the collector as soon
as its stream fails (at once for a killed agent, in under a second for a lost node). Its
workers' last copies stay in the parent's segments; the bridge tells the parent
``HostLost``, restarts the agent on the node if the node is alive, else moves the
host's slots to the other hosts, so the pool's replacements (it replaces every lost worker)
land where they can run.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import socket
import sys
import threading
import time
from typing import Any

import numpy as np

from mpswarm.cluster.collector import FORWARD_GAP_S, FORWARD_S, NO_DEATH_WAIT, describe
from mpswarm.cluster.delta import apply
from mpswarm.cluster.nodes import NodeProbe, unreachable
from mpswarm.runner.fork_messages import (
    Exited,
    Fork,
    Forked,
    HostLost,
    Kill,
    Started,
    StartFailed,
)
from mpswarm.runner.messages import Router

logger = logging.getLogger("mpswarm.cluster")

#: Seconds a lost host's new agent gets to start before its slots move to the other hosts.
RESTART_TIMEOUT_S = 30.0
#: Seconds without a copy from a host (its agent logs one every ``agent.COPY_S``, idle or not,
#: and the collector passes them on every ``FORWARD_S``) after which the bridge asks whether
#: its node still answers: a machine that vanished closes no connection, and Ray's own health
#: checks take some 16 s to call its node dead.
SILENT_S = 1.0
#: Seconds a new collector gets to start (a Ray worker process starts in about a second);
#: then one is tried on another node.
COLLECTOR_TIMEOUT_S = 10.0
_MAX_MESSAGE = 1 << 16
#: Seconds ``ray.init`` gets to join the cluster.
JOIN_TIMEOUT_S = 60.0
#: What a working directory shipped to the cluster leaves out.
WORKING_DIR_EXCLUDES = [".git", ".venv", "venv", "__pycache__", "node_modules", "*.pyc"]


class Host:
    """One node of the run: its agent (replaced when lost), its state, its workers."""

    def __init__(self, index: int, node_id: str) -> None:
        self.index = index
        self.node_id = node_id
        self.agent: Any = None
        self.facts: dict[str, Any] = {}
        self.generation = 0
        self.up = threading.Event()  # cleared while a lost agent is being replaced
        self.gone = False  # its node is lost: its slots moved
        self.workers = 0
        self.seq = 0  # the number of its agent's last copy applied here
        self.heard = time.monotonic()  # when that copy came

    @property
    def key(self) -> str:
        """How the collector names this host's current agent."""
        return f"{self.index}.{self.generation}"

    @property
    def name(self) -> str:
        return f"host {self.index} ({self.facts.get('host', '?')})"


class Relay:
    """One remote worker as the bridge relays it: its pipe to the parent, the parent's copy
    of its segment, and how it ended (``lost``: why its host was lost, or None)."""

    def __init__(self, wid: str, host: Host, generation: int, pipe: socket.socket,
                 segment: Any) -> None:  # fmt: skip
        self.wid, self.host, self.generation = wid, host, generation
        self.pipe = pipe
        self.flat: Any = np.frombuffer(segment._map, dtype=np.int64)
        self.done = threading.Event()
        self.lost: str | None = None
        self.copies = self.words = 0

    def end(self, lost: str | None) -> None:
        if not self.done.is_set():
            self.lost = lost
            self.done.set()


class Bridge:
    """The driver side: see the module docstring."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=settings["fd"])
        # The parent (gevent) made its sockets non-blocking; the flag travels with the fd.
        self.sock.setblocking(True)
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self.hosts: list[Host] = []
        self.slots: list[int] = []  # the host of each worker slot
        self._argv: list[str] = []
        self._threads: list[threading.Thread] = []
        self._relays: dict[str, Relay] = {}
        self._closing = threading.Event()
        self.collector: Any = None
        self.collector_node = ""
        self.nodes = NodeProbe({}, "")  # (none yet: set once the cluster is joined)

    def send(self, message: Any) -> None:
        with self._send_lock:
            try:
                self.sock.send(pickle.dumps(message))
            except OSError:
                pass

    # -- starting ----------------------------------------------------------------------------
    def start(self) -> bool:
        """Join the cluster and start every host; tell the parent how it went."""
        settings = self.settings
        try:
            import ray
        except ImportError:
            self.send(StartFailed("--ray needs Ray: pip install 'mpswarm[ray]'", usage=True))
            return False
        address = settings["address"]
        cannot_join = f"--ray {address}: cannot join the cluster: "
        why_not = unreachable(address)
        if why_not:
            self.send(StartFailed(cannot_join + why_not, usage=True))
            return False
        runtime_env = None
        if settings["working_dir"]:
            runtime_env = {"working_dir": settings["working_dir"],
                           "excludes": WORKING_DIR_EXCLUDES}  # fmt: skip

        def give_up() -> None:  # ray.init cannot be interrupted
            why = f"no answer in {JOIN_TIMEOUT_S:.0f} s"
            self.send(StartFailed(cannot_join + why, usage=True))
            os._exit(1)

        # In this thread: Ray's own processes (``local``) die with the thread that started
        # them (PR_SET_PDEATHSIG), so the watchdog is the other thread.
        watchdog = threading.Timer(JOIN_TIMEOUT_S, give_up)
        watchdog.daemon = True
        watchdog.start()
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING,
                     log_to_driver=False)  # fmt: skip
        except Exception as exc:
            why = " ".join(str(exc).split())[:300]
            self.send(StartFailed(cannot_join + why, usage=True))
            return False
        finally:
            watchdog.cancel()
        nodes = sorted((n for n in ray.nodes() if n["Alive"]), key=lambda n: n["NodeID"])
        self.nodes = NodeProbe(
            {n["NodeID"]: (n["NodeManagerAddress"], n["NodeManagerPort"]) for n in nodes},
            ray.get_runtime_context().get_node_id(),
        )
        if settings["hosts"]:
            if settings["hosts"] > len(nodes):
                self.send(StartFailed(f"--ray-hosts {settings['hosts']}: the cluster "
                                      f"has {len(nodes)} node(s)", usage=True))  # fmt: skip
                return False
            nodes = nodes[: settings["hosts"]]
        self.hosts = [Host(index, node["NodeID"]) for index, node in enumerate(nodes)]
        for host in self.hosts:
            host.agent = self._new_agent(host)
        facts = ray.get([host.agent.facts.remote() for host in self.hosts])
        for host, fact in zip(self.hosts, facts, strict=True):
            host.facts = fact
            count = settings["processes"] if settings["processes"] > 0 else fact["cores"]
            self.slots += [host.index] * count
        self._argv = [*settings["argv"], "--processes", str(len(self.slots))]
        errors = ray.get([self._start_agent(host) for host in self.hosts])
        for host, error in zip(self.hosts, errors, strict=True):
            if error:
                self.send(StartFailed(f"{host.name}: {error}"))
                return False
            host.up.set()
        self.collector, self.collector_node = self._new_collector(set())
        facts = ray.get(self.collector.facts.remote(), timeout=COLLECTOR_TIMEOUT_S)
        logger.debug("the collector: %s", facts)
        for host in self.hosts:
            self._follow(host)
        for target in (self._collect, self._watch):
            threading.Thread(target=target, daemon=True).start()
        self.send(Started([host.facts for host in self.hosts], list(self.slots)))
        return True

    def _new_agent(self, host: Host) -> Any:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # By module name, not __main__'s copy: the actors import mpswarm.cluster.agent.
        from mpswarm.cluster.agent import HostAgent

        strategy = NodeAffinitySchedulingStrategy(host.node_id, soft=False)
        return (
            ray.remote(HostAgent)
            .options(num_cpus=0, max_concurrency=64, scheduling_strategy=strategy)
            .remote(host.index, self.settings)
        )

    def _start_agent(self, host: Host) -> Any:
        return host.agent.start.remote(self._argv, self.settings["env"])

    def _new_collector(self, avoid: set[str]) -> tuple[Any, str]:
        """A collector and its node: a load node other than this one (and those in ``avoid``)
        where there is one, as its CPU is the fleet's, not the coordinator's; else this one.
        Pinned: Ray placed a collector with a soft affinity on other nodes, this one included."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from mpswarm.cluster.collector import Collector

        here = ray.get_runtime_context().get_node_id()
        nodes = [h.node_id for h in self.hosts if not h.gone and h.up.is_set()]
        nodes = [n for n in dict.fromkeys(nodes) if n != here and n not in avoid]
        node = next((n for n in nodes if self.nodes.alive(n)), here)
        strategy = NodeAffinitySchedulingStrategy(node, soft=False)
        options = {"num_cpus": 0, "max_concurrency": 8, "scheduling_strategy": strategy,
                   "runtime_env": {"env_vars": NO_DEATH_WAIT}}  # fmt: skip
        return ray.remote(Collector).options(**options).remote(), node

    def _follow(self, host: Host) -> None:
        """Have the collector read ``host``'s agent from its last copy applied here."""
        self.collector.follow.remote(host.key, host.agent, host.seq)

    # -- serving the parent --------------------------------------------------------------------
    def serve(self) -> None:
        route = Router({Fork: self._fork, Kill: self._kill}, "the Ray bridge")
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
            route(fds, message)

    def _fork(self, fds: list[int], msg: Fork) -> None:
        thread = threading.Thread(target=self._worker, args=(msg.slot, fds), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _kill(self, fds: list[int], msg: Kill) -> None:
        index, _ = msg.worker_id.split(":")
        host = self.hosts[int(index)]
        try:
            host.agent.kill.remote(msg.worker_id)
        except Exception:  # its agent is gone already
            pass

    def _host_for(self, slot: int) -> Host | None:
        """The host of ``slot``, once it is up; a live one instead when its node is lost."""
        host = self.hosts[self.slots[slot]]
        host.up.wait(RESTART_TIMEOUT_S + 30.0)
        if not host.gone:
            return host
        with self._lock:
            live = [h for h in self.hosts if not h.gone]
            if not live:
                return None
            host = min(live, key=lambda h: h.workers)
            self.slots[slot] = host.index
        return host

    def _worker(self, slot: int, fds: list[int]) -> None:
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        from mpswarm.stats.segment import Segment

        segment_fd, pipe_fd = fds
        pipe = socket.socket(fileno=pipe_fd)
        pipe.setblocking(True)  # non-blocking as the parent's gevent made it
        segment = Segment(segment_fd, self.settings["max_endpoints"], self.settings["max_errors"])
        host = self._host_for(slot)
        if host is None:
            logger.error("slot %d: every host is lost", slot)
            pipe.close()
            return
        agent, generation = host.agent, host.generation
        try:
            wid = ray.get(agent.fork.remote(slot))
        except Exception as exc:  # the parent sees the pipe close, and replaces the worker
            logger.error("slot %d: no worker on %s: %s", slot, host.name, exc)
            if isinstance(exc, (RayActorError, ActorUnavailableError)):
                self._lost(host, generation, exc)
            pipe.close()
            return
        relay = Relay(wid, host, generation, pipe, segment)
        with self._lock:
            self._relays[wid] = relay
            host.workers += 1
        try:
            ray.get(agent.activate.remote(wid))  # its host's poller reports it from now on
        except Exception as exc:
            relay.end(self._lost(host, generation, exc))
        logger.debug("slot %d: worker %s on %s", slot, wid, host.name)
        self.send(Forked(slot, wid))
        up = threading.Thread(target=self._up, args=(agent, wid, pipe), daemon=True)
        up.start()
        relay.done.wait()
        try:
            pipe.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        status = None
        if relay.lost is None:
            try:
                status = ray.get(agent.exit_status.remote(wid, 10.0))
            except Exception:
                pass
        with self._lock:
            host.workers -= 1
            del self._relays[wid]
        self.send(Exited(wid, signal.SIGKILL if status is None else status, relay.lost))
        up.join(1.0)
        segment.close()
        logger.debug("slot %d (%s): %d copies, %.2f MB of segment words", slot, wid,
                     relay.copies, relay.words * 8 / 1e6)  # fmt: skip

    def _collect(self) -> None:
        """The collector's stream: every host's copies and failures. A collector that fails is
        replaced by one that replays every host's log from its last copy applied here."""
        import ray

        while not self._closing.is_set():
            collector = self.collector
            stream = collector.stream.options(num_returns="streaming").remote(
                FORWARD_S, FORWARD_GAP_S
            )
            try:
                for ref in stream:
                    self._take(ray.get(ref))
                why = "its stream ended"
            except Exception as exc:
                why = describe(exc)
            if not self._closing.is_set():
                self._replace_collector(collector, why)

    def _take(self, item: dict[str, Any]) -> None:
        """Apply one item of the collector's: each worker's delta, then its records."""
        for key, (number, copies) in item["copies"].items():
            index, generation = (int(part) for part in key.split("."))
            host = self.hosts[index]
            for wid, (data, parts, ended) in copies.items():
                relay = self._relays.get(wid)
                if relay is None:
                    continue
                apply(relay.flat, parts)
                relay.copies, relay.words = relay.copies + 1, relay.words + len(parts[1])
                if data:
                    try:
                        relay.pipe.sendall(data)
                    except OSError:
                        ended = True  # the parent closed its end
                if ended:
                    relay.end(None)
            with self._lock:
                if host.generation == generation:
                    host.seq, host.heard = number, time.monotonic()
        for key, why in item["failed"].items():
            index, generation = (int(part) for part in key.split("."))
            self._host_failed(self.hosts[index], generation, why)

    def _watch(self) -> None:
        """A host silent for ``SILENT_S`` whose node does not answer is lost."""
        while not self._closing.wait(SILENT_S / 4):
            for host in self.hosts:
                now = time.monotonic()
                with self._lock:
                    if not host.up.is_set() or host.gone or now - host.heard < SILENT_S:
                        continue
                    host.heard, generation = now, host.generation  # asked again in SILENT_S
                if not self.nodes.alive(host.node_id):
                    self._host_failed(host, generation, "its node does not answer")

    def _replace_collector(self, old: Any, why: str) -> None:
        import ray

        logger.warning("the collector was lost (%s): a new one reads every host from its last "
                       "copy", why)  # fmt: skip
        _kill(old)
        avoid = {self.collector_node}
        while not self._closing.is_set():
            collector, node = self._new_collector(avoid)
            try:
                facts = ray.get(collector.facts.remote(), timeout=COLLECTOR_TIMEOUT_S)
            except Exception as exc:
                logger.warning("no new collector: %s", describe(exc))
                _kill(collector)
                avoid.add(node)
                time.sleep(0.2)
                continue
            logger.debug("the new collector: %s", facts)
            # A host on the lost collector's node is likely lost with it: its node is checked
            # here (a new reader of a lost node's agent may wait for the cluster's word).
            nodes = {h.node_id for h in self.hosts if not h.gone}
            dead = {node for node in nodes if not self.nodes.alive(node)}
            lost = []
            with self._lock:
                self.collector, self.collector_node = collector, node
                for host in self.hosts:
                    if host.up.is_set() and not host.gone:
                        if host.node_id in dead:
                            lost.append((host, host.generation))
                        else:
                            self._follow(host)
            for host, generation in lost:
                self._host_failed(host, generation, "its node is gone")
            return

    def _host_failed(self, host: Host, generation: int, why: str) -> None:
        """``host``'s agent of ``generation`` failed: recover it, end its workers' relays."""
        text = self._lost(host, generation, why)
        with self._lock:
            mine = [r for r in self._relays.values()
                    if r.host is host and r.generation == generation]  # fmt: skip
        for relay in mine:
            relay.end(text)

    @staticmethod
    def _up(agent: Any, wid: str, pipe: socket.socket) -> None:
        import ray

        while True:
            try:
                data = pipe.recv(1 << 16)
            except OSError:
                data = b""
            try:
                if not data:
                    ray.get(agent.close_input.remote(wid))
                    return
                ray.get(agent.write.remote(wid, data))  # one at a time: keeps the order
            except Exception:
                return

    # -- a lost host ---------------------------------------------------------------------------
    def _lost(self, host: Host, generation: int, exc: Exception | str) -> str:
        """A call to ``host``'s agent of ``generation`` failed: the first to see it starts the
        recovery. Returns the words for the worker's exit."""
        again = f" (#{generation + 1})" if generation else ""
        why = f"{host.name} lost{again}: its agent died"
        with self._lock:
            if host.generation != generation:
                return why
            host.generation += 1
            host.up.clear()
        logger.debug("%s (%s)", why, exc if isinstance(exc, str) else describe(exc))
        at = time.time()
        self.send(HostLost(host.index, host.facts.get("host", "?"), at, why,
                           "a new agent is starting on its node"))  # fmt: skip
        thread = threading.Thread(target=self._recover, args=(host, why, at), daemon=True)
        thread.start()
        self._threads.append(thread)
        return why

    def _recover(self, host: Host, why: str, at: float) -> None:
        import ray

        action = "its node is gone: its workers moved to the other hosts"
        _kill(host.agent)
        if self.nodes.alive(host.node_id):
            agent = self._new_agent(host)
            try:
                ray.get(agent.facts.remote(), timeout=RESTART_TIMEOUT_S)
                host.agent = agent
                error = ray.get(self._start_agent(host), timeout=RESTART_TIMEOUT_S)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error:
                logger.warning("%s: no new agent on its node: %s", host.name, error)
                _kill(agent)
            else:
                action = "a new agent started on its node"
        with self._lock:
            host.gone = not action.startswith("a new agent")
            if not host.gone:
                host.seq, host.heard = 0, time.monotonic()
                self._follow(host)
            host.up.set()
        self.send(HostLost(host.index, host.facts.get("host", "?"), at, why, action))

    # -- closing --------------------------------------------------------------------------------
    def close(self) -> None:
        import ray

        self._closing.set()
        deadline = time.monotonic() + 5.0  # the relays' last words (exit statuses, logs)
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        live = [host for host in self.hosts if not host.gone and host.up.is_set()]
        try:
            self.collector.shutdown.remote()  # its stream ends: the poller's with it
        except Exception:
            pass
        try:
            words = ray.get([host.agent.shutdown.remote() for host in live], timeout=20)
            for host, text in zip(live, words, strict=True):
                if text:
                    logger.info("%s said:\n%s", host.name, text)
        except Exception as exc:
            logger.warning("the agents did not shut down: %s", exc)
        for actor in [self.collector, *(host.agent for host in self.hosts)]:
            _kill(actor)
        ray.shutdown()


def _kill(actor: Any) -> None:
    """End an actor, whatever became of it (gone already, its node lost)."""
    import ray

    try:
        ray.kill(actor)
    except Exception:
        pass


def main(argv: list[str]) -> int:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # the driver's own C++ warnings
    for name, value in NO_DEATH_WAIT.items():  # a broken connection to an actor is its loss
        os.environ.setdefault(name, value)
    settings = json.loads(argv[0])
    level = settings.get("loglevel", "INFO")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("mpswarm: ray: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    from mpswarm.runner._proc import die_with_parent

    die_with_parent(settings["parent_pid"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent alone decides how to stop
    bridge = Bridge(settings)
    try:
        started = bridge.start()
    except Exception as exc:
        logger.debug("start failed", exc_info=True)
        bridge.send(StartFailed(f"{type(exc).__name__}: {exc}"))
        started = False
    try:
        if started:
            bridge.serve()
    finally:
        if bridge.hosts or started:
            bridge.close()
    return 0 if started else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
