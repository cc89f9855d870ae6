"""Do clips jump where the SSR's temporal windows meet? The base model makes clips at 32x32, the
SSR enlarges them over windows of its trained length (overlap 2 asked; `window_starts` spreads
them evenly), once with MultiDiffusion's per-step average and once pasting each window's estimate
over the previous ones. Printed: the mean squared difference (0-255 RGB) between adjacent frames
that straddle a window's start or end, and between the other adjacent frames.

    python scripts/ssr_windows.py --base lumiere_cli/shipped --ssr lumiere_cli/shipped [--n 8 --frames 16]
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch

from lumiere_cli.cascade.measure import adjacent_msd, window_boundaries
from lumiere_cli.cascade.sample import SSROptions, upscale
from lumiere_cli.cascade.weights import load_ssr
from lumiere_cli.pipeline import generate
from lumiere_cli.weights import load_model
from lumiere_cli.world.render import sample_spec
from lumiere_cli.world.vocab import caption


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="lumiere_cli/shipped")
    ap.add_argument("--ssr", default="lumiere_cli/shipped")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--noise", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base, ssr = load_model(args.base), load_ssr(args.ssr)
    rng = random.Random(f"ssr-windows-{args.seed}")
    opts = SSROptions(steps=args.steps, noise=args.noise, window=args.window).resolve(ssr)
    at = window_boundaries(args.frames, opts.window, opts.overlap)
    inside = [k for k in range(args.frames - 1) if k not in at]
    msd = {True: [], False: []}
    for k in range(args.n):
        prompt = caption(sample_spec(rng, "all"))
        from lumiere_cli.config import SampleOptions

        low = generate(base, prompt, seed=args.seed + k, options=SampleOptions(frames=args.frames)).frames
        for average in (True, False):
            out = upscale(ssr, low, prompt, seed=args.seed + k, options=SSROptions(
                steps=args.steps, noise=args.noise, window=args.window, average=average)).frames
            msd[average].append(adjacent_msd(out).numpy())
        print(f"{k + 1}/{args.n}: {prompt}", flush=True)
    from lumiere_cli.diffusion.wrappers import window_starts

    print(f"\n{args.n} base clips of {args.frames} frames; SSR windows of {opts.window} starting at "
          f"{window_starts(args.frames, opts.window, opts.overlap)} (overlap {opts.overlap} asked), {opts.steps} "
          f"{opts.sampler} steps, conditioning noise {opts.noise:g}")
    print(f"boundary pairs (k, k+1): {[(k, k + 1) for k in at]}\n")
    print("| windows | MSD at boundaries | MSD inside windows | ratio |")
    print("|---|---|---|---|")
    for average in (True, False):
        m = np.mean(np.stack(msd[average]), axis=0)
        b, i = float(m[at].mean()), float(m[inside].mean())
        print(f"| {'averaged (MultiDiffusion)' if average else 'pasted, no averaging'} | {b:.2f} | {i:.2f} | {b / i:.2f} |")


if __name__ == "__main__":
    main()
