"""A fresh recipe in the shipped model's spirit: text -> t2i -> video -> motion -> video again, each
stage resumable (re-run to continue). The stages that actually produced the shipped weights are
data: plans/shapes.json (`lumiere train --plan plans/shapes.json`).

    python scripts/train_shapes.py --out runs/shapes [--text-steps N --t2i-steps N --video-steps N
                                                      --motion-steps N --polish-steps N]

The "motion" stage trains the temporal layers at high noise only (sigma 10-80), where the caption
alone decides which way the object goes, on the four translations only, with posterior-mean
targets and clips paired with their reversals (TrainConfig.sigma_range, motions, reference_clips,
reversed_pairs); "polish" goes back to every motion and the whole schedule.

To continue from trained weights, skip the stages they already have (each stage draws its own data
stream, seed + stage index). E.g. t2i and video stages of the step counts of runs/s2 in
plans/shapes.json (2026-11-24), on the shipped weights:
    --init lumiere_cli/shipped --text-steps 0 --t2i-steps 4000 --video-steps 2200 --motion-steps 0 --polish-steps 0

On an accelerator (scripts/device_train.sh): bigger batches, the same steps, e.g.
    --device cuda --batch-scale 8 --lr-scale 2

Under torchrun every process runs this script; rank 0 writes. Progress lines go to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from lumiere_cli.config import TrainConfig
from lumiere_cli.train import train

TRANSLATIONS = ("moving left", "moving right", "moving up", "moving down")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/shapes")
    ap.add_argument("--text-steps", type=int, default=600)
    ap.add_argument("--t2i-steps", type=int, default=4000)
    ap.add_argument("--video-steps", type=int, default=2500)
    ap.add_argument("--motion-steps", type=int, default=1750)
    ap.add_argument("--polish-steps", type=int, default=600)
    ap.add_argument("--unfrozen-steps", type=int, default=0)
    ap.add_argument("--init", default=None, help="weights to start the first stage from")
    ap.add_argument("--seed", type=int, default=0, help="data seed (stage k uses seed + k)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-scale", type=int, default=1,
                    help="every stage's batch times this (an accelerator: 8-16); steps stay as given")
    ap.add_argument("--lr-scale", type=float, default=1.0, help="every stage's peak learning rate times this")
    ap.add_argument("--workers", type=int, default=2, help="data processes per training process")
    args = ap.parse_args()
    rank0 = os.environ.get("RANK", "0") == "0"
    t0 = time.time()

    def log(stage):
        def progress(phase, step, total, **m):
            if m and rank0:
                print(f"[{(time.time() - t0) / 60:6.1f} min] {stage} {step}/{total} "
                      + " ".join(f"{k}={v:.4g}" for k, v in m.items()), flush=True)
        return progress

    motion = dict(ema_decay=0.995, batch_size=16, reversed_pairs=1.0, reference_clips=32)
    plan = [
        ("text", "text", args.text_steps, dict(batch_size=128, lr=1e-3, warmup=50)),
        ("t2i", "t2i", args.t2i_steps, dict(batch_size=64, lr=6e-4, warmup=200)),
        ("video", "video", args.video_steps, dict(batch_size=16, lr=5e-4, warmup=100)),
        ("motion", "video", args.motion_steps, dict(motion, lr=1e-3, warmup=30, sigma_range=(10.0, 80.0),
                                                     motions=TRANSLATIONS)),
        ("polish", "video", args.polish_steps, dict(motion, lr=3e-4, warmup=30)),
        ("video-unfrozen", "video-unfrozen", args.unfrozen_steps, dict(batch_size=16, lr=1e-4, warmup=50)),
    ]
    init = args.init
    for k, (name, stage, steps, kw) in enumerate(plan):
        if steps <= 0:
            continue
        kw = dict(kw, batch_size=kw["batch_size"] * args.batch_scale, lr=kw["lr"] * args.lr_scale)
        cfg = TrainConfig(stage=stage, out_dir=f"{args.out}/{name}", init=init,
                          steps=steps, device=args.device, log_every=25, checkpoint_every=250,
                          seed=args.seed + k, workers=args.workers, **kw)
        init = str(train(cfg, progress=log(name)))
        if rank0:
            print(f"stage {name} done: {init}", flush=True)
    if rank0:
        print(f"final weights: {init}", file=sys.stderr)


if __name__ == "__main__":
    main()
