"""A worker process: runs users as greenlets and records into its shared-memory segment.

It obeys the parent's messages on its pipe (targets, stop, quit) and reports state changes
back. It never outlives the parent: the kernel kills it when the fork server (its parent)
dies, and the fork server dies with the parent; a closed pipe also makes it exit.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os
import random
import socket
import traceback
from typing import Any, NoReturn

import gevent

from mpswarm.env import Environment
from mpswarm.runner import messages as m
from mpswarm.runner._channel import Channel
from mpswarm.runner._proc import die_with_parent
from mpswarm.runner._user_errors import UserErrors
from mpswarm.runner.arrivals import OpenModel
from mpswarm.runner.base import (
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
    WorkerRunner,
)
from mpswarm.runner.dispatch import spawn_order
from mpswarm.runner.usage import UsageMonitor, measure_loop_lag
from mpswarm.stats.aggregate import Aggregator
from mpswarm.stats.locust_view import RequestStats
from mpswarm.stats.recorder import Recorder
from mpswarm.stats.segment import (
    Segment,
)
from mpswarm.stats.snapshot import Snapshot

logger = logging.getLogger(__name__)

#: Once --stop-timeout has passed, users still in a request get this long to finish it before
#: they are killed (and the request recorded as interrupted).
HARD_STOP_GRACE_S = 4.0
#: Then the users still running are killed together, and get this long to unwind.
KILL_WAIT_S = 0.5
#: Seconds between two flushes of exception counts and ``report_to_master`` events.
REPORT_INTERVAL_S = 1.0


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What every worker gets, fixed before the fork server starts."""

    user_classes: tuple[type, ...]
    host: str | None
    stop_timeout: float
    max_endpoints: int
    max_errors: int
    parsed_options: Any = None
    processes: int = 1
    reset_stats_after_spawn: bool = False


def worker_main(spec: WorkerSpec, slot: int, fds: list[int], server_pid: int) -> NoReturn:
    """Entry point of a freshly forked worker; exits the process when done."""
    code = 1
    try:
        die_with_parent(server_pid)
        gevent.reinit()
        # gevent records each greenlet's spawning greenlet, stack and tree locals, a debugging
        # aid that costs every user 200 bytes; a worker's users do not need it.
        gevent.config.track_greenlet_tree = False
        random.seed()  # forked workers would otherwise share one random sequence
        segment_fd, pipe_fd = fds
        channel = Channel(socket.socket(fileno=pipe_fd))
        segment = Segment(segment_fd, spec.max_endpoints, spec.max_errors)
        WorkerRuntime(spec, slot, channel, segment).serve()
        code = 0
    except BaseException:  # the parent reports how we ended; leave the detail in the log
        logger.error("worker %d failed:\n%s", slot, traceback.format_exc())
    finally:
        logging.shutdown()
        os._exit(code)


class _Ungrouped:
    """What ``User.start(group)`` needs, without a Group: the worker tracks its users itself
    (a Group's set entry and link cost every user 110 bytes)."""

    spawn = staticmethod(gevent.spawn)


_UNGROUPED = _Ungrouped()


class WorkerRuntime(WorkerRunner):
    """The runner inside one worker process (``environment.runner`` there)."""

    def __init__(self, spec: WorkerSpec, slot: int, channel: Channel, segment: Segment) -> None:
        from mpswarm.event import events

        environment = Environment(
            user_classes=list(spec.user_classes),
            host=spec.host,
            events=events,
            parsed_options=spec.parsed_options,
            stop_timeout=spec.stop_timeout,
        )
        super().__init__(environment)
        self.spec = spec
        self.worker_index = slot
        self.worker_count = spec.processes
        self.client_id = f"{socket.gethostname()}_{slot}"
        self.channel = channel
        self.segment = segment
        self.errors = UserErrors(channel.send)
        self.environment.exception_sink = self.errors.on_exception
        # A greenlet that dies of an exception is one line in the log, not gevent's traceback.
        gevent.get_hub().print_exception = self.errors.greenlet_failed
        # This worker's own view of its numbers, for runner.stats here.
        self._local = Aggregator()
        self._local.add_segment(0, segment)
        self.recorder = Recorder(segment, self._announce)
        self.stats = RequestStats(self._local_snapshot)
        self._iterations_left: int | None = None
        # Recording comes before any listener the locustfile added.
        events.request._handlers.insert(0, self.recorder.on_request)
        self._classes = {cls.__name__: cls for cls in spec.user_classes}
        # Users being retired (stopped while the run goes on), until their greenlet ends.
        self._retiring: dict[Any, Any] = {}
        # Running users by greenlet (a dict: a user that ends is dropped in O(1), and one
        # bound method, linked raw, serves them all: a closure per user cost 270 bytes).
        self._users: dict[Any, Any] = {}
        self._on_user_exit = self._user_exited
        self._spawner: gevent.Greenlet | None = None
        self._started = False
        self._t_start = 0.0
        self.open_model: OpenModel | None = None

    def _announce(self, message: tuple[Any, ...]) -> None:
        """The recorder's news (a tuple: stats/ knows no runner) as a record for the parent."""
        kind, *fields = message
        if kind == "row":
            self._local.on_row(0, *fields)
            self.channel.send(m.RowAnnounced(*fields))
        elif kind == "error":
            self._local.on_error(0, *fields)
            self.channel.send(m.ErrorAnnounced(*fields))
        elif kind == "overflow":
            self.channel.send(m.NamesOverflowed(*fields))

    def _local_snapshot(self) -> Snapshot:
        elapsed = gevent.get_hub().loop.now() - self._t_start if self._started else 0.0
        return self._local.snapshot(started_at=0.0, duration_s=elapsed, users=self.user_count)

    # -- the loop ------------------------------------------------------------------------------
    def serve(self) -> None:
        """Handle the parent's messages until told to quit or the pipe closes."""
        self.environment.events.init.fire(environment=self.environment)
        self.channel.send(m.Ready(os.getpid()))
        self.greenlet.spawn(self._report_forever)
        self.greenlet.spawn(measure_loop_lag, self.segment)
        self.greenlet.spawn(UsageMonitor(self.environment, self._report_usage).run_forever)
        route = m.Router(
            {
                m.Target: lambda _, msg: self._set_target(msg.counts, msg.rate, msg.host),
                m.Arrival: lambda _, msg: self._set_arrival(msg.settings),
                m.StopUsers: lambda _, msg: gevent.spawn(self._stop_and_report),
                m.Custom: lambda _, msg: self._deliver(msg.type, msg.data, "master"),
                m.ResetStats: lambda _, msg: self.reset_stats(),
                # The run-wide caps: only these names / error keys get a row.
                m.NamesFull: lambda _, msg: self.recorder.limit_names(msg.names),
                m.ErrorsFull: lambda _, msg: self.recorder.limit_errors(msg.keys),
                m.Iterations: lambda _, msg: self._set_iterations(msg.count),
            },
            f"worker {self.worker_index}",
        )
        try:
            while True:
                try:
                    message = self.channel.recv()
                except (EOFError, OSError):
                    return  # the parent is gone: stop at once
                if isinstance(message, m.Quit):
                    self._kill_all()
                    self.environment.events.quitting.fire(environment=self.environment)
                    return
                route(None, message)
        finally:
            self.greenlet.kill(block=False)

    def _set_iterations(self, count: int) -> None:
        self._iterations_left = count
        self.environment.claim_iteration = self._claim_iteration
        if count == 0:  # a replacement with nothing left to do
            gevent.spawn(self._report_iterations_done)

    # -- users ----------------------------------------------------------------------------------
    @property
    def user_count(self) -> int:
        """Users alive in this worker."""
        return len(self._users)

    @property
    def users(self) -> list[Any]:
        """The users alive in this worker."""
        return list(self._users.values())

    def _add_user(self, user: Any) -> None:
        greenlet = user.start(_UNGROUPED)
        self._users[greenlet] = user
        greenlet.rawlink(self._on_user_exit)
        self.segment.users = len(self._users)

    def _user_exited(self, greenlet: Any) -> None:
        user = self._users.pop(greenlet, None)
        self._retiring.pop(greenlet, None)
        self.segment.users = len(self._users)
        if self.open_model is not None:
            self.open_model.forget(user, greenlet)

    def _set_target(self, counts: dict[str, int], rate: float, host: str | None = None) -> None:
        self._use_host(host)
        if self._spawner is not None:
            self._spawner.kill(block=True)
        self._begin_test()
        self.state = STATE_SPAWNING
        self.target_user_count = sum(counts.values())
        alive: dict[str, list[Any]] = {name: [] for name in self._classes}
        for user in self.users:
            alive[type(user).__name__].append(user)
        deficits: dict[str, int] = {}
        for name, want in counts.items():
            have = alive.get(name, [])
            if len(have) > want:
                for user in have[want:]:
                    self._retire(user)
            deficits[name] = max(0, want - len(have))
        self._spawner = gevent.spawn(self._spawn, spawn_order(deficits), rate)

    def _begin_test(self) -> None:
        if not self._started:
            self._started = True
            self._t_start = gevent.get_hub().loop.now()
            self.environment.events.test_start.fire(environment=self.environment)

    def _use_host(self, host: str | None) -> None:
        if host:  # a host chosen in the web UI: users started from now on use it
            for cls in self._classes.values():
                cls.host = host  # type: ignore[attr-defined]

    def _set_arrival(self, settings: dict[str, Any]) -> None:
        """Open model: run this worker's share of the arrival rate (runner/arrivals.py)."""
        self._use_host(settings.get("host"))
        self._begin_test()
        if self.open_model is None:
            self.open_model = OpenModel(self)
            self.recorder.open_model(self.open_model.delays)
        self.state = STATE_RUNNING
        self.target_user_count = int(settings["max_users"])
        self.open_model.configure(settings)

    def _spawn(self, order: list[str], rate: float) -> None:
        # Users start in one batch per second, as under Locust's master: at second k, enough
        # to reach rate * (k + 1). Paced against the start time, so delays do not add up.
        started = gevent.get_hub().loop.now()
        done = 0
        for second in itertools.count():
            due = min(len(order), max(1, math.floor(rate * (second + 1) + 1e-9)))
            for name in order[done:due]:
                user = self.new_user(name)
                if user is not None:
                    self._add_user(user)
            done = max(done, due)
            if done >= len(order):
                break
            gevent.sleep(max(0.0, started + second + 1 - gevent.get_hub().loop.now()))
        self.state = STATE_RUNNING
        self.channel.send(m.Spawned(len(self._users)))
        self.environment.events.spawning_complete.fire(user_count=len(self._users))

    def new_user(self, name: str) -> Any:
        """A user of class ``name``, or None when its ``__init__`` raised (a user error, like
        an exception in a task: counted, and the other users still start)."""
        try:
            return self._classes[name](self.environment)
        except Exception as exc:
            self.errors.count(exc, f"{name}.__init__")
            return None

    def _forget(self, user: Any) -> None:
        if self._users.pop(user.greenlet, None) is not None:
            self._retiring[user.greenlet] = user
        self.segment.users = len(self._users)

    def _retire(self, user: Any) -> None:
        """Stop one user as a stop would, without waiting for it here."""
        self._forget(user)
        if not user.stop(force=False):
            gevent.spawn(self._hard_stop, [user], self.spec.stop_timeout)

    def _stop_and_report(self) -> None:
        if self._spawner is not None:
            self._spawner.kill(block=True)
        if self.open_model is not None:
            self.open_model.stop()
        self.state = STATE_STOPPING
        users = list(self.users)
        for user in users:
            user.stop(force=False)
        self._hard_stop(users, self.spec.stop_timeout)
        self.errors.flush()
        self._report()
        self.state = STATE_STOPPED
        self.environment.events.test_stop.fire(environment=self.environment)
        self.channel.send(m.Stopped())

    def _hard_stop(self, users: list[Any], timeout: float) -> None:
        """Give users ``timeout`` to finish their task, then stop them between requests."""
        greenlets = [u.greenlet for u in users if u.greenlet is not None]
        gevent.joinall(greenlets, timeout=timeout)
        for user in users:
            # A user in a request stops as soon as its response is in; one that is not, and
            # resumes before its kill lands, stops before sending anything (see HttpSession).
            user._stop_after_request = True
        for user in users:
            if user.greenlet is not None and not user.greenlet.dead and not user._in_request:
                user.greenlet.kill(block=False)
        gevent.joinall(greenlets, timeout=HARD_STOP_GRACE_S)
        # All at once: one by one, each blocked user (a trickling body) cost up to a second.
        gevent.killall([g for g in greenlets if not g.dead], block=True, timeout=KILL_WAIT_S)

    def _kill_all(self) -> None:
        if self._spawner is not None:
            self._spawner.kill(block=False)
        if self.open_model is not None:
            self.open_model.stop()
        gevent.killall([*self._users, *self._retiring], block=True, timeout=2.0)

    # -- what user code reaches -----------------------------------------------------------------
    def quit(self) -> None:
        """Ask the parent to stop the whole run (``runner.quit()`` from user code)."""
        self.channel.send(m.StopRequested("runner.quit() called in a worker"))

    def reset_stats(self) -> None:
        """Zero this worker's counters (the parent asks all workers at once)."""
        self.segment.reset_counts()
        self.errors.clear()
        self._t_start = gevent.get_hub().loop.now()
        self.environment.events.reset_stats.fire()

    def _report(self) -> None:
        """Fire report_to_master; what listeners add to ``data`` reaches the parent."""
        data: dict[str, Any] = {}
        self.environment.events.report_to_master.fire(client_id=self.client_id, data=data)
        if data:
            self.channel.send(m.Report(data))

    def _report_forever(self) -> None:
        while True:
            gevent.sleep(REPORT_INTERVAL_S)
            self.errors.flush()
            self._report()

    def _report_usage(self, cpu: float, rss: int) -> None:
        self.channel.send(m.Usage(cpu, rss))

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        """Send a custom message to the parent (``client_id`` is ignored, as in Locust)."""
        self.channel.send(m.Custom(msg_type, data))

    def stop(self) -> None:
        """Locust's ``runner.stop()`` in a worker: ask the parent to end the run."""
        self.quit()

    def _claim_iteration(self) -> bool:
        """Take one task iteration from this worker's share of ``-i``."""
        if self._iterations_left is None:
            return True
        if self._iterations_left <= 0:
            return False
        self._iterations_left -= 1
        self.segment.count_iteration()  # read by the parent if this worker dies
        if self._iterations_left == 0:
            gevent.spawn(self._report_iterations_done)
        return True

    def _report_iterations_done(self) -> None:
        # Let the users finish the tasks they claimed, then tell the parent.
        while any(u._state == "running" for u in self.users):
            gevent.sleep(0.05)
        self.channel.send(m.IterationsDone())
