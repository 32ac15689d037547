"""HEIF/HEIC input (phones' default format) through the optional pillow-heif package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import EXAMPLES, digest

pillow_heif = pytest.importorskip("pillow_heif")
piexif = pytest.importorskip("piexif")
from PIL import Image  # noqa: E402

from hdrcli.errors import HdrError  # noqa: E402
from hdrcli.io.frames import apply_orientation, read_frame  # noqa: E402
from hdrcli.io.hdr import read_hdr  # noqa: E402

HDR = [sys.executable, "-m", "hdrcli.cli"]
TIMES = ((1, 200), (1, 50), (2, 25))  # the example bracket's exposures (s)


def hdr(*args: str | Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run([*HDR, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


def save_heic(path: Path, rgb: np.ndarray, exif: dict | None = None) -> Path:
    kwargs = {"exif": piexif.dump(exif)} if exif else {}
    pillow_heif.from_pillow(Image.fromarray(np.ascontiguousarray(rgb))).save(str(path), quality=92, **kwargs)
    return path


def heic_bracket(folder: Path) -> list[Path]:
    """The example bracket as an iPhone would save it: HEIC with exposure time and capture time."""
    folder.mkdir(exist_ok=True)
    paths = []
    for i, (name, t) in enumerate(zip(("room_-2ev.jpg", "room_0ev.jpg", "room_+2ev.jpg"), TIMES)):
        rgb = cv2.imread(str(EXAMPLES / "bracket" / name))[..., ::-1]
        exif = {"0th": {piexif.ImageIFD.Make: b"Apple", piexif.ImageIFD.Model: b"iPhone 15"},
                "Exif": {piexif.ExifIFD.ExposureTime: t, piexif.ExifIFD.ISOSpeedRatings: 100,
                         piexif.ExifIFD.DateTimeOriginal: f"2026:05:01 10:00:0{i}".encode()}}
        paths.append(save_heic(folder / f"IMG_{i}.HEIC", rgb, exif))
    return paths


def test_heic_bracket_fuses_with_exposures_from_exif(tmp_path):
    frames = heic_bracket(tmp_path / "shoot")
    before = digest(frames)
    r = hdr("fuse", *frames, "-o", tmp_path / "out.exr")
    assert r.returncode == 0, r.stderr
    assert "1/200 s" in r.stdout and "0.08 s" in r.stdout  # exposures read from the HEIC files' EXIF
    out = read_hdr(tmp_path / "out.exr")
    assert out.shape == (480, 720, 3) and np.isfinite(out).all() and out.max() > 0
    assert digest(frames) == before
    r = hdr("fuse", *frames, "-o", tmp_path / "lffnet.exr", "-b", "lffnet")
    assert r.returncode == 0, r.stderr


def test_heic_batch_and_info(tmp_path):
    heic_bracket(tmp_path / "shoot")
    (tmp_path / "out").mkdir()
    r = hdr("batch", tmp_path / "shoot", "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "IMG_0-IMG_2.exr").exists()
    r = hdr("info", "--json", tmp_path / "shoot" / "IMG_1.HEIC")
    assert r.returncode == 0, r.stderr
    (info,) = json.loads(r.stdout)
    assert info["format"] == "HEIF" and (info["width"], info["height"]) == (720, 480)
    assert info["exif"]["exposure_time"] == pytest.approx(0.02)


def test_heic_is_upright_and_ten_bit_is_read_at_sixteen(tmp_path):
    image = np.zeros((64, 96, 3), np.uint8)
    image[:16, :24] = (255, 0, 0)
    frame = read_frame(save_heic(tmp_path / "turned.heic", image, {"0th": {piexif.ImageIFD.Orientation: 6}}))
    assert frame.pixels.shape == (96, 64, 3) and frame.exif.orientation == 1  # libheif turned it, once
    assert np.abs(frame.pixels * 255 - apply_orientation(image, 6)).mean() < 2
    ramp = np.repeat(np.linspace(0, 65535, 96).astype(np.uint16)[None, :, None], 64, 0).repeat(3, 2)
    pillow_heif.from_bytes(mode="RGB;16", size=(96, 64), data=ramp.tobytes()).save(str(tmp_path / "ten.heic"), quality=-1)
    frame = read_frame(tmp_path / "ten.heic")
    assert frame.bit_depth == 16 and np.abs(frame.pixels - ramp / 65535.0).mean() < 0.01


def test_bad_heic_is_one_line_and_over_budget_is_refused_before_decoding(tmp_path, monkeypatch):
    (good,) = heic_bracket(tmp_path / "shoot")[1:2]
    cut = tmp_path / "cut.heic"
    cut.write_bytes(good.read_bytes()[:3000])
    for args in (("expand", cut, "-o", tmp_path / "a.exr"), ("fuse", good, cut, "--ev=0,2", "-o", tmp_path / "b.exr"),
                 ("expand", good, "-o", tmp_path / "c.exr", "--max-pixels", "1000")):
        r = hdr(*args)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), r.stderr
        assert "Traceback" not in r.stderr
    assert "could not be decoded" in hdr("expand", cut, "-o", tmp_path / "a.exr").stderr
    assert "over the budget" in r.stderr
    assert not any(tmp_path.glob("*.exr"))
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # not installed
    with pytest.raises(HdrError, match=r"pip install 'hdrcli\[heif\]'"):
        read_frame(good)
