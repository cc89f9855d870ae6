"""Wall time of the default `lumiere t2v` with the cascade, start-up included, as a user runs it:
a fresh process per run. Reports the wall time, the base model's time (generate_s: encode +
denoise at 32x32) and the SSR's (ssr_s: 32 -> 128 over temporal windows) from the --json line,
and the same command with --base-only.

    python scripts/bench_cascade.py [--runs 3 --weights lumiere_cli/shipped --limit 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "a red circle moving left on a black background"


def run(args: list[str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    env = {**os.environ, "LUMIERE_NO_SERVER": "1"}  # fresh processes, even beside a running lumiere serve
    done = subprocess.run([str(Path(sys.executable).with_name("lumiere")), *args], capture_output=True, text=True,
                          env=env)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"lumiere failed ({done.returncode}): {done.stderr.strip()}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--limit", type=float, default=15.0, help="the wall-time target, seconds")
    args = ap.parse_args()
    extra = ["--weights", args.weights] if args.weights else []
    print(f"cpu threads available: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.2f}")
    print("| run | command | wall s | base s (generate_s) | SSR s (ssr_s) | size |")
    print("|---|---|---|---|---|---|")
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.runs):
            for label, flags in (("t2v (cascade)", []), ("t2v --base-only", ["--base-only"])):
                wall, rec = run(["t2v", PROMPT, "--seed", "0", "-o", f"{tmp}/clip.mp4", "--overwrite", "--json",
                                 *flags, *extra])
                t = rec["timings"]
                if not flags:
                    walls.append(wall)
                print(f"| {k + 1} | {label} | {wall:.2f} | {t.get('generate_s', 0):.2f} | "
                      f"{t.get('ssr_s', 0):.2f} | {rec['size'][0]}x{rec['size'][1]} |", flush=True)
    med = statistics.median(walls)
    print(f"\nmedian wall time with the SSR: {med:.2f} s (target {args.limit:g} s: {'met' if med <= args.limit else 'NOT met'}); "
          f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
