"""scripts/device_weights.py: weights cut into shards under the device tool's file limit come back whole."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_weights.py"


def test_shards_fit_the_limit_and_merge_into_the_same_fp16_model(tiny_weights, tiny_model, tmp_path):
    from lumiere_cli.errors import InputError
    from lumiere_cli.weights import load_model, read_info

    tool = runpy.run_path(str(SCRIPT))
    src = Path(tiny_weights)
    src = src if src.is_file() else next(src.glob("*.safetensors"))
    limit_mib = src.stat().st_size / 2**20 / 5  # well under the file: several shards
    shards = tool["split"](src, tmp_path / "out", limit_mib)
    assert len(shards) > 2
    assert all(p.stat().st_size <= limit_mib * 2**20 + 64 * 1024 for p in shards)  # + the JSON header
    from safetensors import safe_open

    names = [k for p in shards for k in safe_open(str(p), "pt").keys()]
    assert any("@piece" in k for k in names)  # the largest tensor travelled in rows
    merged = tool["merge"](tmp_path / "out", tmp_path / "back" / "model.safetensors")
    back = load_model(merged)
    assert read_info(merged).config == read_info(src).config
    for name, value in tiny_model.state_dict().items():
        expected = value.half().float() if value.is_floating_point() else value
        torch.testing.assert_close(back.state_dict()[name].float(), expected.float(), rtol=0, atol=0)
    shards[0].unlink()
    with pytest.raises(InputError, match="shard"):
        tool["merge"](tmp_path / "out", tmp_path / "again.safetensors")
