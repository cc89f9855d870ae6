"""A non-editable install: the wheel carries the shipped weights, so `lumiere` works away from a
source checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_an_installed_wheel_generates_with_the_shipped_weights(tmp_path):
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(REPO)],
                   check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("lumiere_cli-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("LUMIERE_WEIGHTS", "PYTHONPATH")}
    env |= {"PYTHONPATH": str(site), "NO_COLOR": "1"}
    work = tmp_path / "elsewhere"
    work.mkdir()

    def lumiere(*args):
        return subprocess.run([sys.executable, "-m", "lumiere_cli", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)

    info = lumiere("info", "--json")
    assert info.returncode == 0, info.stderr
    weights = Path(json.loads(info.stdout)["weights"]["path"])
    assert weights.is_relative_to(site), weights  # the installed copy, not the checkout
    ssr = Path(json.loads(info.stdout)["ssr"]["weights"]["path"])
    assert ssr.is_relative_to(site), ssr  # the cascade's second stage travels with the wheel too
    r = lumiere("t2v", "a red circle moving left on a black background", "--steps", "2", "--ssr-steps", "1",
                "-o", "clip.gif", "--display-scale", "1", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    from PIL import Image

    with Image.open(work / "clip.gif") as gif:
        assert gif.size == (128, 128)  # the cascade's resolution, not the base's 32
