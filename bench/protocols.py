"""Messages per CPU-second of mpswarm's protocol users, against Locust with the same library
wired up by hand, and of the candidate libraries alone (how each library was chosen).

    python bench/protocols.py [--runs 3] [--seconds 6] [--only grpc,websocket,http2]

Each protocol's cases are in ``bench/protocols_<protocol>.py`` (runnable alone), on loopback
servers those scripts start; CPU is the load generator's process tree only, never the
server's. This script runs them, prints one table with each case's median and its ratio to its
baseline (the case it is compared with: mpswarm's user against Locust's way), and saves
everything as JSON under ``bench/results/``. A protocol whose library is not installed is
listed as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PROTOCOLS = ("grpc", "websocket", "http2")


def measure(protocol: str, runs: int, seconds: float) -> list[dict[str, Any]]:
    """The rows of ``bench/protocols_<protocol>.py`` (its ``measure``)."""
    sys.path.insert(0, str(BENCH))
    try:
        module = importlib.import_module(f"protocols_{protocol}")
    finally:
        sys.path.remove(str(BENCH))
    rows: list[dict[str, Any]] = module.measure(runs, seconds)
    return rows


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with ``ratio``: its median over its baseline's (None without a baseline)."""
    by_case = {(row["protocol"], row["case"]): row for row in rows}
    for row in rows:
        base = by_case.get((row["protocol"], row.get("baseline")))
        row["ratio"] = (
            row["messages_per_cpu_s"] / base["messages_per_cpu_s"]
            if base is not None and base["messages_per_cpu_s"]
            else None
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain-text table."""
    lines = [f"{'protocol':<10} {'case':<58} {'msg/CPU-s':>10} {'ratio':>7}  baseline"]
    for row in rows:
        ratio = f"{row['ratio']:.2f}x" if row.get("ratio") is not None else ""
        lines.append(
            f"{row['protocol']:<10} {row['case'][:58]:<58} "
            f"{row['messages_per_cpu_s']:>10.0f} {ratio:>7}  {row.get('baseline') or ''}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median)")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per run")
    parser.add_argument("--only", default=",".join(PROTOCOLS), help="protocols, comma-separated")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    args = parser.parse_args()
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(PROTOCOLS))
    if unknown:
        parser.error(f"unknown protocol(s) {', '.join(unknown)}: choose from {PROTOCOLS}")
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for protocol in wanted:
        try:
            rows.extend(measure(protocol, args.runs, args.seconds))
        except ImportError as exc:
            skipped[protocol] = f"{type(exc).__name__}: {exc}"
    with_ratios(rows)
    print(table(rows))
    for protocol, reason in skipped.items():
        print(f"{protocol}: skipped ({reason})")
    # A case that measured nothing failed (a client that could not run): never a result.
    empty = [f"{row['protocol']}: {row['case']}" for row in rows if row["messages_per_cpu_s"] <= 0]
    for case in empty:
        print(f"{case}: measured no messages (the case failed to run)")
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = RESULTS / f"protocols-{stamp}.json"
        saved = {
            "when": stamp,
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "runs": args.runs,
            "seconds": args.seconds,
            "rows": rows,
            "skipped": skipped,
            "failed": empty,
        }
        path.write_text(json.dumps(saved, indent=2) + "\n")
        print(f"saved {path.relative_to(BENCH.parent)}")
    return 1 if skipped or empty else 0


if __name__ == "__main__":
    sys.exit(main())
