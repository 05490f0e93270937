"""``mpswarm replay`` and ``mpswarm capacity``: runs whose own options fold into a run's.

Each takes a run's command line plus a few options of its own, turns those into a hidden run
option (``--replay`` the log's spec, ``--capacity`` the search's settings) and runs it
through ``run_main``: the same workers, supervision, reports and exit codes as any run.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from typing import Any

import click

from mpswarm.cli.main import EXIT_OK, EXIT_USAGE, _error, run_main
from mpswarm.cli.options import argv_for
from mpswarm.config import parse_rate, parse_timespan
from mpswarm.exceptions import UsageError


def _split_own(argv: list[str], names: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    """(each of ``names``' values, as given: ``--x V`` or ``--x=V``; the other words)."""
    own: dict[str, list[str]] = {name: [] for name in names}
    rest: list[str] = []
    words = iter(argv)
    for word in words:
        name, equals, value = word.partition("=")
        if name in own:
            own[name].append(value if equals else next(words, ""))
        else:
            rest.append(word)
    return own, rest


def capacity_shape(options: dict[str, Any], shape: type | None) -> type:
    """``mpswarm capacity``'s search, from the settings its command line passed on."""
    from mpswarm.capacity import search_shape
    from mpswarm.report.checks import parse_check

    if shape is not None:
        raise UsageError(f"mpswarm capacity sets the load itself: the locustfile's "
                         f"{shape.__name__} cannot run with it")  # fmt: skip
    if options["arrival_rate"] is not None or options["profile"]:
        raise UsageError("mpswarm capacity sets the arrival rate itself: no --arrival-rate "
                         "or --profile")  # fmt: skip
    if not options["checks"]:
        raise UsageError("mpswarm capacity needs at least one --check (e.g. 'p99<200ms')")
    start, most, step = options["capacity"].split(";")
    start_rate, max_rate = parse_rate(start), parse_rate(most)
    if max_rate < start_rate:
        raise UsageError(f"--max {most} is below --start {start}")
    checks = [parse_check(expression) for expression in options["checks"]]
    return search_shape(start_rate, max_rate, parse_timespan(step), checks)


#: ``mpswarm capacity``'s own options (the rest are a run's) and their defaults.
CAPACITY_OPTIONS = {"--start": "10/s", "--max": "50000/s", "--step-time": "10s"}


def capacity_main(argv: list[str]) -> int:
    """``mpswarm capacity ARGS``: a run whose own options are folded into ``--capacity``."""
    own, rest = _split_own(argv, CAPACITY_OPTIONS)
    if any(word in ("-h", "--help") for word in rest):
        click.echo(_CAPACITY_HELP)
        return EXIT_OK
    spec = ";".join((own[name] or [default])[-1] for name, default in CAPACITY_OPTIONS.items())
    return run_main([*rest, *argv_for({"headless": True, "capacity": spec})])


_CAPACITY_HELP = """Usage: mpswarm capacity -f LOCUSTFILE -H URL --check EXPR... [OPTIONS]

  The highest arrival rate at which every --check holds: doubling from --start, then
  bisecting, each step held for --step-time (the checks judge its second half).

  --start RATE       the first step (default 10/s)
  --max RATE         the highest step (default 50000/s)
  --step-time T      how long each step lasts (default 10s)
  Any option of a run (--processes, --max-users, --json-file, --html, ...) applies too.
  Exit code 0: a capacity found; 3: no step held; 4: the generator was the limit first."""


#: ``mpswarm replay``'s own options (the rest are a run's).
REPLAY_OPTIONS = ("--speed", "--from", "--to", "--methods", "--log-format", "--json-fields",
                  "--name-rule", "--max-gap")  # fmt: skip


def replay_main(argv: list[str]) -> int:
    """``mpswarm replay LOGFILE -H URL ...``: a run of the built-in Replay user whose open-model
    schedule is the log's (see ``mpswarm.replay``)."""
    from mpswarm.replay import MAX_LINE, Counts, entries

    own, rest = _split_own(argv, REPLAY_OPTIONS)
    if any(word in ("-h", "--help") for word in rest):
        click.echo(_REPLAY_HELP)
        return EXIT_OK
    logs = [word for word in rest if not word.startswith("-")][:1]
    if not logs or rest.index(logs[0]) != 0:
        _error("mpswarm replay needs the access log first: mpswarm replay LOGFILE -H URL", False)
        return EXIT_USAGE
    try:
        spec = _replay_spec(logs[0], own)
        counts = Counts()
        for _ in entries(spec, counts):  # one streamed pass: what it will send, for how long
            pass
    except UsageError as exc:
        _error(str(exc), False)
        return EXIT_USAGE
    skipped = (
        f"{counts.unparsable} unparsable lines, {counts.too_long} longer than "
        f"{MAX_LINE // 1024} KiB, {counts.other_method} of other methods (--methods), "
        f"{counts.outside_range} outside --from/--to"
    )
    if not counts.sent:
        _error(f"{logs[0]}: no request to replay ({skipped})", False)
        return EXIT_USAGE
    click.echo(
        f"mpswarm replay: {counts.sent} requests over {counts.duration_s:.1f} s; "
        f"{counts.absolute} with a host of their own sent as their path to -H; "
        f"{counts.gaps_shortened} quiet stretches over {spec.max_gap_s:g} s shortened "
        f"(--max-gap); skipped {skipped}", err=True,
    )  # fmt: skip
    # mpswarm/replay_user.py: the locustfile of every replay, beside this subpackage
    user_file = os.path.join(os.path.dirname(os.path.dirname(__file__)), "replay_user.py")
    replay = {**spec.as_dict(), "counts": dataclasses.asdict(counts)}
    return run_main([
        *argv_for({"locustfile": user_file}),
        *rest[1:],
        *argv_for({"headless": True, "arrival_rate": "1/s", "arrivals": "replay",
                   "replay": json.dumps(replay)}),
    ])  # fmt: skip


def _replay_spec(path: str, own: dict[str, list[str]]) -> Any:
    from mpswarm.replay import DEFAULT_MAX_GAP_S, DEFAULT_METHODS, ReplaySpec

    def last(name: str) -> str | None:
        return own[name][-1] if own[name] else None

    speed = float(last("--speed") or 1.0)
    if not speed > 0:
        raise UsageError(f"--speed must be positive, not {last('--speed')}")
    methods = tuple(m.strip().upper() for m in (last("--methods") or ",".join(DEFAULT_METHODS))
                    .split(",") if m.strip())  # fmt: skip
    log_format = last("--log-format") or "auto"
    if log_format not in ("auto", "combined", "common", "json"):
        raise UsageError(f"--log-format must be auto, combined, common or json, not {log_format}")
    fields = dict((("time", "time"), ("method", "method"), ("path", "path")))
    for pair in (last("--json-fields") or "").split(","):
        if pair.strip():
            key, equals, value = pair.partition("=")
            if not equals or key.strip() not in ("time", "method", "path", "request"):
                raise UsageError(f"--json-fields {pair!r}: use time=,method=,path= or request=")
            fields[key.strip()] = value.strip()
    rules = []
    for rule in own["--name-rule"]:
        pattern, equals, name = rule.rpartition("=")
        if not equals or not pattern:
            raise UsageError(f"--name-rule {rule!r}: use REGEX=NAME")
        rules.append((pattern, name))
    start, end = last("--from"), last("--to")
    gap = last("--max-gap")
    max_gap = parse_timespan(gap) if gap else DEFAULT_MAX_GAP_S
    if not max_gap > 0:
        raise UsageError(f"--max-gap must be a positive time, not {gap}")
    return ReplaySpec(
        path=path, log_format=log_format, json_fields=tuple(fields.items()), speed=speed,
        start_s=parse_timespan(start) if start else None,
        end_s=parse_timespan(end) if end else None, methods=methods, name_rules=tuple(rules),
        max_gap_s=max_gap,
    )  # fmt: skip


_REPLAY_HELP = """Usage: mpswarm replay LOGFILE -H URL [OPTIONS]

  Send an access log's requests, each at its original offset from the first, in the open
  model (late and dropped requests counted, corrected and uncorrected times).

  --speed X            replay X times faster (default 1)
  --from T / --to T    only the requests from T to T after the log's first (e.g. 10m)
  --methods A,B        the methods replayed (default GET,HEAD: a log holds no bodies)
  --log-format F       auto (default: combined or common), combined, common, json
  --json-fields K=F,.. json: the fields of time, method and path (or request)
  --name-rule RE=NAME  a request name for paths matching RE (repeatable; before {id} ...)
  --max-gap T          a quiet stretch in the log longer than T is shortened to T (1h)
  -t T                 stop after T, even where the log goes on
  Every request goes to -H: a logged absolute URL (http://host/x, //host/x) is sent as
  its path (/x); redirects are not followed; lines over 64 KiB are skipped.
  Any option of a run (--processes, --max-users, --json-file, --html, ...) applies too."""
