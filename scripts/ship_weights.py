"""Copy trained weights into lumiere_cli/shipped/ (fp16, with the eval figures in the card) and write the model card.

    python scripts/ship_weights.py --src runs/shapes/video/weights --eval eval.json [--dst lumiere_cli/shipped]

`--eval` is the JSON that `lumiere eval --json-out` writes for the same weights.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import torch

from lumiere_cli import card as model_card
from lumiere_cli.atomic import write_text
from lumiere_cli.choices import Sampler
from lumiere_cli.config import SampleOptions
from lumiere_cli.pipeline import resolve_options
from lumiere_cli.weights import load_model, read_info, save_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--eval", dest="eval_json")
    ap.add_argument("--repeat-eval", action="append", default=[],
                    help="another eval JSON of the same weights and settings, other seed: its rows join the table (repeatable)")
    ap.add_argument("--dst", default="lumiere_cli/shipped")
    ap.add_argument("--compute", default="")
    ap.add_argument("--sample-shift", type=float, default=None,
                    help="the schedule shift sampling uses by default (DiffusionConfig.sample_shift)")
    ap.add_argument("--sample-guidance", type=float, default=None,
                    help="the guidance scale sampling uses by default (DiffusionConfig.sample_guidance)")
    ap.add_argument("--sample-guidance-low", type=float, default=None,
                    help="the guidance scale below noise 1 with the default scale (DiffusionConfig.sample_guidance_low)")
    ap.add_argument("--sample-guidance-high", type=float, default=None,
                    help="the guidance scale above noise 5 with the default scale (DiffusionConfig.sample_guidance_high)")
    ap.add_argument("--sample-steps", type=int, default=None,
                    help="the number of sampling steps by default (DiffusionConfig.sample_steps)")
    ap.add_argument("--sample-sampler", choices=[s.value for s in Sampler], default=None,
                    help="the sampler sampling uses by default (DiffusionConfig.sample_sampler)")
    ap.add_argument("--sample-sigmas", default=None,
                    help="comma-separated noise levels tuned for that many steps (DiffusionConfig.sample_sigmas; "
                         "scripts/tune_schedule.py)")
    ap.add_argument("--known-issue", action="append", default=[],
                    help="a measured weakness for the card's Limitations (repeatable; replaces the card's list)")
    ap.add_argument("--grow", action="store_true",
                    help="weights saved before layers were added to the code: those keep their identity init")
    args = ap.parse_args()

    model = load_model(args.src, grow=args.grow)
    recommend = {"sample_shift": args.sample_shift, "sample_guidance": args.sample_guidance,
                 "sample_guidance_low": args.sample_guidance_low, "sample_guidance_high": args.sample_guidance_high,
                 "sample_steps": args.sample_steps, "sample_sampler": args.sample_sampler,
                 "sample_sigmas": tuple(float(v) for v in args.sample_sigmas.split(",")) if args.sample_sigmas else None}
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
        card["motion_confusion"] = model_card.motion_confusion(ev.pop("samples", []))
        card["eval"] = ev
        card["eval_verdict"] = model_card.eval_verdict(ev)
        card.pop("eval_repeats", None)  # rows of an earlier eval: they do not describe this one
    if args.repeat_eval:
        card["eval_repeats"] = [{k: v for k, v in json.loads(Path(p).read_text()).items() if k in ("seed", "n", "splits")}
                                for p in args.repeat_eval]
    dst = Path(args.dst)
    path = save_model(model, dst, card=card, dtype=torch.float16)
    shipped = load_model(path)  # reads back and checks the hash
    write_text(dst / "MODEL_CARD.md", model_card.render(read_info(path)))
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB), hash {shipped.weights_hash}")


if __name__ == "__main__":
    main()
