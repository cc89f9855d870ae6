"""Does data loading keep up? Training clips/s on decoded real-codec files against the same steps
on the same batches held in memory.

    python scripts/bench_data.py [--videos 24 --steps 24 --batch-size 4 --workers 2 --threads 1
                                  --stage video --config '{"frames": 16, "size": 32}' --keep DIR]

It encodes a folder of captioned H.264 clips with ffmpeg's lavfi sources (testsrc2, mandelbrot,
life; 640x360 and 320x240, 25 and 30 fps, 4 s each), then:

1. decodes the batches of every step in this process (clips/s of one decoding process);
2. trains `--steps` steps on the folder, the batches decoded by `--workers` loader processes;
3. trains the same steps again on those batches held as tensors in memory (no decoding, no workers).

Both runs take the same batches, so they end on the same loss (printed). The clips/s of a run is
its metrics.jsonl figure over every logged window but the first (which holds the start-up).
`--threads 1` keeps it polite on a shared machine; the workers are extra processes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

SOURCES = ("testsrc2", "mandelbrot", "life")
SIZES = ("640x360", "320x240")
RATES = (25, 30)


def make_dataset(root: Path, n: int, seconds: float) -> list[Path]:
    """n captioned H.264 clips from ffmpeg's lavfi sources, at several sizes and rates."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        source, size, rate = SOURCES[i % 3], SIZES[(i // 3) % 2], RATES[(i // 6) % 2]
        path = root / f"{source}_{i:03d}.mp4"
        spec = f"{source}=size={size}:rate={rate}" + (":mold=10:ratio=0.4" if source == "life" else "")
        subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", spec, "-t", str(seconds),
                        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)],
                       check=True, capture_output=True)
        path.with_suffix(".txt").write_text(f"a {source} pattern, clip {i}, at {size} and {rate} fps\n")
        paths.append(path)
    return paths


def clips_per_s(out_dir: Path) -> tuple[float, float]:
    """(mean clips/s over the logged windows after the first, the last logged loss)."""
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss" in r]
    later = rows[1:] or rows
    return sum(r["clips_per_s"] for r in later) / len(later), rows[-1]["loss"]


class InMemory:
    """Batches held as tensors: the same steps, nothing decoded."""

    def __init__(self, batches: list[dict]):
        self.batches = batches

    def batch(self, step: int, rank: int, micro: int = 0) -> dict:
        return {k: v.clone() if torch.is_tensor(v) else list(v) for k, v in self.batches[step].items()}

    def state(self, step: int) -> dict:
        return {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    ap.add_argument("--stage", default="video")
    ap.add_argument("--config", default="{}", help="ModelConfig changes (JSON) on a new model")
    ap.add_argument("--keep", type=Path, help="build the dataset here and keep it (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from lumiere_cli.config import TrainConfig
    from lumiere_cli.train import check, open_data, train
    from lumiere_cli.train import data as train_data

    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    folder = args.keep or work / "clips"
    try:
        t = time.perf_counter()
        if not (folder.is_dir() and any(folder.glob("*.mp4"))):
            make_dataset(folder, args.videos, args.seconds)
        print(f"dataset: {args.videos} H.264 clips ({', '.join(SIZES)}; {', '.join(map(str, RATES))} fps; "
              f"{args.seconds:g} s) in {folder} ({time.perf_counter() - t:.1f} s to encode)")
        log = max(1, args.steps // 6)
        cfg = TrainConfig(stage=args.stage, data=str(folder), steps=args.steps, batch_size=args.batch_size,
                          workers=args.workers, log_every=log, checkpoint_every=10**9, warmup=2, device="cpu",
                          model_overrides=json.loads(args.config), out_dir=str(work / "decoded"))
        model_cfg = check(cfg)
        print(f"model: {model_cfg.frames} frames of {model_cfg.size}x{model_cfg.size} at {model_cfg.fps} fps, "
              f"stage {cfg.stage}, batch {cfg.batch_size}, {cfg.steps} steps, {args.threads} torch thread(s)")

        # 1. Decoding alone, in this process: the batches both runs train on.
        data = open_data(cfg, model_cfg)
        source = data.batches(world=1, start=0, state={})
        t = time.perf_counter()
        batches = [source.batch(step, 0) for step in range(cfg.steps)]
        decode_s = time.perf_counter() - t
        print(f"decoding alone (1 process): {cfg.steps * cfg.batch_size / decode_s:.1f} clips/s "
              f"({len(data.train.items)} usable entries)")

        # 2. Training on the files, decoded by the loader's workers.
        train(cfg)
        decoded, loss_a = clips_per_s(Path(cfg.out_dir))

        # 3. The same steps on the same batches in memory (the loop asks the stage's data for its
        # source; here it gets the batches above, loaded in the training process).
        memory_cfg = replace(cfg, workers=0, out_dir=str(work / "memory"))
        original = train_data.StageData.batches
        train_data.StageData.batches = lambda self, **kw: InMemory(batches)
        try:
            train(memory_cfg)
        finally:
            train_data.StageData.batches = original
        in_memory, loss_b = clips_per_s(Path(memory_cfg.out_dir))

        print(f"training on decoded files ({args.workers} workers): {decoded:.2f} clips/s")
        print(f"training on in-memory tensors:          {in_memory:.2f} clips/s")
        print(f"decoded / in-memory: {decoded / in_memory:.0%}; last loss {loss_a:.6f} vs {loss_b:.6f} "
              f"({'the same batches' if abs(loss_a - loss_b) < 1e-6 else 'DIFFERENT batches'})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
