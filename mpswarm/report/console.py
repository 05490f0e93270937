"""The end-of-run summary on stdout: endpoints, percentiles, errors, exceptions, the stop.

With many request names the tables show the busiest rows only (``SUMMARY_ROWS`` endpoints by
requests, ``SUMMARY_ERRORS`` error rows by occurrences) and say how many they left out; the
CSV and JSON reports keep every row. Its last line says why the run ended, when the Snapshot
knows (see ``mpswarm.report.stop_reason``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

from tabulate import tabulate

from mpswarm.report.stop_reason import stop_text
from mpswarm.stats.recorder import OVERFLOW_METHOD
from mpswarm.stats.run_facts import CapacityResult
from mpswarm.stats.snapshot import EndpointStats, Snapshot

_PERCENTILES = (90.0, 95.0, 99.0, 99.9)
#: Endpoint rows in the summary: the busiest by requests, shown in name order. The overflow
#: row ("other names ...") is shown too whenever there is one.
SUMMARY_ROWS = 50
#: Error rows in the summary: the most frequent.
SUMMARY_ERRORS = 20


def format_ms(value: float | None) -> str:
    """A response time in ms with about four significant digits, or 'N/A'."""
    if value is None:
        return "N/A"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def _row(stats: EndpointStats, duration_s: float) -> list[str]:
    median, *tail = stats.percentiles([50.0, *_PERCENTILES])
    failures = f"{stats.failures}({stats.fail_ratio * 100:.2f}%)"
    return [
        stats.method,
        stats.name,
        str(stats.requests),
        failures,
        format_ms(median),
        format_ms(stats.avg_ms),
        format_ms(stats.min_ms),
        format_ms(stats.max_ms),
        *(format_ms(v) for v in tail),
        f"{stats.rps(duration_s):.2f}",
    ]


def settings_line(settings: dict[str, Any]) -> str:
    """The run's settings in one line: ``examples/api.py -> http://...: 50 users at 10/s...``."""
    load = (
        f"{settings['arrival_rate']:g} iterations/s ({settings.get('arrivals') or 'constant'}, "
        f"at most {settings.get('max_users')} users)"
        if settings.get("arrival_rate") is not None
        else f"{settings.get('users')} users at {settings.get('spawn_rate'):g}/s"
    )
    processes = settings.get("processes")
    parts = [load, f"{processes} worker process{'' if processes == 1 else 'es'}"]
    if settings.get("shape"):
        parts[0] = f"shape {settings['shape']}"
    if settings.get("run_time"):
        parts.append(f"run time {settings['run_time']:g} s")
    if settings.get("iterations"):
        parts.append(f"{settings['iterations']} iterations")
    if settings.get("tags") or settings.get("exclude_tags"):
        parts.append(f"tags {list(settings.get('tags') or [])} "
                     f"excluding {list(settings.get('exclude_tags') or [])}")  # fmt: skip
    host = settings.get("host") or "(the classes' hosts)"
    return f"Run: {settings.get('locustfile')} -> {host}: {', '.join(parts)}"


def format_bytes(count: float) -> str:
    """A byte count in B, kB, MB or GB (powers of 1000, as k6 prints them)."""
    if count < 1000:
        return f"{count:.0f} B"
    for unit in ("kB", "MB"):
        count /= 1000
        if count < 1000:
            return f"{count:.1f} {unit}"
    return f"{count / 1000:.1f} GB"


def totals_text(snapshot: Snapshot, series: Sequence[Any] | None) -> str:
    """Data received and sent, iterations, the users (peak over the run's seconds and at its
    end), and where the time of a request went (the timing breakdown), when there is one."""
    total, duration = snapshot.total, snapshot.duration_s

    def per_s(count: float) -> float:
        return count / duration if duration > 0 else 0.0

    final = snapshot.users if snapshot.users_at_stop is None else snapshot.users_at_stop
    users = [final, *(point.users for point in series or ())]
    received, sent = total.content_bytes, snapshot.sent_bytes
    text = (
        f"\nData received: {format_bytes(received)} of response bodies "
        f"({format_bytes(per_s(received))}/s); sent: {format_bytes(sent)} of "
        f"requests ({format_bytes(per_s(sent))}/s).\n"
        f"Iterations: {snapshot.iterations:,} ({per_s(snapshot.iterations):.2f}/s). "
        f"Users: peak {max(users)}, {final} when the run stopped.\n"
    )
    if snapshot.lost:
        text += (
            f"Lost: {snapshot.lost:,} request(s) were in flight in workers that died or were "
            "killed: begun, never recorded (not in the figures above).\n"
        )
    return text + breakdown_text(total)


#: How the summary names each phase of the timing breakdown.
_PHASES_SHOWN = {"connect": "connect", "tls": "TLS handshake", "ttfb": "time to first byte"}


def breakdown_text(stats: EndpointStats) -> str:
    """``Where the time went (ms): ...``: each phase's median, p95 and p99; '' without one."""
    parts = []
    for phase, shown in _PHASES_SHOWN.items():
        times = stats.phases.get(phase)
        if times is None:
            continue
        p50, p95, p99 = times.percentiles([50.0, 95.0, 99.0])
        counted = "" if phase == "ttfb" else f" ({times.requests:,} new connections)"
        parts.append(
            f"  {shown}{counted}: median {format_ms(p50)}, p95 {format_ms(p95)}, "
            f"p99 {format_ms(p99)}\n"
        )
    return "Where the time went (ms):\n" + "".join(parts) if parts else ""


def verdict(snapshot: Snapshot, checks: Sequence[Any] = ()) -> str:
    """The last line: ``PASSED``, or ``FAILED: 2 checks failed`` (or why else it failed)."""
    stop = snapshot.stop
    failed_checks = sum(1 for result in checks if not result.passed)
    if failed_checks:
        return f"FAILED: {failed_checks} check{'' if failed_checks == 1 else 's'} failed"
    if stop is None or not stop.failed:
        return "PASSED"
    lost = snapshot.reports_failed
    if lost and stop.exit_code == 1 and not snapshot.total.failures and not snapshot.exceptions:
        return f"FAILED: could not write {', '.join(lost)}"
    if stop.exit_code == 1 and snapshot.total.failures:
        return f"FAILED: {snapshot.total.failures} request(s) failed"
    if stop.exit_code == 1 and snapshot.exceptions:
        return f"FAILED: user code raised {sum(e.count for e in snapshot.exceptions)} time(s)"
    return f"FAILED: {stop.message}"


def write_summary(
    snapshot: Snapshot,
    stream: TextIO,
    settings: dict[str, Any] | None = None,
    series: Sequence[Any] | None = None,
    checks: Sequence[Any] = (),
) -> None:
    """Write the run's settings, the endpoint table, data and users, the errors and exceptions
    tables when there are any, the checks, why the run ended (``Stopped after ...``) and, last,
    the verdict (``PASSED`` / ``FAILED: ...``)."""
    if settings is not None:
        stream.write(f"\n{settings_line(settings)}\n")
    headers = [
        "Type",
        "Name",
        "# reqs",
        "# fails",
        "Median",
        "Average",
        "Min",
        "Max",
        "p90",
        "p95",
        "p99",
        "p99.9",
        "req/s",
    ]
    shown = busiest(snapshot.endpoints, SUMMARY_ROWS)
    rows = [_row(stats, snapshot.duration_s) for stats in shown]
    rows.append(_row(snapshot.total, snapshot.duration_s))
    stream.write(
        f"\nResponse times (ms) over {snapshot.duration_s:.1f} s, "
        f"{len(snapshot.endpoints)} endpoint(s):\n"
    )
    stream.write(tabulate(rows, headers=headers, disable_numparse=True, colalign=_align(headers)))
    stream.write("\n")
    left = len(snapshot.endpoints) - len(shown)
    if left:
        stream.write(
            f"... and {left:,} more endpoint(s) with fewer requests (see --csv/--json for all)\n"
        )
    stream.write(totals_text(snapshot, series))
    if snapshot.open_model:
        stream.write(open_model_text(snapshot))
    if snapshot.capacity is not None:
        stream.write(capacity_text(snapshot.capacity))
    if snapshot.errors:
        stream.write("\nErrors:\n")
        errors = snapshot.errors[:SUMMARY_ERRORS]  # most frequent first
        error_rows = [[e.occurrences, e.method, e.name, e.error] for e in errors]
        stream.write(tabulate(error_rows, headers=["# occurrences", "Type", "Name", "Error"]))
        stream.write("\n")
        left = len(snapshot.errors) - len(errors)
        if left:
            stream.write(
                f"... and {left:,} more error row(s), less frequent (see --csv/--json for all)\n"
            )
    saturation = snapshot.saturation
    if saturation is not None and saturation.saturated_seconds:
        stream.write(
            f"\nThe load generator was saturated {saturation.share:.0%} of the run "
            f"({saturation.saturated_seconds} of {saturation.seconds} s; worst event-loop "
            f"lag {saturation.worst_loop_lag_ms:.0f} ms): response times from those seconds "
            "may be inflated by the generator itself.\n"
        )
    hosts_lost = snapshot.hosts_lost
    if hosts_lost:
        stream.write(f"\nHosts lost: {len(hosts_lost)}\n")
        for lost in hosts_lost:
            stream.write(f"  at {lost.at_s:.1f} s: {lost.cause}; {lost.action}\n")
    events = snapshot.recovery_events
    if events:
        stream.write("\nRecovery events:\n")
        event_rows = [[f"{e.at_s:.1f}", e.worker, e.pid, e.cause, e.action] for e in events]
        stream.write(tabulate(event_rows, headers=["At (s)", "Worker", "Pid", "Cause", "Action"]))
        stream.write("\n")
    if snapshot.exceptions:
        stream.write("\nExceptions in user code:\n")
        exception_rows = [[e.count, e.message, _where(e.traceback)] for e in snapshot.exceptions]
        stream.write(tabulate(exception_rows, headers=["# count", "Exception", "Raised at"]))
        stream.write("\n")
    if checks:
        stream.write("\nChecks:\n")
        for result in checks:
            stream.write(f"  {'ok  ' if result.passed else 'FAIL'} {result.describe()}\n")
        failed = sum(1 for r in checks if not r.passed)
        stream.write(f"{len(checks) - failed} passed, {failed} failed\n")
    if snapshot.stop is not None:
        stream.write(f"\n{stop_text(snapshot.stop)}\n")
    stream.write(f"{verdict(snapshot, checks)}\n")
    stream.flush()


def capacity_text(search: CapacityResult) -> str:
    """``mpswarm capacity``: every step, then the rate found (or why none was)."""
    rows = [
        [f"{s.rate:.1f}", f"{s.achieved_rps:.1f}", format_ms(s.p50_ms), format_ms(s.p95_ms),
         format_ms(s.p99_ms), f"{s.fail_ratio:.4f}", str(s.dropped), "saturated" if s.saturated
         else ("held" if s.passed else "failed: " + ", ".join(s.failed_checks))]
        for s in search.steps
    ]  # fmt: skip
    headers = ["Rate /s", "Achieved /s", "p50", "p95", "p99", "Fail ratio", "Dropped", "Step"]
    text = "\nCapacity search (each step judged on its second half; times in ms):\n"
    text += tabulate(rows, headers=headers, disable_numparse=True) + "\n"
    found = search.capacity_rps
    if search.generator_limited:
        text += (
            "The load generator was the limit first (saturated, or iterations dropped for want "
            "of a free user): add --processes or hosts, or raise --max-users."
        )
        text += f" Every check held up to {found:.1f}/s.\n" if found is not None else "\n"
    elif found is None:
        text += f"No step held {' and '.join(search.checks)}.\n"
    else:
        failed = search.lowest_failed_rps
        above = f" (failed at {failed:.1f}/s)" if failed is not None else " (the --max asked for)"
        text += f"Capacity: {found:.1f}/s{above} with {' and '.join(search.checks)}.\n"
    return text


def busiest(endpoints: tuple[EndpointStats, ...], limit: int) -> list[EndpointStats]:
    """The ``limit`` rows with the most requests (and the overflow row), in their own order."""
    if len(endpoints) <= limit:
        return list(endpoints)
    ranked = sorted(range(len(endpoints)), key=lambda i: -endpoints[i].requests)
    kept = set(ranked[:limit])
    kept.update(i for i, row in enumerate(endpoints) if row.method == OVERFLOW_METHOD)
    return [endpoints[i] for i in sorted(kept)]


def open_model_text(snapshot: Snapshot) -> str:
    """Open model: iterations, dropped ones, and the uncorrected percentiles of all requests."""
    text = (
        f"\nOpen model: {snapshot.iterations} iterations started, {snapshot.dropped} dropped "
        f"({snapshot.dropped_ratio:.2%} of {snapshot.scheduled} scheduled). Response times "
        "above are corrected: from each iteration's scheduled start.\n"
    )
    raw = snapshot.total.uncorrected
    if raw is not None and raw.requests:
        p50, p95, p99 = raw.percentiles([50.0, 95.0, 99.0])
        text += (
            f"Uncorrected (from the send): median {format_ms(p50)}, p95 {format_ms(p95)}, "
            f"p99 {format_ms(p99)}, max {format_ms(raw.max_ms)} ms.\n"
        )
    delay = snapshot.start_delay
    if delay is not None and delay.requests:
        d50, d99 = delay.percentiles([50.0, 99.0])
        text += (
            f"Start delay (scheduled start to a user beginning it): median {format_ms(d50)}, "
            f"p99 {format_ms(d99)}, max {format_ms(delay.max_ms)} ms.\n"
        )
    return text


def _align(headers: list[str]) -> tuple[str, ...]:
    return ("left", "left", *("right",) * (len(headers) - 2))


def _where(traceback_text: str) -> str:
    """The innermost 'File ..., line N' of a traceback, shortened."""
    lines = [
        line.strip() for line in traceback_text.splitlines() if line.strip().startswith("File ")
    ]
    return lines[-1] if lines else ""
