"""PSNR and SSIM of SSR(render at 32) against the render at 128 on held-out world clips, side by
side with bicubic and Lanczos enlargement of the same 8-bit input; also the edge width.

    python scripts/eval_ssr.py --ssr lumiere_cli/shipped [--n 16 --steps 8 --noise 0 --json-out ssr_eval.json]

Exit code 0 when the SSR beats both baselines on both measures, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from lumiere_cli.cascade.evaluate import beats_baselines, fidelity, table
from lumiere_cli.cascade.sample import SSROptions
from lumiere_cli.cascade.weights import load_ssr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ssr", default="lumiere_cli/shipped", help="SSR weights: a file, its folder or a run folder")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--noise", type=float, default=None, help="conditioning augmentation level (default: the SSR's)")
    ap.add_argument("--no-prompt", action="store_true", help="upscale without the clip's caption")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast where the hardware runs it natively")
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ssr = load_ssr(args.ssr)
    t0 = time.perf_counter()
    report = fidelity(ssr, n=args.n, seed=args.seed, frames=args.frames, prompt=not args.no_prompt,
                      options=SSROptions(steps=args.steps, noise=args.noise, bf16=args.bf16),
                      progress=lambda k, n: print(f"{k}/{n} clips", file=sys.stderr, flush=True))
    o = report["options"]
    print(f"{args.n} held-out clips, {args.frames} frames, {ssr.config.size} -> {ssr.config.out_size} px; SSR: "
          f"{o['steps']} {o['sampler']} steps, conditioning noise {o['noise']:g}, windows of {o['window']} "
          f"(overlap {o['overlap']}); {time.perf_counter() - t0:.0f} s")
    print(table(report))
    verdict = beats_baselines(report)
    print("SSR beats bicubic and Lanczos on PSNR and SSIM" if verdict else "SSR does NOT beat both baselines")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1, default=str)
    sys.exit(0 if verdict else 1)


if __name__ == "__main__":
    main()
