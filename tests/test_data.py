"""Training on real captioned videos: manifests and folders, seeking and clip sampling, buckets,
`lumiere data check`, training and exact resumes on decoded real-codec files, bad files skipped
and counted, world-only options refused.

Every input is made here: ffmpeg's lavfi sources (testsrc2, mandelbrot, life) at several sizes and
frame rates, world renders encoded as mp4 with their captions, a corrupt file, a file cut short
after its header, a too-short clip, images with captions.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import TINY_CONFIG
from lumiere_cli.config import TrainConfig, dumps
from lumiere_cli.errors import InputError, LumiereError, UsageError

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
TINY = replace(TINY_CONFIG, vocabulary=())  # 8 frames at 8 fps, 16x16; frames in multiples of 2
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def ffmpeg(*args, stdin: bytes | None = None) -> None:
    quiet = ["-nostdin"] if stdin is None else []
    subprocess.run([FFMPEG, "-v", "error", *quiet, "-y", *args], check=True, capture_output=True, input=stdin)


def lavfi(path: Path, source: str, seconds: float, *extra: str) -> Path:
    ffmpeg("-f", "lavfi", "-i", source, "-t", str(seconds), *X264, *extra, str(path))
    return path


def encode(path: Path, frames: np.ndarray, fps: float) -> Path:
    """uint8 (t, h, w, 3) as an H.264 mp4, through ffmpeg's raw-video input."""
    t, h, w, _ = frames.shape
    ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", *X264,
           str(path), stdin=np.ascontiguousarray(frames).tobytes())
    return path


def caption(path: Path, text: str) -> Path:
    path.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    return path


def world_clips(folder: Path, n: int, *, seed: int = 0) -> list[tuple[Path, str]]:
    """World renders (16 frames, 32x32) encoded as 8 fps mp4s, each with its caption beside it."""
    from lumiere_cli.world.render import render, sample_spec
    from lumiere_cli.world.vocab import caption as world_caption

    rng = random.Random(seed)
    out = []
    for i in range(n):
        spec = sample_spec(rng)
        frames = (render(spec, frames=16, size=32).permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)
        path = encode(folder / f"world_{i}.mp4", frames, 8)
        out.append((caption(path, world_caption(spec)), world_caption(spec)))
    return out


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """Real-codec files of several sizes and rates, and bad ones (no captions yet)."""
    root = tmp_path_factory.mktemp("media")
    files = {
        "testsrc": lavfi(root / "testsrc.mp4", "testsrc2=size=96x64:rate=25", 3),
        "mandelbrot": lavfi(root / "mandelbrot.mp4", "mandelbrot=size=64x48:rate=10", 2.5),
        "life": lavfi(root / "life.mp4", "life=size=48x48:rate=15:mold=10:ratio=0.5", 2),
        "portrait": lavfi(root / "portrait.mp4", "testsrc2=size=40x72:rate=30", 1.5),
        "short": lavfi(root / "short.mp4", "testsrc2=size=32x32:rate=25", 0.3),
        "half": lavfi(root / "half.mp4", "testsrc2=size=32x32:rate=8", 0.6),  # 4 or 5 frames at 8 fps
    }
    # Cut short after its header: the index says 3 s, the data ends well before.
    whole = lavfi(root / "whole.mp4", "testsrc2=size=64x64:rate=25", 3, "-movflags", "+faststart")
    data = whole.read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) // 3])
    files["cut"] = root / "cut.mp4"
    files["corrupt"] = root / "corrupt.mp4"
    files["corrupt"].write_bytes(files["testsrc"].read_bytes()[:2000])
    # Frame i has grey level 8 i (0-248): which source frames a clip takes can be read back.
    levels = np.repeat(np.repeat((np.arange(32) * 8).astype(np.uint8)[:, None, None, None], 48, 1), 64, 2)
    files["levels"] = encode(root / "levels.mp4", np.repeat(levels, 3, axis=3), 25)
    return files


@pytest.fixture(scope="session")
def folder(media, tmp_path_factory):
    """A folder dataset: world renders, lavfi clips and images with captions, and bad entries."""
    root = tmp_path_factory.mktemp("folder")
    world = world_clips(root, 6)
    for name in ("testsrc", "mandelbrot", "life", "portrait", "short", "cut", "corrupt"):
        target = root / media[name].name
        target.write_bytes(media[name].read_bytes())
        caption(target, f"a {name} pattern")
    images = root / "stills"
    images.mkdir()
    from PIL import Image

    for i, size in enumerate([(40, 30), (24, 24), (64, 20)]):
        path = images / f"still_{i}.png"
        Image.fromarray(np.full((size[1], size[0], 3), 40 * i + 20, np.uint8)).save(path)
        caption(path, f"a grey still number {i}")
    (root / "empty.mp4").write_bytes(media["testsrc"].read_bytes())
    (root / "empty.txt").write_text("   \n")
    (root / "uncaptioned.mp4").write_bytes(media["mandelbrot"].read_bytes())
    return {"root": root, "world": world}


@pytest.fixture(scope="session")
def manifest(media, tmp_path_factory):
    """A CSV manifest (aliases video_path/prompt, start/end), with rows that cannot be used."""
    root = tmp_path_factory.mktemp("manifest")
    clips = root / "clips"
    clips.mkdir()
    world = world_clips(clips, 4, seed=1)
    for name in ("testsrc", "mandelbrot", "short", "corrupt"):
        (clips / media[name].name).write_bytes(media[name].read_bytes())
    rows = [("video_path", "prompt", "start", "end")]
    rows += [(f"clips/{p.name}", text, "", "") for p, text in world]
    rows += [("clips/testsrc.mp4", "a test pattern, its second half", "1.5", ""),
             ("clips/mandelbrot.mp4", "a fractal zoom", "0.2", "1.4"),
             ("clips/testsrc.mp4", "a test pattern, briefly", "0", "0.6"),  # 5 frames at 8 fps: a 4-frame clip
             ("clips/short.mp4", "too short a clip", "", ""),
             ("clips/corrupt.mp4", "a corrupt file", "", ""),
             ("clips/missing.mp4", "a file that is not there", "", ""),
             ("", "no path", "", ""),
             ("clips/testsrc.mp4", "", "", ""),
             ("clips/testsrc.mp4", "ends before it starts", "2", "1")]
    path = root / "train.csv"
    path.write_text("\n".join(",".join(f'"{v}"' if "," in v else v for v in row) for row in rows) + "\n")
    val = root / "val.jsonl"
    val.write_text("\n".join(json.dumps({"file": f"clips/{p.name}", "caption": t}) for p, t in world[:2]) + "\n")
    return {"csv": path, "val": val, "world": world}


# --------------------------------------------------------------------------------- listing


def test_manifests_take_column_aliases_paths_relative_to_them_and_report_bad_rows(manifest, tmp_path):
    from lumiere_cli.data.entries import read_entries

    listing = read_entries(manifest["csv"])
    assert listing.kind == "csv" and listing.count == 13
    assert [e.path for e in listing.entries[:4]] == [p for p, _ in manifest["world"]]
    cut = next(e for e in listing.entries if e.text == "a fractal zoom")
    assert (cut.start, cut.end) == (0.2, 1.4) and cut.where == "train.csv:7"
    assert [(p.where, p.reason) for p in listing.problems] == [
        ("train.csv:12", "no path"), ("train.csv:13", "empty caption"),
        ("train.csv:14", "end (1 s) is not after start (2 s)")]

    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text('{"Video": "a.mp4", "Text": "one"}\n\n{not json\n[1, 2]\n{"path": "b.mp4", "text": 3}\n'
                     '{"path": "c.mp4", "caption": "x", "start": "soon"}\n')
    listing = read_entries(jsonl)
    assert [(e.path, e.text) for e in listing.entries] == [(tmp_path / "a.mp4", "one")]
    assert [p.where for p in listing.problems] == ["m.jsonl:3", "m.jsonl:4", "m.jsonl:5", "m.jsonl:6"]
    assert "not valid JSON" in listing.problems[0].reason and "not text" in listing.problems[2].reason
    assert "start must be a number of seconds" in listing.problems[3].reason

    (tmp_path / "nocap.csv").write_text("path,label\na.mp4,x\n")
    with pytest.raises(InputError, match="no caption column: name it one of text, caption, prompt"):
        read_entries(tmp_path / "nocap.csv")
    with pytest.raises(InputError, match="not a manifest"):
        read_entries(manifest["val"].with_suffix(".txt").write_text("x") and manifest["val"].with_suffix(".txt"))
    with pytest.raises(InputError, match="data not found"):
        read_entries(tmp_path / "nowhere")


def test_a_folder_pairs_media_with_same_stem_captions(folder):
    from lumiere_cli.data.entries import read_entries

    listing = read_entries(folder["root"])
    wheres = [e.where for e in listing.entries]
    assert "stills/still_0.png" in wheres and "world_0.mp4" in wheres and wheres == sorted(wheres)
    texts = {e.where: e.text for e in listing.entries}
    assert texts["world_1.mp4"] == folder["world"][1][1]
    reasons = {p.where: p.reason for p in listing.problems}
    assert reasons == {"empty.mp4": "empty caption (empty.txt)",
                       "uncaptioned.mp4": "no caption: add uncaptioned.txt beside it"}


# --------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("name", ["testsrc", "mandelbrot", "life", "portrait", "levels"])
def test_start_s_seeks_to_the_first_frame_at_or_after_it(media, name):
    from lumiere_cli.video_io.decode import read_video

    whole = read_video(media[name])
    rate = whole.source_fps
    for start in (0.0, 0.3, 1.0 + 0.5 / rate, 1.2):
        first = int(np.ceil(start * rate - 1e-6))
        part = read_video(media[name], start_s=start, frames=4)
        assert part.start_s == pytest.approx(first / rate, abs=1e-6), start
        assert np.array_equal(part.frames, whole.frames[first:first + 4]), start
    at8 = read_video(media[name], start_s=0.5, frames=3, fps=8)
    assert at8.describe().endswith("0.5-0.9 s") or at8.start_s >= 0.5


def test_start_s_in_pillow_formats_and_frame_folders(tmp_path):
    from lumiere_cli.video_io.decode import read_video

    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=10", "-t", "2", str(tmp_path / "a.gif"))
    whole = read_video(tmp_path / "a.gif")
    part = read_video(tmp_path / "a.gif", start_s=0.5, short_side=12)
    assert part.start_s == pytest.approx(0.5) and len(part.frames) == len(whole.frames) - 5
    assert part.frames.shape[1:] == (12, 16, 3)
    with pytest.raises(UsageError, match="start_s must be a number of seconds"):
        read_video(tmp_path / "a.gif", start_s=-1)
    with pytest.raises(UsageError, match="short_side must be a whole number"):
        read_video(tmp_path / "a.gif", short_side=0)


def test_short_side_keeps_the_proportions_and_the_orientation(media):
    from lumiere_cli.video_io.decode import read_video

    assert read_video(media["testsrc"], frames=2, short_side=16).frames.shape == (2, 16, 24, 3)
    assert read_video(media["portrait"], frames=2, short_side=20).frames.shape == (2, 36, 20, 3)
    big = read_video(media["testsrc"], frames=1).frames[0].astype(float)
    small = read_video(media["testsrc"], frames=1, short_side=32).frames[0].astype(float)
    assert abs(big.mean() - small.mean()) < 3  # the same picture, shrunk


def test_clips_take_the_nearest_source_frame_at_the_model_rate_and_crop_where_asked(media):
    from lumiere_cli.data.entries import Entry
    from lumiere_cli.data.media import ClipError, read_clip, scan_entry

    item = scan_entry(Entry("levels", media["levels"], "grey levels"))
    assert (item.kind, item.frames, item.fps, item.width, item.height) == ("video", 32, 25.0, 64, 48)
    assert item.available(8) == 11  # 1 + floor((32 - 0.5) * 8 / 25): the 11th at 1.25 s, the last frame 1.24 s
    assert item.last_start(8, 8) == 9  # a clip of 8 frames at 8 fps spans 21.875 source frames
    assert len(read_clip(item, frames=11, size=16, fps=8, start_s=0)) == 11  # what the scan promises, decodes
    assert len(read_clip(item, frames=8, size=16, fps=8, start_s=item.clip_start(8, 8, 0.999))) == 8
    clip = read_clip(item, frames=5, size=16, fps=8, start_s=10 / 25)
    assert clip.shape == (5, 16, 16, 3)
    seen = np.round(clip.reshape(5, -1).mean(1) / 8)  # the source frame each clip frame came from
    assert seen.tolist() == [10, 13, 16, 19, 22]  # nearest to 10 + 25 k / 8 (ties to the earlier)
    wide = read_clip(item, frames=1, size=16, fps=8, start_s=0, crop=(0.0, 0.0))
    assert wide.shape == (1, 16, 16, 3)
    with pytest.raises(ClipError, match="too short"):
        read_clip(item, frames=12, size=16, fps=8, start_s=0)
    with pytest.raises(ClipError, match="too short"):
        item.clip_start(12, 8, 0.0)

    pattern = scan_entry(Entry("t", media["testsrc"], "x"))
    left = read_clip(pattern, frames=1, size=16, fps=8, start_s=0, crop=(0.5, 0.0))
    right = read_clip(pattern, frames=1, size=16, fps=8, start_s=0, crop=(0.5, 1.0))
    assert not np.array_equal(left, right)  # a random crop moves across the wider side


# --------------------------------------------------------------------------------- survey and check


def test_survey_buckets_clips_and_gives_every_unusable_entry_a_reason(folder):
    from lumiere_cli.data.check import check_data

    report = check_data(folder["root"], model=TINY, stage="video", buckets=[(8, 16), (4, 16), (8, 32)]).to_dict()
    assert report["entries"] == 18 and report["decoded"] == 14 and report["images"] == 3
    reasons = {p["entry"]: p["reason"] for p in report["unusable"]}
    assert set(reasons) == {"empty.mp4", "uncaptioned.mp4", "corrupt.mp4", "cut.mp4", "short.mp4",
                            "stills/still_0.png", "stills/still_1.png", "stills/still_2.png"}
    assert reasons["cut.mp4"].startswith("no frame at") and "cut short" in reasons["cut.mp4"]
    assert reasons["short.mp4"].startswith("too short: 0.32 s gives 3 frames at 8 fps, a clip needs 4")
    assert reasons["corrupt.mp4"].startswith("cannot read")
    assert reasons["stills/still_0.png"].startswith("an image is one frame")
    # 8-frame clips at the size each reaches: world renders (32 px) and lavfi ones (48-72 px) in 8x32
    assert report["buckets"] == {"8x32": 10, "8x16": 0, "4x16": 0}
    assert report["usable"] == 10
    # Over the 11 videos that decode: 6 world renders of 2 s at 8 fps, testsrc, mandelbrot, life, portrait, short
    assert report["fps"] == {"8": 6, "10": 1, "15": 1, "25": 2, "30": 1}
    assert report["durations"] == {"<1 s": 1, "1-2 s": 1, "2-5 s": 9}
    assert report["sizes"]["32x32"] == 7 and report["sizes"]["40x72"] == 1

    frames = check_data(folder["root"], model=TINY, stage="t2i").to_dict()
    assert frames["buckets"] == {"1x16": 14} and frames["usable"] == 14  # every image and video, even short.mp4


def test_data_check_cli_prints_the_report_and_exits_3_when_nothing_is_usable(folder, media, tmp_path):
    from lumiere_cli.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["data", "check", str(folder["root"]), "--config", dumps(TINY), "--bucket", "8x16",
                            "--bucket", "4x16"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{folder['root']}: 18 entries (folder), 14 decode (11 videos, 3 images), "
                               "10 usable for the video stage")
    assert "clips per bucket (frames x size): 8x16 10 | 4x16 0" in lines
    assert "  short.mp4: too short: 0.32 s gives 3 frames at 8 fps, a clip needs 4" in lines
    assert any(line.startswith("  cut.mp4: no frame at") for line in lines)
    r = runner.invoke(app, ["data", "check", str(folder["root"]), "--config", dumps(TINY), "--json"])
    data = json.loads(r.stdout)
    assert data["usable"] == 10 and len(data["unusable"]) == 8 and data["unusable_by_reason"]["too short"] == 1

    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("corrupt", "short"):
        (bad / f"{name}.mp4").write_bytes(media[name].read_bytes())
        caption(bad / f"{name}.mp4", name)
    r = runner.invoke(app, ["data", "check", str(bad)])
    assert r.exit_code == 3 and "nothing in" in r.output and "corrupt.mp4: cannot read" in r.stdout
    r = runner.invoke(app, ["data", "check", str(bad), "--bucket", "8x15"])
    assert r.exit_code == 2 and "the size must be a multiple of 8" in r.output


def test_data_check_needs_no_torch(folder):
    code = ("import sys; from lumiere_cli.cli import app\n"
            f"app(args=['data', 'check', {str(folder['root'])!r}, '--json'], standalone_mode=False)\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH', file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert "NO TORCH" in r.stderr, r.stderr[-2000:]


def _copy_folder(folder, dest: Path) -> Path:
    import shutil

    shutil.copytree(folder["root"], dest)
    return dest


def test_a_second_survey_opens_no_unchanged_file_and_finds_the_same(folder, tmp_path, monkeypatch):
    from lumiere_cli.data import media
    from lumiere_cli.data.check import survey

    root = _copy_folder(folder, tmp_path / "data")
    first = survey(root, model=TINY, stage="video")
    assert first.reused == 0
    opened = []
    real = media.scan_entry
    monkeypatch.setattr(media, "scan_entry", lambda e: opened.append(e.where) or real(e))
    again = survey(root, model=TINY, stage="video")
    assert opened == [] and again.reused == len(first.scanned) + 2  # corrupt.mp4, cut.mp4: remembered too
    assert again.items == first.items and again.problems == first.problems and again.bucket_of == first.bucket_of

    # a file rewritten, a caption changed, one file gone: only the rewritten file is opened again
    (root / "short.mp4").write_bytes((root / "testsrc.mp4").read_bytes())
    caption(root / "life.mp4", "a game of life, recaptioned")
    (root / "mandelbrot.mp4").unlink()
    third = survey(root, model=TINY, stage="video")
    assert opened == ["short.mp4"]
    assert "short.mp4" not in {p.where for p in third.problems}
    assert next(x.entry.text for x in third.items if x.entry.where == "life.mp4") == "a game of life, recaptioned"
    assert len(third.items) == len(first.items)  # short.mp4 now trains, mandelbrot.mp4 is gone
    assert survey(root, model=TINY, stage="video", rescan=True).reused == 0 and len(opened) > 1


def test_a_broken_or_unwritable_scan_cache_only_costs_time(folder, tmp_path, monkeypatch):
    from lumiere_cli.data.check import survey
    from lumiere_cli.data.scan_cache import ScanCache

    root = _copy_folder(folder, tmp_path / "data")
    expected = survey(root, model=TINY, stage="video", rescan=True)
    path = ScanCache(root).path
    for junk in (b"", b"{not json", b'{"version": 1, "scans": []}', b"\xff\xfe", b'{"version": 1, "scans": {"x": 1}}'):
        path.write_bytes(junk)
        got = survey(root, model=TINY, stage="video")
        assert got.reused == 0 and got.items == expected.items and got.problems == expected.problems
        assert json.loads(path.read_text())["version"] == 1  # written anew
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("not a folder")
    assert survey(root, model=TINY, stage="video").items == expected.items


def test_concurrent_surveys_leave_a_readable_scan_cache(folder, tmp_path):
    root = _copy_folder(folder, tmp_path / "data")
    code = (f"from conftest import TINY_CONFIG as T\nfrom dataclasses import replace\n"
            f"from lumiere_cli.data.check import survey\n"
            f"for _ in range(3): s = survey({str(root)!r}, model=replace(T, vocabulary=()), stage='video', rescan=True)\n"
            f"print(len(s.items))")
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": f"{here.parent}{os.pathsep}{here}"}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [o.strip() for o, _ in outs] == ["10"] * 3, [e[-1000:] for _, e in outs]
    from lumiere_cli.data.check import survey

    assert survey(root, model=TINY, stage="video").reused == 14 + 2


# --------------------------------------------------------------------------------- batches


def _pool(source, stage="video", buckets=None):
    from lumiere_cli.train.data import open_data

    cfg = TrainConfig(stage=stage, model=TINY, data=str(source), batch_size=3, steps=8, buckets=buckets)
    return cfg, open_data(cfg, TINY)


def test_batches_are_a_function_of_seed_step_rank_and_resume_bit_identically(manifest):
    cfg, data = _pool(manifest["csv"])
    fresh = data.batches(world=1, start=0, state={})
    resumed = data.batches(world=1, start=3, state=fresh.state(3))
    for step in (3, 4, 5):
        a, b = fresh.batch(step, 0), resumed.batch(step, 0)
        for key in ("x0", "noise", "sigma", "cond_mask"):
            assert torch.equal(a[key], b[key]), (step, key)
        assert a["captions"] == b["captions"]
    assert a["x0"].shape == (3, 3, 8, 16, 16) and a["x0"].min() >= -1 and a["x0"].max() <= 1
    other = fresh.batch(5, 1)
    assert not torch.equal(other["x0"], a["x0"])


def test_a_resume_at_another_process_count_reads_on_where_the_run_stopped(manifest):
    cfg, data = _pool(manifest["csv"], buckets=[(8, 16), (4, 16)])
    two = data.batches(world=2, start=0, state={})
    seen = {}
    for step in range(4):
        for rank in (0, 1):
            k, places = two.positions(step, rank)
            seen.setdefault(k, []).extend(places)
    one = data.batches(world=1, start=4, state=two.state(4))
    for step in range(4, 8):
        k, places = one.positions(step, 0)
        seen.setdefault(k, []).extend(places)
    assert len(seen) == 2  # the brief span trains in 4x16, the rest in 8x16
    for k, places in seen.items():  # every bucket's stream read on in order: nothing twice, nothing skipped
        assert sorted(places) == list(range(len(places))), k


def test_t2i_batches_are_single_frames_of_videos_and_images(folder):
    cfg, data = _pool(folder["root"], stage="t2i")
    batch = data.batches(world=1, start=0, state={}).batch(0, 0)
    assert batch["x0"].shape == (3, 3, 16, 16) and batch["cond_mask"].shape == (3, 1, 16, 16)
    kinds = {it.kind for it in data.train.items}
    assert kinds == {"image", "video"}


def test_unreadable_clips_are_replaced_counted_once_and_never_retried(manifest, monkeypatch):
    import lumiere_cli.data.media as media_mod
    from lumiere_cli.data.media import ClipError
    from lumiere_cli.train.data import MAX_ATTEMPTS

    cfg, data = _pool(manifest["csv"])
    bad = manifest["world"][0][0]
    real, calls = media_mod.read_clip, []

    def flaky(item, **kw):
        calls.append(item.entry.path)
        if item.entry.path == bad:
            raise ClipError("too short: 3 of 8 frames from 0.00 s")
        return real(item, **kw)

    monkeypatch.setattr(media_mod, "read_clip", flaky)
    source = data.batches(world=1, start=0, state={})
    skipped = [s for step in range(8) for s in source.batch(step, 0)["skipped"]]
    assert skipped == [("train.csv:2", "too short: 3 of 8 frames from 0.00 s")]
    assert calls.count(bad) == 1  # found bad once, then never read again
    again = data.batches(world=1, start=0, state={})  # another worker, another process: the same batches
    assert all(torch.equal(again.batch(s, 0)["x0"], source.batch(s, 0)["x0"]) for s in (0, 5))
    known = data.batches(world=1, start=0, state={"skipped": dict(skipped)})
    calls.clear()
    assert torch.equal(known.batch(2, 0)["x0"], source.batch(2, 0)["x0"]) and bad not in calls

    monkeypatch.setattr(media_mod, "read_clip", lambda item, **kw: (_ for _ in ()).throw(ClipError("broken")))
    with pytest.raises(LumiereError, match=f"{MAX_ATTEMPTS} entries in a row could not be read"):
        data.batches(world=1, start=0, state={}).batch(0, 0)


# --------------------------------------------------------------------------------- training


def _cfg(tmp_path, name, **kw):
    base = dict(stage="video", out_dir=str(tmp_path / name), steps=4, batch_size=2, checkpoint_every=2,
                log_every=1, warmup=2, model=TINY, device="cpu", workers=1)
    return TrainConfig(**{**base, **kw})


def test_train_on_a_manifest_with_validation_and_on_a_folder(tmp_path, manifest, folder):
    from lumiere_cli.weights import load_model

    calls = []
    from lumiere_cli.train import train

    train_cfg = _cfg(tmp_path, "video", data=str(manifest["csv"]), val_data=str(manifest["val"]), val_every=2)
    path = train(train_cfg, progress=lambda phase, done, total, **m: calls.append((phase, done, m)))
    model = load_model(path)
    record = model.card["training"][-1]
    assert record["data"] == str(manifest["csv"]) and record["entries"] == 13 and record["usable"] == 6
    assert record["skipped"] == 7 and record["skipped_by_reason"]["too short"] == 2
    assert record["val_data"] == str(manifest["val"]) and record["val_clips"] == 2
    assert set(record["val_loss"]) == {"0.002-0.2", "0.2-1", "1-5", "5-80"}
    assert set(model.config.vocabulary) >= {"fractal", "zoom", "pattern"}  # the captions' words
    assert "briefly" not in model.config.vocabulary  # an entry it could not train on
    assert [c[1] for c in calls if c[0] == "val"] == [2, 4]
    assert all(c[2]["skipped"] == 7 for c in calls if c[0] == "train")
    rows = [json.loads(line) for line in (tmp_path / "video" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_loss" in r] == [2, 4] and all(r["val_clips"] == 2 for r in rows if "val_loss" in r)
    assert all(r["skipped"] == 7 for r in rows if "loss" in r)

    t2i = train(_cfg(tmp_path, "t2i", stage="t2i", data=str(folder["root"]), val_fraction=0.2, steps=2,
                     grad_accum=2))
    record = load_model(t2i).card["training"][-1]
    assert record["usable"] == 11 and record["val_clips"] == 3 and record["samples_seen"] == 2 * 2 * 2  # 14 - 3 held out
    assert record["grad_accum"] == 2 and record["buckets"] == {"1x16": 11}


def test_resume_on_decoded_files_is_exact(tmp_path, manifest):
    from safetensors.torch import load_file

    from lumiere_cli.train import train

    # Every U-Net weight trains (a new model's temporal layers alone get no gradient yet: the
    # spatial output starts at zero), on two buckets, from two worker processes.
    kw = dict(stage="video-unfrozen", data=str(manifest["csv"]), workers=2, buckets=((8, 16), (4, 16)))
    whole = load_file(str(train(_cfg(tmp_path, "a", **kw))))
    start = load_file(str(train(_cfg(tmp_path, "c", **kw, steps=1))))
    assert not torch.equal(start["unet.spatial.head.weight"], whole["unet.spatial.head.weight"])

    class Stop(Exception):
        pass

    def stop(phase, done, total, **_):
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        train(_cfg(tmp_path, "b", **kw), progress=stop)
    resumed = load_file(str(train(_cfg(tmp_path, "b", **kw))))
    assert whole.keys() == resumed.keys()
    for k in whole:
        assert torch.equal(resumed[k], whole[k]), k


def test_world_only_options_are_refused_with_a_dataset(tmp_path, manifest):
    from lumiere_cli.train import train

    def refused(match, **kw):
        with pytest.raises(UsageError, match=match):
            train(_cfg(tmp_path, "bad", **kw))

    data = str(manifest["csv"])
    refused(r"^--reversed-pairs needs the procedural world \(--data shapes\)", data=data, reversed_pairs=0.5)
    refused(r"^--reference-clips needs the procedural world", data=data, reference_clips=4)
    refused(r"^--motions needs the procedural world", data=data, motions=("moving left",))
    refused("pass --hard-negatives 0", data=data, stage="text")
    refused("the world \\(shapes\\) has none", val_fraction=0.1)
    refused("buckets sort a dataset's clips", buckets=((8, 16),))
    refused("frames must be a multiple of 2", data=data, buckets=((5, 16),))
    refused("not the text stage", data=data, stage="text", hard_negatives=0.0, val_fraction=0.1)
    refused(r"^--reversed-pairs, --motions need the procedural world", data=data, reversed_pairs=1.0,
            motions=("moving up",))
    with pytest.raises(InputError, match="no usable entries"):
        train(_cfg(tmp_path, "bad", data=str(manifest["csv"]), buckets=((64, 16),)))
    assert not (tmp_path / "bad").exists()


def test_cli_trains_on_a_folder_and_t2v_loads_the_weights(tmp_path, folder, monkeypatch):
    from lumiere_cli.cli import app

    monkeypatch.chdir(tmp_path)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--data", str(folder["root"]), "--stage", "video", "--steps", "2",
                            "--batch-size", "2", "--out", "run", "--config", dumps(TINY), "--device", "cpu",
                            "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "skipped 8" in r.output
    r = runner.invoke(app, ["t2v", "a testsrc pattern", "--weights", "run", "--steps", "2", "--seed", "0",
                            "-o", "clip.mp4", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "clip.mp4").stat().st_size > 0
    r = runner.invoke(app, ["train", "--data", str(folder["root"]), "--stage", "video", "--steps", "1",
                            "--out", "bad", "--reversed-pairs", "0.5"])
    assert r.exit_code == 2 and "--reversed-pairs needs the procedural world" in r.output
