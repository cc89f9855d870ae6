"""Text encoder: shapes, mask, determinism and loading a user's OpenCLIP checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from lumiere_cli.config import TextConfig
from lumiere_cli.nn.text import TextEmbedding, TextEncoder

TINY = TextConfig(context_length=16, width=32, heads=2, layers=1, embed_dim=24)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    torch.manual_seed(0)
    return TextEncoder(TINY).eval()


def test_tokenize_and_mask(encoder):
    tokens = encoder.tokenize(["a red ball moving left", "", "word " * 40])
    assert tokens.dtype == torch.long and tokens.shape == (3, TINY.context_length)
    emb = encoder(tokens)
    assert isinstance(emb, TextEmbedding)
    assert emb.tokens.shape == (3, TINY.context_length, TINY.width)
    assert emb.pooled.shape == (3, TINY.embed_dim)
    assert emb.mask.dtype == torch.bool
    # start + 5 words + end; empty prompt: start + end; long prompt: truncated, all valid.
    assert emb.mask.sum(dim=1).tolist() == [7, 2, TINY.context_length]
    assert emb.mask[0, :7].all() and not emb.mask[0, 7:].any()
    with pytest.raises(TypeError):
        encoder.tokenize("not a list")


def test_deterministic_and_padding_independent(encoder):
    with torch.no_grad():
        a = encoder.encode(["a blue square bouncing"])
        b = encoder.encode(["a blue square bouncing", "a much longer prompt about a green triangle"])
    torch.testing.assert_close(a.pooled[0], b.pooled[0])
    # Causal attention: valid token features do not depend on the batch or the padding.
    valid = a.mask[0]
    torch.testing.assert_close(a.tokens[0][valid], b.tokens[0][valid])
    assert not torch.allclose(b.pooled[0], b.pooled[1])


def test_open_clip_is_not_imported_by_the_package():
    import subprocess
    import sys

    code = "import lumiere_cli.nn, sys; print('open_clip' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_encoding_needs_no_torchvision_and_the_whole_library_still_loads():
    """The text modules come without open_clip's __init__ (torchvision, timm); the first name the
    package lacks runs it, and then open_clip is the library as `import open_clip` gives it."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from lumiere_cli.config import TextConfig\n"
        "from lumiere_cli.nn.text import TextEncoder\n"
        "enc = TextEncoder(TextConfig(context_length=16, width=32, heads=2, layers=1, embed_dim=24))\n"
        "enc.encode(['a red ball'])\n"
        "print(sorted(m for m in ('torchvision', 'timm', 'open_clip.factory') if m in sys.modules))\n"
        "import open_clip\n"
        "from open_clip import create_model, SimpleTokenizer\n"
        "print(open_clip.__version__ != '', type(sys.modules['open_clip.utils'].FrozenBatchNorm2d).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True type"]


def test_tokens_are_those_of_open_clips_tokenizer(encoder):
    from open_clip.tokenizer import SimpleTokenizer

    prompts = ["a red ball moving left", "", "word " * 40, "A Blue  SQUARE, bouncing!"]
    expected = SimpleTokenizer(context_length=TINY.context_length)(prompts)
    assert torch.equal(encoder.tokenize(prompts), expected)


def _tiny_openclip(tmp_path, name: str, custom_text: bool):
    import open_clip

    cfg = {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 20, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }
    if custom_text:
        cfg["custom_text"] = True
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    torch.manual_seed(1)
    return open_clip.create_model(name)


@pytest.mark.parametrize("custom_text", [False, True])
def test_from_openclip_round_trip(tmp_path, custom_text):
    from safetensors.torch import save_file

    name = f"lumiere-test-tiny-{'custom' if custom_text else 'clip'}"
    model = _tiny_openclip(tmp_path, name, custom_text).eval()
    ckpt = tmp_path / "tiny.safetensors"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(ckpt))

    enc = TextEncoder.from_openclip(name, ckpt)
    assert enc.cfg == TextConfig(
        context_length=20, vocab_size=49408, width=32, heads=2, layers=2, embed_dim=24, openclip_model=name
    )
    prompts = ["a red ball moving left", "a dog"]
    tokens = enc.tokenize(prompts)
    assert tokens.shape == (2, 20)
    with torch.no_grad():
        emb = enc(tokens)
        expected = model.encode_text(tokens)
    torch.testing.assert_close(emb.pooled, expected)
    assert emb.tokens.shape == (2, 20, 32)

    # A model rebuilt from its config takes the same weights (how saved models come back).
    rebuilt = TextEncoder(enc.cfg)
    rebuilt.load_state_dict(enc.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(tokens).pooled, expected)


def test_from_openclip_refuses_pickles(tmp_path):
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"not really a pickle")
    with pytest.raises(ValueError, match="safetensors"):
        TextEncoder.from_openclip("ViT-B-32", pickle)
    with pytest.raises(ValueError, match="not found"):
        TextEncoder.from_openclip("ViT-B-32", tmp_path / "missing.safetensors")
