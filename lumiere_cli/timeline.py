"""Clips made of several sampling runs: long clips coarse to fine (prompt schedules with them),
loops (played there and back, or round in two passes), extensions. Each run is
`pipeline.run_once`; README, Time, has the measurements behind each choice and docs/DESIGN.md §8
the reasons.

Clips are uint8 `t h w c` arrays at the model's size, as in `pipeline`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import pipeline
from .config import SampleOptions
from .errors import UsageError
from .pipeline import GenerateResult, Inputs, Schedule
from .progress import Progress


def denoise_as(progress: Progress, phase: str) -> Progress:
    """`progress` with a first pass's "denoise" reported under its own name ("coarse", "draft")."""
    return lambda name, done, total, **m: progress(phase if name == "denoise" else name, done, total, **m)


# Tasks made coarse to fine when longer than the model's clip or given a prompt schedule.
COARSE_TASKS = ("t2v", "i2v")


def long_clip(model, prompt, task, inputs: Inputs, options: SampleOptions, seed, device, progress,
              schedule: Schedule | None, preview, preview_every, free: frozenset[int] = frozenset()) -> GenerateResult:
    """A clip longer than the model's, or one with a prompt schedule, coarse to fine.

    1. The whole clip at the model's length, in one run whose schedule is the spans' starts moved
       onto the coarse frames (`coarse_schedule`): every span's prompt runs over the frames, each
       counting in its own span's (`pipeline.OTHER_SPAN_WEIGHT`), so the object carries on from
       where it was and changes at the span's start. (Made span by span, each later span image to
       video from the frame before it, a new colour was drawn anew where the world's clips start:
       jumps of 0.05-0.53 frame widths at the change.) A round loop's one span: `round_loop`.
    2. When the clip is longer than that, the coarse frames become keyframes spread over it
       (`keyframe_positions`; the user's own keyframes win, and positions in `free` are left to
       this pass), and windows, each running the prompts of the spans it holds, fill in between,
       starting from the coarse clip stretched in time part-way down the schedule.
    """
    cfg = model.config
    frames = options.frames or cfg.frames
    spans = pipeline.check_schedule(schedule, prompt, frames)
    length = min(frames, cfg.frames)
    positions = keyframe_positions(frames, length, loop=options.loop)
    known = squeeze(inputs.keyframes, positions)
    fine = frames > length
    # 1. the coarse clip
    coarse_spans = coarse_schedule(spans, positions)
    say = denoise_as(progress, "coarse") if fine else progress
    shown = None if fine else preview
    if options.loop:
        run = round_loop(model, coarse_spans[0][1], task, replace(inputs, keyframes=known),
                         replace(options, frames=length), seed, device, say, shown, preview_every)
    else:
        run = pipeline.run_once(model, coarse_spans[0][1], task, replace(inputs, keyframes=known),
                                replace(options, frames=length), seed, device, say,
                                coarse_spans if len(coarse_spans) > 1 else None, shown, preview_every)
    coarse, spent = run.frames, run.timings["total_s"]
    if not fine:
        return replace(run, frames=coarse, timings={**run.timings, "total_s": spent})
    # 2. the full clip with the coarse frames kept, the user's keyframes, in-betweens from windows
    keyframes = {p: coarse[i] for i, p in enumerate(positions) if p not in free} | inputs.keyframes
    stretched = stretch(coarse, positions, frames)
    result = pipeline.run_once(model, prompt, task, replace(inputs, keyframes=keyframes), options, seed, device,
                               progress, spans if len(spans) > 1 else None, preview, preview_every,
                               start=(stretched, FINE_STRENGTH))
    timings = {**result.timings, "coarse_s": spent, "total_s": result.timings["total_s"] + spent}
    return replace(result, timings=timings)


def coarse_schedule(spans: Schedule, positions: list[int]) -> Schedule:
    """The schedule of a long clip on its coarse frames (at `positions`): each span from the first
    coarse frame at or after its start; a span that ends before another coarse frame is left to the
    fine pass (the later of two spans on one coarse frame takes it). The first span keeps frame 0."""
    firsts: dict[int, str] = {}
    for start, text in spans:
        first = next((i for i, p in enumerate(positions) if p >= start), None)
        if first is not None:
            firsts[first] = text
    return sorted(firsts.items())


def squeeze(keyframes: dict[int, np.ndarray], positions: list[int]) -> dict[int, np.ndarray]:
    """The keyframes of a long clip as keyframes of its coarse clip: the one at a coarse frame's
    position, and each of the others on its nearest coarse frame (of two as near, one still free)
    if no keyframe took it; the fine pass keeps them all."""
    out = {i: keyframes[p] for i, p in enumerate(positions) if p in keyframes}
    for p in sorted(set(keyframes) - set(positions)):
        gap = min(abs(q - p) for q in positions)
        nearest = [i for i, q in enumerate(positions) if abs(q - p) == gap and i not in out]
        if nearest:
            out[nearest[0]] = keyframes[p]
    return out


# Tasks that loop. A round loop of one window's length is made in two passes (`round_loop`); a
# longer one coarse to fine from one, and one with a prompt schedule by windows around the circle.
LOOP_TASKS = ("t2v", "i2v", "cinemagraph")
# The share of a round loop's first pass kept, around its middle, when the seam is made.
LOOP_KEPT = 0.375


def pingpong(model, prompt, task, inputs: Inputs, options: SampleOptions, seed, device, progress, preview,
             preview_every) -> GenerateResult:
    """A loop played there and back: a clip of `frames // 2 + 1` frames forward, then back through
    it to the frame after the first. Every step of the loop, the one from the last frame to the
    first included, is a step of that clip, so the seam cannot jump, and an i2v loop's image is its
    first frame as in any i2v clip. (Made round the circle instead, the loop must lead back into
    the image, which the model does not do; and a round loop's kept frames meet the regenerated ones
    with a jump in size as often as not: README, Time.) The forward clip is made at the model's
    length at least, and coarse to fine when longer, as any clip."""
    cfg = model.config
    frames, m = pipeline.check(model, prompt, task, inputs, options), cfg.unet.frame_multiple
    if frames % 2:
        raise UsageError(f"a pingpong loop needs an even number of frames, got {frames}")
    inputs = folded(inputs, frames)
    length = max(-(-(frames // 2 + 1) // m) * m, min(frames, cfg.frames))
    shown = None if preview is None else lambda step, steps, clip: preview(step, steps, there_and_back(clip, frames))
    forward = pipeline.generate(model, prompt, task=task, inputs=inputs, seed=seed, device=device, progress=progress,
                                options=replace(options, frames=length, loop=False, loop_style=None),
                                preview=shown, preview_every=preview_every)
    return replace(forward, frames=there_and_back(forward.frames, frames))


def there_and_back(clip: np.ndarray, frames: int) -> np.ndarray:
    """`frames` frames: clip[0 .. frames/2], then back down to clip[1]."""
    half = frames // 2
    return np.concatenate([clip[:half + 1], clip[half - 1:0:-1]])


def folded(inputs: Inputs, frames: int) -> Inputs:
    """A pingpong loop's inputs as inputs of its way there: keyframes past the middle on the frames
    played back there (`_played_back`), and a mask video checked to play back the same."""
    if inputs.generate_region is not None and np.ndim(inputs.generate_region) == 3:
        _played_back(dict(enumerate(inputs.generate_region[:frames])), frames, "mask video")
    return replace(inputs, keyframes=_played_back(inputs.keyframes, frames, "keyframes"))


def _played_back(keyframes: dict[int, np.ndarray], frames: int, what: str) -> dict[int, np.ndarray]:
    """Frames given at any index of a pingpong loop, as frames of its forward half (index i past the
    middle plays frame frames - i); two given for one forward frame must be the same."""
    out: dict[int, np.ndarray] = {}
    for i in sorted(keyframes):
        j = i if i <= frames // 2 else frames - i
        if j in out and not np.array_equal(out[j], keyframes[i]):
            raise UsageError(f"a pingpong loop of {frames} frames shows frame {j} again as frame {frames - j}: "
                             f"the {what} there must be the same (or use --loop-style round)")
        out[j] = keyframes[i]
    return out


def round_loop(model, prompt, task, inputs: Inputs, options: SampleOptions, seed, device, progress, preview,
               preview_every) -> GenerateResult:
    """A round loop of one window's length, in two passes: the clip, then its seam. The middle
    `LOOP_KEPT` of the clip is kept; one window starting half-way round the circle (the clip rolled
    by half, its last frame next to its first in the window's middle) regenerates the rest, so the
    end leads into the start as any frame leads into the next. Windows averaged around the circle
    in one pass instead disagree about where the motion starts (README, Time)."""
    frames = options.frames or model.config.frames
    # 1. the clip, as if it were not a loop
    draft = pipeline.run_once(model, prompt, task, inputs, replace(options, loop=False), seed, device,
                              denoise_as(progress, "draft"), None, None, preview_every)
    # 2. its middle known (the user's own keyframes win), the seam made in the middle of one window
    cut = round(frames * (1 - LOOP_KEPT) / 2)
    kept = {i: draft.frames[i] for i in range(cut, frames - cut)}
    seam = pipeline.run_once(model, prompt, task, replace(inputs, keyframes=kept | inputs.keyframes), options,
                             seed, device, progress, None, preview, preview_every, loop_starts=(frames // 2,))
    timings = {**seam.timings, "draft_s": draft.timings["total_s"],
               "total_s": seam.timings["total_s"] + draft.timings["total_s"]}
    return replace(seam, timings=timings)


# How much of the schedule the fine pass of a long clip runs from the stretched coarse clip: enough
# to turn the blend between keyframes into one object in between, little enough to keep the path.
FINE_STRENGTH = 0.6


def stretch(coarse: np.ndarray, positions: list[int], frames: int) -> np.ndarray:
    """uint8 (frames, h, w, c): `coarse` frame i at positions[i], linear blends in between (after
    the last position, towards the first frame again: a loop's keyframes stop short of the end)."""
    if positions[-1] < frames - 1:
        positions, coarse = [*positions, frames], np.concatenate([coarse, coarse[:1]])
    t = np.arange(frames, dtype=np.float64)
    right = np.clip(np.searchsorted(positions, t, side="right"), 1, len(positions) - 1)
    lo, hi = np.asarray(positions)[right - 1], np.asarray(positions)[right]
    w = np.clip((t - lo) / np.maximum(hi - lo, 1), 0, 1)[:, None, None, None]
    out = (1 - w) * coarse[right - 1] + w * coarse[right]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def keyframe_positions(frames: int, coarse: int, *, loop: bool = False) -> list[int]:
    """Where the `coarse` frames of a clip at the trained length fall in one of `frames` frames:
    spread evenly from the first frame to the last (a loop: around the circle)."""
    if loop:
        return [round(i * frames / coarse) for i in range(coarse)]
    return [round(i * (frames - 1) / (coarse - 1)) for i in range(coarse)]


def extend(model, prompt, inputs: Inputs, options: SampleOptions, seed, device, progress, preview, preview_every):
    """`options.frames` new frames after the given video (before it, `inputs.backward`). The
    video's last frames (first, backward; as many as the longer of the model's clip and the new
    frames) are keyframes of one clip that also holds the new frames, made coarse to fine like any
    long clip: the coarse pass sees the given motion squeezed to the model's length and carries it
    on, so the new frames continue it at its own speed. The keys of the temporal block just past
    the join are left to the fine pass, which sees the given frames at their own pace. (A window
    holding the last frames at its start replays the world's clip from its beginning instead: the
    motion turned back.) The result is the whole input plus the new frames."""
    cfg = model.config
    if inputs.video is None:
        raise UsageError("extend needs --video")
    video, new, m = inputs.video, options.frames or cfg.frames, cfg.unet.frame_multiple
    pipeline.check(model, prompt, "t2v", Inputs(video=video), replace(options, frames=None))
    context = min(len(video), max(cfg.frames, new))
    while context > 1 and (context + new) % m:
        context -= 1
    if (context + new) % m:
        raise UsageError(f"extend: {new} new frames cannot join the input (make --frames a multiple of {m})")
    # 1. the given frames known at the clip's start (its end, backward), the new frames generated
    given = video[-context:] if not inputs.backward else video[:context]
    offset = 0 if not inputs.backward else new
    keyframes = {offset + i: f for i, f in enumerate(given)}
    join = range(context, context + m) if not inputs.backward else range(new - m, new)
    opts = replace(options, frames=context + new, loop=False)
    if opts.frames > cfg.frames and options.coarse:
        result = long_clip(model, prompt, "t2v", Inputs(keyframes=keyframes), opts, seed, device, progress, None,
                           preview, preview_every, free=frozenset(join))
    else:
        result = pipeline.run_once(model, prompt, "t2v", Inputs(keyframes=keyframes), opts, seed, device, progress,
                                   None, preview, preview_every)
    # 2. the whole input and the new frames
    fresh = result.frames[context:] if not inputs.backward else result.frames[:new]
    clip = np.concatenate([video, fresh]) if not inputs.backward else np.concatenate([fresh, video])
    return replace(result, frames=clip, seed=seed)
