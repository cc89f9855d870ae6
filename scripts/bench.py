"""What `lumiere t2v` costs on this machine, phase by phase (short, noisy measurements: say the load).

    .venv/bin/python scripts/bench.py [--json] [--threads N] [--only startup,step,...] [--quality-n 16]

- startup: a t2v in a fresh process, its wall time against the sidecar's generate_s (start-up is the
  rest), and what its imports cost (python -X importtime, a second run);
- served: the same t2v handed to a `lumiere serve` started for the measurement (its own socket);
- step: one guided sampling step (batch 2, the model's frames and size) in this process: its time,
  its FLOPs (torch's flop counter) and GFLOP/s against the fastest of an fp32 2048x2048 matmul, the
  same product through oneDNN and a dense 3x3 convolution, measured in the same run at the same
  thread count (and against the matmul alone); then the whole sampling of a default t2v, base and
  SSR, the same way;
- quality: `lumiere eval --n N --base-only` at several (sampler, steps, high-noise guidance), fresh
  processes;
- batch: N prompts as N separate t2v processes against one `--prompts FILE` run (clips/s);
- memory: peak RSS of a t2v process at 16, 64 and 256 frames (long clips use temporal windows), and
  of `lumiere upscale --size N` at several sizes, in tiles and whole (the SSR's tiles);
- diffusers: diffusers' UNet3DConditionModel at about the STUNet's parameter count, one forward of
  the same guided batch, when diffusers can be imported (it is not a dependency of this project).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

PROMPT = "a blue square moving up on a gray background"
PROMPTS = [
    "a red circle moving left on a black background",
    "a blue square moving up on a gray background",
    "a green triangle moving right on a white background",
    "a yellow circle growing on a black background",
    "a purple square moving down on a white background",
    "a orange triangle shrinking on a gray background",
    "a red square bouncing on a black background",
    "a blue circle moving right on a white background",
]
# (sampler, steps, schedule shift, guidance above noise 5; None: the model's): the default first.
QUALITY = (("ddim", 10, None, None), ("ddim", 10, None, 3.0), ("ddim", 25, None, None), ("ddim", 25, None, 3.0),
           ("dpmpp-2m", 10, None, None))
SECTIONS = ("startup", "served", "step", "quality", "batch", "memory", "diffusers")


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average": [round(v, 2) for v in os.getloadavg()], "date": time.strftime("%Y-%m-%d %H:%M")}


def lumiere(*args: str, threads: int | None = None, importtime: bool = False,
            socket: Path | None = None) -> tuple[float, str, str]:
    """Run `lumiere ARGS` in a fresh process, or handed to the server on `socket`: (wall seconds,
    stdout, stderr)."""
    env = dict(os.environ)
    if socket is None:
        env["LUMIERE_NO_SERVER"] = "1"  # a server the user runs would measure itself
    else:
        env.update({"LUMIERE_SOCKET": str(socket), "LUMIERE_NO_SERVER": "0"})
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "lumiere_cli", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env, cwd=ROOT, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    return wall, proc.stdout, proc.stderr


def peak_rss_of(*args: str, threads: int | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS in MiB) of `lumiere ARGS` in a fresh process, from wait4's rusage."""
    env = {**os.environ, "LUMIERE_NO_SERVER": "1"}  # a served command's RSS would be the client's
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lumiere_cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    return wall, usage.ru_maxrss / 1024


def _records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _imports(stderr: str) -> dict[str, float]:
    """Seconds per top-level package from `python -X importtime` (cumulative, first import)."""
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if not cumulative.isdigit() or name.startswith(" ") or "." in name.strip():
            continue
        name = name.strip()
        totals[name] = totals.get(name, 0.0) + int(cumulative) / 1e6
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:8]
    return {k: round(v, 3) for k, v in top}


# ----------------------------------------------------------------------------- sections


def startup(args) -> dict:
    out_dir = Path(tempfile.mkdtemp(prefix="lumiere-bench-"))
    runs = []
    for _ in range(args.repeats):
        wall, out, _ = lumiere("t2v", PROMPT, "--seed", "0", "--json", "--base-only", "--overwrite",
                                  "-o", str(out_dir / "clip.mp4"), threads=args.threads)
        timings = _records(out)[0]["timings"]
        runs.append({"wall_s": wall, "generate_s": timings["generate_s"], "startup_s": wall - timings["generate_s"],
                     "timings": timings})
    _, _, err = lumiere("t2v", PROMPT, "--seed", "0", "--json", "--base-only", "--overwrite", "-o",
                           str(out_dir / "clip.mp4"), threads=args.threads, importtime=True)
    best = min(runs, key=lambda r: r["startup_s"])
    return {"runs": len(runs), "wall_s": round(best["wall_s"], 3), "generate_s": round(best["generate_s"], 3),
            "startup_s": round(best["startup_s"], 3),
            "startup_median_s": round(statistics.median(r["startup_s"] for r in runs), 3),
            "timings": best["timings"], "imports_s": _imports(err), "target_startup_s": 2.5}


def served(args) -> dict:
    """Start-up of the same t2v as `startup`, handed to a `lumiere serve` (on a socket of its own)."""
    folder = Path(tempfile.mkdtemp(prefix="lumiere-bench-"))
    socket = folder / "run" / "serve.sock"
    socket.parent.mkdir(mode=0o700)
    env = {**os.environ, "LUMIERE_SOCKET": str(socket)}
    if args.threads is not None:
        env["OMP_NUM_THREADS"] = str(args.threads)
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "lumiere_cli", "serve", "-q"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not socket.exists():
            if server.poll() is not None or time.perf_counter() - start > 120:
                raise RuntimeError("lumiere serve did not start")
            time.sleep(0.02)
        ready_s = time.perf_counter() - start
        runs = []
        for _ in range(args.repeats):
            wall, out, _ = lumiere("t2v", PROMPT, "--seed", "0", "--json", "--base-only", "--overwrite",
                                   "-o", str(folder / "clip.mp4"), threads=args.threads, socket=socket)
            generate_s = _records(out)[0]["timings"]["generate_s"]
            runs.append({"wall_s": wall, "generate_s": generate_s, "startup_s": wall - generate_s})
    finally:
        server.terminate()
        server.wait(timeout=60)
    best = min(runs, key=lambda r: r["startup_s"])
    return {"runs": len(runs), "server_ready_s": round(ready_s, 3), "wall_s": round(best["wall_s"], 3),
            "generate_s": round(best["generate_s"], 3), "startup_s": round(best["startup_s"], 3),
            "startup_median_s": round(statistics.median(r["startup_s"] for r in runs), 3), "target_startup_s": 2.5}


def dense_peaks(repeats: int = 5) -> dict[str, float]:
    """GFLOP/s, best of `repeats`, of the densest fp32 kernels torch has here: a 2048x2048 matmul
    (BLAS), the same kind of product through oneDNN (a 1x1 convolution, 4096 x 512 x 512) and a 3x3
    convolution (256 channels, 64x64). `peak` is the fastest: on a CPU whose BLAS takes a narrower
    vector path than oneDNN (MKL on AMD's AVX-512 takes AVX2), the matmul alone is not the peak."""
    import torch
    import torch.nn.functional as F

    def best(fn, flop: float) -> float:
        return flop / _time(fn, warmup=1, repeats=repeats)[0] / 1e9

    with torch.inference_mode():
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        x, w1 = torch.randn(1, 512, 64, 64), torch.randn(512, 512, 1, 1)
        y, w3 = torch.randn(1, 256, 64, 64), torch.randn(256, 256, 3, 3)
        out = {"matmul": best(lambda: a @ b, 2 * 2048**3),
               "onednn_gemm": best(lambda: F.conv2d(x, w1), 2 * 4096 * 512 * 512),
               "conv3x3": best(lambda: F.conv2d(y, w3, padding=1), 2 * 4096 * 256 * 256 * 9)}
    return {**{k: round(v, 1) for k, v in out.items()}, "peak": round(max(out.values()), 1)}


def _fractions(gflops: float, peaks: dict[str, float]) -> dict[str, float]:
    """Shares of the fastest dense kernel (`peak_fraction`) and of the BLAS matmul alone."""
    return {"peak_fraction": round(gflops / peaks["peak"], 3), "matmul_fraction": round(gflops / peaks["matmul"], 3)}


def _guided_step(model, batch: int = 1):
    """A function running one guided step of `batch` clips as sampling runs it, and its inputs."""
    import torch

    from lumiere_cli.diffusion.wrappers import CFGDenoiser
    from lumiere_cli.pipeline import text_kwargs

    cfg = model.config
    with torch.inference_mode():
        cond = text_kwargs(model, [PROMPT] * batch, "cpu")
        uncond = text_kwargs(model, [""], "cpu")
    denoiser = CFGDenoiser(model.denoiser, 3.0, uncond)
    x = torch.randn(batch, 3, cfg.frames, cfg.size, cfg.size) * 10
    sigma = torch.full((batch,), 10.0)

    def step():
        with torch.inference_mode():
            return denoiser(x, sigma, **cond)

    return step


def _time(fn, *, warmup: int = 2, repeats: int = 10) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def step(args) -> dict:
    import torch

    from lumiere_cli.weights import load_model

    torch.set_num_threads(args.threads or torch.get_num_threads())
    model = load_model(None)
    run = _guided_step(model)
    flops = _flops(run)
    best, median = _time(run, repeats=args.step_repeats)
    peaks = dense_peaks()
    batches = {}
    for b in (4,):  # several requests through one network call: what --prompts could batch
        big = _guided_step(model, b)
        b_best, _ = _time(big, warmup=1, repeats=max(3, args.step_repeats // 3))
        batches[f"clips_{b}"] = {"step_ms": round(1000 * b_best, 1), "per_clip_ms": round(1000 * b_best / b, 1)}
    cascade = _cascade_sampling(model, peaks)
    return {"threads": torch.get_num_threads(), "batch": "2 (guided: prompt and negative)",
            "clip": f"{model.config.frames}x{model.config.size}x{model.config.size}",
            "params_unet_M": round(sum(p.numel() for p in model.unet.parameters()) / 1e6, 2),
            "gflop": round(flops / 1e9, 3), "step_ms": round(1000 * best, 1), "step_median_ms": round(1000 * median, 1),
            "gflops": round(flops / best / 1e9, 1), "peaks_gflops": peaks, **_fractions(flops / best / 1e9, peaks),
            "target_fraction": 0.65, "batched": batches,
            "cascade": cascade}


def _cascade_sampling(model, peaks: dict[str, float]) -> dict | None:
    """The whole sampling of a default t2v, base then SSR (default settings, one clip): its FLOPs,
    best time of 3 and shares of the peaks. None without the shipped SSR."""
    from lumiere_cli.cascade.header import ssr_beside
    from lumiere_cli.cascade.sample import upscale
    from lumiere_cli.cascade.weights import load_ssr
    from lumiere_cli.pipeline import generate

    path = ssr_beside(None)
    if path is None:
        return None
    ssr = load_ssr(path)

    def run():
        frames = generate(model, PROMPT, seed=0).frames
        return upscale(ssr, frames, PROMPT, seed=0)

    def base():
        return generate(model, PROMPT, seed=0)

    flops, base_flops = _flops(run), _flops(base)
    best, _ = _time(run, warmup=1, repeats=3)
    base_best, _ = _time(base, warmup=1, repeats=3)
    ssr_flops, ssr_s = flops - base_flops, best - base_best
    return {"gflop": round(flops / 1e9, 1), "s": round(best, 3), "gflops": round(flops / best / 1e9, 1),
            **_fractions(flops / best / 1e9, peaks),
            "base": {"gflop": round(base_flops / 1e9, 1), "s": round(base_best, 3),
                     **_fractions(base_flops / base_best / 1e9, peaks)},
            "ssr": {"gflop": round(ssr_flops / 1e9, 1), "s": round(ssr_s, 3), **_fractions(ssr_flops / ssr_s / 1e9, peaks)}}


def quality(args) -> dict:
    rows = []
    for sampler, steps, shift, high in QUALITY:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "eval.json"
            shifted = ["--schedule-shift", str(shift)] if shift is not None else []
            guided = ["--guidance-high", str(high)] if high is not None else []
            wall, _, _ = lumiere("eval", "--n", str(args.quality_n), "--sampler", sampler, "--steps", str(steps),
                                 *shifted, *guided, "--base-only", "--json-out", str(out), "-q", threads=args.threads)
            report = json.loads(out.read_text())
        options = report.get("options", {})
        rows.append({"sampler": sampler, "steps": steps, "shift": options.get("schedule_shift", shift),
                     "guidance_high": options.get("guidance_high", high), "wall_s": round(wall, 1),
                     **_eval_figures(report)})
    return {"n": args.quality_n, "rows": rows}


def _eval_figures(report: dict) -> dict:
    """Per split: all-correct ("all"; strict in the strict eval), the matched filter's all-correct
    and consistency where the eval reports them, motion, background, consistency and grain."""
    figures = {}
    for split, row in report.get("splits", {}).items():
        for key in ("all", "matched_all", "motion", "background", "consistent", "matched_consistent", "grain"):
            if key in row:
                figures[f"{split}_{key}"] = row[key]
    return figures


def batch(args) -> dict:
    n = args.batch_n
    prompts = (PROMPTS * (n // len(PROMPTS) + 1))[:n]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for k, prompt in enumerate(prompts):
            lumiere("t2v", prompt, "--seed", str(k), "--base-only", "-q", "--out-dir", f"{tmp}/alone",
                    threads=args.threads)
        alone = time.perf_counter() - start
        listing = Path(tmp) / "prompts.txt"
        listing.write_text("\n".join(prompts) + "\n")
        wall, _, _ = lumiere("t2v", "--prompts", str(listing), "--seed", "0", "--base-only", "-q",
                                "--out-dir", f"{tmp}/batch", threads=args.threads)
    return {"prompts": n, "separate_s": round(alone, 2), "one_run_s": round(wall, 2),
            "separate_clips_per_s": round(n / alone, 3), "one_run_clips_per_s": round(n / wall, 3),
            "speedup": round(alone / wall, 2), "target_speedup": 2.0}


def memory(args) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for frames in args.frames:
            wall, rss = peak_rss_of("t2v", PROMPT, "--frames", str(frames), "--steps", str(args.memory_steps),
                                    "--seed", "0", "--base-only", "-q", "--out-dir", tmp, threads=args.threads)
            rows.append({"frames": frames, "peak_rss_mib": round(rss, 1), "wall_s": round(wall, 1)})
        if len(rows) > 1:
            # MiB per extra frame between neighbouring counts: flat when growth is linear.
            for a, b in zip(rows, rows[1:]):
                b["mib_per_frame_since_previous"] = round((b["peak_rss_mib"] - a["peak_rss_mib"]) / (b["frames"] - a["frames"]), 3)
        # the SSR by pixels: `lumiere upscale --size N` on a real-codec clip, default tiles and whole frames
        import imageio_ffmpeg

        src = Path(tmp) / "testsrc2.mp4"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x256:rate=8",
                        "-t", "2", "-pix_fmt", "yuv420p", str(src)], check=True)
        ssr_rows = []
        for size in args.ssr_sizes:
            row = {"size": size}
            for name, extra in (("tiles", []), ("whole", ["--ssr-tile", "0"])):
                wall, rss = peak_rss_of("upscale", "--video", str(src), "--size", str(size), "--ssr-steps", "1", *extra,
                                        "-q", "--overwrite", "-o", str(Path(tmp) / f"up{size}.mp4"), threads=args.threads)
                row[name] = {"peak_rss_mib": round(rss, 1), "wall_s": round(wall, 1)}
            ssr_rows.append(row)
    return {"steps": args.memory_steps, "rows": rows, "ssr_steps": 1, "ssr_rows": ssr_rows}


def diffusers_step(args) -> dict:
    try:
        from diffusers import UNet3DConditionModel
    except ImportError:
        return {"skipped": "diffusers is not installed (optional; not a dependency of lumiere-cli)"}
    import torch

    from lumiere_cli.weights import load_model

    torch.set_num_threads(args.threads or torch.get_num_threads())
    model = load_model(None)
    u = model.config.unet
    target = sum(p.numel() for p in model.unet.parameters())
    side = model.config.size // u.patch

    def build(width: int) -> torch.nn.Module:
        # The STUNet's layout: levels of width, 2x, 4x, attention below the first level, the
        # same pixel-unshuffled input, text width and heads.
        return UNet3DConditionModel(
            sample_size=side, in_channels=u.in_channels * u.patch**2, out_channels=u.out_channels * u.patch**2,
            down_block_types=("DownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D"),
            up_block_types=("CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "UpBlock3D"),
            block_out_channels=(width, 2 * width, 4 * width), layers_per_block=u.res_blocks,
            cross_attention_dim=u.context_dim, attention_head_dim=8, norm_num_groups=8,
        ).eval()

    width = min(range(8, 129, 8), key=lambda w: abs(sum(p.numel() for p in build(w).parameters()) - target))
    net = build(width)
    params = sum(p.numel() for p in net.parameters())
    x = torch.randn(2, u.in_channels * u.patch**2, model.config.frames, side, side)
    context = torch.randn(2, model.config.text.context_length, u.context_dim)
    t = torch.tensor([500, 500])

    def run():
        with torch.inference_mode():
            return net(x, t, encoder_hidden_states=context).sample

    flops = _flops(run)
    best, _ = _time(run, repeats=args.step_repeats)
    return {"width": width, "params_M": round(params / 1e6, 2), "stunet_params_M": round(target / 1e6, 2),
            "input": list(x.shape), "gflop": round(flops / 1e9, 3), "step_ms": round(1000 * best, 1),
            "gflops": round(flops / best / 1e9, 1)}


# ----------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {','.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh t2v processes for start-up")
    parser.add_argument("--step-repeats", type=int, default=10)
    parser.add_argument("--quality-n", type=int, default=16, help="clips per split for each eval row")
    parser.add_argument("--batch-n", type=int, default=8, help="prompts for the batch comparison")
    parser.add_argument("--frames", type=lambda s: [int(v) for v in s.split(",")], default=[16, 64, 256])
    parser.add_argument("--memory-steps", type=int, default=2, help="steps of the memory runs (peak is per step)")
    parser.add_argument("--ssr-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[32, 64, 128],
                        help="input sides of the SSR memory runs (output 4x)")
    args = parser.parse_args()
    wanted = [s for s in args.only.split(",") if s]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    functions = {"startup": startup, "served": served, "step": step, "quality": quality, "batch": batch, "memory": memory,
                 "diffusers": diffusers_step}
    result = {"machine": machine()}
    for name in wanted:
        if not args.json:
            print(f"[{name}] ...", file=sys.stderr, flush=True)
        result[name] = functions[name](args)
        if not args.json:
            print(f"{name}: {json.dumps(result[name])}", flush=True)
    result["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    if args.json:
        print(json.dumps(result))
    else:
        print(f"machine: {json.dumps(result['machine'])}")


if __name__ == "__main__":
    main()
