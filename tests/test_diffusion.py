"""Tests for lumiere_cli.diffusion: schedules, the Denoiser, samplers and wrappers (tiny tensors)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lumiere_cli.config import DiffusionConfig
from lumiere_cli.diffusion import (
    SAMPLERS,
    CFGDenoiser,
    Denoiser,
    PasteKnown,
    TemporalWindows,
    get_sigmas,
    sample_ddim,
    sample_dpmpp_2m,
    sample_training_sigmas,
    sigma_from_t,
    sigmas_for_strength,
    t_from_sigma,
    window_starts,
)
from lumiere_cli.diffusion.targets import posterior_mean

CFG = DiffusionConfig()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ExactDenoiser(nn.Module):
    """Always returns the same x0, whatever the input."""

    def __init__(self, x0: torch.Tensor):
        super().__init__()
        self.x0 = x0

    def forward(self, x, sigma, **kwargs):
        return self.x0.expand_as(x).clone()


def gaussian_denoiser(mu: float, s: float):
    """The exact denoiser E[x0 | x] for data x0 ~ N(mu, s^2) per element."""

    def model(x, sigma, **kwargs):
        sig2 = sigma.view(-1, *[1] * (x.ndim - 1)) ** 2
        return (s**2 * x + sig2 * mu) / (s**2 + sig2)

    return model


# --- schedule ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cosine", "karras"])
def test_get_sigmas_float64_monotone_ends_in_zero(kind):
    sigmas = get_sigmas(12, CFG, kind)
    assert sigmas.dtype == torch.float64 and sigmas.shape == (13,)
    assert sigmas[0] == CFG.sigma_max and sigmas[-2] == CFG.sigma_min and sigmas[-1] == 0
    assert (sigmas[1:] < sigmas[:-1]).all()
    assert get_sigmas(1, CFG, kind).tolist() == [CFG.sigma_max, 0.0]


def test_get_sigmas_errors():
    with pytest.raises(ValueError):
        get_sigmas(0, CFG)
    with pytest.raises(ValueError):
        get_sigmas(5, CFG, "linear")


def test_cosine_schedule_uniform_in_t_and_inverse():
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    assert torch.allclose(t_from_sigma(sigma_from_t(t)), t, atol=1e-12)
    assert math.isclose(float(sigma_from_t(0.5)), 1.0, rel_tol=1e-12)  # tan(pi/4)
    ts = t_from_sigma(get_sigmas(8, CFG)[:-1])
    gaps = ts[:-1] - ts[1:]
    assert torch.allclose(gaps, gaps.mean().expand_as(gaps), atol=1e-9)


def test_sigmas_for_strength_runs_that_fraction_of_diffusion_time():
    cfg = DiffusionConfig(schedule_shift=2.0)
    full = get_sigmas(20, cfg)
    assert torch.equal(sigmas_for_strength(20, cfg, 1.0), full)
    t = t_from_sigma(full[:-1] / 2.0)
    t_max, t_min = t[0], t[-1]
    for strength, steps in ((0.3, 6), (0.25, 5), (0.01, 1)):
        tail = sigmas_for_strength(20, cfg, strength)
        assert len(tail) - 1 == steps and tail[-1] == 0 and bool((tail[:-1].diff() < 0).all() or steps == 1)
        start = t_from_sigma(tail[0] / 2.0)
        assert float(start) == pytest.approx(float(t_min + strength * (t_max - t_min)))
    # The start level moves with strength between step boundaries instead of jumping.
    assert sigmas_for_strength(20, cfg, 0.31)[0] > sigmas_for_strength(20, cfg, 0.30)[0]
    for bad in (0.0, -0.1, 1.01, float("nan")):
        with pytest.raises(ValueError):
            sigmas_for_strength(20, cfg, bad)


def test_schedule_shift_moves_steps_and_training_to_higher_noise():
    base, shifted = DiffusionConfig(), DiffusionConfig(schedule_shift=4.0)
    a, b = get_sigmas(25, base), get_sigmas(25, shifted)
    assert b[0] == a[0] == base.sigma_max and b[-2] == a[-2] == base.sigma_min and b[-1] == 0
    assert bool((b[:-1].diff() < 0).all())
    assert int((b > 8).sum()) > int((a > 8).sum()) + 3
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    ta = sample_training_sigmas(20_000, cfg=base, generator=g())
    tb = sample_training_sigmas(20_000, cfg=shifted, generator=g())
    assert math.isclose(float(ta.median()), 1.0, rel_tol=0.05)  # median of tan(pi t / 2), t ~ U(0, 1)
    assert math.isclose(float(tb.median()), 4.0, rel_tol=0.05)
    with pytest.raises(ValueError, match="schedule_shift"):
        get_sigmas(5, DiffusionConfig(schedule_shift=0.0))


def test_sample_training_sigmas_reproducible_and_in_range():
    a = sample_training_sigmas(512, cfg=CFG, generator=gen(3))
    b = sample_training_sigmas(512, cfg=CFG, generator=gen(3))
    assert a.dtype == torch.float32 and a.shape == (512,)
    assert torch.equal(a, b)
    assert (a >= CFG.sigma_min * (1 - 1e-6)).all() and (a <= CFG.sigma_max).all()
    # t = 2 atan(sigma) / pi is uniform: its median is ~0.5, i.e. sigma ~ 1.
    assert 0.7 < a.median().item() < 1.4


# --- Denoiser ---------------------------------------------------------------------------------


class OracleNet(nn.Module):
    """Outputs the exact training target for a known (x0, eps), checking the input layout."""

    def __init__(self, x0, eps, prediction, out_dtype=torch.float32):
        super().__init__()
        self.x0, self.eps, self.prediction, self.out_dtype = x0, eps, prediction, out_dtype
        self.seen = {}

    def forward(self, inp, c_noise, **kwargs):
        self.seen = dict(inp=inp, c_noise=c_noise, **kwargs)
        sigma = (4 * c_noise).exp().view(-1, *[1] * (inp.ndim - 1))
        if self.prediction == "v":
            alpha = (1 + sigma**2).rsqrt()
            out = alpha * self.eps - sigma * alpha * self.x0  # v = alpha eps - s x0
        elif self.prediction == "eps":
            out = self.eps
        else:
            out = self.x0
        return out.to(self.out_dtype)


@pytest.mark.parametrize("prediction", ["v", "eps", "x0"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (2, 3, 4, 4, 4)])
def test_denoiser_oracle_recovers_x0_and_zero_loss(prediction, shape):
    g = gen(1)
    x0, eps = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    sigma = torch.tensor([0.3, 7.0])
    denoiser = Denoiser(OracleNet(x0, eps, prediction), DiffusionConfig(prediction=prediction))
    x = x0 + sigma.view(-1, *[1] * (len(shape) - 1)) * eps
    out = denoiser(x, sigma, context=None)
    assert out.dtype == torch.float32
    assert torch.allclose(out, x0, atol=1e-5)
    seen = denoiser.net.seen
    assert seen["inp"].shape == (shape[0], 7, *shape[2:])
    assert (seen["inp"][:, 3:] == 0).all()  # cond_video, cond_mask default to zeros
    assert "context" in seen
    assert torch.allclose(seen["c_noise"], sigma.log() / 4)
    loss = denoiser.loss(x0, sigma, eps)
    assert loss.shape == (shape[0],) and loss.max().item() < 1e-9


def test_denoiser_input_layout_and_bf16_net():
    x = torch.randn(1, 3, 2, 4, 4)
    cond_video, cond_mask = torch.full_like(x, 0.5), torch.ones(1, 1, 2, 4, 4)
    net = OracleNet(x, x, "x0", out_dtype=torch.bfloat16)
    out = Denoiser(net, CFG)(x, torch.tensor([2.0]), cond_video=cond_video, cond_mask=cond_mask)
    assert out.dtype == torch.float32
    inp = net.seen["inp"]
    assert torch.allclose(inp[:, :3], x / math.sqrt(5))  # c_in = 1 / sqrt(sigma^2 + 1)
    assert torch.equal(inp[:, 3:6], cond_video) and torch.equal(inp[:, 6:], cond_mask)


def test_loss_weight_mask():
    x0 = torch.zeros(2, 3, 2, 2)
    denoiser = Denoiser(lambda inp, c_noise: torch.ones_like(inp[:, :3]), DiffusionConfig(prediction="x0"))
    weight = torch.zeros(2, 1, 2, 2)
    weight[:, :, 0] = 1
    loss = denoiser.loss(x0, torch.ones(2), torch.zeros_like(x0), weight=weight)
    assert torch.allclose(loss, torch.ones(2))  # weighted mean of (1 - 0)^2
    with pytest.raises(ValueError):
        Denoiser(nn.Identity(), DiffusionConfig(prediction="score"))


def test_loss_target_replaces_x0_in_the_regression_only():
    g = gen(3)
    x0, eps = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    sigma = torch.tensor([0.5, 20.0])
    denoiser = Denoiser(OracleNet(x0, eps, "v"), CFG)
    assert torch.equal(denoiser.loss(x0, sigma, eps, target=x0), denoiser.loss(x0, sigma, eps))
    moved = denoiser.loss(x0, sigma, eps, target=x0 + 0.1)
    # v-prediction at sigma_data 1: F's error is the x0 error times sqrt(sigma^2 + 1) / sigma
    expected = 0.01 * (sigma**2 + 1) / sigma**2
    torch.testing.assert_close(moved, expected, rtol=1e-4, atol=1e-6)


def test_posterior_mean_from_candidates_matches_the_exact_gaussian_posterior():
    g = gen(4)
    mu, s, n = 0.5, 0.8, 20_000
    x0 = mu + s * torch.randn(3, 2, generator=g, dtype=torch.float64)
    candidates = torch.cat([x0[:, None], mu + s * torch.randn(3, n, 2, generator=g, dtype=torch.float64)], 1)
    sigma = torch.tensor([0.05, 1.0, 30.0], dtype=torch.float64)
    x = x0 + sigma[:, None] * torch.randn(3, 2, generator=g, dtype=torch.float64)
    est = posterior_mean(x, sigma, candidates)
    exact = gaussian_denoiser(mu, s)(x, sigma)
    torch.testing.assert_close(est, exact, rtol=0, atol=0.03)
    torch.testing.assert_close(posterior_mean(x0[:1], torch.tensor([1e-3]), candidates[:1]), x0[:1])
    with pytest.raises(ValueError):
        posterior_mean(x, sigma, candidates[:, :, :1])


def test_denoiser_sample_training_sigmas_method():
    d = Denoiser(nn.Identity(), CFG)
    expected = sample_training_sigmas(8, cfg=CFG, generator=gen(0))
    assert torch.equal(d.sample_training_sigmas(8, generator=gen(0)), expected)


# --- samplers ---------------------------------------------------------------------------------


def ddim_eta(*args, **kwargs):
    return sample_ddim(*args, eta=0.7, **kwargs)


@pytest.mark.parametrize("sample", [sample_dpmpp_2m, sample_ddim, ddim_eta], ids=["dpmpp", "ddim", "ddim-eta"])
def test_sampler_with_exact_denoiser_ends_at_x0(sample):
    x0 = torch.randn(1, 3, 2, 4, 4, generator=gen(2))
    sigmas = get_sigmas(6, CFG)
    x = torch.randn(x0.shape, generator=gen(3)) * sigmas[0].item()
    steps = []
    out = sample(ExactDenoiser(x0), x, sigmas, callback=steps.append, generator=gen(4))
    assert torch.allclose(out, x0, atol=1e-6)
    assert [s["i"] for s in steps] == list(range(6))
    assert set(steps[0]) == {"i", "x", "sigma", "sigma_next", "denoised"}
    assert steps[-1]["sigma_next"] == 0


def test_samplers_registry():
    assert SAMPLERS == {"ddim": sample_ddim, "dpmpp-2m": sample_dpmpp_2m}


def test_ddim_determinism_and_seeded_noise():
    model = gaussian_denoiser(0.3, 0.5)
    sigmas = get_sigmas(5, CFG)
    x = torch.randn(2, 3, 4, 4, generator=gen(0)) * CFG.sigma_max
    assert torch.equal(sample_ddim(model, x, sigmas), sample_ddim(model, x, sigmas))
    a = sample_ddim(model, x, sigmas, eta=1.0, generator=gen(7))
    b = sample_ddim(model, x, sigmas, eta=1.0, generator=gen(7))
    c = sample_ddim(model, x, sigmas, eta=1.0, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(sample_dpmpp_2m(model, x, sigmas), sample_dpmpp_2m(model, x, sigmas))


def test_ode_samplers_converge_to_probability_flow_with_their_order():
    # For x0 ~ N(mu, s^2) the probability-flow ODE has the closed form
    # x(sigma) = mu + sqrt(s^2 + sigma^2) z, so x_T ends at mu + s (x_T - mu) / sqrt(s^2 + sigma_max^2).
    # Doubling the steps should halve DDIM's error (first order) and quarter DPM-Solver++(2M)'s.
    mu, s = 0.3, 0.5
    model = gaussian_denoiser(mu, s)
    x = torch.randn(2, 3, 8, 8, generator=gen(0), dtype=torch.float64) * CFG.sigma_max
    exact = mu + s * (x - mu) / math.sqrt(s**2 + CFG.sigma_max**2)

    def err(sample, steps):
        return (sample(model, x, get_sigmas(steps, CFG, "karras")) - exact).abs().max().item()

    ddim, dpm = [err(sample_ddim, n) for n in (20, 40)], [err(sample_dpmpp_2m, n) for n in (20, 40)]
    assert 1.6 < ddim[0] / ddim[1] < 2.5
    assert dpm[0] / dpm[1] > 3.0
    assert dpm[1] < ddim[1] / 4


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_keeps_forward_marginals_for_any_eta(eta):
    # DDIM's family (its eq. 7) keeps q(x_sigma | x0) = N(x0, sigma^2) for every eta: with the true x0
    # the sample at every level has standard deviation sigma around x0. Checks sigma_up / sigma_down.
    x0 = torch.zeros(1, 1, 128, 128)
    sigmas = get_sigmas(6, CFG)
    x = torch.randn(x0.shape, generator=gen(1)) * sigmas[0].item()
    seen = []
    sample_ddim(ExactDenoiser(x0), x, sigmas, eta=eta, generator=gen(2), callback=seen.append)
    ratios = [s["x"].std().item() / s["sigma"] for s in seen]
    assert all(abs(r - 1) < 0.03 for r in ratios), ratios


# --- wrappers ---------------------------------------------------------------------------------


class TextNet(nn.Module):
    """Denoiser-shaped toy whose output depends on context, pooled and cond_video, per sample."""

    def forward(self, x, sigma, *, context, pooled, context_mask, cond_video=None, cond_mask=None):
        self.batches = getattr(self, "batches", []) + [x.shape[0]]
        b = x.shape[0]
        ctx = (context * context_mask[..., None]).sum((1, 2)) + pooled.sum(1)  # (b,)
        shift = ctx.view(b, 1, 1, 1, 1) + sigma.view(b, 1, 1, 1, 1)
        return x * 0.5 + shift + (0 if cond_video is None else cond_video)


def text_kwargs(b, seed):
    g = gen(seed)
    return dict(context=torch.randn(b, 5, 4, generator=g), pooled=torch.randn(b, 4, generator=g),
                context_mask=torch.ones(b, 5, dtype=torch.bool))


def test_cfg_scale_one_is_conditional_and_guidance_formula():
    net = TextNet()
    x, sigma = torch.randn(2, 3, 2, 2, 2, generator=gen(0)), torch.tensor([1.0, 2.0])
    cond, neg = text_kwargs(2, 1), text_kwargs(1, 2)  # negative prompt encoded once, batch 1
    cond_video = torch.randn_like(x)
    plain = net(x, sigma, cond_video=cond_video, **cond)
    assert torch.equal(CFGDenoiser(net, 1.0, neg)(x, sigma, cond_video=cond_video, **cond), plain)
    net.batches = []
    guided = CFGDenoiser(net, 4.0, neg)(x, sigma, cond_video=cond_video, **cond)
    assert net.batches == [4]  # one batched call
    neg_b = {k: v.expand(2, *v.shape[1:]) for k, v in neg.items()}
    uncond = net(x, sigma, cond_video=cond_video, **neg_b)
    assert torch.allclose(guided, uncond + 4.0 * (plain - uncond), atol=1e-5)
    with pytest.raises(ValueError):
        bad = dict(neg, context=torch.randn(1, 6, 4))
        CFGDenoiser(net, 2.0, bad)(x, sigma, **cond)


def test_cfg_guides_each_sample_on_the_scale_of_its_noise_level():
    net = TextNet()
    x, sigma = torch.randn(3, 3, 2, 2, 2, generator=gen(0)), torch.tensor([0.3, 1.0, 5.0])
    cond, neg = text_kwargs(3, 1), text_kwargs(1, 2)
    neg_b = {k: v.expand(3, *v.shape[1:]) for k, v in neg.items()}
    plain, uncond = net(x, sigma, **cond), net(x, sigma, **neg_b)
    model = CFGDenoiser(net, 3.0, neg, low=(1.0, 1.5))
    assert model.scales(sigma).tolist() == [1.5, 3.0, 3.0]  # below 1 only
    out = model(x, sigma, **cond)
    for i, scale in enumerate([1.5, 3.0, 3.0]):
        assert torch.allclose(out[i], uncond[i] + scale * (plain[i] - uncond[i]), atol=1e-5)
    # no guidance at low noise: one plain call there, the guided one above
    off = CFGDenoiser(net, 3.0, neg, low=(1.0, 1.0))
    net.batches = []
    assert torch.equal(off(x[:1], sigma[:1], **text_kwargs(1, 1)), net(x[:1], sigma[:1], **text_kwargs(1, 1)))
    off(x[2:], sigma[2:], **text_kwargs(1, 1))
    assert net.batches == [1, 1, 2]
    # the same scale below as above is one scale
    assert CFGDenoiser(net, 3.0, neg, low=(1.0, 3.0)).low is None
    # a high band: over its level only, beside the low one
    banded = CFGDenoiser(net, 3.0, neg, low=(1.0, 1.5), high=(2.0, 2.0))
    assert banded.scales(sigma).tolist() == [1.5, 3.0, 2.0]
    out = banded(x, sigma, **cond)
    for i, scale in enumerate([1.5, 3.0, 2.0]):
        assert torch.allclose(out[i], uncond[i] + scale * (plain[i] - uncond[i]), atol=1e-5)
    assert CFGDenoiser(net, 3.0, neg, high=(5.0, 3.0)).high is None


def test_temporal_windows_single_window_equals_plain():
    net = TextNet()
    x, sigma = torch.randn(1, 3, 4, 2, 2, generator=gen(0)), torch.tensor([1.0])
    kw = dict(text_kwargs(1, 1), cond_video=torch.randn_like(x))
    assert torch.equal(TemporalWindows(net, 4, 2)(x, sigma, **kw), net(x, sigma, **kw))
    assert torch.equal(TemporalWindows(net, 8, 2)(x, sigma, **kw), net(x, sigma, **kw))


def test_temporal_windows_average_per_frame_denoiser():
    net = TextNet()  # per-frame independent, cond_video sliced in time alongside x
    x, sigma = torch.randn(2, 3, 11, 2, 2, generator=gen(0)), torch.tensor([1.0, 0.5])
    kw = dict(text_kwargs(2, 1), cond_video=torch.randn_like(x), cond_mask=torch.ones(2, 1, 11, 2, 2))
    for window, overlap in [(4, 2), (4, 0), (5, 3), (8, 2)]:
        out = TemporalWindows(net, window, overlap)(x, sigma, **kw)
        assert torch.allclose(out, net(x, sigma, **kw), atol=1e-6)


def test_temporal_windows_average_and_starts():
    # A denoiser that returns each frame's index within its window, so the averaging is visible.
    def model(x, sigma, **kwargs):
        return torch.arange(x.shape[2], dtype=x.dtype).view(1, 1, -1, 1, 1).expand_as(x)

    out = TemporalWindows(model, 4, 2)(torch.zeros(1, 1, 6, 1, 1), 1.0)
    assert out.flatten().tolist() == [0, 1, 1, 2, 2, 3]  # windows [0, 4) and [2, 6)
    for frames, window, overlap in [(16, 8, 2), (20, 8, 2), (80, 16, 2), (9, 4, 3)]:
        starts = window_starts(frames, window, overlap)
        assert starts[0] == 0 and starts[-1] == frames - window
        assert all(0 < b - a <= window - overlap for a, b in zip(starts, starts[1:]))
    with pytest.raises(ValueError):
        TemporalWindows(model, 4, 4)


def test_paste_known_returns_known_pixels_with_any_sampler():
    g = gen(5)
    known = torch.randn(1, 3, 4, 4, 4, generator=g)
    known_mask = (torch.rand(1, 1, 4, 4, 4, generator=g) > 0.5).float()
    sigmas = get_sigmas(5, CFG)
    x = torch.randn(known.shape, generator=g) * CFG.sigma_max
    model = gaussian_denoiser(0.0, 0.5)
    for sample in (sample_ddim, sample_dpmpp_2m, ddim_eta):
        out = sample(PasteKnown(model, known, known_mask), x, sigmas, generator=gen(6))
        keep = known_mask.bool().expand_as(known)
        assert torch.equal(out[keep], known[keep])
        assert not torch.allclose(out[~keep], known[~keep])


def test_wrappers_compose_cfg_paste_windows():
    net = TextNet()
    x = torch.randn(1, 3, 6, 2, 2, generator=gen(0))
    known, known_mask = torch.randn_like(x), torch.zeros(1, 1, 6, 2, 2)
    known_mask[:, :, 0] = 1
    cond, neg = text_kwargs(1, 1), text_kwargs(1, 2)
    model = CFGDenoiser(PasteKnown(TemporalWindows(net, 4, 2), known, known_mask), 3.0, neg)
    extra_args = dict(cond, cond_video=known)
    out = sample_dpmpp_2m(model, x * CFG.sigma_max, get_sigmas(3, CFG), extra_args=extra_args)
    assert out.shape == x.shape and torch.allclose(out[:, :, 0], known[:, :, 0])
