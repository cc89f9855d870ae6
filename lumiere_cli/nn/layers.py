"""Building blocks shared by the image U-Net and its space-time inflation.

Axis legend: b batch, c channels, t frames, h height, w width, l text tokens, d features.
Spatial blocks see frames folded into the batch, (b c h w); temporal blocks see (b c t h w).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from .positions import apply_rope, frame_positions, grid_positions, rope_angles


def exists(value) -> bool:
    return value is not None


def default(value, fallback):
    return value if exists(value) else fallback


def divisible_by(num: int, den: int) -> bool:
    return den != 0 and num % den == 0


@functools.cache
def _cpu_supports(dtype: torch.dtype) -> bool:
    try:
        if dtype == torch.bfloat16:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        if dtype == torch.float16:
            return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        return True  # unknown build: trust the caller's choice
    return True


@contextlib.contextmanager
def native_precision(device: torch.device) -> Iterator[bool]:
    """Turn CPU autocast off where the CPU has no native bf16/fp16 kernels.

    Without AVX512-BF16/AMX, PyTorch falls back to reference kernels: a bf16 matmul measured
    100x slower and bf16 convs 30x slower than fp32 on an AVX2 EPYC. Yields True when it
    disabled autocast (the forward then runs, and returns, in fp32).
    """
    dtype = torch.get_autocast_dtype("cpu")
    if device.type == "cpu" and torch.is_autocast_enabled("cpu") and not _cpu_supports(dtype):
        with torch.autocast("cpu", enabled=False):
            yield True
    else:
        yield False


# The initialisers modules call while they are built (torch.nn layers and open_clip's text tower).
_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")


@contextlib.contextmanager
def skipped_init() -> Iterator[None]:
    """Build modules without drawing their initial weights, for a model whose every parameter and
    buffer is loaded next (a strict `load_state_dict`): drawing them took 0.3 s of the shipped
    model's 0.4 s build. Anything left unloaded holds whatever memory it was given, so never use
    it where a load may skip parameters. Not thread-safe: it swaps torch.nn.init's functions."""
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
    keep = lambda tensor, *args, **kwargs: tensor  # noqa: E731
    try:
        for name in saved:
            setattr(nn.init, name, keep)
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)


def zero_init(module: nn.Module) -> nn.Module:
    """New residual branches start at zero so that adding them changes nothing at init."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def group_norm(channels: int, *, max_groups: int = 32) -> nn.GroupNorm:
    # The largest group count <= max_groups that divides channels, so odd widths still work.
    groups = math.gcd(channels, max_groups)
    return nn.GroupNorm(groups, channels, eps=1e-5)


class FourierFeatures(nn.Module):
    """Sinusoidal features of a scalar noise level.

    The caller passes c_noise = log(sigma) / 4, which lives in roughly [-1.6, 1.1]; frequencies
    from 1 to 1000 rad per unit resolve that short range finely without aliasing the coarse end.
    """

    def __init__(self, dim: int, *, min_freq: float = 1.0, max_freq: float = 1000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"FourierFeatures dim must be even, got {dim}")
        freqs = torch.exp(torch.linspace(math.log(min_freq), math.log(max_freq), dim // 2))
        # Not persistent: it is a pure function of the config, no need to store it with weights.
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, c_noise: Tensor) -> Tensor:
        angles = c_noise.float()[:, None] * self.freqs[None, :]  # (b, d/2)
        return torch.cat([angles.cos(), angles.sin()], dim=-1)


def scale_shift(x: Tensor, emb_out: Tensor) -> Tensor:
    """x * (1 + scale) + shift, with (scale, shift) from the embedding, broadcast over space/time."""
    pattern = "b c -> b c 1 1" if x.ndim == 4 else "b c -> b c 1 1 1"  # (b c h w) or (b c t h w)
    scale, shift = (rearrange(z, pattern) for z in emb_out.chunk(2, dim=1))
    return torch.addcmul(shift, x, 1 + scale)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the second norm modulated by the embedding (AdaGN)."""

    def __init__(self, in_channels: int, out_channels: int, *, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: Tensor, emb: Tensor, *, frames: int = 1) -> Tensor:
        """x ((b t) c h w): `frames` frames per clip; emb (b, d), one per clip."""
        h = self.conv1(F.silu(self.norm1(x)))
        mod = repeat(self.emb_proj(F.silu(emb)), "b d -> (b t) d", t=frames)
        h = scale_shift(self.norm2(h), mod)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


def attention(
    q: Tensor, k: Tensor, v: Tensor, *, heads: int, mask: Tensor | None = None, rope: Tensor | None = None
) -> Tensor:
    """Multi-head attention over (b, n, d) tokens; `mask` (b, m) bool, True = attend; `rope`
    (n, r) rotary angles of self-attention's tokens (`positions.rope_angles`).

    Under bf16 autocast SDPA keeps its softmax statistics in fp32 on CPU; rows with no valid key
    are avoided by the caller (the start token is always valid), so no NaNs come out.
    """
    q, k, v = (rearrange(z, "b n (heads d) -> b heads n d", heads=heads) for z in (q, k, v))
    if exists(rope):
        q, k = apply_rope(q, rope), apply_rope(k, rope)
    attn_mask = rearrange(mask, "b m -> b 1 1 m") if exists(mask) else None
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return rearrange(out, "b heads n d -> b n (heads d)")


class SpatialAttention(nn.Module):
    """Self-attention over pixels, then cross-attention to the text tokens, each residual."""

    def __init__(self, channels: int, *, heads: int, context_dim: int):
        super().__init__()
        if not divisible_by(channels, heads):
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.norm_self = group_norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out_self = zero_init(nn.Linear(channels, channels))
        self.norm_cross = nn.LayerNorm(channels)
        self.q_cross = nn.Linear(channels, channels)
        self.kv_cross = nn.Linear(context_dim, 2 * channels)
        # The contrastive encoder's features for "circle" and "square" are ~90% alike (pooled 97%):
        # without the words themselves the image U-Net draws an average of the two (WordsKV).
        self.words_cross = WordsKV(context_dim, 2 * channels)
        self.out_cross = zero_init(nn.Linear(channels, channels))

    def forward(
        self,
        x: Tensor,
        context: Tensor,
        context_mask: Tensor | None,
        words: Tensor | None = None,
        *,
        frames: int = 1,
    ) -> Tensor:
        """x ((b t) c h w): `frames` frames per clip; context, context_mask, words: one per clip."""
        h_size = x.shape[-2]
        tokens = rearrange(x, "b c h w -> b (h w) c")
        h = rearrange(self.norm_self(x), "b c h w -> b (h w) c")
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        tokens = tokens + self.out_self(attention(q, k, v, heads=self.heads))

        # Every frame of a clip reads the same caption: its pixels query it in one batch row, so
        # the keys and values are computed once per clip, not once per frame.
        q = rearrange(self.q_cross(self.norm_cross(tokens)), "(b t) n c -> b (t n) c", t=frames)
        k, v = self.words_cross(self.kv_cross(context), words).chunk(2, dim=-1)
        read = attention(q, k, v, heads=self.heads, mask=context_mask)
        tokens = tokens + self.out_cross(rearrange(read, "b (t n) c -> (b t) n c", t=frames))
        out = rearrange(tokens, "b (h w) c -> b c h w", h=h_size)
        # Keep the caller's memory format (channels_last stays channels_last).
        return out.contiguous(memory_format=_memory_format(x))


def _memory_format(x: Tensor) -> torch.memory_format:
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if x.ndim == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


class SpatialBlock(nn.Module):
    """One U-Net step: a residual block, optionally followed by self + cross attention."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        emb_dim: int,
        attn: bool,
        heads: int,
        context_dim: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.res = ResBlock(in_channels, out_channels, emb_dim=emb_dim, dropout=dropout)
        self.attn = (
            SpatialAttention(out_channels, heads=heads, context_dim=context_dim) if attn else None
        )

    def forward(
        self,
        x: Tensor,
        emb: Tensor,
        context: Tensor,
        context_mask: Tensor | None,
        words: Tensor | None = None,
        *,
        frames: int = 1,
    ) -> Tensor:
        """x ((b t) c h w) holds `frames` frames of each clip; the conditioning is per clip (b, ...)."""
        x = self.res(x, emb, frames=frames)
        if exists(self.attn):
            x = self.attn(x, context, context_mask, words, frames=frames)
        return x


class Downsample(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour then conv: no checkerboard artefacts, unlike a transposed conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


# ---------------------------------------------------------------------------------------------
# Temporal (inflation) blocks: all act on (b c t h w) and are the identity at init.


def _identity_temporal_conv(channels: int, kernel: int, *, stride: int = 1) -> nn.Conv3d:
    """A (kernel, 1, 1) conv whose centre tap is the identity matrix: x -> x at init.

    Not a [0.5, 1, 0.5] smoothing kernel: that doubles a constant signal (see docs/DESIGN.md §1).
    """
    if kernel % 2 == 0:
        raise ValueError(f"temporal_kernel must be odd, got {kernel}")
    conv = nn.Conv3d(
        channels, channels, (kernel, 1, 1), stride=(stride, 1, 1), padding=(kernel // 2, 0, 0)
    )
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :, kernel // 2, 0, 0] = torch.eye(channels)
        conv.bias.zero_()
    return conv


def conv_over_frames(conv: nn.Conv3d, x: Tensor) -> Tensor:
    """A (k, 1, 1) Conv3d applied as a Conv2d over (frames, pixels), with the same weights.

    The same sums in another kernel: fp32 Conv3d has no oneDNN path on CPU (slow_conv3d, 3x
    slower here), and on channels_last_3d clips the (b c t (h w)) view is free.
    """
    if conv.kernel_size[1:] != (1, 1) or conv.padding[1:] != (0, 0) or conv.stride[1:] != (1, 1):
        raise ValueError("conv_over_frames takes convolutions over time only, kernel (k, 1, 1)")
    h = x.shape[-2]
    out = F.conv2d(
        rearrange(x, "b c t h w -> b c t (h w)"),
        rearrange(conv.weight, "o i k 1 1 -> o i k 1"),
        conv.bias,
        stride=(conv.stride[0], 1),
        padding=(conv.padding[0], 0),
        dilation=(conv.dilation[0], 1),
        groups=conv.groups,
    )
    return rearrange(out, "b c t (h w) -> b c t h w", h=h)


def repeat_frames(x: Tensor, times: int) -> Tensor:
    """Each frame `times` times in a row (b c (t times) h w), in x's memory format."""
    if _memory_format(x) == torch.channels_last_3d:
        # One copy in (b t h w c) order, which is channels_last_3d's own.
        y = repeat(rearrange(x, "b c t h w -> b t h w c"), "b t h w c -> b (t n) h w c", n=times)
        return rearrange(y, "b t h w c -> b c t h w")
    return repeat(x, "b c t h w -> b c (t n) h w", n=times)


class TemporalDownsample(nn.Module):
    """Identity-initialised temporal conv with stride 2: exactly x[:, :, ::2] at init."""

    def __init__(self, channels: int, *, kernel: int):
        super().__init__()
        self.conv = _identity_temporal_conv(channels, kernel, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return conv_over_frames(self.conv, x)


class TemporalUpsample(nn.Module):
    """Frame duplication then an identity-initialised temporal conv: repeat_interleave(2) at init."""

    def __init__(self, channels: int, *, kernel: int):
        super().__init__()
        self.conv = _identity_temporal_conv(channels, kernel)

    def forward(self, x: Tensor) -> Tensor:
        return conv_over_frames(self.conv, repeat_frames(x, 2))


class TemporalConvBlock(nn.Module):
    """Factorised space-time residual block: 2D conv per frame, 1D conv over frames, projection.

    The embedding (noise level + pooled text) modulates the features between the two convs:
    the spatial weights only ever saw single frames, so this is the route by which motion words
    ("moving left") reach the layers that model motion.
    """

    def __init__(self, channels: int, *, emb_dim: int, kernel: int, dropout: float = 0.0):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be odd, got {kernel}")
        self.norm1 = group_norm(channels)
        self.spatial_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * channels)
        self.norm2 = group_norm(channels)
        self.temporal_conv = nn.Conv3d(channels, channels, (kernel, 1, 1), padding=(kernel // 2, 0, 0))
        self.dropout = nn.Dropout(dropout)
        self.proj = zero_init(nn.Conv3d(channels, channels, 1))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        t = x.shape[2]
        fmt = _memory_format(x)
        h = F.silu(self.norm1(x))
        h = rearrange(h, "b c t h w -> (b t) c h w")
        h = self.spatial_conv(h.contiguous(memory_format=_frames_format(fmt)))
        h = rearrange(h, "(b t) c h w -> b c t h w", t=t)
        h = scale_shift(self.norm2(h), self.emb_proj(F.silu(emb)))
        h = conv_over_frames(self.temporal_conv, F.silu(h).contiguous(memory_format=fmt))
        h = conv_over_frames(self.proj, self.dropout(F.silu(h)))
        return x + h


def _frames_format(fmt: torch.memory_format) -> torch.memory_format:
    return torch.channels_last if fmt == torch.channels_last_3d else torch.contiguous_format


class TemporalAttentionBlock(nn.Module):
    """Self-attention over frames at each pixel, cross-attention to the text tokens, then an MLP;
    adaptive norms read the embedding. Every branch ends in a zero-initialised projection.

    With `space=True` the self-attention runs over every (frame, row, column) of the clip at once,
    with learned projections of their positions: a pixel can look where the object was a frame
    earlier, so the whole clip can agree on one trajectory (per-pixel attention over frames cannot
    move anything sideways). With `rope` too, queries and keys are rotated by their (frame, row,
    column), so the text-modulated queries can ask for an offset: the shape of a motion word.
    """

    POS_DIM = 16  # sinusoidal features per axis for space-time positions

    def __init__(
        self,
        channels: int,
        *,
        emb_dim: int,
        heads: int,
        context_dim: int,
        mlp_ratio: int = 2,
        space: bool = False,
        rope: bool = False,
    ):
        super().__init__()
        if not divisible_by(channels, heads):
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        if rope and not space:
            raise ValueError("rotary positions are for space-time attention (space=True)")
        self.space = space
        self.rope = rope
        self.pos = nn.Linear(3 * self.POS_DIM, channels) if space else None
        self.norm1 = nn.LayerNorm(channels, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(channels, elementwise_affine=False)
        self.emb_proj = nn.Linear(emb_dim, 4 * channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = zero_init(nn.Linear(channels, channels))
        # The motion words act through time, and the frozen spatial layers never learned to read
        # them from single frames, so the temporal stack reads the tokens itself.
        self.norm_cross = nn.LayerNorm(channels)
        self.q_cross = nn.Linear(channels, channels)
        self.kv_cross = nn.Linear(context_dim, 2 * channels)
        self.out_cross = zero_init(nn.Linear(channels, channels))
        # Keys and values also read the words as such (TextEmbedding.words); zero at init.
        self.words_cross = WordsKV(context_dim, 2 * channels)
        self.mlp_in = nn.Linear(channels, mlp_ratio * channels)
        self.mlp_out = zero_init(nn.Linear(mlp_ratio * channels, channels))

    def forward(
        self, x: Tensor, emb: Tensor, context: Tensor, context_mask: Tensor | None, words: Tensor | None = None
    ) -> Tensor:
        b, c, t, h, w = x.shape
        fmt = _memory_format(x)
        # Every step but the self-attention is per token, so the tokens stay in the order that
        # attention wants: one row per clip, (t h w), for space-time attention (a free view of a
        # channels_last_3d clip); one row per pixel, t long, for attention over frames.
        if self.space:
            tokens = rearrange(x, "b c t h w -> b (t h w) c")
            mod = rearrange(self.emb_proj(F.silu(emb)), "b d -> b 1 d")
        else:
            tokens = rearrange(x, "b c t h w -> (b h w) t c")
            mod = repeat(self.emb_proj(F.silu(emb)), "b d -> (b h w) 1 d", h=h, w=w)
        scale1, shift1, scale2, shift2 = mod.chunk(4, dim=-1)

        a = torch.addcmul(shift1, self.norm1(tokens), 1 + scale1)
        if self.space:
            a = a + self.pos(grid_positions(t, h, w, self.POS_DIM, device=x.device).to(a.dtype))
            q, k, v = self.qkv(a).chunk(3, dim=-1)
            rope = rope_angles(t, h, w, c // self.heads, device=x.device) if self.rope else None
            read = attention(q, k, v, heads=self.heads, rope=rope)
        else:
            a = a + frame_positions(t, c, device=x.device).to(a.dtype)
            q, k, v = self.qkv(a).chunk(3, dim=-1)
            read = attention(q, k, v, heads=self.heads)
        tokens = tokens + self.out(read)

        # Cross-attention is per token, so each clip's tokens query its caption in one batch row.
        q = self.q_cross(self.norm_cross(tokens))
        if not self.space:
            q = rearrange(q, "(b hw) t c -> b (hw t) c", b=b)
        k, v = self.words_cross(self.kv_cross(context), words).chunk(2, dim=-1)
        read = attention(q, k, v, heads=self.heads, mask=context_mask)
        if not self.space:
            read = rearrange(read, "b (hw t) c -> (b hw) t c", t=t)
        tokens = tokens + self.out_cross(read)

        m = torch.addcmul(shift2, self.norm2(tokens), 1 + scale2)
        tokens = tokens + self.mlp_out(F.gelu(self.mlp_in(m)))
        if self.space:
            out = rearrange(tokens, "b (t h w) c -> b c t h w", t=t, h=h, w=w)
        else:
            out = rearrange(tokens, "(b h w) t c -> b c t h w", b=b, h=h, w=w)
        return out.contiguous(memory_format=fmt)


class WordsKV(nn.Module):
    """Adds a projection of the normalised word embeddings to keys and values computed from the
    contextual token features. Zero-initialised, so layers trained without it are unchanged.

    A small text encoder trained briefly and contrastively keeps little of words its loss barely
    needed: on the shipped one, token features of "moving left" and "moving right" were 97% alike,
    and the temporal layers never learned to tell directions apart. The embeddings are distinct.
    """

    def __init__(self, context_dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(context_dim)
        self.proj = zero_init(nn.Linear(context_dim, out_dim))

    def forward(self, kv: Tensor, words: Tensor | None) -> Tensor:
        return kv if words is None else kv + self.proj(self.norm(words))


class TextPool(nn.Module):
    """Attention pooling of the text tokens into one embedding: a learned query per head.

    The contrastive pooled embedding is made for matching whole captions, and on the first shipped
    encoder it barely told apart captions that differ only in their motion word, so the temporal
    layers learn their own summary. The output starts at zero: adding it changes nothing at init.
    """

    def __init__(self, context_dim: int, emb_dim: int, *, heads: int):
        super().__init__()
        if not divisible_by(context_dim, heads):
            raise ValueError(f"context_dim ({context_dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.query = nn.Parameter(torch.randn(1, 1, context_dim) * context_dim**-0.5)
        self.norm = nn.LayerNorm(context_dim)
        self.kv = nn.Linear(context_dim, 2 * context_dim)
        self.words_kv = WordsKV(context_dim, 2 * context_dim)
        self.out = zero_init(nn.Linear(context_dim, emb_dim))

    def forward(self, context: Tensor, context_mask: Tensor | None, words: Tensor | None = None) -> Tensor:
        k, v = self.words_kv(self.kv(self.norm(context)), words).chunk(2, dim=-1)
        q = repeat(self.query, "1 1 d -> b 1 d", b=context.shape[0]).to(k.dtype)
        pooled = attention(q, k, v, heads=self.heads, mask=context_mask)
        return self.out(rearrange(pooled, "b 1 d -> b d"))


def fast_autocast(device: torch.device | str, enabled: bool = True) -> torch.autocast:
    """bf16 autocast where the hardware runs it natively (CUDA, AVX512-BF16/AMX CPUs), else off."""
    device = torch.device(device)
    native = device.type != "cpu" or _cpu_supports(torch.bfloat16)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and native)
