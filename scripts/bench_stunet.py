"""Parameter counts and CPU throughput of the default STUNet (short, noisy measurements).

    .venv/bin/python scripts/bench_stunet.py [--channels 64,128,192] [--steps 5] [--quick]

Training: forward + backward + AdamW step on clips (batch 16, the model's frames and size), spatial
frozen as in the video stage; fp32, bf16 autocast, bf16 autocast + channels_last_3d. Then the T2I
image throughput (batch 64) and the time of one sampling forward at batch 2.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def tune_allocator() -> None:
    # glibc: no trimming and a huge mmap threshold, so big activations are reused rather than
    # mapped and unmapped every step (measured here to double throughput).
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-4, 0)  # M_MMAP_MAX
    libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD


def timed(step, *, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    tune_allocator()
    import torch

    from lumiere_cli.config import ModelConfig, UNetConfig
    from lumiere_cli.nn import STUNet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=str, default=None, help="e.g. 48,96,144")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="bf16 + channels_last_3d training only")
    args = parser.parse_args()

    mcfg = ModelConfig()
    ucfg = mcfg.unet
    if args.channels:
        ucfg = dataclasses.replace(ucfg, channels=tuple(int(c) for c in args.channels.split(",")))
    assert isinstance(ucfg, UNetConfig)
    torch.manual_seed(0)
    net = STUNet(ucfg)
    n_sp = sum(p.numel() for p in net.spatial.parameters())
    n_tp = sum(p.numel() for p in net.temporal.parameters())
    from lumiere_cli.nn.layers import _cpu_supports

    native = _cpu_supports(torch.bfloat16)
    print(f"channels {ucfg.channels}  threads {torch.get_num_threads()}  native CPU bf16: {native}")
    if not native:
        print("(no native bf16: the network turns CPU autocast off, so 'bf16' rows run in fp32)")
    print(f"params: spatial {n_sp / 1e6:.2f}M  temporal {n_tp / 1e6:.2f}M  total {(n_sp + n_tp) / 1e6:.2f}M")

    b, t, s, l = args.batch, mcfg.frames, mcfg.size, mcfg.text.context_length
    gen = torch.Generator().manual_seed(0)

    def cond(n: int):
        return (
            torch.randn(n, generator=gen) * 0.5,
            torch.randn(n, l, ucfg.context_dim, generator=gen),
            torch.randn(n, ucfg.pooled_dim, generator=gen),
            torch.ones(n, l, dtype=torch.bool),
        )

    def train_clips(bf16: bool, channels_last: bool) -> float:
        net.freeze_spatial(True)
        opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
        x = torch.randn(b, ucfg.in_channels, t, s, s, generator=gen)
        target = torch.randn(b, ucfg.out_channels, t, s, s, generator=gen)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        c = cond(b)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(x, *c)
            loss = (out.float() - target).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return b / timed(step, warmup=args.warmup, steps=args.steps)

    modes = [(True, True)] if args.quick else [(False, False), (True, False), (True, True)]
    for bf16, cl in modes:
        name = ("bf16" if bf16 else "fp32") + (" + channels_last_3d" if cl else "")
        print(f"train video ({b}x{t}x{s}x{s}, spatial frozen) {name}: {train_clips(bf16, cl):.2f} clips/s")
    if args.quick:
        return

    net.eval()
    with torch.no_grad():
        for bf16 in (False, True):
            bi = 64
            x = torch.randn(bi, ucfg.in_channels, s, s, generator=gen)
            c = cond(bi)

            def image_step():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    net.spatial(x, *c)

            rate = bi / timed(image_step, warmup=1, steps=3)
            print(f"T2I forward (batch {bi}) {'bf16' if bf16 else 'fp32'}: {rate:.1f} images/s")

    net.spatial.train()
    net.freeze_spatial(False)
    opt = torch.optim.AdamW(net.spatial.parameters(), lr=1e-4)
    bi = 64
    x = torch.randn(bi, ucfg.in_channels, s, s, generator=gen)
    target = torch.randn(bi, ucfg.out_channels, s, s, generator=gen)
    c = cond(bi)

    def image_train():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net.spatial(x, *c)
        loss = (out.float() - target).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rate = bi / timed(image_train, warmup=1, steps=3)
    print(f"T2I train (batch {bi}) bf16: {rate:.1f} images/s")

    with torch.no_grad():
        x = torch.randn(2, ucfg.in_channels, t, s, s, generator=gen)
        c = cond(2)
        for bf16 in (False, True):
            def sample_step():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    net(x, *c)

            ms = 1000 * timed(sample_step, warmup=1, steps=args.steps)
            print(f"sampling forward (batch 2x{t}x{s}x{s}) {'bf16' if bf16 else 'fp32'}: {ms:.0f} ms")


if __name__ == "__main__":
    main()
