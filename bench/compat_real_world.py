"""Run real-world-shaped locustfiles under Locust and under mpswarm; say where they differ.

    python bench/compat_real_world.py [--case NAME ...] [--users 10] [--run-time 4s]

Each case in CASES is a locustfile of bench/locustfiles/real_world/ written in one of the
shapes that Locust users' own files take (issue 33). Both tools run it unchanged, headless,
with the same users, spawn rate and run time, against the demo target on 127.0.0.1:
mpswarm with ``--processes 2``, Locust with ``--processes 2`` too unless the case says why
not. Compared per case: the exit code, the set of request names (TYPE name), the failures
(name and message, each one's share of the requests), the exceptions (message, share), the
request mix (each name's share) and, where a case names them, request counts that do not
depend on timing (one request per user started). Shares are compared with a tolerance for
the random task choice (binomial, four standard deviations, plus two points).

One row per case is printed; the results go to bench/results/compat-real-world-<date>.json.
The exit code is 1 when a case differs in a way DOCUMENTED does not list, else 0. Locust is
installed by compat_locust.py into its own virtualenv (bench/.locust-venv).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compat_locust import (
    ROOT,
    ToolRun,
    load_args,
    locust_python,
    run_tool,
    server_counts,
    start_demo,
)

FILES = ROOT / "bench" / "locustfiles" / "real_world"
PROJECT = FILES / "project"
RESULTS = ROOT / "bench" / "results"
TOOLS = ("locust", "mpswarm")


@dataclasses.dataclass(frozen=True)
class Case:
    """One locustfile (or project) and how both tools are told to run it."""

    name: str
    covers: str
    args: tuple[str, ...]
    cwd: Path = ROOT
    # Set for both tools; "{url}" and "{address}" (host:port) become the demo target's.
    env: tuple[tuple[str, str], ...] = ()
    load: bool = True  # pass -u, -r and -t (not where a shape or locust.conf decides)
    host: bool = True  # pass -H (not where the file names its own host)
    locust_processes: int = 2
    locust_processes_why: str = ""  # why Locust runs with other than 2 processes
    exact: tuple[str, ...] = ()  # request names whose counts must be equal


def _file(name: str) -> tuple[str, ...]:
    return ("-f", str(FILES / name))


CASES = (
    Case("shop_login", "login in on_start, cookie + CSRF header, name=", _file("shop_login.py")),
    Case("rest_crud", "REST CRUD, name= grouping, JSON checks", _file("rest_crud.py")),
    Case(
        "tagged_fast",
        "FastHttpUser, weights, tags, -T raw get",
        (*_file("tagged_fast.py"), "-T", "raw", "get"),
    ),
    Case("checkout_flow", "SequentialTaskSet journey", _file("checkout_flow.py")),
    Case("request_hooks", "events.request listener, quitting gate", _file("request_hooks.py")),
    Case(
        "catch_exception",
        "exception inside catch_response",
        _file("catch_exception.py"),
    ),
    Case("ci_green_exit", "sys.exit(0) in on_stop", _file("ci_green_exit.py")),
    Case(
        "ci_red_exit",
        "sys.exit(3) in on_stop",
        _file("ci_green_exit.py"),
        env=(("SMOKE_EXIT", "3"),),
        locust_processes=1,
        locust_processes_why=(
            "under --processes Locust exits 0 whatever status a worker's sys.exit(n) gives"
            " (sys.exit(3) measured: 0); its one process exits with n, as mpswarm does"
        ),
    ),
    Case(
        "absolute_urls",
        "User.host without a scheme",
        _file("absolute_urls.py"),
        env=(("SHOP_ADDRESS", "{address}"),),
        host=False,
    ),
    Case(
        "warmup_reset",
        "runner.stats.reset_all() after a warm-up",
        _file("warmup_reset.py"),
        locust_processes=1,
        locust_processes_why=(
            "under --processes a worker's reset_all() clears only what that worker has not"
            " yet reported (the warm-up stays in the master's figures); the reset that user"
            " code means, and that mpswarm gives the whole run, is one process's"
        ),
    ),
    Case(
        "stepped_shape",
        "LoadTestShape, no -u/-r/-t",
        _file("stepped_shape.py"),
        load=False,
        exact=("GET on_start",),
    ),
    Case(
        "seeded_messages",
        "custom messages from test_start, one account per user",
        _file("seeded_messages.py"),
        exact=("POST /login",),
    ),
    Case(
        "comma_list",
        "-f a.py,b.py importing the project's package",
        ("-f", "locustfiles/browse.py,locustfiles/api.py"),
        cwd=PROJECT,
    ),
    Case(
        "directory",
        "-f DIR (its files import the project's package)",
        ("-f", "locustfiles"),
        cwd=PROJECT,
    ),
    Case(
        "conf_and_env",
        "locust.conf (-f DIR), LOCUST_HOST, LOCUST_USERS",
        (),
        cwd=PROJECT,
        env=(("LOCUST_HOST", "{url}"), ("LOCUST_USERS", "7")),
        load=False,
        host=False,
        exact=("POST /login (browse)", "POST /login (api)"),
    ),
)

#: (case, aspect) -> why the difference is there on purpose. Aspects: exit_code, names, mix,
#: failures, failures_text, exceptions, exceptions_text, exact.
_EXIT_REPORTED = (
    "sys.exit(n) ends mpswarm's run with n once the reports are written (issue 33, item 2),"
    " so on_stop's requests before it count; Locust's process (or --processes worker)"
    " ends at once, and its unreported requests, on_stop's among them, are lost"
)
_TEXTS = (
    "mpswarm writes every failure and exception as 'Type: message' (escaped, one line);"
    ' Locust writes a failure as repr(error) (CatchResponseError("...")) and an exception'
    " as str(exc) alone ('total' for a KeyError): the same errors, grouped alike"
)
DOCUMENTED: dict[tuple[str, str], str] = {
    ("ci_green_exit", "names"): _EXIT_REPORTED,
    ("ci_red_exit", "names"): _EXIT_REPORTED,
    ("rest_crud", "failures_text"): _TEXTS,
    ("request_hooks", "failures_text"): _TEXTS,
    ("catch_exception", "exceptions_text"): _TEXTS,
}


def command(tool: str, case: Case, args: argparse.Namespace, locust: Path, url: str) -> list[str]:
    """The command line that runs `case` under `tool`."""
    if tool == "locust":
        line = [str(locust), "-m", "locust", *case.args]
        processes = case.locust_processes
    else:
        line = [sys.executable, "-m", "mpswarm", *case.args]
        processes = 2
    if case.host:
        line += ["-H", url]
    line += load_args(args) if case.load else ["--headless"]
    if processes > 1:
        line += ["--processes", str(processes)]
    return [*line, "--only-summary"]


def environment(tool: str, case: Case, url: str) -> dict[str, str]:
    """This process's environment without settings of either tool, plus the case's own."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LOCUST_", "MPSWARM_"))
        # Locust's own virtualenv must not import this checkout's modules.
        and not (tool == "locust" and key == "PYTHONPATH")
    }
    address = urllib.parse.urlsplit(url).netloc
    env.update((key, value.format(url=url, address=address)) for key, value in case.env)
    return env


def _message(text: str) -> str:
    # Object addresses differ from run to run and between tools.
    return re.sub(r"0x[0-9a-fA-F]+", "0x...", text.strip())


def outcome(run: ToolRun, served: int) -> dict[str, Any]:
    """The facts compared, from one tool's run: counts by name, failures, exceptions."""
    requests = {name: count for name, count in run.counts().items() if count > 0}
    failures: dict[str, dict[str, int]] = {}
    for row in run.failures:
        texts = failures.setdefault(f"{row['Method']} {row['Name']}", {})
        text = _message(row["Error"])
        texts[text] = texts.get(text, 0) + int(row["Occurrences"])
    exceptions: dict[str, int] = {}
    for row in run.exceptions:
        text = _message(row["Message"])
        exceptions[text] = exceptions.get(text, 0) + int(row["Count"])
    return {
        "exit_code": run.exit_code,
        "total": sum(requests.values()),
        "served": served,
        "requests": requests,
        "failures": failures,
        "exceptions": exceptions,
        "output_tail": run.output[-1500:],
    }


# Locust writes a failure as repr(exception), ExcType('text'); an exception as str(exception).
_REPR = re.compile(r"^([A-Za-z_][\w.]*)\((['\"])(.*)\2\)$", re.S)
_TYPE_PREFIX = re.compile(r"^[A-Za-z_][\w.]*: ")


#: counts by meaning, and the texts written for each meaning
Grouped = tuple[dict[str, int], dict[str, set[str]]]


def _failure_meaning(text: str) -> str:
    """A failure's text, the same whether written ExcType('text') or ExcType: text."""
    match = _REPR.match(text)
    return f"{match[1]}: {match[3]}" if match else text


def _exception_meaning(text: str) -> str:
    """An exception's text without a leading "ExcType: ", which Locust does not write."""
    return _TYPE_PREFIX.sub("", text, count=1)


def _by_meaning(texts: dict[str, int], meaning: Callable[[str], str], prefix: str = "") -> Grouped:
    """Counts by what a text means, and the texts written for each meaning."""
    counts: dict[str, int] = {}
    written: dict[str, set[str]] = {}
    for text, count in texts.items():
        key = prefix + meaning(text)
        counts[key] = counts.get(key, 0) + count
        written.setdefault(key, set()).add(text)
    return counts, written


def _tolerance(share: float, n1: int, n2: int) -> float:
    if min(n1, n2) == 0:
        return 0.0
    return 0.02 + 4 * math.sqrt(share * (1 - share) * (1 / n1 + 1 / n2))


def _shares_differ(left: dict[str, int], right: dict[str, int], n1: int, n2: int) -> list[str]:
    """Keys in both whose shares of n1 and n2 requests differ beyond the tolerance."""
    found = []
    for key in sorted(left.keys() & right.keys()):
        a, b = left[key] / max(n1, 1), right[key] / max(n2, 1)
        pooled = (left[key] + right[key]) / max(n1 + n2, 1)
        if abs(a - b) > _tolerance(pooled, n1, n2):
            found.append(f"{key} {a:.1%} vs {b:.1%}")
    return found


def _keys_differ(left: dict[str, int], right: dict[str, int]) -> list[str]:
    only_left = sorted(left.keys() - right.keys())
    only_right = sorted(right.keys() - left.keys())
    return [f"only Locust: {key}" for key in only_left] + [
        f"only mpswarm: {key}" for key in only_right
    ]


def _flat_failures(failures: dict[str, dict[str, int]]) -> Grouped:
    counts: dict[str, int] = {}
    written: dict[str, set[str]] = {}
    for name, texts in failures.items():
        name_counts, name_written = _by_meaning(texts, _failure_meaning, f"{name}: ")
        counts.update(name_counts)
        written.update(name_written)
    return counts, written


def differences(case: Case, locust: dict[str, Any], mpswarm: dict[str, Any]) -> dict[str, str]:
    """Aspect -> what differs between the two tools' outcomes of `case`.

    Failures and exceptions are matched by what their texts mean (see _failure_meaning);
    where the same meaning is written otherwise, that is its own aspect, ``*_text``.
    """
    found: dict[str, list[str]] = {}
    if locust["exit_code"] != mpswarm["exit_code"]:
        found["exit_code"] = [f"{locust['exit_code']} vs {mpswarm['exit_code']}"]
    n1, n2 = locust["total"], mpswarm["total"]
    found["names"] = _keys_differ(locust["requests"], mpswarm["requests"])
    found["mix"] = _shares_differ(locust["requests"], mpswarm["requests"], n1, n2)
    grouped = {
        "failures": (_flat_failures(locust["failures"]), _flat_failures(mpswarm["failures"])),
        "exceptions": (
            _by_meaning(locust["exceptions"], _exception_meaning),
            _by_meaning(mpswarm["exceptions"], _exception_meaning),
        ),
    }
    for aspect, ((left, left_texts), (right, right_texts)) in grouped.items():
        found[aspect] = _keys_differ(left, right) + _shares_differ(left, right, n1, n2)
        found[f"{aspect}_text"] = [
            f"Locust {' | '.join(sorted(left_texts[key]))} / "
            f"mpswarm {' | '.join(sorted(right_texts[key]))}"
            for key in sorted(left.keys() & right.keys())
            if left_texts[key] != right_texts[key]
        ]
    found["exact"] = [
        f"{name} {locust['requests'].get(name, 0)} vs {mpswarm['requests'].get(name, 0)}"
        for name in case.exact
        if locust["requests"].get(name, 0) != mpswarm["requests"].get(name, 0)
    ]
    return {aspect: "; ".join(items) for aspect, items in found.items() if items}


def run_case(case: Case, args: argparse.Namespace, locust: Path, url: str) -> dict[str, Any]:
    """Run `case` under both tools, one after the other, and compare."""
    result: dict[str, Any] = {
        "case": case.name,
        "covers": case.covers,
        "cwd": str(case.cwd.relative_to(ROOT)),
        "env": dict(case.env),
        "locust_processes": case.locust_processes,
        "locust_processes_why": case.locust_processes_why,
    }
    for tool in TOOLS:
        line = command(tool, case, args, locust, url)
        server_counts(url, reset=True)
        run = run_tool(line, timeout=args.timeout, cwd=case.cwd, env=environment(tool, case, url))
        served = sum(server_counts(url).values())
        result[f"{tool}_command"] = " ".join(line[1:]).replace(str(ROOT) + "/", "")
        result[tool] = outcome(run, served)
    found = differences(case, result["locust"], result["mpswarm"])
    result["differences"] = found
    result["documented"] = {
        aspect: DOCUMENTED[(case.name, aspect)]
        for aspect in found
        if (case.name, aspect) in DOCUMENTED
    }
    # A documented difference that is gone should leave the table too.
    result["documented_not_seen"] = sorted(
        aspect for name, aspect in DOCUMENTED if name == case.name and aspect not in found
    )
    result["verdict"] = (
        "same"
        if not found
        else "differs (documented)"
        if found.keys() == result["documented"].keys()
        else "differs"
    )
    return result


def print_row(result: dict[str, Any]) -> None:
    """One line for a case: exit codes, request totals, and the verdict with what differs."""
    locust, mpswarm = result["locust"], result["mpswarm"]
    print(
        f"{result['case']:<16} {result['locust_processes']:>2}p "
        f"exit {locust['exit_code']!s:>4}/{mpswarm['exit_code']!s:<4} "
        f"req {locust['total']:>5}/{mpswarm['total']:<5} {result['verdict']}",
        flush=True,
    )
    for aspect, what in result["differences"].items():
        print(f"{'':<20}{aspect}: {what}")
    for aspect in result["documented_not_seen"]:
        print(f"{'':<20}{aspect}: documented as differing, but the same this time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=[case.name for case in CASES])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=20)
    parser.add_argument("--run-time", default="4s")
    parser.add_argument("--timeout", type=float, default=90, help="seconds per tool and case")
    args = parser.parse_args()
    locust = locust_python()
    version = subprocess.run(
        [str(locust), "-m", "locust", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()[1]
    cases = [case for case in CASES if not args.case or case.name in args.case]
    print(
        f"Locust {version} (Np: its processes) and mpswarm (2 processes), {args.users} users, "
        f"{args.run_time} a case; exit codes and requests: Locust/mpswarm"
    )
    demo, url = start_demo()
    try:
        results = []
        for case in cases:
            results.append(run_case(case, args, locust, url))
            print_row(results[-1])
    finally:
        demo.terminate()
        demo.wait()
    now = datetime.datetime.now(datetime.timezone.utc)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"compat-real-world-{now:%Y%m%d-%H%M%S}.json"
    document = {
        "date": now.isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs)",
        "locust_version": version,
        "settings": {"users": args.users, "spawn_rate": args.spawn_rate, "run_time": args.run_time},
        "cases": results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    undocumented = [r["case"] for r in results if r["verdict"] == "differs"]
    print(f"results: {path.relative_to(ROOT)}")
    if undocumented:
        print(f"differ, not documented: {', '.join(undocumented)}")
    return 1 if undocumented else 0


if __name__ == "__main__":
    sys.exit(main())
