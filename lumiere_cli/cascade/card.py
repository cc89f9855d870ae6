"""The SSR's part of the model card, rendered from its header alone (no torch)."""

from __future__ import annotations

from typing import Any

from .header import SSRInfo


def _fidelity_table(ev: dict[str, Any]) -> list[str]:
    rows = ["| method | PSNR (dB) | SSIM | edge width (px) |", "|---|---|---|---|"]
    for name, s in ev["methods"].items():
        rows.append(f"| {name} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['edge_width']:.2f} |")
    rows.append(f"| render at the output size | - | - | {ev['render_edge_width']:.2f} |")
    return rows


def render_ssr(info: SSRInfo) -> list[str]:
    """The "Super-resolution (SSR)" section, as lines."""
    cfg, card = info.config, info.card
    u = cfg.unet
    lines = [
        "## Super-resolution (SSR): the cascade's second stage",
        "",
        f"`{info.path.name}` beside the base weights enlarges every generated clip {cfg.factor}x, "
        f"{cfg.size}x{cfg.size} -> {cfg.out_size}x{cfg.out_size} (`--base-only` skips it; "
        "`lumiere upscale` runs it alone on any clip).",
        "",
        "### Model",
        f"- A second STUNet of the same blocks: channels {list(u.channels)}, {u.res_blocks} residual blocks per "
        f"level, pixel-unshuffle by {u.patch} at the input (one token per low-res pixel), spatial attention at "
        f"levels {[i for i, a in enumerate(u.attn_levels) if a]}, {u.temporal_attn_blocks} temporal attention "
        f"block(s), no temporal down/upsampling; {info.parameters_under('unet.spatial.') / 1e6:.2f}M spatial + "
        f"{info.parameters_under('unet.temporal.') / 1e6:.2f}M temporal parameters, plus a frozen copy of the "
        f"base's text encoder ({info.parameters_under('text.') / 1e6:.2f}M).",
        "- Input: the noisy high-res clip, <C, M> at the output size (known pixels of i2v, inpainting and "
        "cinemagraphs stay the user's own), and the low-res clip noised then enlarged (bicubic); the noise "
        "level is given to the network as an embedding.",
        f"- Trained on {cfg.crop}x{cfg.crop} crops (the same crop on every frame), applied to whole frames; clips "
        f"longer than {cfg.frames} frames run over temporal windows of {cfg.frames} (overlap {cfg.overlap} asked), "
        "denoised together and averaged at every step (temporal MultiDiffusion).",
        f"- Sampling: {cfg.diffusion.sampling_steps} {cfg.diffusion.sampling_sampler} steps, no guidance, "
        f"conditioning noise {cfg.sample_aug_sigma:g} (`--ssr-steps`, `--ssr-noise`); training noise levels 0 "
        f"({cfg.aug_zero:.0%}) or log-uniform up to {cfg.aug_sigma_max:g}.",
        f"- Stored as fp16 safetensors; content hash `{info.content_hash}`.",
        "",
        "### Training",
        "Pairs of renders of the same clip at both sizes; frames first, then the temporal layers on clips. "
        "\"Restored\": the share of low-res inputs that were the base model's own one-step estimate of the render "
        "(from noise in the range given) instead of the render, so that the SSR enlarges what the base meant "
        "(`scripts/train_ssr.py --restore`).",
        "",
        "| stage | steps | batch | samples seen | device | wall minutes | lr | restored |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in card.get("training", []):
        restored = f"{r['restore']:.0%}, noise {r['restore_sigma'][0]:g}-{r['restore_sigma'][1]:g}" if r.get("restore") else "-"
        lines.append(f"| {r['stage']} | {r['steps']} | {r['batch_size']} | {r['samples_seen']} | {r['device']} | "
                     f"{r['wall_minutes']} | {r['lr']} | {restored} |")
    if card.get("compute"):
        lines += ["", "Compute: " + card["compute"]]
    ev = card.get("fidelity")
    if ev:
        lines += ["", "### Evaluation (`scripts/eval_ssr.py`)",
                  f"{ev['n']} held-out world clips of {ev['frames']} frames, the SSR on the 8-bit render at "
                  f"{cfg.size} against the render at {cfg.out_size}, next to bicubic and Lanczos enlargement "
                  f"of the same input ({ev['options']['steps']} steps, noise {ev['options']['noise']:g}):", ""]
        lines += _fidelity_table(ev)
    for key, title in (("measurements", "Measurements"), ("known_issues", "Limitations")):
        if card.get(key):
            lines += ["", f"### {title}", *(f"- {item}" for item in card[key])]
    return lines + [""]


__all__ = ["render_ssr"]
