"""Style fine-tuning touches spatial weights only; blending interpolates them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lumiere_cli.errors import InputError, UsageError
from lumiere_cli.stylize import blend_style, train_style


def test_train_and_blend(tiny_model):
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    seen = []
    style = train_style(tiny_model, image, steps=3, batch_size=2,
                        progress=lambda phase, done, total: seen.append(done))
    assert seen == [1, 2, 3]
    orig = tiny_model.unet.spatial.state_dict()
    assert any(not torch.equal(style[k], orig[k]) for k in orig)

    for alpha in (0.0, 0.5, 1.0):
        blended = blend_style(tiny_model, style, alpha)
        got = blended.unet.spatial.state_dict()
        for k in orig:
            torch.testing.assert_close(got[k], torch.lerp(orig[k], style[k], alpha))
        assert all(torch.equal(a, b) for a, b in zip(blended.unet.temporal.parameters(),
                                                      tiny_model.unet.temporal.parameters()))
    # the original model is left alone
    assert all(torch.equal(v, tiny_model.unet.spatial.state_dict()[k]) for k, v in orig.items())


def test_bad_style_inputs(tiny_model):
    with pytest.raises(UsageError):
        blend_style(tiny_model, tiny_model.unet.spatial.state_dict(), 1.5)
    with pytest.raises(InputError):
        blend_style(tiny_model, {"nope": torch.zeros(1)}, 0.5)
    with pytest.raises(InputError):
        train_style(tiny_model, np.zeros((8, 8, 3), np.uint8), steps=1)
