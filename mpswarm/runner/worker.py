"""A worker process: runs users as greenlets and records into its shared-memory segment.

It obeys the parent's messages on its pipe (targets, stop, quit) and reports state changes
back. It never outlives the parent: the kernel kills it when the fork server (its parent)
dies, and the fork server dies with the parent; a closed pipe also makes it exit.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import socket
import traceback
from typing import Any, NoReturn

import gevent
from gevent.event import Event

from mpswarm.env import Environment
from mpswarm.protocols import _grpc_gevent
from mpswarm.runner import messages as m
from mpswarm.runner._channel import Channel
from mpswarm.runner._proc import die_with_parent
from mpswarm.runner._user_errors import UserErrors
from mpswarm.runner.arrivals import OpenModel
from mpswarm.runner.base import STATE_RUNNING, STATE_STOPPED, STATE_STOPPING, WorkerRunner
from mpswarm.runner.host import UserHost
from mpswarm.runner.usage import UsageMonitor, measure_loop_lag
from mpswarm.stats import in_flight
from mpswarm.stats.announcements import Announcement
from mpswarm.stats.locust_view import RequestStats
from mpswarm.stats.segment import Segment

logger = logging.getLogger(__name__)

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
    replay: dict[str, Any] | None = None  # mpswarm replay: the ReplaySpec, as a dict
    #: -i: every iteration comes from the worker's share, which the parent sends (a
    #: replacement's only once its predecessor has stopped); none runs before it is known.
    counted: bool = False


def worker_main(spec: WorkerSpec, slot: int, fds: list[int], server_pid: int) -> NoReturn:
    """Entry point of a freshly forked worker; exits the process when done."""
    code = 1
    try:
        die_with_parent(server_pid)
        gevent.reinit()
        _grpc_gevent.rebind()  # a locustfile's grpc in gevent mode, on this worker's hub
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


#: Why a run ends when a task forks its worker (see ``WorkerRuntime._forked_copy``).
FORK_REFUSED = (
    "a task forked its worker process (os.fork(), or multiprocessing's 'fork' start method): "
    "the copy would run the worker's users too, so it exits and the run stops; use "
    "subprocess, or multiprocessing.get_context('spawn')"
)


class WorkerRuntime(UserHost, WorkerRunner):
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
        super().__init__(environment, segment)
        in_flight.count_in(segment)  # what a death leaves unrecorded, the parent reads there
        self.spec = spec
        self.worker_index = slot
        self.worker_count = spec.processes
        self.client_id = f"{socket.gethostname()}_{slot}"
        self.channel = channel
        self.errors = UserErrors(channel.send)
        self.environment.exception_sink = self.errors.on_exception
        # A greenlet that dies of an exception is one line in the log, not gevent's traceback.
        hub = gevent.get_hub()
        hub.print_exception = self.errors.greenlet_failed
        # sys.exit() in a user's greenlet reaches the hub as a system error, which gevent
        # throws into the main greenlet: the worker died of it and the run exited 1. Here it
        # asks the run to end with its code instead (gevent's documented override point).
        default = hub.handle_system_error

        def handle_system_error(kind: Any, value: Any, tb: Any = None) -> None:
            if isinstance(value, SystemExit):
                self.errors.exited(value)
            else:
                default(kind, value, tb)

        hub.handle_system_error = handle_system_error
        self._iterations_left: int | None = None
        self._share_known = Event()  # -i: set once this worker's share has come
        if not spec.counted:
            self._share_known.set()
        self.environment.claim_iteration = self._claim_iteration  # counts every task run
        # This worker's share; a reset from user code (Locust's warm-up pattern) is the whole
        # run's, every worker from one baseline: the parent does it, as the web UI's reset.
        self.stats = RequestStats(self._local_snapshot, reset=self._request_reset)

    def _forward(self, news: Announcement) -> None:
        """The recorder's news is a record of the parent's protocol: it goes as it is."""
        self.channel.send(news)

    # -- the loop ------------------------------------------------------------------------------
    def serve(self) -> None:
        """Handle the parent's messages until told to quit or the pipe closes."""
        self.environment.events.init.fire(environment=self.environment)
        # From here a fork is user code's (the fork server made this process).
        os.register_at_fork(after_in_child=self._forked_copy)
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
                try:
                    route(None, message)
                except SystemExit as exc:  # in a listener the main greenlet ran (test_start)
                    self.errors.exited(exc)
        finally:
            self.greenlet.kill(block=False)

    def _set_iterations(self, count: int) -> None:
        self._iterations_left = count
        self._share_known.set()
        if count == 0:  # a replacement with nothing left to do
            gevent.spawn(self._report_iterations_done)

    # -- users ----------------------------------------------------------------------------------
    def _set_target(self, counts: dict[str, int], rate: float, host: str | None = None) -> None:
        self._use_host(host)
        self._set_counts(counts, rate)

    def _use_host(self, host: str | None) -> None:
        if host:  # a host chosen in the web UI: users started from now on use it
            for cls in self._classes.values():
                cls.host = host

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

    def _spawning_complete(self) -> None:
        self.channel.send(m.Spawned(len(self._users)))
        super()._spawning_complete()

    def _user_init_failed(self, exc: Exception, where: str) -> None:
        self.errors.count(exc, where)

    def _stop_and_report(self) -> None:
        self.state = STATE_STOPPING
        self._stop_users()
        self.errors.flush()
        self._report()
        self.state = STATE_STOPPED
        self.environment.events.test_stop.fire(environment=self.environment)
        self.channel.send(m.Stopped())

    def _forked_copy(self) -> None:
        """In a copy of this worker that user code forked (``os.fork()``, multiprocessing's
        'fork' start method): it would run this worker's users too, into the same shared
        counters. It ends when it first yields to its event loop, before any user runs again;
        a fork that execs at once (``subprocess``, which gevent runs through ``os.fork``)
        never gets there. The segment's mark tells the parent, which stops the run."""

        def leave() -> None:
            self.segment.mark_forked()
            os.write(2, f"mpswarm: error: {FORK_REFUSED}\n".encode())
            os._exit(1)

        gevent.get_hub().loop.run_callback(leave)

    # -- what user code reaches -----------------------------------------------------------------
    def quit(self) -> None:
        """Ask the parent to stop the whole run (``runner.quit()`` from user code)."""
        self.channel.send(m.StopRequested("runner.quit() called in a worker"))

    def _request_reset(self) -> None:
        self.channel.send(m.ResetRequested())

    def reset_stats(self) -> None:
        """Zero this worker's counters (the parent asks all workers at once)."""
        self.errors.clear()
        super().reset_stats()

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
        if self._iterations_left is None and not self._share_known.is_set():
            # Users a target started before the share came (a replacement gets its
            # predecessor's rest once that one has stopped): wait for it, run nothing extra.
            self._share_known.wait()
        if self._iterations_left is None:
            if self.open_model is None:  # the open model counts its own, on schedule
                self.segment.count_iteration()
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
