"""What `lumiere edit` keeps and changes, by --strength.

World clips (the model's domain) are edited with their own caption with the colour changed: an
edit should take the new colour (`edited`) and keep the layout (`layout`: the same shape,
background and motion as the input, the object's track within 0.1 frame widths). PSNR against the
input for those clips and for a real-codec clip (ffmpeg's testsrc2, far from the model's domain).
Default sampling settings of the model.

    .venv/bin/python scripts/edit_strength.py --clips 8
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from lumiere_cli import video_io
from lumiere_cli.pipeline import Inputs, generate
from lumiere_cli.weights import load_model
from lumiere_cli.world.detect import detect
from lumiere_cli.world.render import render, sample_spec
from lumiere_cli.world.vocab import COLOURS, caption


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def track_distance(a, b) -> float:
    """Mean distance between two tracks' object centres (frame widths); inf when one has none."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        return float("inf")
    d = np.hypot(a[:, 0] - b[:, 0], a[:, 1] - b[:, 1])
    return float(np.nanmean(d)) if np.isfinite(d).any() else float("inf")


def world_clips(n: int, frames: int, size: int):
    rng = random.Random(0)
    for _ in range(n):
        spec = sample_spec(rng, "train")
        clip = (render(spec, frames, size).permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)
        yield clip, spec


def real_clip(frames: int, size: int) -> np.ndarray:
    import imageio_ffmpeg

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "testsrc2.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                        "testsrc2=size=320x240:rate=25", "-t", "4", "-pix_fmt", "yuv420p", str(path)], check=True)
        video = video_io.read_video(path, frames=frames, fps=8.0)
    return video_io.fit_to_model(video.frames, size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--strengths", default="0.1,0.2,0.3,0.4,0.5,0.6,0.8,1.0")
    args = ap.parse_args()
    model = load_model(args.weights)
    cfg = model.config
    strengths = [float(s) for s in args.strengths.split(",")]
    world = list(world_clips(args.clips, cfg.frames, cfg.size))
    real = real_clip(cfg.frames, cfg.size)
    colours = sorted(COLOURS)
    print("strength | world PSNR dB | edited (new colour) | layout kept | both | real clip PSNR dB")
    print("---|---|---|---|---|---")
    for s in strengths:
        scores, edited, kept = [], [], []
        for i, (clip, spec) in enumerate(world):
            new = replace(spec, colour=colours[(colours.index(spec.colour) + 1 + i) % len(colours)])
            if new.colour == spec.background or COLOURS[new.colour] == COLOURS.get(spec.background):
                new = replace(new, colour=colours[(colours.index(new.colour) + 1) % len(colours)])
            out = generate(model, caption(new), task="edit", inputs=Inputs(video=clip, strength=s), seed=i).frames
            scores.append(psnr(out, clip))
            d, ref = detect(out), detect(clip)
            edited.append(d.colour == new.colour)
            kept.append((d.shape, d.background, d.motion) == (ref.shape, ref.background, ref.motion)
                        and track_distance(d.track, ref.track) < 0.1)
        out = generate(model, "a red circle moving left", task="edit", inputs=Inputs(video=real, strength=s), seed=0).frames
        both = np.mean([e and k for e, k in zip(edited, kept)])
        print(f"{s:g} | {np.mean(scores):.1f} | {np.mean(edited):.0%} | {np.mean(kept):.0%} | {both:.0%} | "
              f"{psnr(out, real):.1f}", flush=True)


if __name__ == "__main__":
    main()
