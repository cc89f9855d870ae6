"""The model card: the Markdown page shipped beside the weights, and the acceptance verdict.

Both read only what the weights' header holds (`weights_header.read_info`): the config, the card
dict (training records, eval figures, notes) and the tensor shapes. No torch.
"""

from __future__ import annotations

from typing import Any

from .weights_header import WeightsInfo
from .world.vocab import BACKGROUNDS, COLOURS, HELD_OUT, MOTIONS, SHAPES

# Acceptance targets for the shipped model: all-correct on held-in and held-out prompts,
# and the motion accuracy on both.
TARGETS = {"held_in": 0.9, "held_out": 0.75, "motion": 0.9}
# Training-record options the stage table names in its last column, in this order.
TRAINING_EXTRAS = ("lr", "text_lr", "sigma_range", "reversed_pairs", "reference_clips", "motions")


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def targets_met(ev: dict[str, Any]) -> bool:
    """Whether an eval report (`EvalReport.to_dict()`) reaches TARGETS."""
    held_in, held_out = ev["splits"]["held_in"], ev["splits"]["held_out"]
    return (held_in["all"] >= TARGETS["held_in"] and held_out["all"] >= TARGETS["held_out"]
            and min(held_in["motion"], held_out["motion"]) >= TARGETS["motion"])


def eval_verdict(ev: dict[str, Any]) -> str:
    """One line for the card: met or not, and the figures the targets are about."""
    held_in, held_out = ev["splits"]["held_in"], ev["splits"]["held_out"]
    return ("targets met" if targets_met(ev) else "targets NOT met yet") + (
        f": all-correct {_pct(held_in['all'])} held-in, {_pct(held_out['all'])} held-out; "
        f"motion {_pct(held_in['motion'])} / {_pct(held_out['motion'])}")


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
        f"guidance {cfg.diffusion.sampling_guidance:g} and the {cfg.diffusion.sampling_sampler} sampler.",
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
            f"{ev['n']} clips per split, seed {ev['seed']}, sampler {opts.get('sampler')}, {opts.get('steps')} steps, "
            f"guidance {opts.get('guidance')}, schedule shift {opts.get('schedule_shift') or 1.0:g}. The detector reads colour, shape, motion and background back from "
            "each generated clip (it scores 100% on ground-truth renders).",
            "",
            "| split | clips | colour | shape | motion | background | all correct | consistent |",
            "|---|---|---|---|---|---|---|---|",
        ]
        runs = list(ev["splits"].items())
        runs += [(f"{name}, seed {rep['seed']}", s) for rep in card.get("eval_repeats", []) for name, s in rep["splits"].items()]
        for name, s in runs:
            lines.append(f"| {name} | {s['count']} | {_pct(s['colour'])} | {_pct(s['shape'])} | {_pct(s['motion'])} | "
                         f"{_pct(s['background'])} | {_pct(s['all'])} | {_pct(s['consistent'])} |")
        confusion = card.get("motion_confusion")
        if confusion:
            detected = sorted({d for row in confusion.values() for d in row})
            lines += ["", "Motion asked for (rows) against motion detected (columns), both splits:", "",
                      "| asked \\ detected | " + " | ".join(detected) + " |",
                      "|---|" + "---|" * len(detected)]
            lines += [f"| {m} | " + " | ".join(str(row.get(d, 0)) for d in detected) + " |"
                      for m, row in confusion.items()]
        lines += ["", f"Targets: all-correct >= {TARGETS['held_in']:.0%} held-in, >= {TARGETS['held_out']:.0%} "
                      f"held-out, motion >= {TARGETS['motion']:.0%}.",
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
    """{asked: {detected: count}} over `lumiere eval` samples; "none" where no motion was read."""
    table: dict[str, dict[str, int]] = {m: {} for m in MOTIONS}
    for s in samples:
        got = s["detected"].get("motion") or "none"
        row = table[s["expected"]["motion"]]
        row[got] = row.get(got, 0) + 1
    return table


__all__ = ["TARGETS", "TRAINING_EXTRAS", "eval_verdict", "motion_confusion", "render", "targets_met"]
