"""Tasks and TaskSets: what a simulated user does, with Locust's semantics.

A task is a callable taking the user (or the TaskSet instance it belongs to), or a TaskSet
class, which then runs as a nested behaviour until it calls ``interrupt()``.
"""

from __future__ import annotations

import logging
import os
import random
import sysconfig
import traceback
from collections.abc import Callable, Iterable
from types import FunctionType, TracebackType
from typing import TYPE_CHECKING, Any

from gevent import GreenletExit

from mpswarm.exceptions import (
    InterruptTaskSet,
    LocustError,
    RescheduleTask,
    RescheduleTaskImmediately,
    StopUser,
)
from mpswarm.user._steps import blocking, drive

if TYPE_CHECKING:
    from mpswarm.user._steps import Steps
    from mpswarm.user.users import User

logger = logging.getLogger(__name__)

TAG_ATTR = "locust_tag_set"
WEIGHT_ATTR = "locust_task_weight"


# User states, with Locust's constant values (runners compare against these strings).
STATE_RUNNING = "running"
STATE_WAITING = "waiting"
STATE_STOPPING = "stopping"
# Locust's names for the same states.
LOCUST_STATE_RUNNING, LOCUST_STATE_WAITING, LOCUST_STATE_STOPPING = (
    STATE_RUNNING,
    STATE_WAITING,
    STATE_STOPPING,
)


class NoTasksError(LocustError):
    """A User or TaskSet without tasks was run: it ends the user instead of retrying."""


def no_tasks_error(holder: type, kind: str) -> NoTasksError:
    """Locust's message for a ``kind`` ("User", "TaskSet"...) class ``holder`` without tasks."""
    if getattr(holder, "task", None) is not None:
        hint = ", but you have set a 'task' attribute: did you mean 'tasks'?"
    else:
        hint = "."
    extra = " (or mark it abstract = True if it is only a base class)" if kind == "User" else ""
    return NoTasksError(
        f"No tasks defined on {holder.__name__}{hint} Use the @task decorator or set the "
        f"'tasks' attribute of the {kind}{extra}"
    )


def task(weight: int | Callable[..., Any] = 1) -> Any:
    """Mark a method as a task; use as ``@task`` or ``@task(3)`` for a weight of 3."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, WEIGHT_ATTR, weight_value)
        return func

    if callable(weight):
        weight_value = 1
        return mark(weight)
    weight_value = int(weight)
    return mark


def tag(*tags: str) -> Callable[[Any], Any]:
    """Tag a task or TaskSet, for selection with ``--tags`` / ``--exclude-tags``."""
    if len(tags) == 0 or any(not isinstance(t, str) for t in tags):
        raise ValueError("tag() takes one or more string arguments: @tag('api', 'slow')")

    def decorate(target: Any) -> Any:
        setattr(target, TAG_ATTR, set(getattr(target, TAG_ATTR, set())) | set(tags))
        if isinstance(target, type) and "tasks" in target.__dict__:
            for inner in target.__dict__["tasks"]:
                decorate(inner)
        return target

    return decorate


def collect_tasks(
    bases: Iterable[type], namespace: dict[str, Any], in_body_order: bool = False
) -> list[Any]:
    """Build a class's weighted task list: inherited tasks, ``tasks`` and ``@task`` methods.

    The list repeats each task by its weight, so ``random.choice`` picks by weight (Locust's
    representation, which locustfiles may read and modify). Inherited tasks come first; then
    the ``tasks`` attribute before the ``@task`` methods, or, with ``in_body_order`` (Locust's
    rule for SequentialTaskSet), each where the class body declares it.
    """
    result: list[Any] = []
    for base in bases:
        result.extend(getattr(base, "tasks", None) or [])
    declared = namespace.get("tasks")
    if declared is not None and not in_body_order:
        _extend_declared(result, declared)
    for key, value in namespace.items():
        if key == "tasks":
            if declared is not None and in_body_order:
                _extend_declared(result, declared)
            continue
        weight = getattr(value, WEIGHT_ATTR, None)
        if weight is not None and callable(value):
            result.extend([value] * weight)
    return result


def _extend_declared(result: list[Any], declared: Any) -> None:
    items = declared.items() if isinstance(declared, dict) else declared
    for item in items:
        if isinstance(item, tuple):
            target, weight = item
            result.extend([target] * int(weight))
        else:
            result.append(item)


def is_taskset_class(item: Any) -> bool:
    """True for TaskSet subclasses (used as nested tasks)."""
    return isinstance(item, type) and issubclass(item, TaskSet)


def filter_tasks_by_tags(
    holder: Any,
    tags: set[str] | None = None,
    exclude_tags: set[str] | None = None,
    seen: dict[Any, bool] | None = None,
) -> None:
    """Keep only the tasks selected by tags, in place, recursing into nested TaskSets.

    A task passes when ``tags`` is None or it carries one of them, and it carries none of
    ``exclude_tags``. A nested TaskSet passes when any of its own tasks does.
    """
    seen = {} if seen is None else seen
    kept: list[Any] = []
    for item in holder.tasks:
        if item not in seen:
            if isinstance(item, type) and hasattr(item, "tasks"):  # a TaskSet (or User)
                filter_tasks_by_tags(item, tags, exclude_tags, seen)
                seen[item] = len(item.tasks) > 0
            else:
                item_tags: set[str] = getattr(item, TAG_ATTR, set())
                passing = tags is None or bool(item_tags & tags)
                passing = passing and not (exclude_tags and item_tags & exclude_tags)
                seen[item] = passing
        if seen[item]:
            kept.append(item)
    holder.tasks = kept


class TaskSetMeta(type):
    """Collects ``@task`` methods and ``tasks`` into the weighted ``tasks`` list."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        namespace["tasks"] = collect_tasks(bases, namespace)
        return super().__new__(mcs, name, bases, namespace)


class TaskSet(metaclass=TaskSetMeta):
    """A group of tasks run by one user, possibly nested inside another TaskSet.

    Args:
        parent: the User or TaskSet running this TaskSet.
    """

    tasks: list[Any] = []

    def __init__(self, parent: Any) -> None:
        self._parent = parent
        self._user: User = parent if not isinstance(parent, TaskSet) else parent.user
        self._task_queue: list[Any] = []

    @property
    def user(self) -> User:
        """The user running this TaskSet."""
        return self._user

    @property
    def parent(self) -> Any:
        """The User or TaskSet that started this TaskSet."""
        return self._parent

    @property
    def client(self) -> Any:
        """The user's client (shortcut for ``self.user.client``)."""
        return self._user.client  # type: ignore[attr-defined]

    def on_start(self) -> None:
        """Called when the TaskSet starts running."""

    def on_stop(self) -> None:
        """Called when the TaskSet stops (interrupted, or the user stops)."""

    def get_next_task(self) -> Any:
        """Pick the next task, by weight.

        Raises:
            LocustError: the TaskSet has no tasks (Locust's "No tasks defined on ...").
        """
        if not self.tasks:
            raise no_tasks_error(type(self), "TaskSet")
        return random.choice(self.tasks)

    def schedule_task(self, task_callable: Any, first: bool = False) -> None:
        """Queue a task to run next (``first``) or after those already queued."""
        if first:
            self._task_queue.insert(0, task_callable)
        else:
            self._task_queue.append(task_callable)

    def execute_next_task(self) -> None:
        """Take the first queued task off the queue and run it (one iteration, with -i)."""
        drive(self._execute_next_steps(), self._user)

    def _execute_next_steps(self) -> Steps:
        """``execute_next_task()`` as steps: a nested TaskSet's waits are yielded."""
        item = self._task_queue.pop(0)
        # -i: a task run is one iteration (a nested TaskSet counts its own tasks)
        taskset = is_taskset_class(item)
        if not taskset and not self._user.environment.claim_iteration():
            raise StopUser()
        if taskset and item.run is TaskSet.run and type(self).execute_task in _OWN_EXECUTE:
            yield from item(self._nested_parent())._steps()
        else:
            self.execute_task(item)

    def _nested_parent(self) -> Any:
        """The parent ``execute_task`` gives a nested TaskSet."""
        return self

    def execute_task(self, item: Any) -> None:
        """Run one task: a nested TaskSet class, a method bound to this TaskSet (scheduled
        with ``self.schedule_task(self.method)``), or a callable taking this TaskSet."""
        if is_taskset_class(item):
            item(self).run()
        elif getattr(item, "__self__", None) is self:
            item()
        else:
            item(self)

    def interrupt(self, reschedule: bool = True) -> None:
        """Stop this TaskSet and hand control back to its parent."""
        raise InterruptTaskSet(reschedule)

    def wait_time(self) -> float:
        """Seconds to wait after a task: the user's, unless a subclass sets ``wait_time``."""
        return float(self._user.wait_time())

    def wait(self) -> None:
        """Wait after a task, as the user's state allows (a stopping user stops here)."""
        drive(self._wait_steps(), self._user)

    def _wait_steps(self) -> Steps:
        """``wait()`` as steps: the wait's seconds are yielded to the driver."""
        user = self._user
        user._check_stop()
        user._state = STATE_WAITING
        if user._mpswarm.pool is not None:
            user._next_iteration()  # open model: the schedule decides, not wait_time
        else:
            yield self.wait_time()
        user._check_stop()
        user._state = STATE_RUNNING

    def run(self) -> None:
        """Run tasks until interrupted or the user stops."""
        drive(self._steps(), self._user)

    def _steps(self) -> Steps:
        """``run()`` as steps (see ``mpswarm.user._steps``): what a subclass overrides of
        ``execute_next_task`` or ``wait`` is called as it is, and blocks where it waits."""
        user = self._user
        cls = type(self)
        own_execute = cls.execute_next_task is TaskSet.execute_next_task
        own_wait = cls.wait is TaskSet.wait
        # The common case in one frame: a task function drawn by get_next_task, run and
        # waited after as execute_next_task, execute_task and wait would (the same order of
        # checks and states), without their calls and generators (-40 % of a task's loop).
        straight = (
            own_execute
            and own_wait
            and cls.schedule_task is TaskSet.schedule_task
            and cls.execute_task in _OWN_EXECUTE
        )
        task_arg = user if cls.execute_task is DefaultTaskSet.execute_task else self
        user_wait = cls.wait_time is TaskSet.wait_time
        queue = self._task_queue
        try:
            self.on_start()
        except InterruptTaskSet as exc:
            raise (RescheduleTaskImmediately if exc.reschedule else RescheduleTask)() from exc
        while True:
            try:
                item = None
                if not queue:
                    item = self.get_next_task()
                    if not straight or type(item) is not FunctionType:
                        self.schedule_task(item)  # (a TaskSet class, a method, a callable)
                        item = None
                try:
                    if user._state == STATE_STOPPING:
                        raise StopUser()
                    if item is not None:
                        if not user.environment.claim_iteration():
                            raise StopUser()
                        item(task_arg)
                    elif own_execute:
                        yield from self._execute_next_steps()
                    else:
                        self.execute_next_task()
                except RescheduleTaskImmediately:
                    pass
                except RescheduleTask:
                    yield from self._wait_steps() if own_wait else blocking(self.wait)
                else:
                    if not own_wait:
                        yield from blocking(self.wait)
                    elif user._mpswarm.pool is not None:
                        yield from self._wait_steps()  # open model: the schedule decides
                    else:  # _wait_steps, inline
                        if user._state == STATE_STOPPING:
                            raise StopUser()
                        user._state = STATE_WAITING
                        yield float(user.wait_time()) if user_wait else self.wait_time()
                        if user._state == STATE_STOPPING:
                            raise StopUser()
                        user._state = STATE_RUNNING
            except InterruptTaskSet as exc:
                try:
                    self.on_stop()
                except (StopUser, GreenletExit):
                    raise  # on_stop may end the user
                except Exception as stop_exc:
                    user._report_user_error(self, stop_exc)
                raise (RescheduleTaskImmediately if exc.reschedule else RescheduleTask)() from exc
            except (StopUser, GreenletExit):
                user._mpswarm.begin_on_stop()  # on_stop runs whole, its requests too (Locust)
                try:
                    self.on_stop()
                finally:
                    raise
            except Exception as exc:
                # No tasks: retrying would spin. catch_exceptions=False (Locust's option): the
                # error ends the user, reported once by User.start's greenlet.
                if isinstance(exc, NoTasksError) or not user.environment.catch_exceptions:
                    raise
                user._report_user_error(self, exc)
                yield from self._wait_steps() if own_wait else blocking(self.wait)


class SequentialTaskSetMeta(TaskSetMeta):
    """Orders tasks as Locust does: inherited ones, then the class body's, as declared."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        namespace["tasks"] = collect_tasks(bases, namespace, in_body_order=True)
        return type.__new__(mcs, name, bases, namespace)


class SequentialTaskSet(TaskSet, metaclass=SequentialTaskSetMeta):
    """A TaskSet whose tasks run in declaration order, round and round.

    ``@task`` methods and a ``tasks`` list run in the order the class body declares them.
    """

    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self._position = 0

    def get_next_task(self) -> Any:
        # Declaration order, a task with weight n n times in a row (Locust's cycle).
        if not self.tasks:
            raise no_tasks_error(type(self), "SequentialTaskSet")
        item = self.tasks[self._position % len(self.tasks)]
        self._position += 1
        return item


class DefaultTaskSet(TaskSet):
    """Runs a User's own tasks; tasks get the user, not the TaskSet, as argument."""

    def get_next_task(self) -> Any:
        if not self._user.tasks:
            raise no_tasks_error(type(self._user), "User")
        return random.choice(self._user.tasks)

    def execute_task(self, item: Any) -> None:
        if is_taskset_class(item):
            item(self._user).run()
        else:
            item(self._user)

    def _nested_parent(self) -> Any:
        return self._user


#: The execute_task methods _execute_next_steps knows (it runs their nested TaskSets as steps).
_OWN_EXECUTE = (TaskSet.execute_task, DefaultTaskSet.execute_task)


def format_exception(exc: BaseException) -> str:
    """Traceback text of an exception, for logs and the exceptions table."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def describe_exception(exc: BaseException, where: str | None = None) -> str:
    """One line for an exception raised by user code: type, function, file:line, message.

    For example ``ValueError in ShopUser.__init__ (locustfile.py:12): boom``. The place is the
    deepest frame of the traceback in user code (outside mpswarm, gevent, the standard library
    and installed packages), so a task that fails inside ``json.loads`` points at its own line.

    Args:
        exc: the exception, with its traceback.
        where: what to name when no frame of the traceback is user code.
    """
    where = user_code_place(exc) or where
    head = type(exc).__name__ + (f" in {where}" if where else "")
    message = " ".join(str(exc).split())
    return f"{head}: {message}" if message else head


def user_code_place(exc: BaseException) -> str | None:
    """Where user code raised ``exc``: ``ShopUser.on_stop (locustfile.py:12)``, the deepest
    frame of its traceback in user code (see describe_exception), None without one."""
    frame = _deepest_user_frame(exc)
    if frame is None:
        return None
    code = frame.tb_frame.f_code
    name = getattr(code, "co_qualname", code.co_name)
    return f"{name} ({_shown_path(code.co_filename)}:{frame.tb_lineno})"


def has_user_frame(exc: BaseException) -> bool:
    """True when the traceback of ``exc`` passes through user code (see describe_exception)."""
    return _deepest_user_frame(exc) is not None


def _deepest_user_frame(exc: BaseException) -> TracebackType | None:
    found = None
    tb = exc.__traceback__
    while tb is not None:
        if _is_user_file(tb.tb_frame.f_code.co_filename):
            found = tb
        tb = tb.tb_next
    return found


_library_dirs: tuple[str, ...] | None = None


def _is_user_file(filename: str) -> bool:
    global _library_dirs
    if _library_dirs is None:
        import gevent

        import mpswarm

        paths = sysconfig.get_paths()
        found = [
            paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths
        ]
        found += [os.path.dirname(mpswarm.__file__), os.path.dirname(gevent.__file__)]
        _library_dirs = tuple(os.path.join(os.path.abspath(d), "") for d in found)
    return os.path.isabs(filename) and not filename.startswith(_library_dirs)


def _shown_path(filename: str) -> str:
    relative = os.path.relpath(filename)
    return filename if relative.startswith(os.pardir) else relative
