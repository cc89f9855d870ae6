"""Training batches: the loop asks for "the batch of (step, rank, micro-batch)" and gets a dict of
tensors; this module is the only place in training that knows where clips come from.

Two sources, one contract (`batch(step, rank, micro) -> dict`, a pure function of its arguments
and the run's seed):

- `WorldBatches`: the procedural world (`lumiere_cli.world`, imported only here), rendered on the
  fly, seeded by (seed, rank, step);
- `ClipBatches`: the user's captioned videos and images (`lumiere_cli.data`), decoded in worker
  processes. Each step trains one bucket (one (frames, size) shape), drawn from (seed, step) with
  the buckets' sizes as weights, the same on every rank. Each bucket reads an endless stream of
  its entries, reshuffled every epoch from (seed, bucket, epoch); the global batch of a step takes
  the next batch_size x processes x grad_accum positions of its bucket's stream, rank r and
  micro-batch m the slice (m x processes + r) x batch_size of them. Where a clip starts and where
  it is cropped are drawn from (seed, bucket, position). A checkpoint stores how far each stream
  has been read, so a resumed run, at any process count, continues with the next unread positions.
  A file that fails to decode is skipped (recorded, never read again by that worker) and its place
  taken by an entry drawn from (seed, bucket, position, attempt), at most MAX_ATTEMPTS times.

Both then share the rest of a batch, drawn from (seed, rank, step, micro): caption dropout, the
random <C, M> layouts (masks.py), noise levels and noise. Stage "t2i" takes one frame per clip
(one-frame clips for images), "text" the clips and captions only.

`StepStream` turns a source into a torch IterableDataset over (step, micro-batch) for
DataLoader worker processes: worker w of n makes every n-th item, and the loader hands them out in
order, `prefetch` ahead per worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from einops import rearrange

from ..config import ModelConfig, TrainConfig
from ..data.buckets import Bucket, IMAGE_STAGES, stage_buckets
from ..data.check import Survey
from ..data.entries import WORLD, is_world
from ..errors import InputError, LumiereError, UsageError
from ..masks import IMAGE_LAYOUTS, LAYOUT_SETS, random_known_mask
from ..pixels import from_uint8, from_unit
from ..diffusion.schedule import sample_training_sigmas

# Below this noise level a 16-frame clip is pinned down by its noisy input: the posterior-mean
# target equals the clip drawn (measured: mean |difference| < 1e-3 at sigma 4.5), so no
# reference clips are drawn for it.
POSTERIOR_MIN_SIGMA = 5.0
MAX_ATTEMPTS = 16  # entries tried for one place in a batch before the run stops
# Validation noise-level bands (sigma): edges in the model's sigma range; loss per band.
VAL_EDGES = (0.002, 0.2, 1.0, 5.0, 80.0)
WORLD_ONLY = {  # TrainConfig field -> (is it set?, why it needs the world)
    "reversed_pairs": (lambda c: c.reversed_pairs > 0, "pairs a clip with itself played backwards"),
    "reference_clips": (lambda c: c.reference_clips > 0, "draws more clips for a caption"),
    "motions": (lambda c: c.motions is not None, "filters clips by the world's motion words"),
}
# Salts keep the streams drawn from the seed apart.
_SCHEDULE, _EPOCH, _PLACE, _SUBSTITUTE, _HOLD_OUT, _VAL = 0x5C4ED, 0xE90C4, 0x91ACE, 0x5B5717, 0x401D, 0x7A1


class Batches(Protocol):
    """What the loop knows of a dataset."""

    def batch(self, step: int, rank: int, micro: int = 0) -> dict[str, Any]: ...


def _seed(*parts: int) -> int:
    """The generator seed of (seed, rank, step): the formula the world's batches always used."""
    s = 0
    for p in parts:
        s = s * 1_000_003 + p
    return s % 2**63


# ---------------------------------------------------------------------------------------------
# What every batch shares: caption dropout, <C, M> layouts, noise levels, noise


def diffusion_batch(cfg: TrainConfig, model_cfg: ModelConfig, videos: torch.Tensor, captions: list[str],
                    g: torch.Generator, pairs: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """A diffusion stage's batch from clips (b, c, t, h, w) in [-1, 1]: dropped captions, one frame
    per clip for "t2i", a random known mask, noise levels and noise. `pairs`: (i, j) where clip j
    is clip i played backwards (they share the noise level, the mask and the noise reversed)."""
    b, t, s = videos.shape[0], videos.shape[2], videos.shape[-1]
    drop = (torch.rand(b, generator=g) < cfg.empty_prompt_prob).tolist()
    captions = ["" if d else c for c, d in zip(captions, drop)]
    if cfg.stage in IMAGE_STAGES:
        # One random frame of each clip: ~16x cheaper than clips, and it teaches colour and shape.
        idx = torch.randint(0, t, (b,), generator=g)
        x0 = videos[torch.arange(b), :, idx]  # (b, c, h, w)
        mask = random_known_mask(b, 1, s, s, generator=g, layouts=IMAGE_LAYOUTS)[:, :, 0]
    else:
        x0 = videos
        mask = random_known_mask(b, t, s, s, generator=g, layouts=LAYOUT_SETS[cfg.layouts])
    if cfg.sigma_range is None:
        sigma = sample_training_sigmas(b, cfg=model_cfg.diffusion, generator=g)
    else:
        lo, hi = (math.log(v) for v in cfg.sigma_range)
        sigma = torch.exp(lo + (hi - lo) * torch.rand(b, generator=g, dtype=torch.float64)).float()
    noise = torch.randn(x0.shape, generator=g)
    # A clip and its reversal get the same noise level, mask and noise (reversed), so the two
    # noisy inputs are each other played backwards and only the word tells which way time runs.
    pairs_t = torch.tensor(pairs or [], dtype=torch.long).reshape(-1, 2)
    if len(pairs_t):
        first, second = pairs_t.unbind(1)
        sigma[second], mask[second] = sigma[first], mask[first]
        noise[second] = noise[first].flip(2)
    return {"x0": x0, "cond_mask": mask, "sigma": sigma, "noise": noise, "captions": captions}


# ---------------------------------------------------------------------------------------------
# The procedural world


def make_batch(cfg: TrainConfig, model_cfg: ModelConfig, *, rank: int, step: int) -> dict[str, Any]:
    """A batch of the procedural world: a pure function of (seed, rank, step)."""
    from ..world.render import reversal_pairs, sample_batch
    from ..world.vocab import as_random, swap_one

    g = torch.Generator().manual_seed(_seed(cfg.seed, rank, step))
    b, t, s = cfg.batch_size, model_cfg.frames, model_cfg.size
    clips = cfg.stage in ("video", "video-unfrozen")
    videos, captions, specs = sample_batch(b, t, s, g, split="train", paraphrase_prob=cfg.paraphrase_prob,
                                           reversed_pairs=cfg.reversed_pairs if clips else 0.0, motions=cfg.motions)
    if cfg.stage == "text":
        rng = as_random(g)
        return {"videos": videos, "captions": captions, "negatives": [swap_one(c, rng) for c in captions]}
    batch = diffusion_batch(cfg, model_cfg, videos, captions, g, pairs=reversal_pairs(specs))
    if clips and cfg.reference_clips > 0:
        batch["target"] = _posterior_targets(batch, cfg.reference_clips, as_random(g))
    return batch


def _posterior_targets(batch: dict[str, Any], k: int, rng: Any) -> torch.Tensor:
    """x0, or for clips with nothing known (text-to-video) E[x0 | x, caption] estimated from k
    more clips drawn from the caption's distribution (`diffusion.targets`)."""
    from ..diffusion.targets import posterior_mean
    from ..world.render import draw_like, render_batch

    x0, sigma, noise, mask = batch["x0"], batch["sigma"], batch["noise"], batch["cond_mask"]
    target = x0.clone()
    free = [i for i in range(len(x0)) if not mask[i].any() and sigma[i] > POSTERIOR_MIN_SIGMA]
    if not free:
        return target
    t, s = x0.shape[2], x0.shape[-1]
    specs = [spec for i in free for spec in draw_like(batch["captions"][i], k, rng)]
    drawn = rearrange(from_unit(render_batch(specs, t, s), inplace=True), "(b n) c t h w -> b n c t h w", n=k)
    candidates = torch.cat([x0[free, None], drawn], dim=1)
    x = x0[free] + sigma[free, None, None, None, None] * noise[free]
    target[free] = posterior_mean(x, sigma[free], candidates)
    return target


@dataclass
class WorldBatches:
    """The procedural world as a source. With gradient accumulation, micro-batch m of step s is
    the world's batch number s x grad_accum + m (without, the batches of earlier runs)."""

    cfg: TrainConfig
    model_cfg: ModelConfig

    def batch(self, step: int, rank: int, micro: int = 0) -> dict[str, Any]:
        return make_batch(self.cfg, self.model_cfg, rank=rank, step=step * self.cfg.grad_accum + micro)

    def state(self, step: int) -> dict[str, Any]:
        return {}


def world_vocabulary() -> tuple[str, ...]:
    from ..world.vocab import vocabulary

    return tuple(vocabulary())


def check_world_options(cfg: TrainConfig) -> None:
    """One-line errors for options only the procedural world can honour, and the world's own."""
    if is_world(cfg.data):
        from ..world.render import split_triples

        try:
            split_triples("train", cfg.motions)
        except ValueError as e:
            raise UsageError(str(e)) from e
        if cfg.val_fraction > 0:
            raise UsageError(f"val_fraction holds out entries of a dataset; the world ({WORLD}) has none: "
                             "give val_data a dataset instead")
        return
    used = [name for name, (is_set, _) in WORLD_ONLY.items() if is_set(cfg)]
    if used:
        why = "; ".join(f"{n.replace('_', '-')} {WORLD_ONLY[n][1]}" for n in used)
        raise UsageError(f"{', '.join('--' + n.replace('_', '-') for n in used)} "
                         f"need{'s' if len(used) == 1 else ''} the procedural world "
                         f"(--data {WORLD}), not {cfg.data}: {why}")
    if cfg.stage == "text" and cfg.hard_negatives > 0:
        raise UsageError(f"the text stage's hard negatives swap the world's words; with --data {cfg.data} "
                         "pass --hard-negatives 0")


# ---------------------------------------------------------------------------------------------
# The user's captioned videos and images


@dataclass
class Pool:
    """Entries of a dataset with the bucket each trains in."""

    items: list[Any]  # data.media.Scanned
    bucket_of: list[int]
    buckets: list[Bucket]

    def take(self, indices: list[int]) -> Pool:
        return Pool([self.items[i] for i in indices], [self.bucket_of[i] for i in indices], self.buckets)


def _fps(model_cfg: ModelConfig) -> float:
    return float(model_cfg.fps)


def read_place(pool: Pool, model_cfg: ModelConfig, k: int, idx: int, rng: np.random.Generator, *,
               centre: bool = False) -> np.ndarray:
    """The clip entry `pool.items[idx]` gives in bucket k: start and crop from `rng` (the centre
    and the middle of the span for validation)."""
    from ..data.media import read_clip

    bucket, item = pool.buckets[k], pool.items[idx]
    u, top, left = (0.5, 0.5, 0.5) if centre else tuple(rng.random(3))
    start = item.clip_start(bucket.frames, _fps(model_cfg), u)
    return read_clip(item, frames=bucket.frames, size=bucket.size, fps=_fps(model_cfg), start_s=start,
                     crop=(top, left))


class ClipBatches:
    """Batches of a dataset (see the module docstring): `batch(step, rank, micro)` is a pure
    function of the seed, the arguments, the process count and the stream positions the run
    started from (`cursor`, from the checkpoint; empty for a new run)."""

    def __init__(self, pool: Pool, cfg: TrainConfig, model_cfg: ModelConfig, *, world: int, start: int,
                 cursor: dict[str, int] | None = None, known_bad: dict[str, str] | None = None):
        self.pool, self.cfg, self.model_cfg = pool, cfg, model_cfg
        self.world, self.start = world, start
        counts = np.bincount(np.asarray(pool.bucket_of, dtype=np.int64), minlength=len(pool.buckets))
        self.members = [np.flatnonzero(np.asarray(pool.bucket_of) == k) for k in range(len(pool.buckets))]
        # The bucket of every step, from (seed, step) alone, weighted by the buckets' sizes.
        u = np.random.default_rng([cfg.seed, _SCHEDULE]).random(cfg.steps)
        self.schedule = np.searchsorted(np.cumsum(counts) / counts.sum(), u, side="right").astype(np.int16)
        self.schedule = np.minimum(self.schedule, len(pool.buckets) - 1)
        # For each step from `start`: how many earlier steps from `start` trained the same bucket.
        later = self.schedule[start:]
        self.uses = np.zeros(len(later), dtype=np.int64)
        for k in range(len(pool.buckets)):
            at = np.flatnonzero(later == k)
            self.uses[at] = np.arange(len(at))
        self.cursor = {b.key: int((cursor or {}).get(b.key, 0)) for b in pool.buckets}
        self.per_step = cfg.batch_size * world * cfg.grad_accum
        self.bad: dict[int, str] = {}  # entries this process found unreadable
        where = {it.entry.where: i for i, it in enumerate(pool.items)}
        self.bad |= {where[w]: r for w, r in (known_bad or {}).items() if w in where}
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    # -- where each place of a batch reads from

    def bucket_at(self, step: int) -> int:
        return int(self.schedule[step])

    def positions(self, step: int, rank: int, micro: int = 0) -> tuple[int, range]:
        """(bucket, positions in its stream) of a micro-batch."""
        k = self.bucket_at(step)
        key = self.pool.buckets[k].key
        base = self.cursor[key] + int(self.uses[step - self.start]) * self.per_step
        first = base + (micro * self.world + rank) * self.cfg.batch_size
        return k, range(first, first + self.cfg.batch_size)

    def state(self, step: int) -> dict[str, Any]:
        """Stream positions read before `step` (what a checkpoint at `step` stores)."""
        later = self.schedule[self.start:step]
        cursor = dict(self.cursor)
        for k, b in enumerate(self.pool.buckets):
            cursor[b.key] += int(np.count_nonzero(later == k)) * self.per_step
        return {"cursor": cursor}

    def _entry_at(self, k: int, position: int) -> int:
        n = len(self.members[k])
        epoch = position // n
        perm = self._perms.get((k, epoch))
        if perm is None:
            if len(self._perms) > 8:
                self._perms.clear()
            perm = self._perms[(k, epoch)] = np.random.default_rng([self.cfg.seed, _EPOCH, k, epoch]).permutation(n)
        return int(self.members[k][perm[position % n]])

    def _place(self, k: int, position: int, skipped: list[tuple[str, str]]) -> tuple[np.ndarray, str]:
        """The clip and caption at a stream position, or at a substitute for an unreadable file."""
        reason = ""
        for attempt in range(MAX_ATTEMPTS):
            if attempt == 0:
                idx = self._entry_at(k, position)
            else:
                pick = np.random.default_rng([self.cfg.seed, _SUBSTITUTE, k, position, attempt])
                idx = int(self.members[k][pick.integers(len(self.members[k]))])
            if idx in self.bad:
                continue
            rng = np.random.default_rng([self.cfg.seed, _PLACE, k, position, attempt])
            try:
                clip = read_place(self.pool, self.model_cfg, k, idx, rng)
            except InputError as e:
                reason = str(e)
                self.bad[idx] = reason
                skipped.append((self.pool.items[idx].entry.where, reason))
                continue
            return clip, self.pool.items[idx].entry.text
        raise LumiereError(f"{MAX_ATTEMPTS} entries in a row could not be read for one clip (last: {reason}); "
                           f"run 'lumiere data check {self.cfg.data}'")

    def batch(self, step: int, rank: int, micro: int = 0) -> dict[str, Any]:
        k, places = self.positions(step, rank, micro)
        skipped: list[tuple[str, str]] = []
        clips, captions = zip(*(self._place(k, p, skipped) for p in places))
        videos = rearrange(from_uint8(np.stack(clips)), "b t h w c -> b c t h w")
        g = torch.Generator().manual_seed(_seed(self.cfg.seed, rank, step * self.cfg.grad_accum + micro))
        if self.cfg.stage == "text":
            batch: dict[str, Any] = {"videos": videos, "captions": list(captions)}
        else:
            batch = diffusion_batch(self.cfg, self.model_cfg, videos, list(captions), g)
        batch["skipped"] = skipped
        return batch


# ---------------------------------------------------------------------------------------------
# Opening a stage's data, and validation


@dataclass
class ValSet:
    """Fixed validation clips, grouped by shape: per group x0 (n, c, [t,] h, w) and captions; per
    band, fixed noise levels and noise. Every process holds its share (clip i % world == rank)."""

    groups: list[dict[str, Any]] = field(default_factory=list)
    bands: list[str] = field(default_factory=list)
    clips: int = 0  # over every process
    skipped: int = 0


@dataclass
class StageData:
    """A stage's data: the training source, the validation clips, and what the card records."""

    cfg: TrainConfig
    model_cfg: ModelConfig
    train: Pool | None  # None: the world
    val: Pool | None
    train_survey: Survey | None = None
    val_survey: Survey | None = None

    @property
    def world(self) -> bool:
        return self.train is None

    def vocabulary(self) -> tuple[str, ...]:
        return world_vocabulary() if self.world else self.train_survey.words()

    def model_name(self) -> str:
        return "lumiere-cli shapes model" if self.world else f"lumiere-cli model ({self.cfg.data})"

    def unusable(self) -> int:
        """Entries left out before training (the survey's problems)."""
        return 0 if self.world else len(self.train_survey.problems)

    def batches(self, *, world: int, start: int, state: dict[str, Any]) -> Batches:
        if self.world:
            return WorldBatches(self.cfg, self.model_cfg)
        return ClipBatches(self.train, self.cfg, self.model_cfg, world=world, start=start,
                           cursor=state.get("cursor"), known_bad=state.get("skipped"))

    def record(self, skipped: dict[str, str]) -> dict[str, Any]:
        """The card's note on the data: entries, clips per bucket, what was skipped and why."""
        if self.world:
            out: dict[str, Any] = {}
        else:
            s = self.train_survey
            reasons = dict(s.reasons())
            for r in skipped.values():
                key = "unreadable clip" if not r.startswith("too short") else "too short"
                reasons[key] = reasons.get(key, 0) + 1
            out = {"data": self.cfg.data, "entries": s.entries, "usable": len(self.train.items),
                   "buckets": {b.key: self.train.bucket_of.count(k) for k, b in enumerate(self.train.buckets)},
                   "skipped": len(s.problems) + len(skipped), **({"skipped_by_reason": reasons} if reasons else {})}
        if self.val is not None:
            out["val_data"] = self.cfg.val_data or f"{self.cfg.val_fraction:g} of {self.cfg.data}"
            out["val_clips"] = len(self.val.items)
        return out

    def val_set(self, *, rank: int, world: int) -> ValSet | None:
        """This process's share of the validation clips (decoded once), or None without any."""
        if self.val is None:
            return None
        out = ValSet()
        pool, stride = self.val, max(1, math.ceil(len(self.val.items) / self.cfg.val_clips))
        chosen = list(range(0, len(pool.items), stride))[: self.cfg.val_clips]
        out.clips = len(chosen)
        by_bucket: dict[int, list[tuple[int, np.ndarray, str]]] = {}
        for n, idx in enumerate(chosen):
            if n % world != rank:
                continue
            k = pool.bucket_of[idx]
            try:
                clip = read_place(pool, self.model_cfg, k, idx, np.random.default_rng(0), centre=True)
            except InputError:
                out.skipped += 1
                continue
            by_bucket.setdefault(k, []).append((n, clip, pool.items[idx].entry.text))
        d = self.model_cfg.diffusion
        bands = [(max(lo, d.sigma_min), min(hi, d.sigma_max)) for lo, hi in zip(VAL_EDGES, VAL_EDGES[1:])]
        for k, rows in sorted(by_bucket.items()):
            videos = rearrange(from_uint8(np.stack([c for _, c, _ in rows])), "b t h w c -> b c t h w")
            x0 = videos[:, :, 0] if self.cfg.stage in IMAGE_STAGES else videos
            sigmas, noises = [], []
            for j, (lo, hi) in enumerate(bands):
                per_clip = []
                for n, _, _ in rows:  # drawn per clip: the same whatever the process count
                    g = torch.Generator().manual_seed(_seed(self.cfg.seed, _VAL, n, j))
                    u = torch.rand(1, generator=g, dtype=torch.float64)
                    sigma = math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * float(u))
                    per_clip.append((sigma, torch.randn(x0.shape[1:], generator=g)))
                sigmas.append(torch.tensor([s for s, _ in per_clip], dtype=torch.float32))
                noises.append(torch.stack([z for _, z in per_clip]))
            out.groups.append({"x0": x0, "captions": [c for _, _, c in rows], "sigmas": sigmas, "noises": noises})
        out.bands = [f"{lo:g}-{hi:g}" for lo, hi in bands]
        return out


def band_names(model_cfg: ModelConfig) -> list[str]:
    d = model_cfg.diffusion
    return [f"{max(lo, d.sigma_min):g}-{min(hi, d.sigma_max):g}" for lo, hi in zip(VAL_EDGES, VAL_EDGES[1:])]


def check_data_options(cfg: TrainConfig, model_cfg: ModelConfig) -> None:
    """One-line errors for the data options, before anything is read or built."""
    check_world_options(cfg)
    if not 0 <= cfg.val_fraction < 1:
        raise UsageError(f"val_fraction must be in [0, 1), got {cfg.val_fraction!r}")
    if cfg.val_data is not None and cfg.val_fraction > 0:
        raise UsageError("give a validation set (val_data) or a fraction to hold out (val_fraction), not both")
    if (cfg.val_data is not None or cfg.val_fraction > 0) and cfg.stage == "text":
        raise UsageError("validation reports the denoising loss per noise level: a diffusion stage "
                         "(t2i, video, video-unfrozen), not the text stage")
    if cfg.val_data is not None and is_world(cfg.val_data):
        raise UsageError(f"val_data must be a dataset, not {WORLD}")
    if cfg.val_every < 1 or cfg.val_clips < 1:
        raise UsageError("val_every and val_clips must be at least 1")
    if cfg.grad_accum < 1 or cfg.workers < 0 or cfg.prefetch < 1:
        raise UsageError("grad_accum and prefetch must be at least 1, workers at least 0")
    if is_world(cfg.data) and cfg.buckets is not None:
        raise UsageError(f"buckets sort a dataset's clips by shape; the world ({WORLD}) renders the model's own")
    stage_buckets(model_cfg, cfg.stage, cfg.buckets)


def _pool(s: Survey) -> Pool:
    return Pool(list(s.items), list(s.bucket_of), list(s.buckets))


def _nothing_usable(s: Survey) -> InputError:
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(s.reasons().items(), key=lambda kv: -kv[1]))
    return InputError(f"no usable entries in {s.listing.source} for the {s.stage} stage "
                      f"({s.entries} entries: {reasons or 'none'}); see 'lumiere data check {s.listing.source}'")


def open_data(cfg: TrainConfig, model_cfg: ModelConfig, *,
              shared: Callable[[Callable[[], Any]], Any] = lambda f: f()) -> StageData:
    """Survey the stage's datasets (`shared` runs the survey once and hands every process its
    result under DDP) and split off the validation entries. InputError when nothing is usable."""
    from ..data.check import survey

    def run() -> tuple[Survey | None, Survey | None]:
        kw = dict(model=model_cfg, stage=cfg.stage, buckets=cfg.buckets)
        train_s = None if is_world(cfg.data) else survey(cfg.data, **kw)
        val_s = survey(cfg.val_data, **kw) if cfg.val_data is not None else None
        return train_s, val_s

    train_s, val_s = shared(run)
    out = StageData(cfg, model_cfg, None, None, train_s, val_s)
    if train_s is not None:
        if not train_s.items:
            raise _nothing_usable(train_s)
        out.train = _pool(train_s)
        if cfg.val_fraction > 0:
            n = len(out.train.items)
            held = max(1, round(cfg.val_fraction * n))
            if held >= n:
                raise UsageError(f"val_fraction {cfg.val_fraction:g} of {n} usable entries leaves none to train on")
            order = np.random.default_rng([cfg.seed, _HOLD_OUT]).permutation(n).tolist()
            out.val = out.train.take(sorted(order[:held]))
            out.train = out.train.take(sorted(order[held:]))
    if val_s is not None:
        if not val_s.items:
            raise _nothing_usable(val_s)
        out.val = _pool(val_s)
    return out


# ---------------------------------------------------------------------------------------------
# The loader


class StepStream(torch.utils.data.IterableDataset):
    """Micro-batches (step, micro) from `start` to `steps` in order, for DataLoader workers: worker
    w of n makes items w, w + n, ... (the loader hands them out round-robin, so in order)."""

    def __init__(self, source: Batches, *, rank: int, start: int, steps: int, accum: int):
        self.source, self.rank, self.start, self.steps, self.accum = source, rank, start, steps, accum

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for k in range(worker, (self.steps - self.start) * self.accum, workers):
            step, micro = self.start + k // self.accum, k % self.accum
            batch = self.source.batch(step, self.rank, micro)
            batch["step"], batch["micro"] = step, micro
            yield batch


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def loader(source: Batches, cfg: TrainConfig, *, rank: int, start: int, pin: bool) -> torch.utils.data.DataLoader:
    """The stage's micro-batches from `start` on, made `cfg.workers` processes ahead of the loop."""
    workers = cfg.workers
    return torch.utils.data.DataLoader(
        StepStream(source, rank=rank, start=start, steps=cfg.steps, accum=cfg.grad_accum), batch_size=None,
        num_workers=workers, worker_init_fn=_worker_init if workers else None, persistent_workers=False,
        prefetch_factor=cfg.prefetch if workers else None, pin_memory=pin,
    )


__all__ = [
    "Batches", "ClipBatches", "MAX_ATTEMPTS", "Pool", "StageData", "StepStream", "ValSet", "WorldBatches",
    "band_names", "check_data_options", "diffusion_batch", "loader", "make_batch", "open_data",
]
