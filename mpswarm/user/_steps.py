"""A user's run as steps on pooled greenlets: a user waiting between tasks holds no greenlet.

A greenlet parked in a wait keeps its Python data stack (a 16 KB chunk of which one page is
touched) and a copy of its C stack (about 2 KB): 6.3 KB of the 10.2 KB an idle FastHttpUser
cost (``bench/idle_users.py``; 2.4-2.5 KB without). So the default run loop (``User._life``,
``TaskSet._steps``) is a generator that *yields* the seconds of each wait after a task instead
of sleeping. Two drivers run it:

- ``drive`` sleeps each wait in the calling greenlet: ``TaskSet.run()``, ``User.run()`` and a
  wait inside a task keep their blocking meaning;
- ``SteppedGreenlet`` (what ``user.greenlet`` is) runs the generator on a greenlet taken from
  a pool, and for a wait arms a libev timer and gives the greenlet back; the timer's callback
  continues the user on whichever pooled greenlet is free.

A task runs on its greenlet from start to end, blocking as it likes; so does a ``run()`` or
``wait()`` a subclass overrides (it keeps the greenlet while it runs). Zero waits are yields
and stay in place. Exceptions a wait gets (a kill, a stop) are thrown into the generator where
it yielded, so ``on_stop``, ``InterruptTaskSet``, ``RescheduleTask`` and ``StopUser`` unwind
through the same frames as before. A user's contextvars go with it from step to step. The one
visible difference: ``gevent.getcurrent()`` in a task is the pooled greenlet, not
``user.greenlet``, so a ``gevent.local`` set in a task belongs to that greenlet: the user's next
task may not see it, and another user's task on the same greenlet may (monkey-patched,
``threading.local`` is one). A class with ``keep_greenlet = True`` waits in place instead.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Generator
from typing import Any

from gevent import GreenletExit, Timeout, get_hub, getcurrent
from gevent.greenlet import SpawnedLink
from gevent.hub import Waiter
from greenlet import greenlet as RawGreenlet

#: What the default run loop is: a generator yielding the seconds of each wait.
Steps = Generator[float, None, None]

#: Idle pooled greenlets kept for the next step (each costs what a parked user did); a burst of
#: users waking together grows the pool past this, and the extra greenlets end afterwards.
SPARE_GREENLETS = 64

_spare: list[RawGreenlet] = []

# Stages of a SteppedGreenlet.
_NEW, _PENDING, _ALIVE, _DEAD = range(4)


def blocking(method: Callable[[], None]) -> Steps:
    """A blocking call as steps that yield nothing (a subclass's own ``run()`` or ``wait()``)."""
    method()
    yield from ()


def drive(steps: Steps, user: Any) -> None:
    """Run ``steps`` to its end in this greenlet, sleeping each wait it yields.

    An exception the sleep raises (a kill) is thrown into the generator at its ``yield``, as
    it was raised in ``wait()`` when the loop slept there itself.
    """
    exc: BaseException | None = None
    while True:
        try:
            seconds = steps.send(None) if exc is None else steps.throw(exc)
        except StopIteration:
            return
        exc = None
        try:
            user._sleep(seconds)
        except BaseException as raised:  # a kill: delivered into the generator
            exc = raised


class SteppedGreenlet:
    """``user.greenlet``: the gevent Greenlet API over a user run in steps.

    ``dead``, ``ready()``, ``successful()``, ``value``, ``exception``, ``join()``, ``get()``,
    ``kill()``, ``throw()``, ``rawlink()``, ``link()``, ``unlink()``, as gevent's, so Groups,
    ``gevent.joinall`` and ``gevent.killall`` take it. Killed before it started, it never runs.

    Args:
        user: the user whose ``_life()`` it runs.
    """

    __slots__ = (
        "_context",
        "_exc_info",
        "_links",
        "_runner",
        "_stage",
        "_start",
        "_steps",
        "user",
        "value",
    )

    def __init__(self, user: Any) -> None:
        self.user = user
        self._stage = _NEW
        self._steps: Steps | None = None
        self._runner: RawGreenlet | None = None  # the pooled greenlet running a step
        self._start: Any = None  # the start callback, while pending
        # Links: None, the one callable (the host's: a list per user cost 88 bytes), or a list.
        self._links: Any = None
        self._exc_info: tuple[Any, Any, Any] | None = None
        self.value: Any = None
        # The user's contextvars between steps (None: none set yet), as a greenlet of its own
        # kept them: each step runs in it, and no other user sees it.
        self._context: contextvars.Context | None = None

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Schedule the first step (on_start, the first task...)."""
        if self._stage == _NEW:
            self._stage = _PENDING
            self._start = get_hub().loop.run_callback(_begin, self)

    def switch(self, woken_by: Any = None) -> None:
        """Continue a waiting user (its timer fired, or ``stop()`` woke it): in the hub."""
        user = self.user
        timer = user._sleeping
        if timer is None or user._sleeper is not self:
            raise RuntimeError(f"{self!r} is not waiting, woken by {woken_by!r}")
        timer.stop()  # also drops its callback if it was about to fire
        user._sleeping = user._sleeper = None
        _run_step(self, None)

    def _step(self, exc: BaseException | None) -> None:
        """Run the user up to its next wait, or to its end (on a pooled greenlet)."""
        self._runner = runner = getcurrent()
        runner.gr_context = self._context
        user = self.user
        steps = self._steps
        if steps is None:
            steps = self._steps = user._life()
        try:
            while True:
                seconds = steps.send(None) if exc is None else steps.throw(exc)
                exc = None
                if seconds > 0 and user._state != "stopping" and not user.keep_greenlet:
                    self._park(seconds)
                    return
                try:
                    user._sleep(seconds)  # a zero wait yields in place
                except BaseException as raised:  # a kill: delivered into the generator
                    exc = raised
        except (StopIteration, GreenletExit):
            self._end(None)
        except Exception as exc:  # on_start / on_stop raised: the user ends, the run goes on
            self._end(exc)
        except BaseException:  # SystemExit and the like: the hub's to handle, as in gevent
            self._report(sys.exc_info())

    def _end(self, error: Exception | None) -> None:
        try:
            self.user._ended(error)
        except BaseException:  # reporting or closing failed: the greenlet dies of it
            self._report(sys.exc_info())
        else:
            self._report(None)

    def _park(self, seconds: float) -> None:
        """Wait ``seconds`` as a timer: the greenlet goes back to the pool."""
        loop = get_hub().loop
        # libev arms a timer from the time cached at the last poll: after 0.2 s of CPU in a
        # task, constant(0.1) waited 0.1 ms (see User._sleep).
        loop.update_now()
        timer = loop.timer(seconds)
        user = self.user
        user._sleeping, user._sleeper = timer, self
        runner = self._runner
        if runner is not None:
            self._context, runner.gr_context = runner.gr_context, None
        self._runner = None
        timer.start(_resume, self)  # not a bound method: 64 bytes less per waiting user

    def _report(self, exc_info: Any, value: Any = None) -> None:
        """The run is over: dead, links called from the loop, an error handed to the hub."""
        if self._runner is not None:
            self._runner.gr_context = None
        self._stage = _DEAD
        self._steps = self._runner = self._context = None
        self.value = value
        self._exc_info = exc_info or (None, None, None)
        hub = get_hub()
        if self._links is not None:
            hub.loop.run_callback(self._notify_links)
        if exc_info is not None:
            hub.handle_error(self, *exc_info)

    def _notify_links(self) -> None:
        while self._links is not None:
            links, self._links = self._links, None
            for link in links if type(links) is list else (links,):
                try:
                    link(self)
                except BaseException:  # a link's failure is the hub's to report
                    get_hub().handle_error((link, self), *sys.exc_info())

    # -- gevent's Greenlet API ------------------------------------------------------------------
    @property
    def dead(self) -> bool:
        """True once the user has ended (or was killed before it started)."""
        return self._stage == _DEAD

    def ready(self) -> bool:
        """True once the user has ended."""
        return self._stage == _DEAD

    def successful(self) -> bool:
        """True if it ended without an error (a kill with GreenletExit counts as success)."""
        return self._exc_info is not None and self._exc_info[1] is None

    @property
    def exception(self) -> BaseException | None:
        """The exception the run ended with, if any."""
        return self._exc_info[1] if self._exc_info is not None else None

    @property
    def exc_info(self) -> tuple[Any, Any, Any] | None:
        """``(type, value, traceback)`` of that exception (gevent's attribute)."""
        return self._exc_info

    @property
    def started(self) -> bool:
        """True once started and until it ends (gevent's deprecated ``started``)."""
        return bool(self)

    def __bool__(self) -> bool:
        return self._stage in (_PENDING, _ALIVE)

    @property
    def loop(self) -> Any:
        """The event loop it runs in (``gevent.killall`` reads it)."""
        return get_hub().loop

    def running_here(self) -> bool:
        """True when the calling code is this user's step (a task stopping its own user)."""
        return self._runner is not None and self._runner is getcurrent()

    def throw(self, *args: Any) -> None:
        """Raise an exception in the user now: where its task is, or where it waits."""
        if self._maybe_kill_before_start(args[0] if len(args) == 1 else args):
            return
        runner = self._runner
        if runner is not None:
            if runner is getcurrent():
                raise _exception(args)
            runner.throw(*args)
            return
        user = self.user
        timer = user._sleeping
        if timer is not None and user._sleeper is self:
            timer.stop()
            user._sleeping = user._sleeper = None
            _run_step(self, _exception(args))

    def _maybe_kill_before_start(self, exception: Any) -> bool:
        """Killed before its first step: it never runs (gevent's rule); True once dead."""
        if self._stage in (_NEW, _PENDING):
            if self._start is not None:
                self._start.stop()
                self._start = None
            self._report(None, _exception(exception))
        return self._stage == _DEAD

    def kill(self, exception: Any = GreenletExit, block: bool = True, timeout: Any = None) -> None:
        """Raise ``exception`` in the user, from the loop; with ``block``, wait for its end."""
        if self._maybe_kill_before_start(exception):
            return
        waiter = Waiter() if block else None
        get_hub().loop.run_callback(_kill, self, exception, waiter)
        if waiter is not None:
            waiter.get()
            self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait until the user has ended, or ``timeout`` seconds."""
        if self.ready():
            return
        switch = getcurrent().switch
        self.rawlink(switch)
        try:
            with Timeout(timeout, False):
                woken_by = get_hub().switch()
                if woken_by is not self:
                    raise RuntimeError(f"unexpected switch into join(): {woken_by!r}")
        finally:
            self.unlink(switch)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The run's result, or its exception raised (gevent's ``Greenlet.get``)."""
        if not self.ready():
            if not block:
                raise Timeout()
            with Timeout(timeout):
                self.join()
        if self._exc_info is not None and self._exc_info[1] is not None:
            raise self._exc_info[1]
        return self.value

    def rawlink(self, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(self)`` in the hub once the user has ended."""
        if not callable(callback):
            raise TypeError(f"Expected callable: {callback!r}")
        links = self._links
        if links is None:
            self._links = callback
        elif type(links) is list:
            links.append(callback)
        else:
            self._links = [links, callback]
        if self.ready():
            get_hub().loop.run_callback(self._notify_links)

    def link(self, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(self)`` in a greenlet of its own once the user has ended."""
        self.rawlink(SpawnedLink(callback))

    def unlink(self, callback: Callable[[Any], Any]) -> None:
        """Remove a callback set by ``rawlink()`` or ``link()``."""
        links = self._links
        if type(links) is list:
            if callback in links:
                links.remove(callback)
        elif links is not None and links == callback:
            self._links = None

    def __repr__(self) -> str:
        state = ("new", "pending", "running" if self._runner else "waiting", "dead")[self._stage]
        return f"<SteppedGreenlet of {type(self.user).__name__} ({state})>"


def _exception(args: Any) -> BaseException:
    """An exception instance from what ``throw()``/``kill()`` take."""
    if isinstance(args, tuple):
        if len(args) > 1 and isinstance(args[1], BaseException):
            return args[1]
        args = args[0]
    return args() if isinstance(args, type) else args


def _resume(handle: SteppedGreenlet) -> None:
    handle.switch()


def _begin(handle: SteppedGreenlet) -> None:
    handle._start = None
    handle._stage = _ALIVE
    _run_step(handle, None)


def _kill(handle: SteppedGreenlet, exception: Any, waiter: Any) -> None:
    try:
        if not handle.dead:
            handle.throw(*(exception if isinstance(exception, tuple) else (exception,)))
    except BaseException:  # the hub reports it, as gevent's kill does
        get_hub().handle_error(handle, *sys.exc_info())
    if waiter is not None:
        waiter.switch(None)


def _run_step(handle: SteppedGreenlet, exc: BaseException | None) -> None:
    """Run a step of ``handle`` on a spare greenlet (a new one when none is free)."""
    hub = get_hub()
    while _spare:
        glet = _spare.pop()
        if glet.parent is hub and not glet.dead:
            glet.switch((handle, exc))
            return
    RawGreenlet(_serve, hub).switch((handle, exc))


def _serve(job: tuple[SteppedGreenlet, BaseException | None]) -> None:
    """A pooled greenlet: run steps handed to it; back to the pool between them."""
    hub = get_hub()
    me = getcurrent()
    while True:
        handle, exc = job
        handle._step(exc)
        del handle, exc, job
        if len(_spare) >= SPARE_GREENLETS:
            return
        _spare.append(me)
        while True:
            job = hub.switch()
            if type(job) is tuple and len(job) == 2 and type(job[0]) is SteppedGreenlet:
                break
            # A stale switch (a watcher a task left behind): not a job; keep waiting.
