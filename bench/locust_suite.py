"""Run Locust's own user-facing unit tests against mpswarm and print the pass table.

    python bench/locust_suite.py --locust-src PATH [--files test_http ...] [--failures]

PATH is a Locust source tree (a clone of github.com/locustio/locust, 2.46.3 or later); its
code is never copied here. The test files run unchanged, with pytest, in their own virtualenv
(bench/.suite-venv: mpswarm, editable, plus what Locust's test helpers import: flask,
requests, cryptography, geventhttpclient, pyquery), with ``mpswarm.use_as_locust()`` called
before anything imports ``locust``. Only ``locust.test`` (the tests' own helpers: a Flask app,
a logging mock) is read from PATH; every other ``locust`` module is mpswarm's.

Every test talks to a server on 127.0.0.1 that the test starts itself. The script prints one
row per file (passed, failed, errors, skipped) and the total, and with ``--failures`` the
first line of each failure. Exit code: 0 when the pass ratio reaches ``--target`` (0.95).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV = BENCH / ".suite-venv"
#: Locust's test files for the user-facing API (users, tasks, waits, clients, debugging).
FILES = (
    "test_locust_class",
    "test_tags",
    "test_wait_time",
    "test_sequential_taskset",
    "test_markov_taskset",
    "test_interruptable_task",
    "test_users",
    "test_debugging",
    "test_http",
    "test_fasthttp",
)
#: Tests that reach servers on the internet (expired.badssl.com): never run here (load and
#: lookups go to loopback only), reported as not run.
INTERNET_ONLY = (
    "test_http.py::TestHttpSession::test_verify_false_succeeds_with_bad_cert",
    "test_http.py::TestHttpSession::test_verify_true_fails_with_bad_cert",
)
#: What Locust's test helpers (testcases.py, util.py) and the test files import.
TEST_DEPS = (
    "flask",
    "requests",
    "cryptography",
    "geventhttpclient",
    "pyquery",
    "pytest",
    "pytest-timeout",
)


def suite_python() -> Path:
    """The suite's virtualenv interpreter, created (and mpswarm installed) on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-e", str(ROOT), *TEST_DEPS], check=True
        )
    return python


def run_suite(python: Path, src: Path, files: list[str], report: Path, timeout: int) -> int:
    """Run pytest over the files; the JUnit XML goes to ``report``."""
    paths = [str(src / "locust" / "test" / f"{name}.py") for name in files]
    with tempfile.TemporaryDirectory(prefix="mpswarm-suite-") as tmp:
        ini = Path(tmp) / "pytest.ini"  # Locust's own pytest settings stay out of it
        ini.write_text("[pytest]\n")
        env = {
            **os.environ,
            "PYTHONPATH": str(BENCH),
            "MPSWARM_LOCUST_SRC": str(src),
            "MPSWARM_SUITE_DESELECT": "\n".join(INTERNET_ONLY),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        command = [
            str(python),
            "-m",
            "pytest",
            "-p",
            "_locust_suite_plugin",
            "-c",
            str(ini),
            "--rootdir",  # test ids as in Locust's tree: locust/test/test_http.py::...
            str(src),
            "-q",
            "--continue-on-collection-errors",
            "--timeout=60",  # a test that hangs fails alone
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            *paths,
        ]
        return subprocess.run(command, env=env, cwd=tmp, timeout=timeout).returncode


def tally(report: Path) -> dict[str, dict[str, list[str]]]:
    """Per file: the ids of the tests that passed, failed, errored or were skipped."""
    results: dict[str, dict[str, list[str]]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        # A file that failed to import is one case named after its module.
        module = (case.get("classname") or case.get("name", "")).split(".")
        name = next((part for part in module if part.startswith("test_")), "?")
        outcome, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "errors"}.get(child.tag, child.tag)
                detail = (child.get("message") or "").splitlines()[0:1]
                detail = detail[0][:160] if detail else ""
                break
        entry = results.setdefault(name, {"passed": [], "failed": [], "errors": [], "skipped": []})
        entry[outcome].append(f"{module[-1]}.{case.get('name')}: {detail}".rstrip(": "))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locust-src", required=True, type=Path, help="a Locust source tree")
    parser.add_argument("--files", nargs="+", default=list(FILES), help="test files (no .py)")
    parser.add_argument("--failures", action="store_true", help="list each failing test")
    parser.add_argument("--target", type=float, default=0.95, help="pass ratio to reach")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds for the whole suite")
    args = parser.parse_args()
    src = args.locust_src.resolve()
    if not (src / "locust" / "test" / "testcases.py").exists():
        print(f"error: {src} is not a Locust source tree (no locust/test/testcases.py)")
        return 2
    python = suite_python()
    with tempfile.TemporaryDirectory(prefix="mpswarm-suite-") as tmp:
        report = Path(tmp) / "report.xml"
        run_suite(python, src, args.files, report, args.timeout)
        if not report.exists():
            print("error: pytest wrote no report (see its output above)")
            return 2
        results = tally(report)
    print(f"\n{'file':<26} {'passed':>7} {'failed':>7} {'errors':>7} {'skipped':>8}")
    totals = dict.fromkeys(("passed", "failed", "errors", "skipped"), 0)
    for name in args.files:
        entry = results.get(name, {})
        counts = {key: len(entry.get(key, [])) for key in totals}
        for key, value in counts.items():
            totals[key] += value
        print(
            f"{name:<26} {counts['passed']:>7} {counts['failed']:>7} {counts['errors']:>7} "
            f"{counts['skipped']:>8}"
        )
    ran = totals["passed"] + totals["failed"] + totals["errors"]
    ratio = totals["passed"] / ran if ran else 0.0
    print(
        f"{'total':<26} {totals['passed']:>7} {totals['failed']:>7} {totals['errors']:>7} "
        f"{totals['skipped']:>8}   pass ratio {ratio:.1%} (of tests run)"
    )
    print(f"not run (they need the internet): {', '.join(INTERNET_ONLY)}")
    if args.failures:
        labels = {"failed": "FAILED", "errors": "ERROR", "skipped": "SKIPPED"}
        for name in args.files:
            for outcome, label in labels.items():
                for line in results.get(name, {}).get(outcome, []):
                    print(f"  {label:<7} {name}::{line}")
    return 0 if ratio >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
