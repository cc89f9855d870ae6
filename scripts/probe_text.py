"""How well does a model's text encoder separate the world's attributes?

For every canonical caption (6 colours x 3 shapes x 7 motions x 3 backgrounds) it reports, per
attribute, nearest-centroid accuracy of the pooled embedding and of the mean token feature, and the
mean cosine similarity between captions that differ only in that attribute. Chance is 1/#values.

    python scripts/probe_text.py [--weights DIR]
"""

from __future__ import annotations

import argparse
import itertools

import torch
import torch.nn.functional as F

from lumiere_cli.weights import load_model
from lumiere_cli.world.vocab import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, caption

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
    sim = pooled @ pooled.T
    print(f"{'attribute':<11} {'pooled acc':>10} {'tokens acc':>10} {'cos(differ only here)':>22}")
    for a in ATTRIBUTES:
        labels = [s[a] for s in specs]
        pairs = [sim[i, j].item() for i, j in itertools.combinations(range(len(specs)), 2)
                 if sum(specs[i][b] != specs[j][b] for b in ATTRIBUTES) == 1 and specs[i][a] != specs[j][a]]
        print(f"{a:<11} {centroid_accuracy(pooled, labels):>10.1%} {centroid_accuracy(tokens, labels):>10.1%} "
              f"{sum(pairs) / len(pairs):>22.3f}")


if __name__ == "__main__":
    main()
