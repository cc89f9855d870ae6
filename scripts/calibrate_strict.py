"""What renders score on the strict eval's measurements: the ranges behind world.strict's bounds.

Renders of every split are read back as `lumiere` leaves them: uint8 frames (what `lumiere eval`
scores) and H.264 files written as the CLI writes them (yuv420p, quality 8, the default display
scale, 8x nearest) then read back at the model's size (the mean of each enlarged pixel's block). For each measurement it prints the extreme
over the clips of each attribute value, next to the bound world.strict uses.

    OMP_NUM_THREADS=1 python scripts/calibrate_strict.py --n 300
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def as_written(frames: np.ndarray, folder: Path, k: int, scale: int) -> np.ndarray:
    """uint8 frames through the CLI's mp4 writer, decoded at the file's size and shrunk back by
    the mean of each scale x scale block (what the enlarged pixels hold). Not read_video's
    short_side: its swscale shrink of yuv420p misplaces the chroma (up to 64 levels off on these
    clips, against 4 for the block mean)."""
    from lumiere_cli.video_io import read_video, write_clip

    path = write_clip(folder / f"{k}.mp4", frames, fps=8, display_scale=scale, overwrite=True)
    big = read_video(path).frames.astype(np.float32)
    t, h, w, c = frames.shape
    return np.round(big.reshape(t, h, scale, w, scale, c).mean((2, 4))).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--scale", type=int, default=8, help="display scale of the mp4s (the CLI's default reaches 256 px)")
    args = ap.parse_args()

    from lumiere_cli.pixels import to_uint8
    from lumiere_cli.world import strict as S
    from lumiere_cli.world.render import render_batch, sample_spec
    from lumiere_cli.world.vocab import BACKGROUNDS, COLOURS

    rng = random.Random(args.seed)
    specs = [sample_spec(rng, "all") for _ in range(args.n)]
    clips = to_uint8(render_batch(specs, 16, args.size) * 2 - 1).permute(0, 2, 3, 4, 1).numpy()
    stats: dict[str, list[float]] = defaultdict(list)
    wrong: dict[str, int] = defaultdict(int)
    with tempfile.TemporaryDirectory() as tmp:
        for k, (spec, clip) in enumerate(zip(specs, clips)):
            for how, frames in (("uint8", clip), ("h264", as_written(clip, Path(tmp), k, args.scale))):
                r = S.read_clip(frames)
                frames_f = frames.astype(np.float32)
                bg = np.median(np.concatenate([frames_f[:, 0], frames_f[:, -1]], 1), axis=1)
                stats[f"background dist ({how})"].append(float(np.sqrt(((bg - BACKGROUNDS[spec.background]) ** 2).sum(-1)).max()))
                colours = [np.sqrt(((np.array(f) - COLOURS[spec.colour]) ** 2).sum()) for f in r.frame_rgb if f is not None]
                stats[f"colour dist ({how})"].append(float(max(colours)))
                stats[f"iou {spec.shape} min ({how})"].append(min(r.iou))
                stats[f"iou mean ({how})"].append(r.mean_iou)
                stats[f"residual max ({how})"].append(max(r.residual))
                stats[f"grain ({how})"].append(r.grain)
                stats[f"spread ({how})"].append(r.spread)
                stats[f"stability ({how})"].append(r.stability)
                fits = S.motion_fits(np.array([(i, *p) for i, p in enumerate(r.track)]), 16)
                fit = next(f for f in fits if (f.motion == spec.motion) or
                           (spec.motion.startswith("moving") and f.motion.startswith("moving")))
                stats[f"path residual {spec.motion} ({how})"].append(fit.residual)
                for key, v in fit.params.items():
                    stats[f"{spec.motion.split()[0]} {key} ({how})"].append(v)
                for a in ("colour", "shape", "motion", "background"):
                    if getattr(r, a) != getattr(spec, a):
                        wrong[f"{a} ({how})"] += 1
                if not r.consistent:
                    wrong[f"consistent ({how})"] += 1
    for key in sorted(stats):
        v = np.array(stats[key])
        print(f"{key:48s} min {v.min():8.4f}  max {v.max():8.4f}  mean {v.mean():8.4f}")
    print("misread:", dict(wrong) or "none", f"of {args.n} clips each")


if __name__ == "__main__":
    main()
