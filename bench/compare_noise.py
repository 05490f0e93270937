"""How often ``mpswarm compare`` calls noise a regression, and how often it finds a real one.

    python bench/compare_noise.py [--pairs 10] [--seconds 3] [--threshold 10]

Against the demo target on 127.0.0.1 (started here): ``--pairs`` pairs of runs of the same
configuration (FastHttpUser, 4 users, ``/slow?ms=20``), each pair compared with
``--check 'p95 < +THRESHOLD%'``; and as many pairs where the second run's target answers after
30 ms instead of 20. Prints how many same-configuration pairs failed the check (false
positives) and how many were merely *significant* (the interval excluded 0: a difference
sampling noise does not explain, usually the machine's own drift), and how many 20 -> 30 ms
pairs failed it (detections).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = """
import os
from mpswarm import FastHttpUser, constant, task

class Slow(FastHttpUser):
    wait_time = constant(0)

    @task
    def slow(self):
        self.client.get("/slow?ms=" + os.environ["SLOW_MS"], name="slow")
"""


def _run(folder: Path, url: str, ms: int, seconds: int, label: str) -> Path:
    path = folder / f"{label}.json"
    subprocess.run(
        [sys.executable, "-m", "mpswarm", "-f", str(folder / "slow.py"), "-H", url,
         "--headless", "-u", "4", "-r", "100", "-t", f"{seconds}s", "--only-summary",
         "--json-file", str(path)],
        check=True, capture_output=True, cwd=ROOT, env={**_env(), "SLOW_MS": str(ms)},
    )  # fmt: skip
    return path


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("MPSWARM_")}


def _compare(base: Path, new: Path, threshold: float, out: Path) -> dict:
    subprocess.run(
        [sys.executable, "-m", "mpswarm", "compare", str(base), str(new), "--check",
         f"slow: p95 < +{threshold:g}%", "--json", str(out)],
        capture_output=True, cwd=ROOT, env=_env(),
    )  # fmt: skip
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mpswarm-compare-") as tmp:
        folder = Path(tmp)
        (folder / "slow.py").write_text(LOCUSTFILE)
        server = subprocess.Popen(
            [sys.executable, "-m", "mpswarm", "serve", "--port", "0"],
            stdout=subprocess.PIPE, text=True, cwd=ROOT, env=_env(),
        )  # fmt: skip
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split(" on ", 1)[1].strip()
            false_pos = significant = detected = 0
            changes = []
            for i in range(args.pairs):
                base = _run(folder, url, 20, args.seconds, f"base{i}")
                same = _run(folder, url, 20, args.seconds, f"same{i}")
                slower = _run(folder, url, 30, args.seconds, f"slower{i}")
                noise = _compare(base, same, args.threshold, folder / f"c{i}.json")
                check = noise["checks"][0]
                false_pos += not check["passed"]
                significant += bool(check["change"]["significant"])
                changes.append(check["change"]["change"])
                real = _compare(base, slower, args.threshold, folder / f"d{i}.json")
                detected += not real["checks"][0]["passed"]
                print(f"pair {i}: same config p95 {check['change']['change']:+.1%} "
                      f"({'FAILED' if not check['passed'] else 'passed'}), "
                      f"20 -> 30 ms p95 {real['checks'][0]['change']['change']:+.1%}",
                      flush=True)  # fmt: skip
        finally:
            server.terminate()
            server.wait()
    print(f"same configuration: {false_pos} of {args.pairs} pairs failed 'p95 < "
          f"+{args.threshold:g}%' (false positives), {significant} significant; p95 changes "
          f"{min(changes):+.1%} .. {max(changes):+.1%}")  # fmt: skip
    print(f"20 -> 30 ms: {detected} of {args.pairs} pairs failed it (detections)")


if __name__ == "__main__":
    main()
