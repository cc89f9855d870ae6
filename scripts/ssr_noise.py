"""How the SSR's conditioning noise (--ssr-noise) trades fidelity against sharpness.

For each level: on held-out renders, PSNR/SSIM of SSR(render at 32) against the render at 128;
on base-model clips, fidelity to the input (PSNR of the output averaged back down to 32 against
the base's clip), edge width (pixels at 128; renders ~1) and background grain (the detector's,
0-255) of the output, and the detector's all-correct rate on it.

    python scripts/ssr_noise.py --base lumiere_cli/shipped --ssr lumiere_cli/shipped [--levels 0,0.05,0.1,0.2,0.3 --n 8]
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch
import torch.nn.functional as F

from lumiere_cli.cascade.evaluate import held_out_pairs
from lumiere_cli.cascade.measure import edge_width, psnr, ssim
from lumiere_cli.cascade.sample import SSROptions, upscale
from lumiere_cli.cascade.weights import load_ssr
from lumiere_cli.config import SampleOptions
from lumiere_cli.pipeline import generate
from lumiere_cli.weights import load_model
from lumiere_cli.world.detect import detect
from lumiere_cli.world.render import sample_spec
from lumiere_cli.world.vocab import caption


def shrink(clip: np.ndarray, factor: int) -> np.ndarray:
    x = torch.from_numpy(clip).permute(0, 3, 1, 2).double()
    return F.avg_pool2d(x, factor).permute(0, 2, 3, 1).numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="lumiere_cli/shipped")
    ap.add_argument("--ssr", default="lumiere_cli/shipped")
    ap.add_argument("--levels", default="0,0.05,0.1,0.2,0.3,0.5")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base, ssr = load_model(args.base), load_ssr(args.ssr)
    f = ssr.config.factor
    renders = held_out_pairs(args.n, args.seed, frames=16, size=ssr.config.size, factor=f)
    rng = random.Random(f"ssr-noise-{args.seed}")
    spec_list = [sample_spec(rng, "all") for _ in range(args.n)]
    prompts = [caption(s) for s in spec_list]
    based = [generate(base, p, seed=args.seed + k, options=SampleOptions()).frames for k, p in enumerate(prompts)]
    base_grain = np.mean([detect(c).grain for c in based])
    print(f"base clips (32x32): grain {base_grain:.1f}, edge width {np.mean([edge_width(c) for c in based]):.2f} px; "
          f"renders at 128: edge width {np.mean([edge_width(h) for _, h, _ in renders]):.2f} px\n")
    print("| noise | renders: PSNR | SSIM | base clips: fidelity to input (dB) | edge width (px) | grain | all correct |")
    print("|---|---|---|---|---|---|---|")
    for level in (float(v) for v in args.levels.split(",")):
        opts = SSROptions(steps=args.steps, noise=level)
        r = [upscale(ssr, lo, text, seed=args.seed + k, options=opts).frames for k, (lo, _, text) in enumerate(renders)]
        p = np.mean([psnr(o, hi) for o, (_, hi, _) in zip(r, renders)])
        s = np.mean([ssim(o, hi) for o, (_, hi, _) in zip(r, renders)])
        outs = [upscale(ssr, c, pr, seed=args.seed + k, options=opts).frames for k, (c, pr) in enumerate(zip(based, prompts))]
        fid = np.mean([psnr(shrink(o, f), c) for o, c in zip(outs, based)])
        width = np.mean([edge_width(o) for o in outs])
        dets = [detect(o) for o in outs]
        grain = np.mean([d.grain for d in dets])
        right = np.mean([all(getattr(d, a) == getattr(sp, a) for a in ("colour", "shape", "motion", "background"))
                         for d, sp in zip(dets, spec_list)])
        print(f"| {level:g} | {p:.2f} | {s:.4f} | {fid:.2f} | {width:.2f} | {grain:.1f} | {right:.0%} |", flush=True)


if __name__ == "__main__":
    main()
