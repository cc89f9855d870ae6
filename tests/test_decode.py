"""Decoding inputs the way viewers show them: orientation, bit depths, transparency, mask alpha,
video sampling and streaming, probing, failures, and the source's sound under an mp4."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import av
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from lumiere_cli import video_io
from lumiere_cli.errors import InputError, UsageError
from lumiere_cli.video_io import AudioSpan

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
META = {"prompt": "a red circle", "seed": 7, "fps": 8}


def ffmpeg(*args) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", *args], check=True, capture_output=True)


def make_clip(path, seconds, *, size="320x240", tone_s=None, rotate=None):
    """An H.264 test pattern at 25 fps, with a 440 Hz tone of `tone_s` seconds if given."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
    if tone_s:
        args += ["-f", "lavfi", "-t", str(tone_s), "-i", "sine=frequency=440"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac"] if tone_s else []
    ffmpeg(*args, str(path))
    if rotate is not None:  # what a phone held upright writes: landscape pixels plus a display rotation
        tmp = path.with_name("unrotated_" + path.name)
        path.rename(tmp)
        ffmpeg("-display_rotation", str(rotate), "-i", str(tmp), "-c", "copy", str(path))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "tone": make_clip(d / "tone.mp4", 3, tone_s=3),
        "short_tone": make_clip(d / "short_tone.mp4", 3, tone_s=1),
        "silent": make_clip(d / "silent.mp4", 3, size="160x120"),
    }


def audio_seconds(path) -> float:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return float(s.duration * s.time_base)


def one_line_input_error(fn, *args, match=None, **kwargs) -> str:
    with pytest.raises(InputError, match=match) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


# ----------------------------------------------------------------------------- images


def _blocks(h, w):
    """Flat 8x8 blocks of distinct colours (they survive JPEG), with a white top-left block."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 200, size=(h // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    img[:8, :8] = 255
    return img


def test_exif_orientation_is_applied_first_and_masks_match(tmp_path):
    upright = _blocks(32, 16)  # portrait, as the phone's screen showed it
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # the sensor's landscape pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    stored.save(tmp_path / "phone.jpg", quality=95, subsampling=0, exif=exif.tobytes())
    stored.convert("L").save(tmp_path / "phone_mask.jpg", quality=95, exif=exif.tobytes())

    image = video_io.read_image(tmp_path / "phone.jpg")
    assert image.shape == (32, 16, 3)
    assert np.abs(image.astype(int) - upright).mean() < 4
    assert image[:8, :8].min() > 240  # the white block is top-left again

    Image.fromarray(np.full((32, 16), 255, np.uint8)).save(tmp_path / "mask.png")  # drawn on the upright photo
    assert video_io.read_mask(tmp_path / "mask.png").shape == image.shape[:2]
    assert video_io.read_mask(tmp_path / "phone_mask.jpg").shape == image.shape[:2]
    info = video_io.probe(tmp_path / "phone.jpg")
    assert (info.kind, info.width, info.height, info.frames) == ("image", 16, 32, 1)


def test_phone_jpeg_with_a_second_picture_is_one_still(tmp_path):
    photo, preview = Image.new("RGB", (12, 8), (200, 10, 10)), Image.new("RGB", (6, 4), (0, 0, 0))
    photo.save(tmp_path / "mpo.jpg", format="MPO", save_all=True, append_images=[preview])
    with Image.open(tmp_path / "mpo.jpg") as im:
        assert im.format == "MPO" and im.n_frames == 2
    assert video_io.probe(tmp_path / "mpo.jpg").kind == "image"
    assert video_io.read_mask(tmp_path / "mpo.jpg").shape == (8, 12)
    one_line_input_error(video_io.read_video, tmp_path / "mpo.jpg", match="still image")


@pytest.mark.parametrize("mode,suffix", [("I;16", ".png"), ("I;16B", ".tif")])
def test_16_bit_grey_keeps_its_levels(tmp_path, mode, suffix):
    levels = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    Image.fromarray(levels.astype(">u2" if mode == "I;16B" else np.uint16)).save(tmp_path / f"g{suffix}")
    with Image.open(tmp_path / f"g{suffix}") as im:
        assert im.mode == mode
    out = video_io.read_image(tmp_path / f"g{suffix}")
    expected = np.round(levels / 257).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], expected)
    np.testing.assert_allclose(video_io.read_mask(tmp_path / f"g{suffix}"), levels / 65535, atol=1e-6)


def _rgba_pixels():
    """Four pixels: opaque red, half-transparent white, transparent green, opaque grey."""
    return np.array([[[255, 0, 0, 255], [255, 255, 255, 128], [0, 255, 0, 0], [90, 90, 90, 255]]], np.uint8)


def _palette(transparent):
    im = Image.new("P", (3, 1))
    im.putpalette([255, 0, 0, 0, 0, 255, 10, 20, 30])
    im.putdata([0, 1, 2])
    return im, ({"transparency": 1} if transparent else {})


def _write_mode(tmp_path, mode):
    """(path, expected uint8 (h, w, 3)) for an image file of Pillow `mode`."""
    grey = np.array([[0, 60, 128, 255]], np.uint8)
    if mode == "L":
        Image.fromarray(grey).save(p := tmp_path / "l.png")
        return p, np.repeat(grey[..., None], 3, -1)
    if mode == "1":
        Image.fromarray(grey > 100).save(p := tmp_path / "b.png")
        return p, np.repeat(np.where(grey > 100, 255, 0).astype(np.uint8)[..., None], 3, -1)
    if mode == "LA":
        alpha = np.array([[255, 255, 128, 0]], np.uint8)
        Image.fromarray(np.stack([grey, alpha], -1), "LA").save(p := tmp_path / "la.png")
        return p, np.repeat(np.array([[0, 60, 64, 0]], np.uint8)[..., None], 3, -1)
    if mode in ("P", "P+transparency"):
        im, extra = _palette(mode != "P")
        im.save(p := tmp_path / "p.png", **extra)
        mid = [0, 0, 0] if extra else [0, 0, 255]  # the transparent index shows the background
        return p, np.array([[[255, 0, 0], mid, [10, 20, 30]]], np.uint8)
    if mode == "RGBA":
        Image.fromarray(_rgba_pixels(), "RGBA").save(p := tmp_path / "rgba.png")
        return p, np.array([[[255, 0, 0], [128, 128, 128], [0, 0, 0], [90, 90, 90]]], np.uint8)
    if mode == "CMYK":
        Image.fromarray(np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255]]], np.uint8), "CMYK").save(
            p := tmp_path / "cmyk.tif")
        return p, np.array([[[255, 255, 255], [0, 255, 255], [0, 0, 0]]], np.uint8)
    if mode == "I":  # within 0..65535: 16-bit levels
        Image.fromarray(np.array([[0, 257, 32896, 65535]], np.int32)).save(p := tmp_path / "i.tif")
        return p, np.repeat(np.array([[0, 1, 128, 255]], np.uint8)[..., None], 3, -1)
    if mode == "I stretched":  # outside 0..65535: the image's own minimum to maximum
        Image.fromarray(np.array([[-100, 0, 100, 300]], np.int32)).save(p := tmp_path / "i.tif")
        return p, np.repeat(np.array([[0, 64, 128, 255]], np.uint8)[..., None], 3, -1)
    if mode == "F [0, 1]":
        Image.fromarray(np.array([[0.0, 0.25, 1.0, np.nan]], np.float32)).save(p := tmp_path / "f.tif")
        return p, np.repeat(np.array([[0, 64, 255, 0]], np.uint8)[..., None], 3, -1)
    if mode == "F [0, 255]":
        Image.fromarray(np.array([[-5.0, 64.0, 200.4, 300.0]], np.float32)).save(p := tmp_path / "f.tif")
        return p, np.repeat(np.array([[0, 64, 200, 255]], np.uint8)[..., None], 3, -1)
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["L", "1", "LA", "P", "P+transparency", "RGBA", "CMYK", "I", "I stretched",
                                  "F [0, 1]", "F [0, 255]"])
def test_every_mode_becomes_8_bit_rgb_over_black(tmp_path, mode):
    path, expected = _write_mode(tmp_path, mode)
    out = video_io.read_image(path)
    assert out.dtype == np.uint8 and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    if mode in ("LA", "P+transparency", "RGBA"):
        assert video_io.BACKGROUND == (0, 0, 0)  # what the transparent pixels above show


# ----------------------------------------------------------------------------- masks


def test_mask_painted_on_a_transparent_layer_is_given_by_its_alpha(tmp_path):
    alpha = np.zeros((8, 8), np.uint8)
    alpha[2:6, 2:6] = 255
    alpha[2:6, 6] = 128  # an antialiased edge
    for name, colour, hidden in (("red", (255, 0, 0), (0, 0, 0)), ("black", (0, 0, 0), (255, 255, 255))):
        rgba = np.zeros((8, 8, 4), np.uint8)
        rgba[..., :3] = hidden  # what invisible pixels hold does not count
        rgba[alpha > 0, :3] = colour
        rgba[..., 3] = alpha
        Image.fromarray(rgba, "RGBA").save(tmp_path / f"{name}.png")
        np.testing.assert_allclose(video_io.read_mask(tmp_path / f"{name}.png"), alpha / 255, atol=1e-6)
    la = np.stack([np.full((8, 8), 30, np.uint8), alpha], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_allclose(video_io.read_mask(tmp_path / "la.png"), alpha / 255, atol=1e-6)


def test_other_masks_are_composited_over_black_then_read_as_luminance(tmp_path):
    rgba = np.array([[[255, 255, 255, 255], [255, 255, 255, 128], [255, 255, 255, 0], [0, 0, 0, 255]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "m.png")
    np.testing.assert_allclose(video_io.read_mask(tmp_path / "m.png"), [[1, 128 / 255, 0, 0]], atol=1e-6)
    # Opaque everywhere: the alpha says nothing, so a black RGBA mask keeps everything.
    Image.fromarray(np.full((4, 4, 4), [0, 0, 0, 255], np.uint8), "RGBA").save(tmp_path / "black.png")
    assert video_io.read_mask(tmp_path / "black.png").max() == 0
    # A palette mask whose transparent index is white: transparent is background (black), keep.
    im, extra = _palette(transparent=True)
    im.putpalette([255, 255, 255, 255, 255, 255, 0, 0, 0])
    im.save(tmp_path / "p.png", **extra)
    np.testing.assert_allclose(video_io.read_mask(tmp_path / "p.png"), [[1, 0, 0]])


def test_mask_video_is_sampled_like_the_video_it_masks(clips):
    video = video_io.read_video(clips["silent"], frames=16, fps=8)
    mask = video_io.read_mask(clips["silent"], frames=16, fps=8)
    assert mask.shape == video.frames.shape[:3] and mask.dtype == np.float32
    luma = (video.frames.astype(np.uint32) * [299, 587, 114]).sum(-1) + 500
    np.testing.assert_allclose(mask, (luma // 1000) / 255, atol=1e-6)


# ----------------------------------------------------------------------------- video sampling


def test_fps_takes_the_nearest_source_frame_to_each_time(clips):
    every = video_io.read_video(clips["silent"])
    assert every.frames.shape == (75, 120, 160, 3) and every.stride == 1.0 and every.fps == 25
    video = video_io.read_video(clips["silent"], frames=16, fps=8)
    nearest = [math.ceil(k * 25 / 8 - 0.5) for k in range(16)]  # times k/8 s; a tie (k=4: 12.5) goes earlier
    assert nearest[:5] == [0, 3, 6, 9, 12]
    np.testing.assert_array_equal(video.frames, every.frames[nearest])
    assert (video.fps, video.source_fps, video.stride, video.start_s) == (8, 25, 3.125, 0.0)
    assert not video.has_audio and video.audio_span() is None
    assert video.describe() == "used 16 frames of silent.mp4 (25 fps) at 8 fps: every 3.1 source frames, 0.0-2.0 s"


def test_stride_and_source_fps(clips):
    every = video_io.read_video(clips["silent"]).frames
    video = video_io.read_video(clips["silent"], frames=5, stride=3)
    np.testing.assert_array_equal(video.frames, every[[0, 3, 6, 9, 12]])
    assert video.fps == pytest.approx(25 / 3) and video.stride == 3.0
    # The caller says the input runs at 50 fps: at 25 fps that is every other frame.
    told = video_io.read_video(clips["silent"], frames=4, fps=25, source_fps=50)
    np.testing.assert_array_equal(told.frames, every[[0, 2, 4, 6]])
    assert (told.source_fps, told.stride) == (50, 2.0)
    # Above the source's rate, frames repeat.
    fast = video_io.read_video(clips["silent"], frames=4, fps=50)
    np.testing.assert_array_equal(fast.frames, every[[0, 0, 1, 1]])


@pytest.mark.parametrize("kwargs", [{"fps": 8, "stride": 2}, {"frames": 0}, {"frames": 2.5}, {"fps": -1},
                                    {"stride": True}, {"source_fps": float("nan")}])
@pytest.mark.parametrize("reader", [video_io.read_video, video_io.read_mask])
def test_impossible_sampling_is_a_usage_error(clips, reader, kwargs):
    with pytest.raises(UsageError) as e:
        reader(clips["silent"], **kwargs)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_png_folder_natural_order_and_rate(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(1, 11):  # ffmpeg's default %d names: 1.png ... 10.png, no padding
        Image.fromarray(np.full((4, 6, 3), i * 20, np.uint8)).save(folder / f"{i}.png")
    (folder / "._1.png").write_bytes(b"macOS resource fork")  # hidden: skipped
    video = video_io.read_video(folder)
    assert [int(f[0, 0, 0]) for f in video.frames] == [i * 20 for i in range(1, 11)]
    assert video.source_fps == video_io.DEFAULT_FPS == 8
    info = video_io.probe(folder)
    assert (info.kind, info.width, info.height, info.frames, info.fps) == ("video", 6, 4, 10, 8)
    clip = video_io.write_clip(tmp_path / "clip", video.frames, fps=12, format="png", metadata={"fps": 12})
    assert video_io.read_video(clip).source_fps == 12
    assert video_io.read_video(clip, source_fps=5).source_fps == 5
    assert video_io.read_video(clip, frames=3, fps=6).frames[:, 0, 0, 0].tolist() == [20, 60, 100]


def test_gif_rate_comes_from_frame_durations(tmp_path):
    frames = [Image.fromarray(np.full((4, 4, 3), i * 20, np.uint8)) for i in range(8)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    video = video_io.read_video(tmp_path / "a.gif", fps=5)
    assert video.source_fps == 10 and video.frames[:, 0, 0, 0].tolist() == [0, 40, 80, 120]
    # A zero delay shows for 100 ms in browsers; a long last frame does not change the rate.
    frames[0].save(tmp_path / "b.gif", save_all=True, append_images=frames[1:], duration=[0] * 7 + [2000], loop=0)
    assert video_io.read_video(tmp_path / "b.gif").source_fps == 10
    info = video_io.probe(tmp_path / "b.gif")
    assert (info.kind, info.frames, info.fps, info.duration_s) == ("video", 8, 10, pytest.approx(2.7))


def test_rotated_phone_video_is_upright(tmp_path):
    path = make_clip(tmp_path / "phone.mp4", 0.2, size="64x48", rotate=90)
    video = video_io.read_video(path, frames=1)
    assert video.frames.shape == (1, 64, 48, 3)
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout  # ffmpeg autorotates
    np.testing.assert_array_equal(video.frames[0], np.frombuffer(raw, np.uint8).reshape(64, 48, 3))
    info = video_io.probe(path)
    assert (info.width, info.height) == (48, 64)


def test_memory_does_not_grow_with_the_input_length(tmp_path):
    """Peak RSS of reading 16 frames from 2 s and from 16 s of 320x240: holding every decoded frame
    of the long one would add about 90 MB."""
    short, long = make_clip(tmp_path / "short.mp4", 2), make_clip(tmp_path / "long.mp4", 16)
    script = textwrap.dedent("""
        import resource, sys
        from lumiere_cli.video_io import read_video
        video = read_video(sys.argv[1], frames=16)
        assert video.frames.shape == (16, 240, 320, 3)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    peaks = [int(subprocess.run([sys.executable, "-c", script, str(p)], capture_output=True, text=True,
                                check=True).stdout) for p in (short, long)]
    assert abs(peaks[1] - peaks[0]) < 12 * 1024, peaks  # kB


# ----------------------------------------------------------------------------- failures and probing


def _bad_inputs(tmp_path, clips):
    (tmp_path / "corrupt.mp4").write_bytes(b"not really a video" * 10)
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440", "-t", "0.2", str(tmp_path / "sound.wav"))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "still.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no frames here")
    (tmp_path / "mixed").mkdir()
    for i, size in enumerate([(4, 4), (6, 4)]):
        Image.fromarray(np.zeros((*size, 3), np.uint8)).save(tmp_path / "mixed" / f"{i}.png")
    data = video_io.write_clip(tmp_path / "fs.mp4", np.zeros((4, 16, 16, 3), np.uint8), fps=8).read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: data.index(b"mdat") + 4])  # index, no frames
    return {
        "missing.mp4": "not found", "corrupt.mp4": "cannot read", "sound.wav": "not a video",
        "still.png": "not a video", "empty": "no .png frames", "mixed": "differ in size",
        "truncated.mp4": "no frames",
    }


def test_every_failure_is_a_one_line_input_error(tmp_path, clips):
    for name, match in _bad_inputs(tmp_path, clips).items():
        one_line_input_error(video_io.read_video, tmp_path / name, match=match)
        if name != "still.png":  # a still image is a fine mask and a fine input to probe
            one_line_input_error(video_io.read_mask, tmp_path / name, match=match)
            one_line_input_error(video_io.probe, tmp_path / name, match=match)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read anything")
def test_unreadable_video(tmp_path, clips):
    path = tmp_path / "x.mp4"
    path.write_bytes(clips["silent"].read_bytes())
    path.chmod(0)
    one_line_input_error(video_io.read_video, path, match="not readable")


def test_probe_is_cheap_and_complete(clips, tmp_path):
    info = video_io.probe(clips["tone"])
    assert info == video_io.MediaInfo("video", 320, 240, 75, 25.0, 3.0, True)
    assert not video_io.probe(clips["silent"]).has_audio
    Image.fromarray(np.zeros((5, 7, 4), np.uint8), "RGBA").save(tmp_path / "a.webp")
    assert video_io.probe(tmp_path / "a.webp") == video_io.MediaInfo("image", 7, 5, 1, None, None, False)


# ----------------------------------------------------------------------------- sound


def test_mp4_keeps_the_sound_of_the_frames_used(clips, tmp_path):
    video = video_io.read_video(clips["tone"], frames=16, fps=8)
    assert video.has_audio
    span = AudioSpan(video.source, video.start_s, 16 / 8)
    assert video.audio_span() == span
    out = video_io.write_clip(tmp_path / "out.mp4", video.frames, fps=video.fps, metadata=META, audio=span)
    assert out == tmp_path / "out.mp4" and video_io.has_audio(out)
    assert audio_seconds(out) == pytest.approx(2.0, abs=0.1)
    assert video_io.read_video(out).frames.shape == (16, 240, 320, 3)
    assert video_io.read_metadata(out) == META
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # still plays before the download ends
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_sound_ending_early_keeps_every_frame(clips, tmp_path):
    video = video_io.read_video(clips["short_tone"], frames=16, fps=8)  # 2 s of frames, 1 s of tone
    out = video_io.write_clip(tmp_path / "out.mp4", video.frames, fps=8, audio=video.audio_span())
    assert video_io.read_video(out).frames.shape[0] == 16
    assert audio_seconds(out) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("fmt", ["mp4", "gif", "webp", "png"])
def test_no_sound_to_keep_writes_nothing_extra(clips, tmp_path, fmt):
    source = clips["silent"] if fmt == "mp4" else clips["tone"]
    frames = video_io.read_video(source, frames=4).frames[:, :16, :16]
    out = tmp_path / ("clip" if fmt == "png" else f"clip.{fmt}")
    assert video_io.write_clip(out, frames, fps=8, format=fmt, audio=AudioSpan(source, 0.0, 0.5)) == out
    assert not video_io.has_audio(out)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_mux_reports_a_source_without_sound(clips, tmp_path):
    out = video_io.write_clip(tmp_path / "clip.mp4", np.zeros((4, 16, 16, 3), np.uint8), fps=8)
    before = out.read_bytes()
    assert video_io.audio.mux_audio(out, AudioSpan(clips["silent"], 0.0, 0.5)) is False
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_interrupted_mux_leaves_nothing(clips, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(video_io.audio.subprocess, "run", boom)
    frames = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.raises(KeyboardInterrupt):
        video_io.write_clip(tmp_path / "x.mp4", frames, fps=8, audio=AudioSpan(clips["tone"], 0.0, 0.5))
    assert list(tmp_path.iterdir()) == []


def test_shrinking_while_decoding_keeps_colours_where_they_are(tmp_path):
    """A world render written as the tool writes it (H.264 yuv420p, 8x display scale) and read back
    at its own 32 px: colours stay within codec noise at the object's edges (one swscale pass that
    shrinks and converts misplaced the half-size chroma, 83 levels off)."""
    import random

    from lumiere_cli.pixels import to_uint8
    from lumiere_cli.world.render import render_batch, sample_spec

    rng = random.Random(3)
    clips = to_uint8(render_batch([sample_spec(rng, "all") for _ in range(4)], 8, 32) * 2 - 1)
    for k, clip in enumerate(clips.permute(0, 2, 3, 4, 1).numpy()):
        path = video_io.write_clip(tmp_path / f"c{k}.mp4", clip, fps=8, display_scale=8)
        small = np.asarray(video_io.read_video(path, short_side=32).frames, dtype=np.float64)
        error = np.abs(small - clip[: len(small)])
        assert error.max() <= 16 and error.mean() <= 0.5, (k, error.max(), error.mean())
