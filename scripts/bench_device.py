"""Sampling and training throughput on an accelerator: eager and torch.compile, fp32 and bf16,
against the chip's bf16 matmul peak measured in the same run (model FLOPs utilisation).

    python scripts/bench_device.py [--device cuda] [--json] [--weights W] [--compile/--no-compile]

- peak: an 8192^3 bf16 matmul (4096^3 on a CPU) and the same in fp32, TFLOP/s;
- sampling: one guided step (prompt and negative) of the model's clip for batches of 1, 8 and 32
  clips: ms per step, clips per second, TFLOP/s and the share of the bf16 peak;
- training: one optimiser step (forward, backward, AdamW) of the t2i and video stages on a batch
  the world draws (`train.data.make_batch`), bf16 autocast as training runs it: clips (or images)
  per second and the share of the peak. FLOPs are torch's counter on one call (a backward counts
  twice a forward), so the utilisation is the model's, not the hardware's.

No data loading is timed (`lumiere train` logs clips_per_s with it). Runs on a CPU too, slowly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

PROMPT = "a blue square moving up on a gray background"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device: torch.device, *, warmup: int = 3, repeats: int = 10) -> float:
    """Median seconds per call after `warmup` calls (compilation happens there)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def peak(device: torch.device) -> dict:
    n = 8192 if device.type == "cuda" else 2048
    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        seconds = _time(lambda: a @ b, device, warmup=3, repeats=10)
        out[f"{name}_tflops"] = round(2 * n**3 / seconds / 1e12, 2)
    out["size"] = n
    return out


def sampling(model, device: torch.device, bf16_peak: float, compile_: bool) -> list[dict]:
    from lumiere_cli.diffusion.wrappers import CFGDenoiser
    from lumiere_cli.nn.layers import fast_autocast
    from lumiere_cli.pipeline import text_kwargs

    cfg = model.config
    rows = []
    for batch in (1, 8, 32):
        with torch.inference_mode():
            cond = text_kwargs(model, [PROMPT] * batch, device)
            uncond = text_kwargs(model, [""], device)
        x = torch.randn(batch, 3, cfg.frames, cfg.size, cfg.size, device=device) * 10
        sigma = torch.full((batch,), 10.0, device=device)
        with torch.inference_mode():  # the same FLOPs in every precision, compiled or not
            flops = _flops(lambda: CFGDenoiser(model.denoiser, 3.0, uncond)(x, sigma, **cond))
        for precision in ("fp32", "bf16"):
            for compiled in (False, True) if compile_ else (False,):
                denoiser = CFGDenoiser(model.denoiser, 3.0, uncond)
                if compiled:
                    denoiser = torch.compile(denoiser, dynamic=False)

                def step():
                    with torch.inference_mode(), fast_autocast(device, precision == "bf16"):
                        return denoiser(x, sigma, **cond)

                try:
                    seconds = _time(step, device)
                except Exception as e:  # a compiler that fails here is a finding, not a crash
                    rows.append({"batch": batch, "precision": precision, "compiled": compiled,
                                 "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
                    continue
                rows.append({"batch": batch, "precision": precision, "compiled": compiled,
                             "step_ms": round(1000 * seconds, 2), "clips_per_s": round(batch / seconds, 1),
                             "gflop": round(flops / 1e9, 2), "tflops": round(flops / seconds / 1e12, 2),
                             "bf16_peak_fraction": round(flops / seconds / 1e12 / bf16_peak, 4)})
    return rows


def training(model_path, device: torch.device, bf16_peak: float, compile_: bool, batches: dict[str, int]) -> list[dict]:
    from lumiere_cli.config import TrainConfig
    from lumiere_cli.nn.layers import fast_autocast
    from lumiere_cli.train.data import make_batch
    from lumiere_cli.train.stages import stage_module
    from lumiere_cli.weights import load_model

    rows = []
    for stage, batch in batches.items():
        for compiled in (False, True) if compile_ else (False,):
            model = load_model(model_path).to(device)
            cfg = TrainConfig(stage=stage, batch_size=batch)
            module = stage_module(cfg, model, None).to(device)
            if stage == "t2i":
                module.train()
            params = [p for p in module.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda")
            data = make_batch(replace(cfg, reference_clips=0), model.config, rank=0, step=0)
            data["tokens"] = model.text.tokenize(data.pop("captions"))
            data = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in data.items()}
            run = torch.compile(module, dynamic=False) if compiled else module

            def step():
                with fast_autocast(device, True):
                    loss = run(**data)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            try:
                seconds = _time(step, device, warmup=3, repeats=8)
            except Exception as e:
                rows.append({"stage": stage, "batch": batch, "compiled": compiled,
                             "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
                continue

            def counted():
                with fast_autocast(device, True):
                    module(**data).backward()
                opt.zero_grad(set_to_none=True)

            flops = _flops(counted)
            rows.append({"stage": stage, "batch": batch, "compiled": compiled, "step_ms": round(1000 * seconds, 2),
                         "samples_per_s": round(batch / seconds, 1), "tflops": round(flops / seconds / 1e12, 2),
                         "bf16_peak_fraction": round(flops / seconds / 1e12 / bf16_peak, 4)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--weights", default=None, help="the model to measure (default: the shipped one)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--t2i-batch", type=int, default=None, help="default: 1024 on CUDA, 16 on a CPU")
    ap.add_argument("--video-batch", type=int, default=None, help="default: 128 on CUDA, 4 on a CPU")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    from lumiere_cli.weights import load_model

    result = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M"), "peak": peak(device)}
    bf16_peak = result["peak"]["bf16_tflops"]
    model = load_model(args.weights).to(device).eval()
    result["sampling"] = sampling(model, device, bf16_peak, args.compile)
    batches = {"t2i": args.t2i_batch or (1024 if cuda else 16), "video": args.video_batch or (128 if cuda else 4)}
    result["training"] = training(args.weights, device, bf16_peak, args.compile, batches)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['device']}, torch {result['torch']}: matmul bf16 {result['peak']['bf16_tflops']} TFLOP/s, "
          f"fp32 {result['peak']['fp32_tflops']} TFLOP/s")
    for row in result["sampling"] + result["training"]:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
