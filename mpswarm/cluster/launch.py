"""``--ray ADDRESS``: what the coordinator starts before a run over a Ray cluster.

Each host reruns the coordinator's command line to build the same WorkerSpec (the locustfile
imported there, its ``init_command_line_parser`` options parsed there). It gets the command
line without the options that are the coordinator's alone (``--ray``, ``--ray-hosts``,
``--processes``, ``--config``, ``-f``), the locustfile by its name in the run's working
directory (the locustfile's directory, shipped by Ray's runtime environment), the config-file
values the coordinator read, and its environment variables of the options (``host_environment``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mpswarm.cli.options import OPTIONS, argv_for, flags_of

_COORDINATOR = tuple(option for option in OPTIONS if option.coordinator_only)
#: Options the hosts do not get (their value follows unless written ``--opt=value``).
_COORDINATOR_ONLY = flags_of(_COORDINATOR)
_LONG = tuple(f"{flag}=" for flag in _COORDINATOR_ONLY if flag.startswith("--"))
_SHORT = tuple(flag for flag in _COORDINATOR_ONLY if not flag.startswith("--"))  # -fPATH
#: Config-file keys and mpswarm's environment variables of the same options.
_COORDINATOR_KEYS = frozenset(key for option in _COORDINATOR for key in option.config_keys)
_COORDINATOR_ENV = frozenset(option.envvars[0] for option in _COORDINATOR)
#: Locust's variables of the options the hosts do get.
_LOCUST_ENV = frozenset(option.envvars[1] for option in OPTIONS if not option.coordinator_only)


def host_argv(argv: list[str], locustfile: str) -> list[str]:
    """``argv`` without the coordinator's own options, with ``-f`` the locustfile's name."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _COORDINATOR_ONLY:
            skip = True
        elif arg.startswith(_LONG) or (arg.startswith(_SHORT) and not arg.startswith("--")):
            pass
        else:
            kept.append(arg)
    return [*argv_for({"locustfile": os.path.basename(locustfile)}), *kept]


def host_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables the hosts rerun the command line with: every ``MPSWARM_*`` (the test tag,
    a locustfile's own options) and Locust's of the run's options (``LOCUST_HOST``...), but
    neither of the coordinator's own options'."""
    return {
        name: value
        for name, value in environ.items()
        if (name.startswith("MPSWARM_") and name not in _COORDINATOR_ENV) or name in _LOCUST_ENV
    }


def start_ray(options: dict[str, Any], config: Any, argv: list[str],
              values: dict[str, Any]) -> Any:  # fmt: skip
    """Start the Ray bridge for the run of ``config`` (``options``: the parsed command line,
    ``argv``: as typed, ``values``: from config files); returns the ``RemoteForkServer``.

    Raises:
        UsageError: Ray is not installed, the cluster cannot be joined, or is too small.
        WorkerError: a host could not start.
    """
    import json

    from mpswarm.runner._remote import RemoteForkServer

    env = host_environment(os.environ)
    config_values = {
        k: v for k, v in values.items() if k.replace("-", "_") not in _COORDINATOR_KEYS
    }

    env["MPSWARM_HOST_CONFIG"] = json.dumps(config_values, default=str)
    server = RemoteForkServer({
        "address": options["ray"],
        "hosts": options["ray_hosts"] or 0,
        "processes": options["processes"],
        "argv": host_argv(argv, config.locustfile),
        "working_dir": os.path.dirname(os.path.abspath(config.locustfile)),
        "env": env,
        "max_endpoints": config.max_endpoints,
        "max_errors": config.max_errors,
        "open_model": config.arrival_rate is not None,
        "loglevel": config.loglevel,
    })  # fmt: skip
    server.start()
    return server


__all__ = ["host_argv", "host_environment", "start_ray"]
