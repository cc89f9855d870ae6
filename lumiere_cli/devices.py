"""Which torch device a run uses: one rule for generation, evaluation and training."""

from __future__ import annotations

import os

from .errors import UsageError


def resolve_device(choice: str = "auto") -> str:
    """"auto": the GPU of this process (LOCAL_RANK under torchrun) when CUDA is visible, else the CPU."""
    import torch

    choice = str(choice)
    if choice == "cpu":
        return "cpu"
    if choice not in ("auto", "cuda"):
        raise UsageError(f"unknown device {choice!r} (choose auto, cpu or cuda)")
    if not torch.cuda.is_available():
        if choice == "cuda":
            raise UsageError("--device cuda but no CUDA GPU is visible (use --device cpu or auto)")
        return "cpu"
    local = os.environ.get("LOCAL_RANK")
    return f"cuda:{local}" if local is not None else "cuda"
