"""Users in one process, recorded into one segment: what a worker and a LocalRunner share.

``UserHost`` runs User greenlets toward a target (users per class, a spawn rate), retires and
stops them with the stop timeout, and records every request into its segment with the same
``Recorder`` a worker uses; ``stats`` is Locust's ``RequestStats`` view of that segment. A
worker (``worker.py``) adds its pipe to the parent; ``LocalRunner`` (``local.py``) is the
whole run in the caller's process, for Locust's library API.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import gevent

from mpswarm.runner.base import STATE_RUNNING, STATE_SPAWNING, Runner
from mpswarm.runner.dispatch import spawn_order
from mpswarm.stats.aggregate import Aggregator
from mpswarm.stats.announcements import Announcement
from mpswarm.stats.locust_view import RequestStats
from mpswarm.stats.recorder import Recorder
from mpswarm.stats.segment import Segment
from mpswarm.stats.snapshot import Snapshot

#: Once the stop timeout has passed, users still in a request get this long to finish it
#: before they are killed (and the request recorded as interrupted).
HARD_STOP_GRACE_S = 4.0
#: Then the users still running are killed together, and get this long to unwind.
KILL_WAIT_S = 0.5


class _Ungrouped:
    """A group without membership: ``User.start`` adds a user only to a group with ``add``,
    and the host tracks its users itself (a Group's set entry and link cost every user 110
    bytes); the spawner is spawned from it."""

    spawn = staticmethod(gevent.spawn)


_UNGROUPED = _Ungrouped()


class UserHost(Runner):
    """Runs users here and records their requests into ``segment``.

    Args:
        environment: the Environment (its ``runner`` becomes this object).
        segment: where this process's requests are counted.
    """

    def __init__(self, environment: Any, segment: Segment) -> None:
        super().__init__(environment)
        self.segment = segment
        # This process's own view of its numbers, for runner.stats here.
        self._local = Aggregator()
        self._local.add_segment(0, segment)
        self.recorder = Recorder(segment, self._announce)
        self.stats = RequestStats(self._local_snapshot, reset=self.reset_stats)
        # Recording comes before any listener the locustfile added.
        environment.events.request._handlers.insert(0, self.recorder.on_request)
        self._classes = {cls.__name__: cls for cls in environment.user_classes}
        # Users being retired (stopped while the run goes on), until their greenlet ends.
        self._retiring: dict[Any, Any] = {}
        # Running users by greenlet (a dict: a user that ends is dropped in O(1), and one
        # bound method, linked raw, serves them all: a closure per user cost 270 bytes).
        self._users: dict[Any, Any] = {}
        self._on_user_exit = self._user_exited
        self._spawner: gevent.Greenlet | None = None
        self._started = False
        self._t_start = 0.0
        self.open_model: Any = None
        #: Where user greenlets and the spawner are spawned.
        self._user_group: Any = _UNGROUPED

    # -- recording -------------------------------------------------------------------------------
    def _announce(self, news: Announcement) -> None:
        """The recorder's news of a new row: this process's view learns it, then it goes on."""
        news.apply_to(self._local, 0)
        self._forward(news)

    def _forward(self, news: Announcement) -> None:
        """Pass the recorder's news on (a worker tells its parent)."""

    def _local_snapshot(self) -> Snapshot:
        elapsed = gevent.get_hub().loop.now() - self._t_start if self._started else 0.0
        return self._local.snapshot(started_at=0.0, duration_s=elapsed, users=self.user_count)

    def reset_stats(self) -> None:
        """Zero this process's counters; the rows keep their names."""
        self.segment.reset_counts()
        self._t_start = gevent.get_hub().loop.now()
        self.environment.events.reset_stats.fire()

    # -- users -----------------------------------------------------------------------------------
    @property
    def user_count(self) -> int:
        """Users alive here."""
        return len(self._users)

    @property
    def users(self) -> list[Any]:
        """The users alive here."""
        return list(self._users.values())

    @property
    def user_classes_count(self) -> dict[str, int]:
        """Users alive here, per class name (Locust's ``runner.user_classes_count``)."""
        counts = dict.fromkeys(self._classes, 0)
        for user in self._users.values():
            counts[type(user).__name__] = counts.get(type(user).__name__, 0) + 1
        return counts

    def _add_user(self, user: Any) -> None:
        greenlet = user.start(self._user_group)
        self._users[greenlet] = user
        greenlet.rawlink(self._on_user_exit)
        self.segment.users = len(self._users)

    def _user_exited(self, greenlet: Any) -> None:
        user = self._users.pop(greenlet, None)
        self._retiring.pop(greenlet, None)
        self.segment.users = len(self._users)
        if self.open_model is not None:
            self.open_model.forget(user, greenlet)

    def _set_counts(self, counts: dict[str, int], rate: float) -> None:
        """Head for ``counts`` users per class: retire the extra ones now, start the missing
        ones at ``rate`` per second."""
        if self._spawner is not None:
            self._spawner.kill(block=True)
        self._begin_test()
        self.state = STATE_SPAWNING
        self.target_user_count = sum(counts.values())
        alive: dict[str, list[Any]] = {name: [] for name in self._classes}
        for user in self.users:
            alive.setdefault(type(user).__name__, []).append(user)
        deficits: dict[str, int] = {}
        for name, want in counts.items():
            have = alive.get(name, [])
            if len(have) > want:
                for user in have[want:]:
                    self._retire(user)
            deficits[name] = max(0, want - len(have))
        total = sum(deficits.values())
        self._spawner = self._user_group.spawn(self._spawn, spawn_order(deficits), total, rate)

    def _begin_test(self) -> None:
        if not self._started:
            self._started = True
            self._t_start = gevent.get_hub().loop.now()
            self.environment.events.test_start.fire(environment=self.environment)

    def _spawn(self, order: Iterator[str], total: int, rate: float) -> None:
        # Users start in one batch per second, as under Locust's master: at second k, enough
        # to reach rate * (k + 1). Paced against the start time, so delays do not add up.
        started = gevent.get_hub().loop.now()
        done = 0
        for second in itertools.count():
            due = min(total, max(1, math.floor(rate * (second + 1) + 1e-9)))
            for name in itertools.islice(order, max(0, due - done)):
                user = self.new_user(name)
                if user is not None:
                    self._add_user(user)
            done = max(done, due)
            if done >= total:
                break
            gevent.sleep(max(0.0, started + second + 1 - gevent.get_hub().loop.now()))
        self.state = STATE_RUNNING
        self._spawning_complete()

    def _spawning_complete(self) -> None:
        """Every user of the target runs."""
        self.environment.events.spawning_complete.fire(user_count=len(self._users))

    def new_user(self, name: str) -> Any:
        """A user of class ``name``, or None when its ``__init__`` raised (a user error, like
        an exception in a task: counted, and the other users still start)."""
        try:
            return self._classes[name](self.environment)
        except Exception as exc:
            self._user_init_failed(exc, f"{name}.__init__")
            return None

    def _user_init_failed(self, exc: Exception, where: str) -> None:
        raise NotImplementedError

    def _forget(self, user: Any) -> None:
        if self._users.pop(user.greenlet, None) is not None:
            self._retiring[user.greenlet] = user
        self.segment.users = len(self._users)

    def _retire(self, user: Any) -> None:
        """Stop one user as a stop would, without waiting for it here."""
        self._forget(user)
        if not user.stop(force=False):
            gevent.spawn(self._hard_stop, [user], self.environment.stop_timeout)

    def _stop_users(self) -> None:
        """Stop spawning, then stop every user: the stop timeout for their task, then a kill
        between requests. Returns when they are all gone."""
        if self._spawner is not None:
            self._spawner.kill(block=True)
        if self.open_model is not None:
            self.open_model.stop()
        users = [*self.users, *self._retiring.values()]
        for user in users:
            user.stop(force=False)
        self._hard_stop(users, self.environment.stop_timeout)

    def _hard_stop(self, users: list[Any], timeout: float) -> None:
        """Give users ``timeout`` to finish their task, then stop them between requests."""
        greenlets = [u.greenlet for u in users if u.greenlet is not None]
        gevent.joinall(greenlets, timeout=timeout)
        # A user in on_stop finishes it within the grace below (Locust runs it whole).
        stopping = [user for user in users if not user._mpswarm.in_on_stop]
        for user in stopping:
            # A user in a request stops as soon as its response is in; one that is not, and
            # resumes before its kill lands, stops before sending anything (see HttpSession).
            user._mpswarm.stop_after_request = True
        for user in stopping:
            greenlet = user.greenlet
            if greenlet is not None and not greenlet.dead and not user._mpswarm.in_request:
                greenlet.kill(block=False)
        gevent.joinall(greenlets, timeout=HARD_STOP_GRACE_S)
        # All at once: one by one, each blocked user (a trickling body) cost up to a second.
        gevent.killall([g for g in greenlets if not g.dead], block=True, timeout=KILL_WAIT_S)

    def _kill_all(self) -> None:
        if self._spawner is not None:
            self._spawner.kill(block=False)
        if self.open_model is not None:
            self.open_model.stop()
        gevent.killall([*self._users, *self._retiring], block=True, timeout=2.0)
