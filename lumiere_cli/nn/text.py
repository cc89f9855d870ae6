"""Text encoder: open_clip's text tower and BPE tokenizer.

Axis legend: b batch, l tokens, d features.

`open_clip` takes seconds to import, so it is imported inside functions: the CLI answers
`--help` without paying for it. The shipped encoder needs only its `tokenizer` and `transformer`
modules, which `text_modules` imports without the package's `__init__` (`create_model`, image
transforms, timm, torchvision): 3-4 s less for every generation command on a 2-core CPU.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..config import TextConfig


class _DeferredPackage(types.ModuleType):
    """The `open_clip` package with its `__init__` not yet run: it runs on the first name the
    module lacks (`open_clip.create_model`, `from open_clip import ...`), so code that wants the
    whole library gets exactly what `import open_clip` gives."""

    def __getattr__(self, name: str):
        if name.startswith("__") and name not in ("__all__", "__version__"):
            raise AttributeError(name)  # probes of the import machinery, inspect, pickle
        self.__class__ = types.ModuleType  # once: whatever happens next, no second run
        _restore_torchvision()
        self.__spec__.loader.exec_module(self)
        return getattr(self, name)


class _TorchvisionName:
    """Stands for `torchvision.ops.misc.FrozenBatchNorm2d` in `open_clip.utils`, which binds it at
    import only to freeze the batch norms of image towers; the text modules never call it.
    Importing torchvision costs 3 s here (its ops import torch._dynamo)."""

    def __call__(self, *args, **kwargs):
        from torchvision.ops.misc import FrozenBatchNorm2d

        return FrozenBatchNorm2d(*args, **kwargs)


def _restore_torchvision() -> None:
    """Put the real torchvision class back into `open_clip.utils` before other modules use it."""
    utils = sys.modules.get("open_clip.utils")
    if utils is not None and isinstance(getattr(utils, "FrozenBatchNorm2d", None), _TorchvisionName):
        from torchvision.ops.misc import FrozenBatchNorm2d

        utils.FrozenBatchNorm2d = FrozenBatchNorm2d


def text_modules() -> tuple[types.ModuleType, types.ModuleType]:
    """open_clip's `tokenizer` and `transformer` modules, the library's own code, imported without
    running the package's `__init__` (and without torchvision) unless something already did."""
    if "open_clip" not in sys.modules:
        spec = importlib.util.find_spec("open_clip")
        package = importlib.util.module_from_spec(spec)
        package.__class__ = _DeferredPackage
        sys.modules["open_clip"] = package
    if "open_clip.utils" not in sys.modules and "torchvision.ops.misc" not in sys.modules:
        stand_in = types.ModuleType("torchvision.ops.misc")
        stand_in.FrozenBatchNorm2d = _TorchvisionName()
        sys.modules["torchvision.ops.misc"] = stand_in
        try:
            importlib.import_module("open_clip.utils")
        finally:
            del sys.modules["torchvision.ops.misc"]
    return importlib.import_module("open_clip.tokenizer"), importlib.import_module("open_clip.transformer")


class TextEmbedding(NamedTuple):
    tokens: Tensor  # (b, l, width) per-token features after the final LayerNorm
    pooled: Tensor  # (b, embed_dim) projected end-of-text features
    mask: Tensor  # (b, l) bool, True up to and including the end-of-text token
    words: Tensor  # (b, l, width) the token embeddings themselves, before the transformer

    def as_kwargs(self) -> dict[str, Tensor]:
        """The denoiser's text keyword arguments."""
        return {"context": self.tokens, "pooled": self.pooled, "context_mask": self.mask, "words": self.words}


class _ClipTextTower(nn.Module):
    """The text half of an open_clip `CLIP`, which keeps its tower's parts as loose attributes.

    Attribute names match `TextTransformer`, so both kinds give the same state-dict keys.
    """

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.transformer = clip.transformer
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        self.pool_type = getattr(clip, "text_pool_type", "argmax")
        self.eos_id = getattr(clip, "text_eos_id", None)
        self.register_buffer("attn_mask", clip.attn_mask, persistent=False)

    def forward(self, text: Tensor) -> tuple[Tensor, Tensor]:
        text_global_pool = text_modules()[1].text_global_pool
        seq = text.shape[1]
        x = self.token_embedding(text) + self.positional_embedding[:seq]
        mask = self.attn_mask[:seq, :seq] if self.attn_mask is not None else None
        x = self.ln_final(self.transformer(x, attn_mask=mask))
        pooled = text_global_pool(x, text, self.pool_type, eos_token_id=self.eos_id)
        if isinstance(self.text_projection, nn.Linear):
            pooled = self.text_projection(pooled)
        elif self.text_projection is not None:
            pooled = pooled @ self.text_projection
        return pooled, x


def _text_tower(model: nn.Module) -> nn.Module:
    """The text tower of an open_clip model (CLIP or CustomTextCLIP), returning (pooled, tokens)."""
    TextTransformer = text_modules()[1].TextTransformer  # noqa: N806

    if hasattr(model, "text"):
        tower = model.text
        if not isinstance(tower, TextTransformer):
            raise ValueError(
                f"unsupported OpenCLIP text tower {type(tower).__name__}: only open_clip's own "
                "TextTransformer is supported (not Hugging Face text towers)"
            )
        tower.output_tokens = True
        return tower
    needed = ("transformer", "token_embedding", "positional_embedding", "ln_final", "attn_mask")
    missing = [name for name in needed if not hasattr(model, name)]
    if missing:
        raise ValueError(f"not an OpenCLIP CLIP model: it lacks {', '.join(missing)}")
    return _ClipTextTower(model)


def _describe(tower: nn.Module, name: str) -> TextConfig:
    transformer = tower.transformer
    width = transformer.width
    proj = tower.text_projection
    if isinstance(proj, nn.Linear):
        embed_dim = proj.out_features
    elif proj is not None:
        embed_dim = proj.shape[1]
    else:
        embed_dim = width
    return TextConfig(
        context_length=tower.positional_embedding.shape[0],
        vocab_size=tower.token_embedding.num_embeddings,
        width=width,
        heads=transformer.resblocks[0].attn.num_heads,
        layers=transformer.layers,
        embed_dim=embed_dim,
        openclip_model=name,
    )


class TextEncoder(nn.Module):
    """Prompts -> per-token features for cross-attention and a pooled vector for the embedding.

    With `cfg.openclip_model` unset, a small open_clip TextTransformer built from `cfg`; with it
    set, that OpenCLIP architecture's text tower (weights come from `from_openclip` or a saved
    model).
    """

    def __init__(self, cfg: TextConfig, *, tower: nn.Module | None = None):
        super().__init__()
        TextTransformer = text_modules()[1].TextTransformer  # noqa: N806

        self.cfg = cfg
        if tower is not None:
            self.tower = tower  # from_openclip: already built and loaded
        elif cfg.openclip_model is None:
            self.tower = TextTransformer(
                context_length=cfg.context_length,
                vocab_size=cfg.vocab_size,
                width=cfg.width,
                heads=cfg.heads,
                layers=cfg.layers,
                output_dim=cfg.embed_dim,
                output_tokens=True,
            )
        else:
            import open_clip

            model = open_clip.create_model(cfg.openclip_model, pretrained=None)
            self.tower = _text_tower(model)
        self._tokenizer = None

    @classmethod
    def from_openclip(cls, model_name: str, checkpoint: str | Path) -> TextEncoder:
        """Keep the text tower of a user's own OpenCLIP checkpoint (.safetensors only).

        Pickled checkpoints (.pt, .bin, .pth) can run arbitrary code when loaded, so they are
        refused rather than unpickled.
        """
        import open_clip

        path = Path(checkpoint)
        if path.suffix != ".safetensors":
            raise ValueError(
                f"only .safetensors OpenCLIP checkpoints are accepted (pickled checkpoints can run "
                f"code when loaded); got {path.name}. Convert it with safetensors.torch.save_file "
                "on a trusted machine."
            )
        if not path.is_file():
            raise ValueError(f"OpenCLIP checkpoint not found: {path}")
        model = open_clip.create_model(model_name, pretrained=str(path))
        tower = _text_tower(model)
        return cls(_describe(tower, model_name), tower=tower).eval()

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            if self.cfg.openclip_model is None:
                # The module builds this default tokenizer (CLIP's BPE, lower-casing) at import
                # and `open_clip.tokenize` uses it; a second one would read the BPE again (0.3 s).
                # The context length is passed at each call (`tokenize`).
                self._tokenizer = text_modules()[0]._tokenizer
            else:
                import open_clip

                self._tokenizer = open_clip.get_tokenizer(
                    self.cfg.openclip_model, context_length=self.cfg.context_length
                )
        return self._tokenizer

    def tokenize(self, prompts: list[str]) -> Tensor:
        """(b, l) token ids; prompts longer than the context are truncated, ending in EOT."""
        if isinstance(prompts, str):
            raise TypeError("tokenize takes a list of prompts, not a string")
        tokens = self.tokenizer(list(prompts), context_length=self.cfg.context_length)
        return tokens.to(self.device)

    def ignored_words(self, prompt: str) -> list[str]:
        """The trailing words of `prompt` that fall past the context and never reach the model."""
        room = self.cfg.context_length - 2  # start and end of text take one token each
        words = prompt.split()
        fits = lambda k: len(self.tokenizer.encode(" ".join(words[:k]))) <= room  # noqa: E731
        if fits(len(words)):
            return []
        lo, hi = 0, len(words)  # fits(lo) holds, fits(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return words[lo:]

    @property
    def device(self) -> torch.device:
        return next(self.tower.parameters()).device

    def token_mask(self, tokens: Tensor) -> Tensor:
        """True up to and including the end-of-text token, (b, l)."""
        eot = getattr(self.tokenizer, "eot_token_id", None)
        if eot is None:
            end = tokens.argmax(dim=-1)  # CLIP's EOT has the largest id
        else:
            end = (tokens == eot).int().argmax(dim=-1)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return positions[None, :] <= end[:, None]

    def forward(self, tokens: Tensor) -> TextEmbedding:
        pooled, feats = self.tower(tokens)
        # The words as such: in a small, briefly trained encoder the contextual features of words
        # that the contrastive stage barely needed ("left" vs "right") end up ~97% alike.
        words = self.tower.token_embedding(tokens)
        return TextEmbedding(tokens=feats, pooled=pooled, mask=self.token_mask(tokens), words=words)

    def encode(self, prompts: list[str]) -> TextEmbedding:
        return self(self.tokenize(prompts))

