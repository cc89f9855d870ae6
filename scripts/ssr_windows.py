"""Do clips jump where the SSR's temporal windows meet?

The SSR enlarges a clip over windows of its trained length (overlap 2 asked; `window_starts`
spreads them evenly), once with MultiDiffusion's per-step average and once pasting each window's
estimate over the previous ones at every step; and, as the paper's baseline without
MultiDiffusion, each window enlarged on its own and the windows stitched. Printed, as mean squared differences (0-255 RGB) between adjacent
frames that straddle a window's start or end against the other adjacent frames:
- the output itself, and the input enlarged by bicubic (the motion the clip already has: the base
  model's clips move in steps of its 4-frame temporal blocks, which the windows here line up with);
- the SSR's own part, output minus the bicubic input: what the SSR adds frame by frame. A window
  seam is a change of that part at a boundary.

    python scripts/ssr_windows.py --ssr lumiere_cli/shipped [--source base|renders --n 8 --frames 16]
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch

from lumiere_cli.cascade.evaluate import held_out_pairs
from lumiere_cli.cascade.measure import adjacent_msd, enlarge_pil, window_boundaries
from lumiere_cli.cascade.options import SSROptions
from lumiere_cli.cascade.sample import upscale
from lumiere_cli.cascade.weights import load_ssr
from lumiere_cli.diffusion.wrappers import window_starts


def low_res_clips(args, ssr):
    """(uint8 (t, h, w, 3) clip, caption) pairs: the base model's clips or held-out renders."""
    if args.source == "renders":
        pairs = held_out_pairs(args.n, args.seed, frames=args.frames, size=ssr.config.size, factor=1)
        yield from ((low, text) for low, _, text in pairs)
        return
    from lumiere_cli.config import SampleOptions
    from lumiere_cli.pipeline import generate
    from lumiere_cli.weights import load_model
    from lumiere_cli.world.render import sample_spec
    from lumiere_cli.world.vocab import caption

    base = load_model(args.base)
    rng = random.Random(f"ssr-windows-{args.seed}")
    for k in range(args.n):
        prompt = caption(sample_spec(rng, "all"))
        yield generate(base, prompt, seed=args.seed + k, options=SampleOptions(frames=args.frames)).frames, prompt


def independent_windows(ssr, low: np.ndarray, prompt: str, seed: int, opts) -> np.ndarray:
    """Each window enlarged by its own call, a later window's frames replacing an earlier's."""
    out = None
    for s in window_starts(len(low), opts.window, opts.overlap):
        part = upscale(ssr, low[s:s + opts.window], prompt, seed=seed + 7919 * s, options=SSROptions(
            steps=opts.steps, noise=opts.noise, window=opts.window)).frames
        out = np.zeros((len(low), *part.shape[1:]), part.dtype) if out is None else out
        out[s:s + opts.window] = part
    return out


def ratio_row(name: str, msds: list[np.ndarray], at: list[int], inside: list[int]) -> str:
    m = np.mean(np.stack(msds), axis=0)
    b, i = float(m[at].mean()), float(m[inside].mean())
    return f"| {name} | {b:.2f} | {i:.2f} | {b / i:.2f} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="lumiere_cli/shipped")
    ap.add_argument("--ssr", default="lumiere_cli/shipped")
    ap.add_argument("--source", choices=("base", "renders"), default="base")
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
    ssr = load_ssr(args.ssr)
    opts = SSROptions(steps=args.steps, noise=args.noise, window=args.window).resolve(ssr)
    at = window_boundaries(args.frames, opts.window, opts.overlap)
    inside = [k for k in range(args.frames - 1) if k not in at]
    rows: dict[str, list[np.ndarray]] = {}
    add = lambda name, clip: rows.setdefault(name, []).append(adjacent_msd(clip).numpy())  # noqa: E731
    for k, (low, prompt) in enumerate(low_res_clips(args, ssr)):
        bicubic = enlarge_pil(np.asarray(low), ssr.config.factor, "bicubic").astype(np.float64)
        add("input, bicubic", bicubic)
        for average in (True, False):
            out = upscale(ssr, low, prompt, seed=args.seed + k, options=SSROptions(
                steps=args.steps, noise=args.noise, window=args.window, average=average)).frames
            label = "averaged (MultiDiffusion)" if average else "pasted, no averaging"
            add(f"output, {label}", out)
            add(f"SSR's part (output - bicubic), {label}", np.asarray(out, dtype=np.float64) - bicubic)
        alone = independent_windows(ssr, np.asarray(low), prompt, args.seed + k, opts)
        add("output, windows enlarged independently", alone)
        add("SSR's part (output - bicubic), windows enlarged independently", alone.astype(np.float64) - bicubic)
        print(f"{k + 1}/{args.n}: {prompt}", flush=True)
    print(f"\n{args.n} {args.source} clips of {args.frames} frames; SSR windows of {opts.window} starting at "
          f"{window_starts(args.frames, opts.window, opts.overlap)} (overlap {opts.overlap} asked), {opts.steps} "
          f"{opts.sampler} steps, conditioning noise {opts.noise:g}")
    print(f"boundary pairs (k, k+1): {[(k, k + 1) for k in at]}\n")
    print("| adjacent frames of | MSD at boundaries | MSD inside windows | ratio |")
    print("|---|---|---|---|")
    for name, msds in rows.items():
        print(ratio_row(name, msds, at, inside))


if __name__ == "__main__":
    main()
