"""video_io: round trips through every format, metadata inside files, atomic writes, bad files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from lumiere_cli import video_io
from lumiere_cli.errors import InputError, UsageError


def _clip(t=8, h=16, w=16, seed=0):
    rng = np.random.default_rng(seed)
    # Flat 4x4 blocks survive H.264 much better than per-pixel noise.
    small = rng.integers(0, 256, size=(t, h // 4, w // 4, 3), dtype=np.uint8)
    return small.repeat(4, axis=1).repeat(4, axis=2)


META = {"prompt": "a red circle", "seed": 7, "notice": "AI-generated video", "fps": 8}


@pytest.mark.parametrize("fmt", ["mp4", "gif", "webp", "png"])
def test_round_trip_frames_fps_and_metadata(tmp_path, fmt):
    frames = _clip()
    out = tmp_path / (f"clip.{fmt}" if fmt != "png" else "clip")
    path = video_io.write_clip(out, frames, fps=8, format=fmt, metadata=META, display_scale=2)
    assert path == out and out.exists()
    video = video_io.read_video(out)
    back = video.frames
    assert back.shape == (8, 32, 32, 3)
    assert video.fps == pytest.approx(8, rel=0.05) and video.stride == 1.0 and not video.has_audio
    expected = video_io.enlarge(frames, 2)
    if fmt in ("png", "webp"):  # lossless
        np.testing.assert_array_equal(back, expected)
    else:
        assert np.abs(back.astype(int) - expected).mean() < 20
    assert video_io.read_metadata(out) == META
    # Nothing temporary left beside the output.
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_mp4_is_h264_yuv420p_faststart(tmp_path):
    import subprocess

    import imageio_ffmpeg

    out = video_io.write_clip(tmp_path / "a.mp4", _clip(h=12, w=20), fps=8, format="mp4", metadata=META)
    err = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(out)], capture_output=True, text=True).stderr
    assert "h264" in err and "yuv420p" in err
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: index before the media data
    assert video_io.read_video(out).frames.shape[1:3] == (12, 20)


def test_refuses_to_overwrite_and_overwrites_when_asked(tmp_path):
    out = tmp_path / "x.gif"
    video_io.write_clip(out, _clip(), fps=8, format="gif")
    with pytest.raises(UsageError, match="--overwrite"):
        video_io.write_clip(out, _clip(), fps=8, format="gif")
    video_io.write_clip(out, _clip(t=4), fps=8, format="gif", overwrite=True)
    assert video_io.read_video(out).frames.shape[0] == 4
    folder = tmp_path / "frames"
    video_io.write_clip(folder, _clip(), fps=8, format="png")
    video_io.write_clip(folder, _clip(t=4), fps=8, format="png", overwrite=True)
    assert len(list(folder.iterdir())) == 4


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(video_io.encode, "_write_gif", boom)
    with pytest.raises(KeyboardInterrupt):
        video_io.write_clip(tmp_path / "x.gif", _clip(), fps=8, format="gif")
    assert list(tmp_path.iterdir()) == []


def test_sidecar(tmp_path):
    p = video_io.write_sidecar(video_io.sidecar_path(tmp_path / "a.mp4"), {"seed": 3})
    assert p.name == "a.mp4.json" and json.loads(p.read_text()) == {"seed": 3}


def test_fit_to_model_centre_crops_then_resizes():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the central square is white, the sides black
    out = video_io.fit_to_model(img, 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8 and out.min() > 240
    vid = video_io.fit_to_model(np.stack([img, img]), 16)
    assert vid.shape == (2, 16, 16, 3)
    mask = video_io.fit_to_model(np.ones((40, 80), np.float32), 16)
    assert mask.shape == (16, 16) and mask.dtype == np.float32 and np.allclose(mask, 1)


def test_read_image_and_mask(tmp_path):
    Image.fromarray(np.full((10, 12, 3), 200, np.uint8)).save(tmp_path / "i.jpg")
    assert video_io.read_image(tmp_path / "i.jpg").shape == (10, 12, 3)
    m = np.zeros((10, 12), np.uint8)
    m[:, 6:] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    mask = video_io.read_mask(tmp_path / "m.png")
    assert mask.shape == (10, 12) and mask[0, 0] == 0 and mask[0, 11] == 1
    video_io.write_clip(tmp_path / "mv", np.repeat(m[None, :, :, None], 3, -1).repeat(3, 0), fps=8, format="png")
    assert video_io.read_mask(tmp_path / "mv").shape == (3, 10, 12)


@pytest.mark.parametrize("reader", [video_io.read_image, video_io.read_video, video_io.read_mask])
def test_bad_files_are_one_line_input_errors(tmp_path, reader):
    with pytest.raises(InputError, match="not found"):
        reader(tmp_path / "missing.png")
    for name in ("corrupt.png", "corrupt.mp4"):
        (tmp_path / name).write_bytes(b"not really a file" * 10)
        with pytest.raises(InputError) as e:
            reader(tmp_path / name)
        assert "\n" not in str(e.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file(tmp_path):
    p = tmp_path / "i.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(p)
    p.chmod(0)
    with pytest.raises(InputError, match="not readable"):
        video_io.read_image(p)
