"""``LocalRunner``: a whole run in the caller's process (Locust's library API).

    env = Environment(user_classes=[MyUser], host="http://127.0.0.1:8088")
    runner = env.create_local_runner()
    runner.start(10, spawn_rate=5)
    gevent.spawn_later(30, runner.quit)
    runner.greenlet.join()
    print(runner.stats.total.num_requests, runner.stats.total.get_response_time_percentile(0.95))

It is a ``UserHost``, as a worker is: the same spawning, stop timeout and ``Recorder``
writing into a segment, read by the same ``Aggregator`` into the same ``Snapshot``; only the
pipe to a parent is missing. Users and the spawner run in ``runner.greenlet``, so joining it
waits for the run. Exceptions of user code are counted and logged once per kind, as in a
worker (``runner.exceptions``), or raised with ``catch_exceptions=False``.
"""

from __future__ import annotations

import logging
import socket
import uuid
from typing import Any

import gevent

from mpswarm.config import RunConfig
from mpswarm.runner import messages as m
from mpswarm.runner._user_errors import UserErrors
from mpswarm.runner.base import (
    STATE_INIT,
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
    WorkerNode,
)
from mpswarm.runner.dispatch import class_counts
from mpswarm.runner.host import UserHost
from mpswarm.stats.segment import Segment

logger = logging.getLogger(__name__)

#: Seconds between two polls of a LoadTestShape's ``tick()``.
SHAPE_TICK_S = 1.0


class LocalRunner(UserHost):
    """Runs an Environment's users in this process; see the module docstring.

    Args:
        environment: the Environment (its ``runner`` becomes this object).
    """

    def __init__(self, environment: Any) -> None:
        defaults = RunConfig()
        segment = Segment.create(defaults.max_endpoints, defaults.max_errors, "mpswarm-local")
        super().__init__(environment, segment)
        # Users and the spawner belong to runner.greenlet: joining it waits for the run.
        self._user_group = self.greenlet
        self.worker_index = 0
        self.worker_count = 1
        self.client_id = f"{socket.gethostname()}_{uuid.uuid4().hex}"
        self.errors = UserErrors(self._on_record)
        environment.exception_sink = self._on_user_exception
        self.shape_greenlet: gevent.Greenlet | None = None
        self.shape_last_tick: tuple[Any, ...] | None = None
        self._local_worker_node = WorkerNode(id="local", index=0)

    # -- Locust's runner API -----------------------------------------------------------------------
    @property
    def spawning_greenlet(self) -> gevent.Greenlet | None:
        """The greenlet starting users, while it runs."""
        return self._spawner

    @property
    def exceptions(self) -> dict[int, dict[str, Any]]:
        """User-code exceptions so far, Locust's shape: ``{key: {count, msg, traceback,
        nodes}}``."""
        snapshot = self._local_snapshot()
        return {
            hash(e.traceback): {
                "count": e.count,
                "msg": e.message,
                "traceback": e.traceback,
                "nodes": {"local"},
            }
            for e in snapshot.exceptions
        }

    def start(
        self,
        user_count: int,
        spawn_rate: float,
        wait: bool = False,
        user_classes: list[type] | None = None,
    ) -> None:
        """Head for ``user_count`` users, starting ``spawn_rate`` per second.

        Returns at once (the users start in ``runner.greenlet``), or with ``wait`` once they
        all run. A start after a stop (or the first) begins a new test: statistics cleared,
        ``test_start`` fired.

        Raises:
            ValueError: a negative count, a rate that is not positive, or ``wait`` with more
                users to add than one second's worth.
        """
        if user_count < 0:
            raise ValueError(f"user_count must not be negative, not {user_count}")
        if spawn_rate <= 0:
            raise ValueError(f"spawn_rate must be positive, not {spawn_rate}")
        if spawn_rate > 100:
            logger.warning(
                "spawn rate %g is very high (over 100 users per second): users start in "
                "bursts, and the machine may not keep up while they do",
                spawn_rate,
            )
        if wait and user_count - self.user_count > spawn_rate:
            raise ValueError(
                "wait is True but the amount of users to add is greater than the spawn rate"
            )
        if self.state not in (STATE_RUNNING, STATE_SPAWNING):
            self._new_test()
        if self.environment.host:
            for cls in self.environment.user_classes:
                cls.host = self.environment.host
        classes = user_classes or self.environment.user_classes
        unknown = [cls for cls in classes if cls.__name__ not in self._classes]
        self._classes.update({cls.__name__: cls for cls in unknown})
        counts = class_counts(classes, user_count)
        for name in self._classes:  # classes left out of this target stop
            counts.setdefault(name, 0)
        self._set_counts(counts, spawn_rate)
        if wait and self._spawner is not None:
            self._spawner.join()

    def _new_test(self) -> None:
        self.environment._filter_tasks_by_tags()
        self.segment.reset_counts()
        self._local.reset_exceptions()
        self.errors.clear()
        self._started = False

    def start_shape(self) -> None:
        """Run ``environment.shape_class``: its ``tick()`` sets the target about once a
        second, until it returns None (then the runner stops)."""
        shape = self.environment.shape_class
        if shape is None:
            raise ValueError("start_shape() needs Environment(shape_class=...)")
        if self.shape_greenlet is not None and not self.shape_greenlet.dead:
            logger.info("a shape test is running already")
            return
        self.state = STATE_INIT
        shape.runner = self
        shape.reset_time()
        self.shape_greenlet = self.greenlet.spawn(self._shape_worker, shape)

    def _shape_worker(self, shape: Any) -> None:
        from mpswarm.runner.run import shape_classes

        while self.state in (STATE_INIT, STATE_SPAWNING, STATE_RUNNING):
            tick = shape.tick()
            if tick is None:
                self.shape_greenlet = None
                self.shape_last_tick = None
                self.stop()
                return
            if isinstance(tick, dict):
                raise ValueError(
                    "an arrival-rate tick (a dict) needs the mpswarm command (--arrival-rate "
                    "runs): LocalRunner runs closed-model shapes, (users, spawn_rate[, classes])"
                )
            if tuple(tick) != self.shape_last_tick:
                self.shape_last_tick = tuple(tick)
                users, rate, *rest = tick
                classes = shape_classes(rest[0] if rest else None, self._classes)
                self.start(int(users), float(rate), user_classes=classes)
            gevent.sleep(SHAPE_TICK_S)

    def stop(self) -> None:
        """Stop every user (the stop timeout for their task, then a kill between requests),
        then fire ``test_stop``. Returns once they are gone."""
        if self.state == STATE_STOPPED:
            return
        self.environment.events.test_stopping.fire(environment=self.environment)
        self.state = STATE_STOPPING
        shape = self.shape_greenlet
        if shape is not None and shape is not gevent.getcurrent():
            shape.kill(block=True)
            self.shape_greenlet = None
            self.shape_last_tick = None
        self._stop_users()
        self.errors.flush()
        self.state = STATE_STOPPED
        self.environment.events.test_stop.fire(environment=self.environment)

    def quit(self) -> None:
        """Stop, fire ``quitting``, and end every greenlet of this runner."""
        self.stop()
        self.environment.events.quitting.fire(environment=self.environment)
        self.greenlet.kill(block=True)

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        """Deliver a custom message to this runner's own handler (no other process)."""
        gevent.spawn(self._deliver, msg_type, data, "local")

    # -- user code's errors -----------------------------------------------------------------------
    def _on_user_exception(self, exc: BaseException) -> None:
        self.errors.on_exception(exc)
        self.errors.flush()

    def _user_init_failed(self, exc: Exception, where: str) -> None:
        if not self.environment.catch_exceptions:
            raise exc
        self.errors.count(exc, where)
        self.errors.flush()

    def _on_record(self, record: Any) -> None:
        """What a worker would send its parent, handled here."""
        if isinstance(record, m.Exceptions):
            self._local.on_exceptions(record.counts, "local")
        elif isinstance(record, m.StopRequested):  # StopTest in user code: the test ends
            logger.info("%s: stopping", record.message)
            gevent.spawn(self.quit)
