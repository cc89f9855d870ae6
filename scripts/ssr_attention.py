"""Does the SSR's spatial attention survive the change from its training crops to whole frames?

On held-out renders (low-res 32 -> 128), PSNR/SSIM against the render at 128 of:
- whole: the SSR on the whole frame (what the product does; attention sees 4x the tokens it
  was trained on at every attention level);
- tiles: the SSR on the four quarters of the low-res clip, the size it was trained on, stitched;
- whole, no self-attention: the whole frame with every spatial self-attention branch switched off
  (its output projection zeroed; cross-attention to the text kept);
- tiles, no self-attention.
If whole >= tiles, attention is not hurt by the larger field; the "no self-attention" rows say
how much it contributes at all.

    python scripts/ssr_attention.py --ssr lumiere_cli/shipped [--n 8]
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from lumiere_cli.cascade.evaluate import held_out_pairs
from lumiere_cli.cascade.measure import psnr, ssim
from lumiere_cli.cascade.sample import SSROptions, upscale
from lumiere_cli.cascade.weights import load_ssr
from lumiere_cli.nn.layers import SpatialAttention


def tiled(ssr, low: np.ndarray, text: str, seed: int, opts: SSROptions) -> np.ndarray:
    t, h, w, _ = low.shape
    f = ssr.config.factor
    out = np.zeros((t, h * f, w * f, 3), np.uint8)
    for y in (0, h // 2):
        for x in (0, w // 2):
            tile = np.ascontiguousarray(low[:, y:y + h // 2, x:x + w // 2])
            out[:, y * f:(y + h // 2) * f, x * f:(x + w // 2) * f] = upscale(ssr, tile, text, seed=seed, options=opts).frames
    return out


def without_self_attention(ssr):
    ablated = copy.deepcopy(ssr)
    with torch.no_grad():
        for m in ablated.modules():
            if isinstance(m, SpatialAttention):
                m.out_self.weight.zero_()
                m.out_self.bias.zero_()
    return ablated


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ssr", default="lumiere_cli/shipped")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ssr = load_ssr(args.ssr)
    ablated = without_self_attention(ssr)
    cfg = ssr.config
    pairs = held_out_pairs(args.n, args.seed, frames=16, size=cfg.size, factor=cfg.factor)
    opts = SSROptions(steps=args.steps)
    runs = {
        "whole frame": lambda lo, t, s: upscale(ssr, lo, t, seed=s, options=opts).frames,
        "tiles of the training size": lambda lo, t, s: tiled(ssr, lo, t, s, opts),
        "whole frame, no self-attention": lambda lo, t, s: upscale(ablated, lo, t, seed=s, options=opts).frames,
        "tiles, no self-attention": lambda lo, t, s: tiled(ablated, lo, t, s, opts),
    }
    print(f"{args.n} held-out clips, {cfg.size} -> {cfg.out_size}; trained on {cfg.crop}x{cfg.crop} crops\n")
    print("| SSR on | PSNR (dB) | SSIM |")
    print("|---|---|---|")
    for name, run in runs.items():
        outs = [run(lo, text, args.seed + k) for k, (lo, _, text) in enumerate(pairs)]
        p = np.mean([psnr(o, hi) for o, (_, hi, _) in zip(outs, pairs)])
        s = np.mean([ssim(o, hi) for o, (_, hi, _) in zip(outs, pairs)])
        print(f"| {name} | {p:.2f} | {s:.4f} |", flush=True)


if __name__ == "__main__":
    main()
