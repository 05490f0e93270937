"""``LoadTestShape``: a class whose ``tick()`` drives users over time (Locust's API)."""

from __future__ import annotations

import time
from typing import Any


class LoadTestShape:
    """Subclass and define ``tick()`` to shape the load.

    ``tick()`` is polled about once a second and returns ``None`` to stop the run,
    ``(users, spawn_rate)``, or ``(users, spawn_rate, user_classes)``.
    """

    abstract = True
    runner: Any = None

    def __init__(self) -> None:
        self.start_time = time.perf_counter()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "abstract" not in cls.__dict__:
            cls.abstract = False

    def reset_time(self) -> None:
        """Restart the clock ``get_run_time()`` reads."""
        self.start_time = time.perf_counter()

    def get_run_time(self) -> float:
        """Seconds since the shape started."""
        return time.perf_counter() - self.start_time

    def get_current_user_count(self) -> int:
        """Users running now (0 without a runner)."""
        return int(getattr(self.runner, "user_count", 0)) if self.runner is not None else 0

    def tick(self) -> tuple[Any, ...] | dict[str, Any] | None:
        """Return the next target, or None to stop. Must be overridden."""
        raise NotImplementedError("LoadTestShape subclasses must define tick()")
