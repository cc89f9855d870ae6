"""The SSR recipe: frames first, then the temporal layers on clips (optionally all of the U-Net),
each stage resumable (re-run to continue; a finished stage is skipped).

    python scripts/train_ssr.py --out runs/ssr --text-from lumiere_cli/shipped \
        [--frames-steps N --video-steps N --unfrozen-steps N --threads 1] [--restore 0.5]

The SSR copies the base model's text encoder (frozen) from --text-from. With --restore, that share
of the low-res inputs is the base model's own estimate of the render (SSRTrainConfig.restore), so
the SSR learns to enlarge the base's drawings into renders. Progress lines go to stdout.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lumiere_cli.cascade.header import read_ssr_info
from lumiere_cli.cascade.train import SSRTrainConfig, train_ssr
from lumiere_cli.errors import WeightsError


def steps_done(out_dir: str) -> int:
    try:
        records = [r for r in read_ssr_info(out_dir).card.get("training", []) if r.get("out_dir") == out_dir]
    except WeightsError:
        return 0
    return int(records[-1]["steps"]) if records else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/ssr")
    ap.add_argument("--text-from", default="lumiere_cli/shipped")
    ap.add_argument("--init", default=None, help="SSR weights to start the first stage from")
    ap.add_argument("--frames-steps", type=int, default=6000)
    ap.add_argument("--frames-lr", type=float, default=5e-4)
    ap.add_argument("--video-steps", type=int, default=1500)
    ap.add_argument("--unfrozen-steps", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="data seed (stage k uses seed + k)")
    ap.add_argument("--restore", type=float, default=0.0,
                    help="share of low-res inputs drawn by the base model instead of rendered")
    ap.add_argument("--restore-from", default=None, help="the base weights for --restore (default: the default ones)")
    ap.add_argument("--restore-sigma", type=float, nargs=2, default=(0.3, 3.0), metavar=("LOW", "HIGH"),
                    help="noise levels the base's one-step estimates start from")
    args = ap.parse_args()
    t0 = time.time()

    def log(stage):
        def progress(phase, step, total, **m):
            if m:
                print(f"[{(time.time() - t0) / 60:6.1f} min] {stage} {step}/{total} "
                      + " ".join(f"{k}={v:.4g}" for k, v in m.items()), flush=True)
        return progress

    plan = [
        ("frames", args.frames_steps, dict(batch_size=32, lr=args.frames_lr, warmup=200)),
        ("video", args.video_steps, dict(batch_size=6, lr=5e-4, warmup=100)),
        ("video-unfrozen", args.unfrozen_steps, dict(batch_size=6, lr=1e-4, warmup=50, ema_decay=0.995)),
    ]
    init = args.init
    for k, (stage, steps, kw) in enumerate(plan):
        if steps <= 0:
            continue
        out = f"{args.out}/{stage}"
        new = dict(text_from=args.text_from) if init is None else {}
        cfg = SSRTrainConfig(stage=stage, out_dir=out, init=init, steps=steps, threads=args.threads,
                             seed=args.seed + k, restore=args.restore, restore_from=args.restore_from,
                             restore_sigma=tuple(args.restore_sigma), **new, **kw)
        if steps_done(out) >= steps:
            print(f"stage {stage}: already complete", flush=True)
        else:
            train_ssr(cfg, progress=log(stage))
        init = str(Path(out) / "weights")
        print(f"stage {stage} done: {init}", flush=True)


if __name__ == "__main__":
    main()
