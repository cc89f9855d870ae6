"""Ship trained SSR weights beside the base in lumiere_cli/shipped/ (fp16), with its part of the
model card, only if they beat bicubic and Lanczos on the held-out fidelity table.

    python scripts/eval_ssr.py --ssr runs/ssr/video --n 16 --json-out ssr_eval.json
    python scripts/ship_ssr.py --src runs/ssr/video --fidelity ssr_eval.json [--dst lumiere_cli/shipped]
        [--sample-noise 0.1 --sample-steps 8 --measurement "..." --known-issue "..." --compute "..."]

`--fidelity` is the JSON that scripts/eval_ssr.py writes for the same weights and settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from lumiere_cli import card as model_card
from lumiere_cli.atomic import write_text
from lumiere_cli.cascade.evaluate import beats_baselines
from lumiere_cli.cascade.weights import load_ssr, save_ssr
from lumiere_cli.weights_header import read_info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--fidelity", required=True)
    ap.add_argument("--dst", default="lumiere_cli/shipped")
    ap.add_argument("--sample-noise", type=float, default=None, help="SSRConfig.sample_aug_sigma")
    ap.add_argument("--sample-steps", type=int, default=None, help="the SSR's DiffusionConfig.sample_steps")
    ap.add_argument("--measurement", action="append", default=[], help="a measured figure for the card (repeatable)")
    ap.add_argument("--known-issue", action="append", default=[], help="a measured weakness (repeatable)")
    ap.add_argument("--compute", default="")
    args = ap.parse_args()

    ev = json.loads(Path(args.fidelity).read_text())
    if not beats_baselines(ev):
        sys.exit("not shipped: the SSR does not beat both bicubic and Lanczos on PSNR and SSIM")
    ssr = load_ssr(args.src)
    cfg = ssr.config
    if args.sample_noise is not None:
        cfg = replace(cfg, sample_aug_sigma=args.sample_noise)
    if args.sample_steps is not None:
        cfg = replace(cfg, diffusion=replace(cfg.diffusion, sample_steps=args.sample_steps))
    ran = ev["options"]
    if (ran["steps"], ran["noise"]) != (cfg.diffusion.sampling_steps, cfg.sample_aug_sigma):
        sys.exit(f"the fidelity table ran {ran['steps']} steps at noise {ran['noise']}, the shipped defaults are "
                 f"{cfg.diffusion.sampling_steps} at {cfg.sample_aug_sigma}: evaluate the defaults you ship")
    ssr.config = cfg
    card = {**ssr.card, "fidelity": {k: v for k, v in ev.items() if k != "samples"}}
    for key, values in (("measurements", args.measurement), ("known_issues", args.known_issue)):
        if values:
            card[key] = values
    if args.compute:
        card["compute"] = args.compute
    dst = Path(args.dst)
    path = save_ssr(ssr, dst, card=card, dtype=torch.float16)
    shipped = load_ssr(path)  # reads back and checks the hash
    write_text(dst / "MODEL_CARD.md", model_card.render(read_info(dst)))
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB), hash {shipped.weights_hash}")


if __name__ == "__main__":
    main()
