"""Open-model load (``--arrival-rate``): iterations start on a schedule, not after responses.

In a closed model N users each wait for their response before the next request, so a slow
server receives less load and its slow period is under-sampled ("coordinated omission"). Here
the schedule decides: iteration k of a worker is due at a fixed time (evenly spaced, or Poisson
arrivals), whatever the responses take. An iteration is one task run of a user taken from a
pool: a user that is free when its iteration is due, or a new one while the pool is under its
cap (``--max-users``); when every user is busy and the pool is full, the iteration is
*dropped* and counted. Each worker runs its share of the rate; evenly spaced schedules of the
workers are interleaved, so the whole generator is evenly spaced.

Response times are recorded twice: uncorrected, from the actual send, and corrected, plus the
iteration's start delay (from its scheduled start to the moment its user began it: generator
lag, or a new user's ``on_start``). Percentiles report the corrected times by default.
"""

from __future__ import annotations

import math
import random
import time
from typing import TYPE_CHECKING, Any

import gevent
from gevent import get_hub, getcurrent

from mpswarm.runner.dispatch import split_evenly

if TYPE_CHECKING:
    from mpswarm.runner.worker import WorkerRuntime

ARRIVALS = ("constant", "poisson")
#: Longest sleep of the scheduler: a rate change or stop is seen at least this often.
_MAX_SLEEP_S = 0.25
#: Iterations due within this much are handed out now: the loop's timers fire up to ~1 ms
#: late (epoll's millisecond timeouts), which would otherwise add ~1 ms to every corrected
#: time. A user that begins early counts a start delay of 0; the rate is unchanged.
_EARLY_S = 0.002
#: A replacement worker drops what fell due more than this long before it started.
_MISSED_S = 1.0


def worker_shares(
    rate: float,
    max_users: int,
    kind: str,
    prealloc: int,
    classes: list[type],
    workers: int,
    host: str | None = None,
    start_at: float | None = None,
) -> list[dict[str, Any]]:
    """What each worker runs: ``rate / workers``, its share of the cap and of the pre-allocated
    users; evenly spaced schedules are offset by ``1/rate`` from one worker to the next. A
    replay's workers take every ``workers``-th request from their ``index``, timed from
    ``start_at`` (wall-clock seconds: the same for a replacement)."""
    weights = {cls.__name__: max(0, int(getattr(cls, "weight", 1))) for cls in classes}
    caps = split_evenly(max_users, workers)
    pre = split_evenly(min(prealloc, max_users), workers)
    return [
        {
            "rate": rate / workers,
            "kind": kind,
            "phase": index / rate if rate > 0 else 0.0,
            "max_users": caps[index],
            "prealloc": pre[index],
            "weights": weights,
            "host": host,
            "index": index,
            "workers": workers,
            "start_at": start_at,
            "resume_at": None,
        }
        for index in range(workers)
    ]


class Schedule:
    """Scheduled start times of iterations at ``rate`` per second.

    ``constant``: evenly spaced, ``1/rate`` apart, the first at ``start + phase``.
    ``poisson``: exponentially distributed gaps of mean ``1/rate`` (a Poisson process).
    Times are absolute, so a late scheduler catches up instead of drifting.
    """

    def __init__(
        self,
        kind: str,
        rate: float,
        start: float,
        phase: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if kind not in ARRIVALS:
            raise ValueError(f"unknown arrival schedule {kind!r}")
        self.kind = kind
        self.rate = rate
        self._rng = rng or random.Random()
        self.next_at = start + (phase if kind == "constant" else self._gap())

    def _gap(self) -> float:
        if self.rate <= 0:
            return math.inf
        if self.kind == "poisson":
            return self._rng.expovariate(self.rate)
        return 1.0 / self.rate

    def pop(self) -> float:
        """The next scheduled time; the schedule moves past it."""
        due = self.next_at
        self.next_at = due + self._gap()
        return due

    def skip_before(self, moment: float) -> int:
        """Move past what falls due before ``moment``; how many starts that skipped."""
        if self.next_at >= moment or self.rate <= 0:
            return 0
        if self.kind == "constant":
            skipped = math.ceil((moment - self.next_at) * self.rate)
            self.next_at += skipped / self.rate
        else:  # memoryless: a fresh gap from the moment; the starts expected meanwhile
            skipped = round((moment - self.next_at) * self.rate)
            self.next_at = moment + self._gap()
        return skipped

    def set_rate(self, rate: float, now: float) -> None:
        """Change the rate from ``now`` on (the next start comes no later than one new gap)."""
        self.rate = rate
        if rate <= 0:
            self.next_at = math.inf
        else:
            self.next_at = min(self.next_at, now + self._gap())


class _Picker:
    """Chooses the user class of each iteration by weight (smooth weighted round robin)."""

    def __init__(self, weights: dict[str, int]) -> None:
        self.weights = {name: w for name, w in weights.items() if w > 0}
        self.total = sum(self.weights.values())
        self.current = dict.fromkeys(self.weights, 0)

    def pick(self) -> str:
        best = ""
        for name, weight in self.weights.items():
            self.current[name] += weight
            if not best or self.current[name] > self.current[best]:
                best = name
        self.current[best] -= self.total
        return best


class OpenModel:
    """A worker's share of an open-model run: the schedule, the user pool, the counters."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        self.segment = runtime.segment
        #: The greenlet running a user -> start delay (us) of its current iteration; the
        #: recorder looks it up with getcurrent(). A pooled user keeps the greenlet it runs on
        #: (it waits for its iterations in place), which is not ``user.greenlet``.
        self.delays: dict[Any, int] = {}
        self.idle: dict[str, list[Any]] = {}
        self.cap = 0
        self.schedule: Schedule | None = None
        self.picker: _Picker | None = None
        self._loop: gevent.Greenlet | None = None

    # -- the parent's settings ---------------------------------------------------------------
    def configure(self, settings: dict[str, Any]) -> None:
        """Apply ``rate``, ``kind``, ``phase``, ``max_users``, ``prealloc``, ``weights``."""
        now = time.monotonic()
        rate = float(settings["rate"])
        if self.schedule is None and settings["kind"] == "replay":
            self.schedule = self._replay_schedule(settings, now)
        elif self.schedule is None:
            start = self._run_start(settings, now)
            self.schedule = Schedule(settings["kind"], rate, start, float(settings["phase"]))
            self.schedule.skip_before(self._resume_at(settings, now))  # its predecessor's
            self.segment.count_dropped(self.schedule.skip_before(now - _MISSED_S))
        elif rate != self.schedule.rate:
            self.schedule.set_rate(rate, now)
        self.cap = int(settings["max_users"])
        self.picker = _Picker(settings["weights"])
        for name in self.picker.weights:
            self.idle.setdefault(name, [])
        missing = min(int(settings["prealloc"]), self.cap) - self.runtime.user_count
        names = [self.picker.pick() for _ in range(max(0, missing))]
        for name in names:
            self._new_user(name, None)
        self._retire_surplus()
        if self._loop is None or self._loop.dead:
            self._loop = gevent.spawn(self._run)

    @staticmethod
    def _run_start(settings: dict[str, Any], now: float) -> float:
        """The run's start on this worker's monotonic clock: the same for every worker (so
        that their schedules interleave) and for a replacement. Read from the wall clock:
        a --ray cluster's hosts are taken to agree on it (NTP keeps them within a few ms; a
        host whose clock is ahead would begin with a burst of what it takes as due)."""
        if settings.get("start_at") is None:
            return now
        return now - (time.time() - float(settings["start_at"]))

    @staticmethod
    def _resume_at(settings: dict[str, Any], now: float) -> float:
        """A replacement's first moment on this worker's monotonic clock: what fell due
        before it was its predecessor's (begun, or counted as dropped, there). What fell due
        after, more than _MISSED_S before this worker came, is counted as dropped here: it is
        never sent late; the rest is sent at once."""
        if settings.get("resume_at") is None:
            return -math.inf
        return now - (time.time() - float(settings["resume_at"]))

    def _replay_schedule(self, settings: dict[str, Any], now: float) -> Any:
        """This worker's share of the log, timed from the run's start (a replacement takes
        over where its predecessor stopped: ``_resume_at``)."""
        from mpswarm.replay import ReplaySchedule, ReplaySpec

        spec = ReplaySpec.from_dict(self.runtime.spec.replay or {})
        start = self._run_start(settings, now)
        schedule = ReplaySchedule(spec, start, int(settings["index"]), int(settings["workers"]))
        resume_at = self._resume_at(settings, now)
        while schedule.next_at < resume_at:  # its predecessor's
            schedule.pop()
        while schedule.next_at < now - _MISSED_S:
            schedule.pop()
            self.segment.count_dropped()
        return schedule

    def _retire_surplus(self) -> None:
        """A lower cap: idle users beyond it stop (busy ones finish their iteration first)."""
        surplus = self.runtime.user_count - self.cap
        for users in self.idle.values():
            while surplus > 0 and users:
                self.runtime._retire(users.pop())
                surplus -= 1

    def stop(self) -> None:
        """No more iterations (the users are stopped by the runtime)."""
        if self._loop is not None:
            self._loop.kill(block=True)
            self._loop = None

    # -- the scheduler -----------------------------------------------------------------------
    def _run(self) -> None:
        schedule = self.schedule
        assert schedule is not None
        while True:
            now = time.monotonic()
            while schedule.next_at <= now + _EARLY_S:
                if self.runtime._iterations_left == 0:
                    return  # -i is used up: the parent is stopping the run
                self._begin(schedule.pop())
            # Capped, so that a new rate (configure) is followed within a quarter second.
            gevent.sleep(min(schedule.next_at - now - _EARLY_S, _MAX_SLEEP_S))

    def _begin(self, due: float) -> None:
        assert self.picker is not None
        name = self.picker.pick()
        idle = self.idle.get(name)
        request = getattr(self.schedule, "current", None)  # a replay's: what to send
        if idle:
            user = idle.pop()
            control = user._mpswarm
            control.iteration_due, control.replay = due, request
            get_hub().loop.run_callback(user._wake_up, self)
        elif self.runtime.user_count < self.cap:
            self._new_user(name, due, request)
        else:
            self.segment.count_dropped()
            return
        self.segment.count_iteration()

    def _new_user(self, name: str, due: float | None, request: Any = None) -> None:
        user = self.runtime.new_user(name)
        if user is None:  # its __init__ raised: counted as a user error
            return
        control = user._mpswarm
        control.pool, control.iteration_due, control.replay = self, due, request
        self.runtime._add_user(user)

    def forget(self, user: Any, greenlet: Any) -> None:
        """A pooled user ended (``user`` None: the runtime had already let it go)."""
        pooled = getattr(greenlet.user, "_mpswarm", None)
        self.delays.pop(pooled.runs_on if pooled is not None else None, None)
        idle = self.idle.get(type(user).__name__) if user is not None else None
        if idle and user in idle:
            idle.remove(user)

    # -- what a pooled user calls ------------------------------------------------------------
    def park(self, user: Any) -> None:
        """Back in the pool until an iteration is due (returns at once if one already is)."""
        self.idle[type(user).__name__].append(user)

    def started(self, user: Any, due: float) -> None:
        """``user`` begins the iteration scheduled at ``due``: note its start delay."""
        user._mpswarm.runs_on = runs_on = getcurrent()
        delay = self.delays[runs_on] = max(0, int((time.monotonic() - due) * 1e6))
        self.runtime.recorder.record_delay(delay)
