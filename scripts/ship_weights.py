"""Copy trained weights into weights/ (fp16, with the eval figures in the card) and write the model card.

    python scripts/ship_weights.py --src runs/shapes/video/weights --eval eval.json [--dst weights]

`--eval` is the JSON that `lumiere eval --json-out` writes for the same weights.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import torch

from lumiere_cli.config import SampleOptions
from lumiere_cli.pipeline import resolve_options
from lumiere_cli.weights import load_model, save_model
from lumiere_cli.world.vocab import BACKGROUNDS, COLOURS, HELD_OUT, MOTIONS, SHAPES


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def card_markdown(model, card: dict) -> str:
    cfg = model.config
    n_text = sum(p.numel() for p in model.text.parameters())
    n_spatial = sum(p.numel() for p in model.unet.spatial.parameters())
    n_temporal = sum(p.numel() for p in model.unet.temporal.parameters())
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
        f"- Stored as fp16 safetensors; content hash `{model.weights_hash}`.",
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
    extras = ("lr", "text_lr", "sigma_range", "reversed_pairs", "reference_clips", "motions")
    for r in card.get("training", []):
        also = ", ".join(f"{k} {'/'.join(r[k]) if k == 'motions' else r[k]}" for k in extras if k in r)
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
        lines += ["", "Targets (issue 4): all-correct >= 90% held-in, >= 75% held-out, motion >= 90%.",
                  f"Reached: {card.get('eval_verdict', 'see the table')}", ""]
    lines += [
        "## Limitations",
        "- It draws only its world: one shape, six colours, seven motions, three backgrounds, 32x32 pixels.",
        "- Words outside its vocabulary (`lumiere info`) are ignored by the model; the CLI warns about them.",
        *(f"- {issue}" for issue in card.get("known_issues", [])),
        "",
    ]
    return "\n".join(lines)


def motion_confusion(samples: list[dict]) -> dict[str, dict[str, int]]:
    """{asked: {detected: count}} over `lumiere eval` samples; "none" where no motion was read."""
    table: dict[str, dict[str, int]] = {m: {} for m in MOTIONS}
    for s in samples:
        got = s["detected"].get("motion") or "none"
        row = table[s["expected"]["motion"]]
        row[got] = row.get(got, 0) + 1
    return table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--eval", dest="eval_json")
    ap.add_argument("--repeat-eval", action="append", default=[],
                    help="another eval JSON of the same weights and settings, other seed: its rows join the table (repeatable)")
    ap.add_argument("--dst", default="weights")
    ap.add_argument("--compute", default="")
    ap.add_argument("--sample-shift", type=float, default=None,
                    help="the schedule shift sampling uses by default (DiffusionConfig.sample_shift)")
    ap.add_argument("--sample-guidance", type=float, default=None,
                    help="the guidance scale sampling uses by default (DiffusionConfig.sample_guidance)")
    ap.add_argument("--sample-sampler", choices=("ddim", "dpmpp-2m"), default=None,
                    help="the sampler sampling uses by default (DiffusionConfig.sample_sampler)")
    ap.add_argument("--known-issue", action="append", default=[],
                    help="a measured weakness for the card's Limitations (repeatable)")
    ap.add_argument("--grow", action="store_true",
                    help="weights saved before layers were added to the code: those keep their identity init")
    args = ap.parse_args()

    model = load_model(args.src, grow=args.grow)
    recommend = {"sample_shift": args.sample_shift, "sample_guidance": args.sample_guidance,
                 "sample_sampler": args.sample_sampler}
    recommend = {k: v for k, v in recommend.items() if v is not None}
    model.config = replace(model.config, diffusion=replace(model.config.diffusion, **recommend))
    card = dict(model.card)
    card["sampling"] = asdict(resolve_options(model.config, SampleOptions()))
    if args.compute:
        card["compute"] = args.compute
    if args.known_issue:
        card["known_issues"] = args.known_issue
    if args.eval_json:
        ev = json.loads(Path(args.eval_json).read_text())
        card["motion_confusion"] = motion_confusion(ev.pop("samples", []))
        card["eval"] = ev
        held_in, held_out = ev["splits"]["held_in"], ev["splits"]["held_out"]
        met = held_in["all"] >= 0.9 and held_out["all"] >= 0.75 and min(held_in["motion"], held_out["motion"]) >= 0.9
        card["eval_verdict"] = ("targets met" if met else "targets NOT met yet") + (
            f": all-correct {_pct(held_in['all'])} held-in, {_pct(held_out['all'])} held-out; "
            f"motion {_pct(held_in['motion'])} / {_pct(held_out['motion'])}")
    if args.repeat_eval:
        card["eval_repeats"] = [{k: v for k, v in json.loads(Path(p).read_text()).items() if k in ("seed", "n", "splits")}
                                for p in args.repeat_eval]
    dst = Path(args.dst)
    path = save_model(model, dst, card=card, dtype=torch.float16)
    shipped = load_model(path)
    (dst / "MODEL_CARD.md").write_text(card_markdown(shipped, card))
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB), hash {shipped.weights_hash}")


if __name__ == "__main__":
    main()
