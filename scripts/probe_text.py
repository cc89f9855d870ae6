"""How well does a model's text encoder separate the world's attributes?

For every canonical caption (6 colours x 3 shapes x 7 motions x 3 backgrounds) it reports, per
attribute, nearest-centroid accuracy of the pooled embedding and of the mean token feature, and the
mean cosine similarity between captions that differ only in that attribute: of the pooled embeddings,
and of the token features (the least similar position of each pair, where the word differs).
Chance is 1/#values. The "mirror" row is motion again, its cosines over mirrored pairs only (left and
right, up and down, growing and shrinking): what a bag-of-words encoder confuses most.

    python scripts/probe_text.py [--weights DIR]
"""

from __future__ import annotations

import argparse
import itertools

import torch
import torch.nn.functional as F

from lumiere_cli.weights import load_model
from lumiere_cli.world.vocab import BACKGROUNDS, COLOURS, MOTIONS, OPPOSITE_MOTION, SHAPES, caption

ATTRIBUTES = ("colour", "shape", "motion", "background")


def centroid_accuracy(z: torch.Tensor, labels: list[str]) -> float:
    values = sorted(set(labels))
    index = torch.tensor([values.index(v) for v in labels])
    centroids = torch.stack([z[index == i].mean(0) for i in range(len(values))])
    return (F.normalize(z, dim=-1) @ F.normalize(centroids, dim=-1).T).argmax(1).eq(index).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None)
    args = ap.parse_args()
    model = load_model(args.weights, grow=True)  # only the text encoder is used
    specs = [dict(zip(ATTRIBUTES, t)) for t in itertools.product(COLOURS, SHAPES, MOTIONS, BACKGROUNDS)]
    with torch.no_grad():
        emb = model.text.encode([caption(s) for s in specs])
    pooled = F.normalize(emb.pooled.float(), dim=-1)
    mask = emb.mask.float().unsqueeze(-1)
    tokens = (emb.tokens.float() * mask).sum(1) / mask.sum(1)
    feats = F.normalize(emb.tokens.float(), dim=-1)
    sim = pooled @ pooled.T
    print(f"{'attribute':<11} {'pooled acc':>10} {'tokens acc':>10} {'pooled cos':>10} {'token cos':>10}"
          "   (cos: captions that differ only here)")
    for row in (*ATTRIBUTES, "mirror"):
        a = "motion" if row == "mirror" else row
        labels = [s[a] for s in specs]
        pairs = [(i, j) for i, j in itertools.combinations(range(len(specs)), 2)
                 if sum(specs[i][b] != specs[j][b] for b in ATTRIBUTES) == 1 and specs[i][a] != specs[j][a]
                 and (row != "mirror" or OPPOSITE_MOTION.get(specs[i][a]) == specs[j][a])]
        pooled_cos = sum(sim[i, j].item() for i, j in pairs) / len(pairs)
        # Same-length pairs only: there the differing word sits at the same position.
        same = [(i, j) for i, j in pairs if torch.equal(emb.mask[i], emb.mask[j])]
        token_cos = [((feats[i] * feats[j]).sum(-1) + (~emb.mask[i]) * 2).min().item() for i, j in same]
        token_txt = f"{sum(token_cos) / len(token_cos):>10.3f}" if token_cos else f"{'-':>10}"
        print(f"{row:<11} {centroid_accuracy(pooled, labels):>10.1%} {centroid_accuracy(tokens, labels):>10.1%} "
              f"{pooled_cos:>10.3f} {token_txt}")


if __name__ == "__main__":
    main()
