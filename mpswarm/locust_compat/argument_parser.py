"""``locust.argument_parser``: ``LocustArgumentParser``, for locustfiles that import it.

Inside a run, ``init_command_line_parser`` listeners get mpswarm's own collector (see
``mpswarm.cli.custom_args``), which takes the same keywords; this class is for locustfiles that
name the type or build a parser of their own.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


class LocustArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose ``add_argument`` takes Locust's extra keywords."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """Add an argument, as argparse does, plus Locust's keywords.

        Args:
            *args: the flags, as for argparse.
            **kwargs: argparse's keywords, and ``env_var`` (an environment variable that
                supplies the default), ``include_in_web_ui`` (default True), ``is_secret``,
                ``is_required`` and ``is_multiple`` (default False), kept on the action.

        Returns:
            The argparse action.
        """
        env_var = kwargs.pop("env_var", None)
        web = {
            "include_in_web_ui": kwargs.pop("include_in_web_ui", True),
            "is_secret": kwargs.pop("is_secret", False),
            "is_required": kwargs.pop("is_required", False),
            "is_multiple": kwargs.pop("is_multiple", False),
        }
        if env_var and env_var in os.environ:
            kwargs["default"] = os.environ[env_var]
        action = super().add_argument(*args, **kwargs)
        if not isinstance(action, argparse._HelpAction):  # -h has no place in a web form
            for name, value in web.items():
                setattr(action, name, value)
        return action

    @property
    def args_included_in_web_ui(self) -> dict[str, argparse.Action]:
        """The actions shown in the web UI, by destination."""
        return {a.dest: a for a in self._actions if getattr(a, "include_in_web_ui", False)}

    @property
    def secret_args_included_in_web_ui(self) -> dict[str, argparse.Action]:
        """The web-UI actions declared ``is_secret``."""
        return {d: a for d, a in self.args_included_in_web_ui.items() if a.is_secret}  # type: ignore[attr-defined]

    @property
    def required_args_included_in_web_ui(self) -> dict[str, argparse.Action]:
        """The web-UI actions declared ``is_required``."""
        return {d: a for d, a in self.args_included_in_web_ui.items() if a.is_required}  # type: ignore[attr-defined]

    @property
    def multiple_args_included_in_web_ui(self) -> dict[str, argparse.Action]:
        """The web-UI actions declared ``is_multiple``."""
        return {d: a for d, a in self.args_included_in_web_ui.items() if a.is_multiple}  # type: ignore[attr-defined]


def parse_locustfile_paths(paths: list[str]) -> list[str]:
    """Absolute paths of the locustfiles ``paths`` name (a directory: its ``.py`` files).

    Raises:
        UsageError: a path that is neither a ``.py`` file nor a directory with some.
    """
    from mpswarm.exceptions import UsageError

    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            inside = sorted(
                os.path.abspath(os.path.join(folder, name))
                for folder, _, names in os.walk(path)
                for name in names
                if name.endswith(".py") and not name.startswith("_")
            )
            if not inside:
                raise UsageError(f"no locustfiles (.py) in directory {path!r}")
            found += inside
        elif path.endswith(".py") and os.path.exists(path):
            found.append(os.path.abspath(path))
        else:
            raise UsageError(f"locustfile {path!r} not found (a .py file or a directory)")
    return found


def get_locustfiles_locally(options: Any) -> list[str]:
    """The locustfiles of ``options.locustfile`` (a comma-separated list), as absolute paths."""
    return parse_locustfile_paths([p.strip() for p in options.locustfile.split(",")])


def parse_locustfile_option(args: list[str] | None = None) -> list[str]:
    """The locustfiles named by ``-f``/``--locustfile`` in ``args`` (default: ``sys.argv``).

    Like Locust's, this reads only that option (and ``LOCUST_LOCUSTFILE``), so that it can run
    before the locustfiles add options of their own; the default is ``locustfile.py``.
    """
    import sys

    parser = LocustArgumentParser(add_help=False)
    parser.add_argument("-f", "--locustfile", default="locustfile.py", env_var="LOCUST_LOCUSTFILE")
    options, _ = parser.parse_known_args(sys.argv[1:] if args is None else args)
    return get_locustfiles_locally(options)
