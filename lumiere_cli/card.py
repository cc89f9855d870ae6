"""The model card: the Markdown page shipped beside the weights, and the acceptance verdict.

Both read only what the weights' header holds (`weights_header.read_info`): the config, the card
dict (training records, eval figures, notes) and the tensor shapes. No torch.
"""

from __future__ import annotations

from typing import Any

from .weights_header import WeightsInfo
from .world.vocab import BACKGROUNDS, COLOURS, HELD_OUT, MOTIONS, SHAPES

# Acceptance targets for the shipped model, on the strict eval (`lumiere eval`, 200 clips per
# split): all-correct held-in and held-out, silhouette IoU and background grain (0-255) on both
# splits, strict consistency, and bouncing read as bouncing.
TARGETS = {"held_in": 0.95, "held_out": 0.90, "iou": 0.92, "grain": 1.5, "consistent": 0.95, "bouncing": 0.90}
# Training-record options the stage table names in its last column, in this order.
TRAINING_EXTRAS = ("lr", "text_lr", "sigma_range", "reversed_pairs", "reference_clips", "motions")
# The strict eval's measures, as the card's table shows them: (key, column, digits).
MEASURES = (("iou", "IoU", 3), ("residual", "residual", 1), ("grain", "grain", 1), ("spread", "spread", 1),
            ("stability", "stability", 3))


def guidance_bands(scale, low=None, high=None) -> list[tuple[str, str]]:
    """The bands by noise level whose scale is not `scale`, and the option that sets each:
    [("2 above noise 5", "--guidance-high"), ("1 below noise 1", "--guidance-low")]."""
    from .config import HIGH_NOISE_SIGMA, LOW_NOISE_SIGMA

    return [(f"{v:g} {where} noise {at:g}", flag) for v, where, at, flag in
            ((high, "above", HIGH_NOISE_SIGMA, "--guidance-high"), (low, "below", LOW_NOISE_SIGMA, "--guidance-low"))
            if v is not None and v != scale]


def guidance_text(scale, low=None, high=None) -> str:
    """"guidance 3 (2 above noise 5, 1 below noise 1)": a scale and its bands by noise level."""
    bands = [text for text, _ in guidance_bands(scale, low, high)]
    return f"guidance {scale:g}" + (f" ({', '.join(bands)})" if bands else "")


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _bouncing(split: dict[str, Any]) -> float | None:
    return split.get("motion_read", {}).get("bouncing")


def targets_met(ev: dict[str, Any]) -> bool:
    """Whether an eval report (`EvalReport.to_dict()`) reaches TARGETS; a report without the
    strict measures (an older eval) cannot."""
    held_in, held_out = ev["splits"]["held_in"], ev["splits"]["held_out"]
    both = (held_in, held_out)
    if any(k not in s for s in both for k in ("iou", "grain", "consistent")) or None in map(_bouncing, both):
        return False
    return (held_in["all"] >= TARGETS["held_in"] and held_out["all"] >= TARGETS["held_out"]
            and all(s["iou"] >= TARGETS["iou"] and s["grain"] <= TARGETS["grain"]
                    and s["consistent"] >= TARGETS["consistent"] and _bouncing(s) >= TARGETS["bouncing"]
                    for s in both))


def eval_verdict(ev: dict[str, Any]) -> str:
    """One line for the card: met or not, and the figures the targets are about (held-in / held-out)."""
    held_in, held_out = ev["splits"]["held_in"], ev["splits"]["held_out"]
    pair = lambda key, fmt: " / ".join("-" if s.get(key) is None else fmt(s[key]) for s in (held_in, held_out))  # noqa: E731
    bouncing = " / ".join("-" if _bouncing(s) is None else _pct(_bouncing(s)) for s in (held_in, held_out))
    return ("targets met" if targets_met(ev) else "targets NOT met yet") + (
        f": all-correct {_pct(held_in['all'])} held-in, {_pct(held_out['all'])} held-out; "
        f"IoU {pair('iou', lambda v: f'{v:.3f}')}; grain {pair('grain', lambda v: f'{v:.1f}')}; "
        f"consistent {pair('consistent', _pct)}; bouncing read as bouncing {bouncing}")


def render(info: WeightsInfo) -> str:
    """MODEL_CARD.md for the weights `info` describes (their header: config, card, hash, shapes)."""
    cfg, card = info.config, info.card
    n_text = info.parameters_under("text.")
    n_spatial = info.parameters_under("unet.spatial.")
    n_temporal = info.parameters_under("unet.temporal.")
    lines = [
        "# Model card: lumiere-cli shapes model",
        "",
        "A small Space-Time U-Net text-to-video model trained from scratch by this project on its",
        "procedural world of captioned clips (one flat-coloured shape moving on a plain background;",
        "see docs/WORLD.md). It knows only that world. **Every clip it makes is AI-generated.**",
        "",
        "## Model",
        f"- Clip: {cfg.frames} frames at {cfg.size}x{cfg.size}, {cfg.fps} fps, pixel space, generated in one pass.",
        f"- STUNet: channels {list(cfg.unet.channels)}, patch {cfg.unet.patch}, {cfg.unet.temporal_levels} temporal "
        f"levels, {cfg.unet.temporal_attn_blocks} temporal attention blocks, {cfg.unet.spacetime_attn_blocks} "
        f"space-time attention block(s){' with 3D rotary positions' if cfg.unet.spacetime_rope else ''}; "
        f"{n_spatial / 1e6:.2f}M spatial + "
        f"{n_temporal / 1e6:.2f}M temporal parameters.",
        f"- Text encoder: open_clip text tower, width {cfg.text.width}, {cfg.text.layers} layers, "
        f"context {cfg.text.context_length}; {n_text / 1e6:.2f}M parameters (mostly the 49k BPE embedding table).",
        f"- Diffusion: {cfg.diffusion.prediction}-prediction, cosine schedule in sigma form, "
        f"sigma in [{cfg.diffusion.sigma_min}, {cfg.diffusion.sigma_max}], trained with schedule shift "
        f"{cfg.diffusion.schedule_shift:g}, sampled by default with shift {cfg.diffusion.sampling_schedule_shift:g}, "
        f"{guidance_text(cfg.diffusion.sampling_guidance, cfg.diffusion.sampling_guidance_low(), cfg.diffusion.sampling_guidance_high())}, "
        f"{cfg.diffusion.sampling_steps} steps"
        + (" on tuned noise levels" if cfg.diffusion.tuned_sigmas(cfg.diffusion.sampling_steps) else "")
        + f" and the {cfg.diffusion.sampling_sampler} sampler.",
        f"- Stored as fp16 safetensors; content hash `{info.content_hash}`.",
        "",
        "## Data",
        f"- Colours: {', '.join(COLOURS)}; shapes: {', '.join(SHAPES)}; backgrounds: {', '.join(BACKGROUNDS)}.",
        f"- Motions: {', '.join(MOTIONS)}.",
        "- Caption: `a {colour} {shape} {motion} on a {background} background`, plus paraphrases; "
        "10% empty prompts for guidance.",
        f"- Held out of training ({len(HELD_OUT)} of {len(COLOURS) * len(SHAPES) * len(MOTIONS)} "
        "(colour, shape, motion) triples): "
        + "; ".join(" ".join(t) for t in sorted(HELD_OUT)) + ".",
        "",
        "## Training (the paper's stages)",
        "| stage | steps | batch | samples seen | processes | device | wall minutes | also |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in card.get("training", []):
        also = ", ".join(f"{k} {'/'.join(r[k]) if k == 'motions' else r[k]}" for k in TRAINING_EXTRAS if k in r)
        lines.append(f"| {r['stage']} | {r['steps']} | {r['batch_size']} | {r['samples_seen']} | "
                     f"{r['processes']} | {r['device']} | {r['wall_minutes']} | {also} |")
    lines += ["", "Compute: " + card.get("compute", "see the table above."), ""]
    ev = card.get("eval")
    if ev:
        opts = ev.get("options", {})
        lines += [
            "## Evaluation (`lumiere eval`)",
            f"{ev['n']} clips per split, seed {ev['seed']}, sampler {opts.get('sampler')}, {opts.get('steps')} steps"
            + (" on the model's tuned noise levels" if opts.get("sigmas") else
               f", schedule shift {opts.get('schedule_shift') or 1.0:g}")
            + f", {guidance_text(opts.get('guidance'), opts.get('guidance_low'), opts.get('guidance_high'))}. "
            "Each clip is read "
            "strictly: every frame fitted by the renderer itself, an attribute counted only inside the range renders "
            "of it occupy (renders score 100%, IoU >= 0.97, grain 0). IoU: silhouette against the best-fitting "
            "render; residual: RMS (0-255) against it; grain: background noise (0-255); spread: colour noise inside "
            "the object; stability: silhouette change beyond the motion, as IoU. The last column is the older "
            "matched-filter detector's all-correct on the same clips.",
            "",
            "| split | clips | colour | shape | motion | background | all correct | consistent | "
            + " | ".join(c for _, c, _ in MEASURES) + " | matched filter |",
            "|---|---|---|---|---|---|---|---|" + "---|" * (len(MEASURES) + 1),
        ]
        runs = list(ev["splits"].items())
        runs += [(f"{name}, seed {rep['seed']}", s) for rep in card.get("eval_repeats", []) for name, s in rep["splits"].items()]
        num = lambda v, d: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
        for name, s in runs:
            lines.append(f"| {name} | {s['count']} | {_pct(s['colour'])} | {_pct(s['shape'])} | {_pct(s['motion'])} | "
                         f"{_pct(s['background'])} | {_pct(s['all'])} | {_pct(s['consistent'])} | "
                         + " | ".join(num(s.get(k), d) for k, _, d in MEASURES)
                         + f" | {'-' if s.get('matched_all') is None else _pct(s['matched_all'])} |")
        confusion = card.get("motion_confusion")
        if confusion:
            detected = sorted({d for row in confusion.values() for d in row})
            lines += ["", "Motion asked for (rows) against motion read (columns), both splits:", "",
                      "| asked \\ read | " + " | ".join(detected) + " |",
                      "|---|" + "---|" * len(detected)]
            lines += [f"| {m} | " + " | ".join(str(row.get(d, 0)) for d in detected) + " |"
                      for m, row in confusion.items()]
        lines += ["", f"Targets: all-correct >= {TARGETS['held_in']:.0%} held-in, >= {TARGETS['held_out']:.0%} "
                      f"held-out; on both splits IoU >= {TARGETS['iou']:g}, grain <= {TARGETS['grain']:g}, consistent "
                      f">= {TARGETS['consistent']:.0%}, bouncing read as bouncing >= {TARGETS['bouncing']:.0%}.",
                  f"Reached: {card.get('eval_verdict', 'see the table')}", ""]
    lines += [
        "## Limitations",
        "- It draws only its world: one shape, six colours, seven motions, three backgrounds, 32x32 pixels.",
        "- Words outside its vocabulary (`lumiere info`) are ignored by the model; the CLI warns about them.",
        *(f"- {issue}" for issue in card.get("known_issues", [])),
        "",
    ]
    # The cascade's second stage, when its weights ship beside these: its own part of the card.
    from .cascade.card import render_ssr
    from .cascade.header import SSR_FILENAME, read_ssr_info

    if (info.path.parent / SSR_FILENAME).is_file():
        lines += render_ssr(read_ssr_info(info.path.parent / SSR_FILENAME))
    return "\n".join(lines)


def motion_confusion(samples: list[dict]) -> dict[str, dict[str, int]]:
    """{asked: {read: count}} over `lumiere eval` samples (the strict reading, "read"; an older
    eval's matched filter, "detected", where a sample has no reading); "none" where no motion was read."""
    table: dict[str, dict[str, int]] = {m: {} for m in MOTIONS}
    for s in samples:
        got = s.get("read", s.get("detected", {})).get("motion") or "none"
        row = table[s["expected"]["motion"]]
        row[got] = row.get(got, 0) + 1
    return table


__all__ = ["MEASURES", "TARGETS", "TRAINING_EXTRAS", "eval_verdict", "motion_confusion", "render", "targets_met"]
