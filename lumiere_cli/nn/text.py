"""Text encoder: open_clip's text tower and BPE tokenizer.

Axis legend: b batch, l tokens, d features.

`open_clip` takes seconds to import, so it is imported inside functions: the CLI answers
`--help` without paying for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..config import TextConfig


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
        from open_clip.transformer import text_global_pool

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
    from open_clip.transformer import TextTransformer

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
        import open_clip
        from open_clip.transformer import TextTransformer

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
            import open_clip

            if self.cfg.openclip_model is None:
                from open_clip.tokenizer import SimpleTokenizer

                self._tokenizer = SimpleTokenizer(context_length=self.cfg.context_length)
            else:
                self._tokenizer = open_clip.get_tokenizer(
                    self.cfg.openclip_model, context_length=self.cfg.context_length
                )
        return self._tokenizer

    def tokenize(self, prompts: list[str]) -> Tensor:
        """(b, l) token ids; prompts longer than the context are truncated, ending in EOT."""
        if isinstance(prompts, str):
            raise TypeError("tokenize takes a list of prompts, not a string")
        tokens = self.tokenizer(list(prompts))
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

