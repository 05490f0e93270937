"""``User`` and ``HttpUser``: the classes a locustfile subclasses."""

from __future__ import annotations

import logging
from typing import Any

from gevent import GreenletExit, get_hub, getcurrent
from gevent.pool import Group

from mpswarm._waits import wait_for
from mpswarm.exceptions import StopUser
from mpswarm.http._limits import MAX_BODY_SIZE, check_body_size
from mpswarm.http.session import HttpSession
from mpswarm.user._control import UserControl
from mpswarm.user._steps import SteppedGreenlet, Steps, blocking, drive
from mpswarm.user.task import (
    STATE_RUNNING,
    STATE_STOPPING,
    STATE_WAITING,
    DefaultTaskSet,
    collect_tasks,
)
from mpswarm.user.wait_time import constant

logger = logging.getLogger(__name__)
_YIELD_S = 1e-6  # a zero wait: one pass through the loop's poll


class UserMeta(type):
    """Collects tasks and makes subclasses concrete unless they say ``abstract = True``."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        namespace["tasks"] = collect_tasks(bases, namespace)
        namespace.setdefault("abstract", False)
        return super().__new__(mcs, name, bases, namespace)


class User(metaclass=UserMeta):
    """One simulated user: runs its tasks, waiting ``wait_time`` after each.

    A task runs on a greenlet from start to end; between tasks a waiting user holds no
    greenlet, only a timer (``_steps``). ``user.greenlet`` has the Greenlet API all the same.

    Class attributes (set them in a subclass):
        host: base URL for relative requests.
        wait_time: a function of the user giving seconds to wait after a task (default 0).
        tasks: tasks as a list, a dict ``{task: weight}`` or a list of ``(task, weight)``.
        weight: relative share of users of this class.
        fixed_count: an exact number of users of this class (takes precedence over weight).
        abstract: True for base classes that must not be run themselves.
        keep_greenlet: True to keep one greenlet through the waits too (about 6 KB more per
            waiting user), for tasks that keep ``threading.local``/``gevent.local`` state or
            compare ``gevent.getcurrent()`` from one task to the next.

    Args:
        environment: the run's Environment.
    """

    host: str | None = None
    wait_time = constant(0)
    tasks: list[Any] = []
    weight: float = 1
    fixed_count: int = 0
    abstract = True
    keep_greenlet = False
    #: The schemes this class's host may have ("" among them: a bare HOST:PORT too), checked
    #: before any load (``_locustfile.check_hosts``); None: the host is its client's business
    #: (an MQTT broker's name), unchecked, as in Locust.
    _host_schemes: tuple[str, ...] | None = None

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self._state: str | None = None
        self._greenlet: SteppedGreenlet | None = None
        self._taskset_instance: DefaultTaskSet | None = None
        #: What the HTTP clients and the runner share with this user (``user/_control.py``).
        self._mpswarm = UserControl()
        # What the wait in progress waits on, and its greenlet, for stop() to cut it short.
        self._sleeping: Any = None
        self._sleeper: Any = None
        self._yield_timer: Any = None  # the zero-wait yield's timer, made on first use

    @classmethod
    def fullname(cls) -> str:
        """The class's dotted name, ``package.module.Outer.MyUser`` (``<locals>`` left out)."""
        parts = f"{cls.__module__}.{cls.__qualname__}".split(".")
        return ".".join(part for part in parts if part != "<locals>")

    def on_start(self) -> None:
        """Called when the user starts, before its first task."""

    def on_stop(self) -> None:
        """Called when the user stops."""

    def wait(self) -> None:
        """Wait ``wait_time`` now, from inside a task (Locust's ``User.wait``).

        A stop requested before or during the wait stops the user here, with ``StopUser``.
        """
        taskset = self._taskset_instance
        (taskset if taskset is not None else DefaultTaskSet(self)).wait()

    @property
    def greenlet(self) -> SteppedGreenlet | None:
        """This user's run, with gevent's Greenlet API (``dead``, ``join()``, ``kill()``...)."""
        return self._greenlet

    def run(self) -> None:
        """Run ``on_start``, then tasks until stopped, then ``on_stop`` (in this greenlet)."""
        drive(self._run_steps(), self)

    def _run_steps(self) -> Steps:
        """``run()`` as steps: the waits between tasks are yielded (see ``_steps``)."""
        self._state = STATE_RUNNING
        self._taskset_instance = DefaultTaskSet(self)
        try:
            self.on_start()
            if self._mpswarm.pool is not None:
                self._next_iteration()
            yield from self._taskset_instance._steps()
        except (GreenletExit, StopUser):
            self._mpswarm.begin_on_stop()  # on_stop runs whole, its requests too, as in Locust
            self.on_stop()

    def start(self, group: Group) -> SteppedGreenlet:
        """Start running; a member of ``group`` (anything with ``add``) until it ends."""
        self._greenlet = SteppedGreenlet(self)
        add = getattr(group, "add", None)
        if add is not None:
            add(self._greenlet)
        self._greenlet.start()
        return self._greenlet

    def _life(self) -> Steps:
        """The steps of this user's run (``user.greenlet`` runs them, then calls ``_ended``).

        A subclass's own ``run()`` runs as one step (it holds its greenlet while it waits).
        """
        return self._run_steps() if type(self).run is User.run else blocking(self.run)

    def _ended(self, error: Exception | None) -> None:
        """The run is over; ``error``: what on_start, on_stop or run() raised, if anything."""
        try:
            if error is not None:
                self._report_user_error(self, error)
        finally:
            close = getattr(getattr(self, "client", None), "close", None)
            if callable(close):
                close()  # the user's kept-alive connections go with it

    def stop(self, force: bool = False) -> bool:
        """Stop the user: killed at once when forced, else after its current task.

        A waiting user is woken and stops at once (``on_stop`` runs). It is not killed: a kill
        is delivered asynchronously, and a user resuming in between could be cut off in the
        middle of its next request.

        Returns:
            True if the user stopped (or will before running anything else), False if it
            finishes its current task first.
        """
        if self._greenlet is None or self._greenlet.dead:
            return True
        if force:  # gone when this returns (unless a user stops itself)
            self._greenlet.kill(block=not self._greenlet.running_here())
            return True
        waiting = self._state == STATE_WAITING
        self._state = STATE_STOPPING
        if self._sleeping is not None:
            get_hub().loop.run_callback(self._wake_up, self._sleeping)
        return waiting

    def _sleep(self, seconds: float) -> None:
        """Wait between tasks: a timer and a direct switch (a stop ends it early).

        Zero waits still go through a timer, not ``sleep(0)``: that queues a callback, and
        gevent runs up to 50 queued callbacks before it polls again, so users with CPU-heavy
        tasks and no wait time starved timers and sockets for seconds (a 0.2 s task: 10 s
        before a stop was seen). Each user keeps its zero-wait timer (a new one per task run
        cost about 5 us). No Event: an idle user parked in Event.wait kept 1.4 KB more stack.

        A zero wait yields even after a task that waited itself (on its response): skipping it
        there saved a loop pass but sent each user's next request alone, as soon as its
        response was read, where yielding sends the users' requests together in the loop's next
        pass and their responses come back together to one poll (a whole FastHttpUser run, 50
        users: 13 800 -> 17 200 requests per CPU-second with the yield, medians of 3
        alternating runs).
        """
        if self._state == STATE_STOPPING:
            return
        hub = get_hub()
        if seconds > 0:
            # libev arms a timer from the time cached at the last poll: after 0.2 s of CPU in a
            # task, constant(0.1) waited 0.1 ms. Zero waits skip this: they only yield.
            hub.loop.update_now()
            timer = hub.loop.timer(seconds)
        else:
            timer = self._yield_timer
            if timer is None:
                timer = self._yield_timer = hub.loop.timer(_YIELD_S)
        self._sleeping, self._sleeper = timer, getcurrent()
        try:
            wait_for(hub, timer)
        finally:
            self._sleeping = self._sleeper = None

    def _next_iteration(self) -> None:
        """Open model, between tasks: wait in the pool until an iteration is due, then begin it.

        The scheduler hands the iteration over (setting ``iteration_due``) and wakes the user;
        stop() wakes it too, and it stops here.
        """
        control = self._mpswarm
        pool = control.pool
        if control.iteration_due is None:
            pool.park(self)
            self._state = STATE_WAITING
            self._sleeping, self._sleeper = pool, getcurrent()
            try:
                woken_by = get_hub().switch()
            finally:
                self._sleeping = self._sleeper = None
            if woken_by is not pool:
                raise RuntimeError(f"unexpected switch into a pooled user: {woken_by!r}")
            self._check_stop()
            self._state = STATE_RUNNING
        if control.iteration_due is not None:
            pool.started(self, control.iteration_due)
            control.iteration_due = None

    def _wake_up(self, timer: Any) -> None:
        if self._sleeping is timer:  # still in that wait
            self._sleeper.switch(timer)

    def _check_stop(self) -> None:
        if self._state == STATE_STOPPING:
            raise StopUser()

    def _report_user_error(self, source: Any, exc: BaseException) -> None:
        self.environment.events.user_error.fire(
            user_instance=source, exception=exc, tb=exc.__traceback__
        )
        self.environment.exception_sink(exc)

    def context(self) -> dict[str, Any]:
        """Extra context added to every request event of this user (Locust's hook)."""
        return {}


class HttpUser(User):
    """A user with ``self.client``, an HTTP session that behaves as ``requests.Session``.

    Class attribute ``max_body_size``: the cap on a response body in bytes (default 32 MiB,
    after decompression); a larger body is a failed request. One request can pass its own
    (``self.client.get(url, max_body_size=...)``) and ``stream=True`` reads past it.
    """

    abstract = True
    _host_schemes = ("http", "https")
    max_body_size: int = MAX_BODY_SIZE
    #: Users whose classes name the same object here share their connections (Locust's
    #: attribute, where it is a urllib3 PoolManager: any object will do).
    pool_manager: Any = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if not self.host:
            raise ValueError(
                f"{type(self).__name__} has no host: set host on the class or pass -H/--host"
            )
        check_body_size(self.max_body_size, type(self).__name__)
        insecure = bool(getattr(environment.parsed_options, "insecure", False))
        self.client = self._create_client(self.host, environment.events.request, insecure)

    def _create_client(self, host: str, request_event: Any, insecure: bool) -> Any:
        """The user's session; FastHttpUser returns its lean client instead."""
        client = HttpSession(
            base_url=host,
            request_event=request_event,
            user=self,
            max_body_size=self.max_body_size,
            pool_manager=self.pool_manager,
            insecure=insecure,
        )
        return client
