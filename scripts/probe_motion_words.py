"""Does the video model use the motion word? Denoising error with the mirrored word over the true one.

Renders clips of each motion pair (left/right, up/down, growing/shrinking), noises them at a
range of sigmas, and compares the x0 error of the denoiser given the true caption with its error
given the same caption with the motion mirrored ("moving left" -> "moving right"). A ratio of 1
means the model ignores the word at that noise level; at high noise, where the sampler decides
where the object goes, a model that reads the word should do much worse with the wrong one.

Then, for each translation word, where the model puts the object at high noise: the travel of the
object's centroid (first frame to last, in frame widths) in the x0 estimate at --sigma-far,
averaged over noise draws, next to the same travel in the mean of rendered clips with that caption
(what the ideal denoiser predicts as sigma grows). A model that reads the word matches the sign.

    python scripts/probe_motion_words.py [--weights DIR] [--clips 24] [--sigma-far 40]
"""

from __future__ import annotations

import argparse
import random
from dataclasses import replace

import torch

from lumiere_cli.pipeline import text_kwargs
from lumiere_cli.pixels import from_uint8, from_unit
from lumiere_cli.weights import load_model
from lumiere_cli.world.render import render_batch, sample_spec
from lumiere_cli.world.vocab import BACKGROUNDS, OPPOSITE_MOTION, caption

PAIRS = {"left/right": ("moving left", "moving right"), "up/down": ("moving up", "moving down"),
         "growing/shrinking": ("growing", "shrinking")}
SIGMAS = (0.5, 2.0, 4.0, 8.0, 16.0, 40.0)
TRANSLATIONS = ("moving left", "moving right", "moving up", "moving down")
# Object colour on background: bright on dark, dark on bright, and both signs on gray.
LOOKS = (("red", "black"), ("blue", "white"), ("yellow", "gray"))


def _specs(motions: tuple[str, ...], n: int, seed: int) -> list:
    """n random specs (held-in or held-out) whose motion is one of `motions`."""
    rng = random.Random(seed)
    specs = []
    while len(specs) < n:
        spec = sample_spec(rng, "all")
        if spec.motion in motions:
            specs.append(spec)
    return specs


def error_ratios(model, motions: tuple[str, ...], n: int, seed: int) -> list[float]:
    """Mirrored-over-true x0 error per sigma, on n clips whose motion is one of `motions`."""
    specs = _specs(motions, n, seed)
    cfg = model.config
    x0 = from_unit(render_batch(specs, cfg.frames, cfg.size))
    true = text_kwargs(model, [caption(s) for s in specs], "cpu")
    mirrored = text_kwargs(model, [caption(replace(s, motion=OPPOSITE_MOTION[s.motion])) for s in specs], "cpu")
    gen = torch.Generator().manual_seed(seed)
    ratios = []
    for sigma in SIGMAS:
        x = x0 + sigma * torch.randn(x0.shape, generator=gen)
        s = torch.full((n,), sigma)
        with torch.inference_mode():
            err = [((model.denoiser(x, s, **text) - x0) ** 2).mean().item() for text in (true, mirrored)]
        ratios.append(err[1] / err[0])
    return ratios


def centroid_travel(video: torch.Tensor, background: str, motion: str) -> float:
    """Centroid shift, last frame minus first, along the motion's axis (frame widths; + is right or down).

    video (3, t, h, w) in [-1, 1]; each pixel weighs by its distance from the background colour."""
    bg = from_uint8(torch.tensor(BACKGROUNDS[background], dtype=video.dtype))
    weight = (video - bg[:, None, None, None]).abs().sum(0)  # (t, h, w)
    weight = weight / weight.sum((-2, -1), keepdim=True).clamp_min(1e-8)
    horizontal = motion in ("moving left", "moving right")
    profile = weight.sum(-2) if horizontal else weight.sum(-1)  # (t, w) or (t, h)
    grid = (torch.arange(profile.shape[-1], dtype=video.dtype) + 0.5) / profile.shape[-1]
    centre = (profile * grid).sum(-1)  # (t,)
    return (centre[-1] - centre[0]).item()


def far_travels(model, motion: str, colour: str, background: str, n: int, sigma: float, seed: int) -> tuple[float, float]:
    """(data, model) centroid travel for one caption: the mean rendered clip's, and the mean x0
    estimate's at `sigma` over n noise draws."""
    specs = [replace(s, colour=colour, shape="square", background=background) for s in _specs((motion,), n, seed)]
    cfg = model.config
    mean_clip = from_unit(render_batch(specs, cfg.frames, cfg.size)).mean(0)
    gen = torch.Generator().manual_seed(seed)
    x = sigma * torch.randn(n, 3, cfg.frames, cfg.size, cfg.size, generator=gen)
    text = text_kwargs(model, [caption(specs[0])] * n, "cpu")
    with torch.inference_mode():
        estimate = model.denoiser(x, torch.full((n,), sigma), **text).mean(0)
    return centroid_travel(mean_clip, background, motion), centroid_travel(estimate, background, motion)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    ap.add_argument("--clips", type=int, default=24, help="clips per motion pair")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sigma-far", type=float, default=40.0, help="noise level of the travel check")
    args = ap.parse_args()
    model = load_model(args.weights).eval()
    print("mirrored / true x0 error at sigma " + " ".join(f"{s:>6g}" for s in SIGMAS))
    for name, motions in PAIRS.items():
        ratios = error_ratios(model, motions, args.clips, args.seed)
        print(f"{name:<34}" + " ".join(f"{r:6.3f}" for r in ratios), flush=True)
    title = f"object travel at sigma {args.sigma_far:g} (frame widths, + right/down)"
    print(f"\n{title:<50}{'data':>7}{'model':>8}")
    for motion in TRANSLATIONS:
        for colour, background in LOOKS:
            data, est = far_travels(model, motion, colour, background, args.clips, args.sigma_far, args.seed)
            label = f"{motion}, {colour} on {background}"
            print(f"  {label:<48}{data:+7.3f} {est:+7.3f}", flush=True)


if __name__ == "__main__":
    main()
