"""The Environment a run's users see as ``self.environment`` (Locust's name and shape)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mpswarm.event import Events
from mpswarm.event import events as default_events

logger = logging.getLogger(__name__)


class Environment:
    """What user code may reach: events, host, options and the runner of this process.

    The keywords are Locust's, with its defaults, so that scripts using Locust as a library
    (``Environment(user_classes=[...]).create_local_runner()``) run unchanged.

    Args:
        user_classes: the User classes of the run (classes with weight 0 and no fixed_count
            are dropped, as in Locust).
        shape_class: a LoadTestShape instance, for ``runner.start_shape()``.
        tags: run only tasks carrying one of these tags (None: all).
        exclude_tags: do not run tasks carrying one of these tags.
        locustfile: the locustfile's name, for reports.
        events: the event hooks (the shared ``mpswarm.event.events`` by default: unlike
            Locust's fresh ``Events()``, listeners a script adds with ``@events...`` fire).
        host: the base URL; users started by a runner of this environment use it.
        reset_stats: reset the statistics once all users are spawned.
        stop_timeout: seconds users get to finish their task when stopped (default: the
            parsed options' ``stop_timeout``, else 0).
        catch_exceptions: False: an exception in a task ends its user and is raised from
            the user's greenlet instead of being counted (Locust's option, for tests).
        parsed_options: the run's options as attributes (an argparse-like namespace).
        parsed_locustfiles, available_user_classes, available_shape_classes,
            available_user_tasks, dispatcher_class, profile: accepted and kept, as Locust's
            web UI pickers read them.
    """

    def __init__(
        self,
        *,
        user_classes: list[type] | None = None,
        shape_class: Any = None,
        tags: list[str] | None = None,
        locustfile: str | None = None,
        exclude_tags: list[str] | None = None,
        events: Events | None = None,
        host: str | None = None,
        reset_stats: bool = False,
        stop_timeout: float | None = None,
        catch_exceptions: bool = True,
        parsed_options: Any = None,
        parsed_locustfiles: list[str] | None = None,
        available_user_classes: dict[str, Any] | None = None,
        available_shape_classes: dict[str, Any] | None = None,
        available_user_tasks: dict[str, list[Any]] | None = None,
        dispatcher_class: Any = None,
        profile: str | None = None,
    ) -> None:
        self.user_classes = list(user_classes or [])
        self.shape_class = shape_class
        self.tags = tags
        self.exclude_tags = exclude_tags
        self.locustfile = locustfile
        self.host = host
        self.events = events or default_events
        self.reset_stats = reset_stats
        if stop_timeout is None:
            stop_timeout = float(getattr(parsed_options, "stop_timeout", 0.0) or 0.0)
        self.stop_timeout = stop_timeout
        self.catch_exceptions = catch_exceptions
        self.parsed_options = parsed_options
        self.parsed_locustfiles = parsed_locustfiles
        self.available_user_classes = available_user_classes
        self.available_shape_classes = available_shape_classes
        self.available_user_tasks = available_user_tasks
        self.dispatcher_class = dispatcher_class
        self.profile = profile
        self.runner: Any = None
        self.web_ui: Any = None
        self.process_exit_code: int | None = None
        self.worker_logs: dict[str, list[str]] = {}
        # Set by the process that runs users: called with every exception user code raises.
        self.exception_sink: Callable[[BaseException], None] = self._log_exception
        # Set by a worker running with -i: False once its share of iterations is used up.
        self.claim_iteration: Callable[[], bool] = _always
        self._tasks_filtered = False
        self._check_classes()

    def _check_classes(self) -> None:
        """Locust's checks: weight-0 classes dropped, names unique, a shape instance."""
        if self.user_classes:
            kept = [
                cls
                for cls in self.user_classes
                if getattr(cls, "weight", 1) > 0 or getattr(cls, "fixed_count", 0) > 0
            ]
            if not kept:
                raise ValueError("There are no users with weight > 0.")
            self.user_classes[:] = kept
        names = [cls.__name__ for cls in self.user_classes]
        if len(set(names)) != len(names):
            full = ", ".join(
                cls.fullname() if hasattr(cls, "fullname") else cls.__qualname__
                for cls in self.user_classes
            )
            raise ValueError(f"The following user classes have the same class name: {full}")
        if self.shape_class is not None and isinstance(self.shape_class, type):
            raise ValueError(
                "shape_class should be instance of LoadTestShape or subclass LoadTestShape, "
                f"but got: {self.shape_class}"
            )

    @property
    def user_classes_by_name(self) -> dict[str, type]:
        """The user classes by class name."""
        return {cls.__name__: cls for cls in self.user_classes}

    @property
    def stats(self) -> Any:
        """The runner's live statistics (Locust's ``environment.stats``); None without one."""
        return self.runner.stats if self.runner is not None else None

    def create_local_runner(self) -> Any:
        """A runner that runs the users in this process (Locust's ``LocalRunner``).

        Raises:
            RunnerAlreadyExistsError: this environment has a runner already.
        """
        from mpswarm.runner.local import LocalRunner

        return self._create_runner(LocalRunner)

    def create_master_runner(self, *args: Any, **kwargs: Any) -> Any:
        """Not available: mpswarm spreads a run over processes itself (``--processes``)."""
        raise NotImplementedError(
            "mpswarm has no master/worker runners to create: run the locustfile with "
            "`mpswarm -f FILE --processes N` (or several machines with --ray)"
        )

    create_worker_runner = create_master_runner

    def _create_runner(self, runner_class: type) -> Any:
        from mpswarm.exceptions import RunnerAlreadyExistsError

        if self.runner is not None:
            raise RunnerAlreadyExistsError(f"Environment.runner already exists ({self.runner})")
        runner = runner_class(self)
        if self.shape_class is not None:
            self.shape_class.runner = runner
        return runner

    def _filter_tasks_by_tags(self) -> None:
        """Keep only the tasks the tags select, in the user classes (once)."""
        if self._tasks_filtered:
            return
        self._tasks_filtered = True
        from mpswarm.user.task import filter_tasks_by_tags

        tags = self.tags if self.tags is not None else getattr(self.parsed_options, "tags", None)
        exclude = (
            self.exclude_tags
            if self.exclude_tags is not None
            else getattr(self.parsed_options, "exclude_tags", None)
        )
        if tags is None and not exclude:
            return
        seen: dict[Any, bool] = {}
        for cls in self.user_classes:
            filter_tasks_by_tags(
                cls, set(tags) if tags is not None else None, set(exclude or ()), seen
            )

    @staticmethod
    def _log_exception(exc: BaseException) -> None:
        logger.error("user code raised %s: %s", type(exc).__name__, exc)


def _always() -> bool:
    return True
