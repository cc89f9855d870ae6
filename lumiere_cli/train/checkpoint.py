"""Checkpoints: safetensors (model, EMA, stage extras, optimizer state), never pickles; the step,
elapsed time, configs and where the data stream stands go in its metadata.

Nothing in a checkpoint depends on the process count: a run resumes under another one (the data
stream continues from the samples already consumed, `train.data`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..atomic import staged
from ..config import TrainConfig, dumps, to_dict

CHECKPOINT = "checkpoint.safetensors"


def save_checkpoint(path: Path, *, model, ema, module, opt, step: int, cfg: TrainConfig, elapsed: float,
                    data: dict[str, Any] | None = None) -> None:
    """Write the run's state at `step`; `data` is the data stream's state (JSON)."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    tensors |= {f"stage.{k}": v for k, v in module.state_dict().items() if not k.startswith(("text.", "denoiser."))}
    opt_state = opt.state_dict()
    for i, st in opt_state["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {
        "step": str(step), "elapsed": str(elapsed), "train": json.dumps(to_dict(cfg)),
        "model_config": dumps(model.config), "card": json.dumps(model.card),
        "param_groups": json.dumps(opt_state["param_groups"]),
        "data": json.dumps(data or {}),
    }
    with staged(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_checkpoint(path: Path, *, model, ema, module, opt, device) -> tuple[int, float, dict[str, Any]]:
    """Restore the state `save_checkpoint` wrote; returns (step, elapsed seconds, data state)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    part = lambda p: {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}  # noqa: E731
    model.load_state_dict(part("model."))
    ema.load_state_dict(part("ema."))
    module.load_state_dict(part("stage."), strict=False)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in part("opt.").items():
        i, name = k.split(".", 1)
        state.setdefault(int(i), {})[name] = v.to(device) if name != "step" else v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return int(meta["step"]), float(meta["elapsed"]), json.loads(meta.get("data") or "{}")


__all__ = ["CHECKPOINT", "load_checkpoint", "save_checkpoint"]
