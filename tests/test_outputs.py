"""Outputs a user can trust: formats from names, the overwrite rule, reservations between real
processes, and atomic writes that a kill -9 or a full disk cannot leave half-done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lumiere_cli import atomic, outputs
from lumiere_cli.choices import Format
from lumiere_cli.errors import LumiereError, UsageError

REPO = Path(__file__).resolve().parents[1]


def _frames(t=4, size=8):
    return np.random.default_rng(0).integers(0, 255, (t, size, size, 3), dtype=np.uint8)


def test_format_comes_from_the_name_and_a_disagreeing_format_is_an_error():
    assert outputs.format_for(Path("a.GIF"), None) is Format.gif
    assert outputs.format_for(Path("frames"), None) is Format.png
    assert outputs.format_for(None, "webp") is Format.webp and outputs.format_for(None, None) is Format.mp4
    assert outputs.format_for(Path("a.mp4"), "mp4") is Format.mp4
    with pytest.raises(UsageError, match="disagrees"):
        outputs.format_for(Path("a.gif"), "mp4")
    with pytest.raises(UsageError, match="disagrees"):
        outputs.format_for(Path("frames"), "mp4")
    with pytest.raises(UsageError, match=".mp4"):
        outputs.format_for(Path("a.avi"), None)


def test_batch_outputs_stay_inside_the_out_dir(tmp_path):
    assert outputs.inside(tmp_path, "sub/a.gif") == tmp_path / "sub" / "a.gif"
    for bad, words in (("../x.mp4", "leaves"), ("sub/../../x.mp4", "leaves"), ("/tmp/x.mp4", "absolute"), (".", "leaves")):
        with pytest.raises(UsageError, match=words):
            outputs.inside(tmp_path, bad)


def _write_own(path: Path, fmt: Format) -> None:
    r = outputs.reserve(path, fmt, overwrite=True)
    outputs.write(r, _frames(), fps=8, meta={"ai_generated": True, "prompt": "p"}, scale=1,
                  display_filter="nearest", timings={})


@pytest.mark.parametrize("fmt, name", [(Format.mp4, "a.mp4"), (Format.gif, "a.gif"), (Format.webp, "a.webp"),
                                       (Format.png, "frames")])
def test_overwrite_replaces_only_what_the_tool_could_have_written(tmp_path, fmt, name):
    path = tmp_path / name
    _write_own(path, fmt)
    outputs.reserve(path, fmt, overwrite=True).release()  # its own clip: replaceable
    with pytest.raises(UsageError, match="already exists"):
        outputs.reserve(path, fmt, overwrite=False)


def test_overwrite_refuses_a_users_folder_and_leaves_it_untouched(tmp_path):
    folder = tmp_path / "holiday"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "frame_0000.png").write_bytes(b"not ours")
    for fmt in (Format.png, Format.mp4):
        with pytest.raises(UsageError, match="did not write|is a folder"):
            outputs.reserve(folder, fmt, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["frame_0000.png", "notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["holiday"]  # no lock or temporary left behind


def test_overwrite_refuses_files_of_another_kind(tmp_path):
    text = tmp_path / "clip.mp4"
    text.write_text("my essay, saved with the wrong name")
    with pytest.raises(UsageError, match="not a mp4 clip"):
        outputs.reserve(text, Format.mp4, overwrite=True)
    gif = tmp_path / "own.gif"
    _write_own(gif, Format.gif)
    gif.rename(tmp_path / "own.mp4")
    with pytest.raises(UsageError, match="not a mp4 clip"):
        outputs.reserve(tmp_path / "own.mp4", Format.mp4, overwrite=True)
    # The user's own JSON where the sidecar would go is theirs too.
    clip = tmp_path / "c.gif"
    _write_own(clip, Format.gif)
    (tmp_path / "c.gif.json").write_text(json.dumps({"my": "data"}))
    with pytest.raises(UsageError, match="sidecar"):
        outputs.reserve(clip, Format.gif, overwrite=True)
    link = tmp_path / "l.gif"
    link.symlink_to(gif.with_name("own.mp4"))
    with pytest.raises(UsageError, match="symbolic link"):
        outputs.reserve(link, Format.gif, overwrite=True)
    assert text.read_text().startswith("my essay")


def test_default_names_skip_files_sidecars_and_live_reservations(tmp_path):
    (tmp_path / "x_1.mp4").write_bytes(b"")
    (tmp_path / "x_1-2.mp4.json").write_text("{}")
    held = outputs.reserve_default(tmp_path, "x_1", Format.mp4)
    assert held.path.name == "x_1-3.mp4"
    other = outputs.reserve_default(tmp_path, "x_1", Format.mp4)
    assert other.path.name == "x_1-4.mp4"
    held.release()
    assert outputs.reserve_default(tmp_path, "x_1", Format.mp4).path.name == "x_1-3.mp4"


def test_a_reservation_of_a_killed_run_blocks_nothing(tmp_path):
    code = ("import sys, time; from pathlib import Path; from lumiere_cli import outputs; "
            "from lumiere_cli.choices import Format; "
            "r = outputs.reserve(Path(sys.argv[1]), Format.mp4, overwrite=False); print('held', flush=True); "
            "time.sleep(60)")
    target = tmp_path / "a.mp4"
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(UsageError, match="another run"):
            outputs.reserve(target, Format.mp4, overwrite=False)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    outputs.reserve(target, Format.mp4, overwrite=False).release()  # the lock died with its process


def test_atomic_write_never_clobbers_without_replace(tmp_path):
    dest = tmp_path / "a.txt"
    atomic.write_text(dest, "first", replace=False)
    with pytest.raises(FileExistsError):
        atomic.write_text(dest, "second", replace=False)
    assert dest.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def _tmpfs(path: Path, size="64k") -> bool:
    path.mkdir()
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True).returncode == 0
    except OSError:
        return False


def test_a_full_disk_is_one_error_and_leaves_nothing(tmp_path):
    small = tmp_path / "small"
    if not _tmpfs(small):
        pytest.skip("cannot mount a tmpfs here")
    try:
        r = outputs.reserve(small / "big", Format.png, overwrite=False)
        with pytest.raises(LumiereError, match="no space left") as err:
            outputs.write(r, _frames(t=16, size=128), fps=8, meta={"ai_generated": True}, scale=2,
                          display_filter="nearest", timings={})
        assert err.value.exit_code == 1
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def _partials(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(atomic.PARTIAL_SUFFIX)]


def test_kill_9_mid_write_leaves_nothing_under_the_final_name(tmp_path):
    """A real process writes a big clip; it is killed while the temporary file is being written."""
    code = ("import sys, numpy as np; from pathlib import Path; from lumiere_cli import outputs; "
            "from lumiere_cli.choices import Format; "
            "r = outputs.reserve(Path(sys.argv[1]), Format.gif, overwrite=False); "
            "f = np.random.default_rng(0).integers(0, 255, (64, 64, 64, 3), dtype=np.uint8); "
            "outputs.write(r, f, fps=8, meta={'ai_generated': True}, scale=8, display_filter='nearest', timings={})")
    target = tmp_path / "clip.gif"
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not _partials(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _partials(tmp_path), "the writer never started its temporary file"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not target.exists() and not outputs.sidecar_path(target).exists()
    # The next run takes the name, and clears what the killed one left.
    r = outputs.reserve(target, Format.gif, overwrite=False)
    assert not _partials(tmp_path)
    r.release()
