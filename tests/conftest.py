"""Shared fixtures: a tiny, randomly initialised model saved as real weights."""

from __future__ import annotations

import pytest
import torch

from lumiere_cli.config import ModelConfig, TextConfig, UNetConfig

TINY_CONFIG = ModelConfig(
    text=TextConfig(context_length=16, width=32, heads=2, layers=1, embed_dim=32),
    unet=UNetConfig(
        channels=(16, 32), res_blocks=1, attn_levels=(False, True), heads=2,
        context_dim=32, pooled_dim=32, temporal_levels=1, temporal_attn_blocks=1,
    ),
    frames=8,
    size=16,
    fps=8,
    vocabulary=("a", "red", "circle", "moving", "left", "on", "black", "background"),
)


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory):
    """No test reads or writes the user's cache (style weights, remembered scans)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _no_user_server(tmp_path_factory):
    """No test hands its commands to a `lumiere serve` the developer left running."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LUMIERE_SOCKET", str(tmp_path_factory.mktemp("no-server") / "serve.sock"))
        yield


def make_tiny_model(seed: int = 0):
    from lumiere_cli.model import LumiereModel

    torch.manual_seed(seed)
    model = LumiereModel(TINY_CONFIG, card={"name": "tiny-test", "note": "random weights"})
    # Zero-initialised output layers would make every sample equal the input: give them weights.
    with torch.no_grad():
        for p in model.unet.parameters():
            if p.ndim > 1 and not p.any():
                p.normal_(0, 0.02)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A directory holding `model.safetensors` for a tiny random model."""
    from lumiere_cli.weights import save_model

    path = tmp_path_factory.mktemp("weights")
    save_model(make_tiny_model(), path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_weights):
    from lumiere_cli.weights import load_model

    return load_model(tiny_weights)
