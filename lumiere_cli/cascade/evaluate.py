"""How well the SSR enlarges: SSR(render at the low-res size) against the render at the output
size, on held-out world clips, next to bicubic and Lanczos enlargement of the same input.

Clips are drawn from the held-out (colour, shape, motion) triples with a seed stream of their own
(training draws from the training triples), rendered at both sizes and quantised to 8 bits, as a
file would hold them. This module returns data; scripts/eval_ssr.py prints the table.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np

from .measure import edge_width, enlarge_pil, psnr, ssim
from .sample import SSROptions, upscale

METHODS = ("bicubic", "lanczos", "ssr")


def held_out_pairs(n: int, seed: int, *, frames: int, size: int, factor: int):
    """n (low-res clip, high-res clip, caption) triples of uint8 (t, h, w, 3) renders."""
    from ..pixels import to_uint8
    from ..world.render import render_batch, sample_spec
    from ..world.vocab import caption

    rng = random.Random(f"ssr-eval-{seed}")
    specs = [sample_spec(rng, "held_out") for _ in range(n)]
    as_frames = lambda v: to_uint8(v * 2 - 1).permute(0, 2, 3, 4, 1).numpy()  # noqa: E731 - (b, t, h, w, c)
    low = as_frames(render_batch(specs, frames, size))
    high = as_frames(render_batch(specs, frames, size * factor))
    return [(lo, hi, caption(s)) for lo, hi, s in zip(low, high, specs)]


def fidelity(ssr, *, n: int = 16, seed: int = 0, options: SSROptions = SSROptions(), frames: int = 16,
             prompt: bool = True, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """{"methods": {name: {"psnr", "ssim", "edge_width"}}, "render_edge_width", "n", "seed", "options"}:
    means over n held-out clips. The SSR reads each clip's caption when `prompt`, else none."""
    cfg = ssr.config
    pairs = held_out_pairs(n, seed, frames=frames, size=cfg.size, factor=cfg.factor)
    scores: dict[str, list[tuple[float, float, float]]] = {m: [] for m in METHODS}
    widths = []
    resolved = options.resolve(ssr)
    for k, (low, high, text) in enumerate(pairs):
        outs = {
            "bicubic": enlarge_pil(low, cfg.factor, "bicubic"),
            "lanczos": enlarge_pil(low, cfg.factor, "lanczos"),
            "ssr": upscale(ssr, low, text if prompt else "", seed=seed + k, options=options).frames,
        }
        for name, out in outs.items():
            scores[name].append((psnr(out, high), ssim(out, high), edge_width(out)))
        widths.append(edge_width(high))
        if progress is not None:
            progress(k + 1, n)
    methods = {name: dict(zip(("psnr", "ssim", "edge_width"), np.mean(np.array(v), axis=0).tolist()))
               for name, v in scores.items()}
    return {"n": n, "seed": seed, "frames": frames, "options": {k: v for k, v in vars(resolved).items()},
            "methods": methods, "render_edge_width": float(np.mean(widths))}


def beats_baselines(report: dict[str, Any]) -> bool:
    """Whether the SSR's PSNR and SSIM both exceed bicubic's and Lanczos's."""
    m = report["methods"]
    return all(m["ssr"][k] > m[b][k] for b in ("bicubic", "lanczos") for k in ("psnr", "ssim"))


def table(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    rows = ["| method | PSNR (dB) | SSIM | edge width (px) |", "|---|---|---|---|"]
    for name, s in report["methods"].items():
        rows.append(f"| {name} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['edge_width']:.2f} |")
    rows.append(f"| render at the output size | - | - | {report['render_edge_width']:.2f} |")
    return "\n".join(rows)




def shrink(clip: np.ndarray, factor: int) -> np.ndarray:
    """uint8 (t, H, W, 3) averaged over factor x factor blocks back to the base's size: how the
    strict eval's bounds were calibrated on the tool's enlarged outputs (decoded, then averaged)."""
    t, h, w, c = clip.shape
    blocks = clip.reshape(t, h // factor, factor, w // factor, factor, c).astype(np.float64)
    return np.round(blocks.mean(axis=(2, 4))).astype(np.uint8)


def evaluate_cascade(base, ssr, *, n: int, seed: int, options=None, ssr_options: SSROptions = SSROptions(),
                     batch_size: int = 8, device: str = "cpu",
                     progress: Callable[[str, int, int], None] | None = None):
    """`lumiere eval` on both stages: the base clips as `eval.evaluate` makes them (same prompts,
    seeds and batches), and the same clips enlarged by the SSR (seed of the clip). Both are read
    strictly (`eval.report_from_clips`), the cascade's averaged back to the base's size, where the
    strict bounds were calibrated; each split and sample also gets the edge width at its own size.
    Returns (base report, cascade report), two `eval.EvalReport`s; the cascade's options record the
    SSR's resolved options under "ssr"."""
    from dataclasses import asdict

    from ..config import SampleOptions
    from ..eval import draw_specs, report_from_clips
    from ..pipeline import generate_batch, resolve_options
    from ..world.vocab import caption

    options = SampleOptions() if options is None else options
    specs = draw_specs(n, seed)
    clips: dict[str, dict[str, list]] = {"base": {}, "cascade": {}}
    for name, split_specs in specs.items():
        base_clips, big_clips = clips["base"].setdefault(name, []), clips["cascade"].setdefault(name, [])
        for first in range(0, n, batch_size):
            chunk = split_specs[first:first + batch_size]
            prompts = [caption(spec) for spec in chunk]
            seeds = [seed + k for k in range(first, first + len(chunk))]
            for prompt, clip_seed, result in zip(prompts, seeds, generate_batch(base, prompts, seeds=seeds,
                                                                                  options=options, device=device)):
                base_clips.append(result.frames)
                big_clips.append(upscale(ssr, result.frames, prompt, seed=clip_seed, options=ssr_options,
                                         device=device).frames)
            if progress is not None:
                progress(name, len(base_clips), n)
    opts = asdict(resolve_options(base.config, options))
    factor = ssr.config.factor
    reports = {
        "base": report_from_clips(clips["base"], specs, seed=seed, options=opts),
        "cascade": report_from_clips({k: [shrink(c, factor) for c in v] for k, v in clips["cascade"].items()}, specs,
                                     seed=seed, options={**opts, "ssr": vars(ssr_options.resolve(ssr))}),
    }
    for stage, report in reports.items():
        widths = {name: [edge_width(c) for c in split_clips] for name, split_clips in clips[stage].items()}
        for name, split in report.splits.items():
            split["edge_width"] = float(np.mean(widths[name]))
        for sample, width in zip(report.samples, (w for name in specs for w in widths[name])):
            sample["edge_width"] = width
    return reports["base"], reports["cascade"]


__all__ = ["METHODS", "beats_baselines", "evaluate_cascade", "shrink", "fidelity", "held_out_pairs", "table"]
