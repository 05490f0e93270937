"""mkdocs hook: the command-line reference, written at build time from the code.

``docs/cli.md`` holds two placeholders. ``<!-- options -->`` becomes one table per help group
(``GROUPS`` order) of ``mpswarm/cli/options.py``'s ``OPTIONS``: the flags, the value, the
default, the help line, the two environment variables and the configuration-file keys.
``<!-- subcommands -->`` becomes the ``--help`` of ``mpswarm serve``, ``compare``, ``replay``
and ``capacity``. The page cannot drift from the option table: it is made from it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

# The checkout's own mpswarm, whatever else is installed: the page describes this tree. Imported
# here, while the path is in place: mkdocs restores sys.path once the hook is loaded.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mpswarm.cli.compare import compare_command
from mpswarm.cli.load import _CAPACITY_HELP, _REPLAY_HELP
from mpswarm.cli.options import GROUPS, OPTIONS, click_option
from mpswarm.cli.serve import serve_command

OPTIONS_MARK = "<!-- options -->"
SUBCOMMANDS_MARK = "<!-- subcommands -->"


def _cell(text: str) -> str:
    """``text`` fit for one cell of a Markdown table: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _value(option: Any) -> str:
    """The value an option takes, as ``--help`` writes it ('' for an on/off flag)."""
    if option.flag:
        return ""
    if option.metavar is None and isinstance(option.type, (click.IntRange, click.FloatRange)):
        kind = "INTEGER" if isinstance(option.type, click.IntRange) else "NUMBER"
        bounds = [f"{'>' if option.type.min_open else '≥'} {option.type.min}"
                  if option.type.min is not None else "",
                  f"{'<' if option.type.max_open else '≤'} {option.type.max}"
                  if option.type.max is not None else ""]  # fmt: skip
        return " ".join([kind, *filter(None, bounds)])
    return click_option(option).make_metavar(click.Context(click.Command("mpswarm")))


def options_tables() -> str:
    """One Markdown table per help group of ``OPTIONS``, in ``GROUPS`` order."""
    parts = []
    for group in GROUPS:
        rows = [option for option in OPTIONS if option.group == group]
        if not rows:
            continue
        parts += [f"### {group}", "",
                  "| Option | Value | Default | Meaning | Environment | File keys |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for option in rows:
            flags = ", ".join(f"`{flag}`" for flag in option.flags)
            value = _value(option)
            default = "" if option.default is None or option.flag else f"`{option.default}`"
            meaning = option.help or f"Internal: set by `mpswarm {option.name}`, not to be given."
            envvars = " ".join(f"`{name}`" for name in option.envvars)
            spelled = ((option.config_key,) if option.config_key else ()) + option.config_keys
            keys = " ".join(f"`{key}`" for key in dict.fromkeys(spelled))
            cells = [flags, f"`{value}`" if value else "", default, meaning, envvars, keys or "—"]
            parts.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        parts.append("")
    return "\n".join(parts)


def subcommands_help() -> str:
    """The ``--help`` of each subcommand, each under its own heading."""

    def click_help(command: click.Command, name: str) -> str:
        return command.get_help(click.Context(command, info_name=name, max_content_width=100))

    texts = {
        "mpswarm serve": click_help(serve_command, "mpswarm serve"),
        "mpswarm compare": click_help(compare_command, "mpswarm compare"),
        "mpswarm replay": _REPLAY_HELP,
        "mpswarm capacity": _CAPACITY_HELP,
    }
    return "\n".join(
        f"### `{name}`\n\n```text\n{text.rstrip()}\n```\n" for name, text in texts.items()
    )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill the placeholders of ``cli.md``; other pages pass through."""
    if page.file.src_uri != "cli.md":
        return markdown
    for mark in (OPTIONS_MARK, SUBCOMMANDS_MARK):
        if mark not in markdown:
            raise ValueError(f"docs/cli.md lost its placeholder {mark}")
    markdown = markdown.replace(OPTIONS_MARK, options_tables())
    return markdown.replace(SUBCOMMANDS_MARK, subcommands_help())
