"""The cheap levers on a trained model, scored by the strict eval: sampler, step count, guidance
scale and schedule shift, each changed alone from the model's recommended settings.

Every setting generates the same prompts and seeds as `lumiere eval --n N --seed S` (the clips of
a smaller N are the first clips of a larger one), so the "default" row is `lumiere eval`'s. Clips
are cached as uint8 arrays under --cache (one .npz per setting and split), so a second run only
scores; --generate-only fills the cache without scoring.

    OMP_NUM_THREADS=1 python scripts/eval_levers.py --n 40 --cache /tmp/levers
    python scripts/eval_levers.py --n 40 --cache /tmp/levers --settings default,dpmpp-2m --json-out levers.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

# name -> SampleOptions fields; None fields are the model's recommendation.
SETTINGS: dict[str, dict] = {
    "default": {},
    "dpmpp-2m": {"sampler": "dpmpp-2m"},
    "steps-10": {"steps": 10},
    "steps-50": {"steps": 50},
    "guidance-1": {"guidance": 1.0},
    "guidance-1.5": {"guidance": 1.5},
    "guidance-5": {"guidance": 5.0},
    "guidance-7": {"guidance": 7.0},
    # the scale below noise 1 alone (guidance 3 above it; "guidance-low-3": one scale throughout)
    "guidance-low-1": {"guidance_low": 1.0},
    "guidance-low-1.5": {"guidance_low": 1.5},
    "guidance-low-2": {"guidance_low": 2.0},
    "guidance-low-3": {"guidance_low": 3.0},
    "steps-10-guidance-low-1.5": {"steps": 10, "guidance_low": 1.5},
    "guidance-2-low-1": {"guidance": 2.0, "guidance_low": 1.0},
    "guidance-5-low-1": {"guidance": 5.0, "guidance_low": 1.0},
    "shift-1": {"schedule_shift": 1.0},
    "shift-4": {"schedule_shift": 4.0},
    "eta-1": {"eta": 1.0},
}


def cached_clips(model, name: str, fields: dict, n: int, seed: int, cache: Path, batch_size: int) -> dict[str, np.ndarray]:
    """{split: uint8 (n, t, h, w, 3)} for one setting, generated where the cache lacks them."""
    from lumiere_cli.config import SampleOptions
    from lumiere_cli.eval import draw_specs, generate_clips

    out = {}
    for split, specs in draw_specs(n, seed).items():
        path = cache / f"{name}_{split}_seed{seed}.npz"
        if path.exists():
            held = np.load(path)["frames"]
            if len(held) >= n:
                out[split] = held[:n]
                continue
        start = time.perf_counter()
        clips = generate_clips(model, specs, seed=seed, options=SampleOptions(**fields), batch_size=batch_size)
        out[split] = np.stack(clips)
        np.savez_compressed(path, frames=out[split])
        print(f"{name} {split}: {n} clips in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40, help="clips per split")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of: {', '.join(SETTINGS)}")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/levers"))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--report", type=Path, default=None,
                    help="also write the first setting's contact sheets and HTML page here (as lumiere eval --report)")
    args = ap.parse_args()
    names = [s for s in args.settings.split(",") if s]
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        sys.exit(f"error: unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    args.cache.mkdir(parents=True, exist_ok=True)

    from lumiere_cli.weights import load_model

    model = load_model(args.weights)
    results = {}
    for name in names:
        clips = cached_clips(model, name, SETTINGS[name], args.n, args.seed, args.cache, args.batch_size)
        if args.generate_only:
            continue
        from lumiere_cli.eval import draw_specs, score_split

        specs = draw_specs(args.n, args.seed)
        results[name] = {split: score_split(list(clips[split]), specs[split]) for split in specs}
    if args.generate_only:
        return
    from lumiere_cli.eval import summary_markdown

    print(summary_markdown(results))
    if args.report is not None:
        from lumiere_cli.eval import draw_specs, report_from_clips
        from lumiere_cli.eval_report import write_report

        first = names[0]
        clips = cached_clips(model, first, SETTINGS[first], args.n, args.seed, args.cache, args.batch_size)
        report = report_from_clips({k: list(v) for k, v in clips.items()}, draw_specs(args.n, args.seed),
                                   seed=args.seed, options={"setting": first, **SETTINGS[first]}, keep_clips=True)
        print(f"report: {write_report(report, args.report)[0]}", file=sys.stderr)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps({"n": args.n, "seed": args.seed, "settings": {k: SETTINGS[k] for k in names},
                                             "results": results}, indent=1))


if __name__ == "__main__":
    main()
