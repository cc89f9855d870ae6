"""Tune a model's noise levels for sampling in few steps: the levels whose clips, from the same
noise, come closest to the model's own clips at more steps. The strict eval then judges them;
`scripts/ship_weights.py --sample-sigmas` stores them in the weights (DiffusionConfig.sample_sigmas).

    python scripts/tune_schedule.py [--weights W] [--steps 10] [--reference-steps 25] [--clips 32]
                                    [--seed 778] [--start LEVELS] [--deltas 0.3,0.15,0.08] [--threads N]

Coordinate descent in log sigma (after "Align Your Steps", Sabour et al. 2024, which fits the
levels to a model instead of taking them from a formula): each level after sigma_max in turn moves
by a factor exp(+-delta) while the mean squared pixel difference (0-255) to the reference clips
falls; then delta shrinks. The prompts are the strict eval's, drawn from another seed, half held
in and half held out. Prints every improvement and, last, the levels as one comma-separated line.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lumiere_cli.config import SampleOptions  # noqa: E402
from lumiere_cli.diffusion import get_sigmas  # noqa: E402
from lumiere_cli.eval import draw_specs, generate_clips  # noqa: E402
from lumiere_cli.weights import load_model  # noqa: E402


def levels_text(levels) -> str:
    return ",".join(f"{v:.4g}" for v in levels)


def descend(error, start: list[float], deltas: list[float], sigma_min: float, log=print) -> tuple[list[float], float]:
    """Coordinate descent of `error(levels)` from `start` (its first level stays put): returns the
    best levels and their error. Levels stay strictly decreasing and at least `sigma_min`."""
    best, e_best = list(start), error(start)
    log(f"start {levels_text(best)}  error {e_best:.2f}")
    for delta in deltas:
        improved = True
        while improved:
            improved = False
            for i in range(1, len(best)):
                for sign in (1, -1):
                    cand = list(best)
                    cand[i] = best[i] * math.exp(sign * delta)
                    if cand[-1] < sigma_min or any(a <= b for a, b in zip(cand, cand[1:])):
                        continue
                    e = error(cand)
                    if e < e_best:
                        best, e_best, improved = cand, e, True
                        log(f"delta {delta:g}, level {i}: {levels_text(best)}  error {e_best:.2f}")
                        break
    return best, e_best


def cosine_levels(model, steps: int) -> list[float]:
    """The shifted cosine's levels at `steps` on the model's sampling shift (not its tuned levels),
    without the 0 the sampler appends."""
    d = model.config.diffusion
    return [float(v) for v in get_sigmas(steps, replace(d, schedule_shift=d.sampling_schedule_shift))[:-1]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reference-steps", type=int, default=25)
    ap.add_argument("--clips", type=int, default=32, help="clips per error (half held-in, half held-out prompts)")
    ap.add_argument("--seed", type=int, default=778, help="draws the prompts; clip k uses noise seed 5000 + k")
    ap.add_argument("--start", default=None, help="comma-separated levels to start from (default: the shifted cosine)")
    ap.add_argument("--deltas", default="0.3,0.15,0.08")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model(args.weights)
    specs = draw_specs(max(1, args.clips // 2), args.seed)
    specs = specs["held_in"] + specs["held_out"]

    def clips(options: SampleOptions) -> np.ndarray:
        out = generate_clips(model, specs, seed=5000, options=options, batch_size=len(specs))
        return np.stack(out).astype(np.float32)

    t = time.perf_counter()
    reference = clips(SampleOptions(steps=args.reference_steps))
    print(f"{len(specs)} reference clips at {args.reference_steps} steps in {time.perf_counter() - t:.0f} s", flush=True)
    if args.start:
        start = [float(v) for v in args.start.split(",")]
    else:
        start = cosine_levels(model, args.steps)
    best, error = descend(lambda levels: float(((clips(SampleOptions(sigmas=tuple(levels))) - reference) ** 2).mean()),
                          start, [float(d) for d in args.deltas.split(",")], model.config.diffusion.sigma_min,
                          log=lambda line: print(line, flush=True))
    print(f"mean squared difference {error:.2f} (0-255) against {args.reference_steps} steps")
    print(levels_text(best))


if __name__ == "__main__":
    main()
