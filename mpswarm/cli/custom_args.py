"""Custom command-line arguments added by locustfiles (``init_command_line_parser``).

Listeners get a ``parser`` whose ``add_argument`` takes argparse's arguments plus Locust's
extra keywords (``env_var``, ``include_in_web_ui``, ``is_secret``, ``is_required``,
``is_multiple``); each argument becomes a click option of the run command.
"""

from __future__ import annotations

from typing import Any

import click

_TYPES = {int: click.INT, float: click.FLOAT, str: click.STRING, bool: click.BOOL}


class ArgumentCollector:
    """The ``parser`` passed to ``init_command_line_parser`` listeners."""

    def __init__(self) -> None:
        self.options: list[click.Option] = []

    def add_argument_group(self, *args: Any, **kwargs: Any) -> ArgumentCollector:
        """Groups only matter for help output: arguments land in this collector."""
        return self

    def add_argument(self, *flags: str, **kwargs: Any) -> None:
        """Declare an option, as ``argparse.ArgumentParser.add_argument`` does."""
        longs = [flag for flag in flags if flag.startswith("--")]
        dest = kwargs.get("dest") or (longs[0] if longs else flags[0]).lstrip("-").replace("-", "_")
        action = kwargs.get("action", "store")
        settings: dict[str, Any] = {
            "help": kwargs.get("help"),
            "envvar": kwargs.get("env_var"),
            "required": bool(kwargs.get("is_required") or kwargs.get("required")),
            "show_default": "default" in kwargs,
        }
        if action in ("store_true", "store_false"):
            settings.update(
                is_flag=True,
                flag_value=action == "store_true",
                default=kwargs.get("default", action == "store_false"),
            )
        else:
            kind = kwargs.get("type")
            if kwargs.get("choices"):
                settings["type"] = click.Choice([str(c) for c in kwargs["choices"]])
            elif kind is not None:
                settings["type"] = _TYPES.get(kind) or click.FuncParamType(kind)  # type: ignore[operator]
            settings["default"] = kwargs.get("default")
            settings["multiple"] = bool(kwargs.get("is_multiple")) or action == "append"
            if settings["multiple"] and settings["default"] is None:
                settings["default"] = ()
        self.options.append(click.Option([*flags, dest], **settings))
