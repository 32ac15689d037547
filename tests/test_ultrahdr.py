"""Ultra HDR gain-map JPEG output: decoded by libultrahdr (imagecodecs) and by independent readers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import EXAMPLES, radiance_scene, shared_path

imagecodecs = pytest.importorskip("imagecodecs")
if not imagecodecs.ULTRAHDR.available:  # pragma: no cover - wheels have it
    pytest.skip("imagecodecs without libultrahdr", allow_module_level=True)

from hdrcli.io import ultrahdr as U  # noqa: E402
from hdrcli.io.hdr import read_hdr  # noqa: E402
from hdrcli.tonemap import tonemap  # noqa: E402

HDR = [sys.executable, "-m", "hdrcli.cli"]


def hdr(*args: str | Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run([*HDR, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


def srgb(linear: np.ndarray) -> np.ndarray:
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


def check_roundtrip(path: Path, radiance: np.ndarray, preview: np.ndarray, result: U.UltraHdrResult) -> dict:
    """Decode with libultrahdr; compare base and HDR with what was encoded. Returns the measurements."""
    base, decoded = U.decode_ultrahdr(path.read_bytes())
    assert base.shape == radiance.shape and decoded.shape == radiance.shape
    hdr_in = U.hdr_rendition(radiance, result.scale, result.headroom_stops)
    model = srgb(U.libultrahdr_base(hdr_in))
    base_error = np.abs(base / 255.0 - model)
    lit = hdr_in.max(axis=-1) > 0.02  # relative error is meaningless near black
    relative = (np.abs(decoded - hdr_in) / np.maximum(hdr_in, 1e-3))[lit]
    return {
        "base_model_mean": float(base_error.mean() * 255), "base_model_p99": float(np.percentile(base_error, 99) * 255),
        "base_preview_psnr": psnr(base / 255.0, preview),
        "hdr_rel_median": float(np.median(relative)), "hdr_rel_p90": float(np.percentile(relative, 90)),
    }


def test_libultrahdr_base_model_matches_the_library(tmp_path):
    """The documented base curve (extended Reinhard on max RGB, W = 10000/203) is what libultrahdr does."""
    ramp = np.geomspace(1 / 64, 40, 256, dtype=np.float32)
    image = np.repeat(np.repeat(ramp[None, :, None], 16, 0), 3, 2) * np.array([1.0, 0.8, 0.5], np.float32)
    base, decoded = U.decode_ultrahdr(U.encode_ultrahdr(image))
    expected = srgb(U.libultrahdr_base(image)) * 255
    difference = np.abs(base[8].astype(float) - expected[8])
    # Measured: max 6.1, mean 2.2 code values on this coloured ramp (grey: within 1).
    assert difference.max() <= 8.0 and difference.mean() <= 3.0
    assert np.allclose(decoded[8, :, 0], image[8, :, 0], rtol=0.05, atol=0.01)


def test_generated_scene_roundtrip(tmp_path):
    radiance = radiance_scene(96, 128, stops=12.0)
    preview = tonemap(radiance)
    out = tmp_path / "scene.jpg"
    result = U.write_ultrahdr(out, radiance, preview, headroom_stops=3.0)
    m = check_roundtrip(out, radiance, preview, result)
    # Base: the documented curve within JPEG precision (quality 92).
    assert m["base_model_mean"] < 3.0 and m["base_model_p99"] < 12.0, m
    # Recovered HDR: 8-bit gain map over 5.6 stops (0.022 stop = 1.5 % steps) + JPEG error.
    assert m["hdr_rel_median"] < 0.05 and m["hdr_rel_p90"] < 0.15, m
    assert result.peak > 1.0 and result.peak <= 8.0 + 1e-3
    params = U.ultrahdr_parameters(out.read_bytes())
    assert params is not None and params["max_content_boost"] > 1.0
    assert params["iso21496"]["gamma"] == [1.0]


@pytest.fixture(scope="module")
def frobisher_exr(tmp_path_factory) -> Path:
    """The frobisher bracket fused once for the module."""
    frames = sorted(shared_path("brackets", "frobisher").glob("*.jpg"))
    exr = tmp_path_factory.mktemp("frob") / "frob.exr"
    r = hdr("fuse", *frames, "-o", exr, "--no-preview")
    assert r.returncode == 0, r.stderr
    return exr


@pytest.mark.shared
@pytest.mark.parametrize("headroom", [2.0, 3.0, 4.0])
def test_frobisher_fuse_ultrahdr_against_preview(tmp_path, frobisher_exr, headroom):
    """Real bracket: the base stays close to the preview tone map; the HDR rendition is the radiance."""
    exr = frobisher_exr
    radiance = read_hdr(exr)
    out = tmp_path / "frob.jpg"
    r = hdr("tonemap", exr, "-o", out, "--ultrahdr", "--hdr-headroom", str(headroom))
    assert r.returncode == 0, r.stderr
    preview = tonemap(radiance)
    result = U.UltraHdrResult(out, U.anchor_scale(radiance, preview), headroom, 0.0)
    m = check_roundtrip(out, radiance, preview, result)
    # Measured: base vs preview 29-33 dB (libultrahdr's global curve vs the preview's Reinhard).
    assert m["base_preview_psnr"] > 27.0, m
    assert m["base_model_mean"] < 3.0, m
    assert m["hdr_rel_median"] < 0.05, m


def test_independent_readers_see_the_gain_map(tmp_path):
    radiance = radiance_scene(96, 128, stops=10.0)
    out = tmp_path / "scene.jpg"
    U.write_ultrahdr(out, radiance, tonemap(radiance))
    data = out.read_bytes()
    # Pillow reads the MPF container: two pictures, the second a JPEG.
    from PIL import Image

    with Image.open(out) as im:
        assert getattr(im, "n_frames", 1) == 2
        im.seek(1)
        assert im.size == (128, 96)
    assert U.ISO_SIGNATURE in data
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool not installed (apt-get install libimage-exiftool-perl)")
    tags = json.loads(subprocess.run(["exiftool", "-j", "-G1", "-a", str(out)], capture_output=True, text=True,
                                     check=True).stdout)[0]
    assert tags["MPF0:NumberOfImages"] == 2
    assert tags["MPImage2:MPImageLength"] > 100
    gain_map = subprocess.run(["exiftool", "-b", "-MPImage2", str(out)], capture_output=True, check=True).stdout
    assert gain_map[:2] == b"\xff\xd8" and U.ISO_SIGNATURE in gain_map


def test_no_highlights_gives_valid_file_and_note(tmp_path, caplog):
    # Two flat areas one stop apart: anchored on the darker one's preview, the brighter
    # stays below SDR white, so the HDR rendition has no highlights.
    rng = np.random.default_rng(0)
    radiance = np.full((64, 128, 3), 0.1, np.float32) * (1 + 0.02 * rng.random((64, 128, 1), np.float32))
    radiance[:, 64:] *= 2.0
    out = tmp_path / "flat.jpg"
    with caplog.at_level("WARNING", logger="hdrcli"):
        result = U.write_ultrahdr(out, radiance, tonemap(radiance))
    assert result.peak <= 1.0 + 1e-3
    assert any("no highlights above SDR white" in n for n in result.notes)
    assert "no highlights above SDR white" in caplog.text
    base, decoded = U.decode_ultrahdr(out.read_bytes())
    assert base.shape == (64, 128, 3) and np.isfinite(decoded).all()


def test_bad_extension_refused_before_work(tmp_path, example_bracket):
    out = tmp_path / "room.png"
    r = hdr("fuse", *example_bracket, "-o", out, "--ultrahdr")
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "must end in .jpg" in lines[0], r.stderr
    assert list(tmp_path.iterdir()) == []
    r = hdr("fuse", *example_bracket, "-o", tmp_path / "room.jpg", "--ultrahdr", "--hdr-headroom", "9")
    assert r.returncode == 1 and "--hdr-headroom" in r.stderr
    assert list(tmp_path.iterdir()) == []
    r = hdr("fuse", *example_bracket, "-o", tmp_path / "room.jpg", "--ultrahdr", "-b", "mertens")
    assert r.returncode == 1 and "radiance" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_fuse_ultrahdr_cli_and_info(tmp_path, example_bracket):
    out = tmp_path / "room.jpg"
    r = hdr("fuse", *example_bracket, "-o", out, "--ultrahdr")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["room.jpg"]  # no preview unless asked
    r = hdr("info", "--json", out)
    assert r.returncode == 0, r.stderr
    (info,) = json.loads(r.stdout)
    assert info["format"].startswith("Ultra HDR")
    assert info["gain_map"]["max_content_boost"] > 1
    assert info["exif"]["make"] == "hdrcli"  # the example frames' EXIF Make, carried through
    assert info["max"] > 1.0  # the HDR rendition has highlights above SDR white
    assert info["hdrcli"]["headroom_stops"] == 3.0 and info["hdrcli"]["radiance_scale"] > 0


def test_expand_ultrahdr(tmp_path):
    """Single photo to HDR display (issue 16 item 5), on a small real-camera frame."""
    photo = tmp_path / "photo.jpg"
    frame = cv2.imread(str(EXAMPLES / "bracket" / "room_+2ev.jpg"))
    cv2.imwrite(str(photo), cv2.resize(frame, (256, 192), interpolation=cv2.INTER_AREA))
    out = tmp_path / "photo_hdr.jpg"
    r = hdr("expand", photo, "-o", out, "--ultrahdr")
    assert r.returncode == 0, r.stderr
    base, decoded = U.decode_ultrahdr(out.read_bytes())
    assert base.shape == (192, 256, 3) and np.isfinite(decoded).all()
    # Highlights above SDR white exactly when no "no highlights" note was given (how far
    # the clipped window is expanded is the backend's business).
    if "no highlights above SDR white" in r.stderr:
        assert decoded.max() <= 1.1
    else:
        assert decoded.max() > 0.95
    r = hdr("expand", photo, "-o", tmp_path / "x.exr", "--ultrahdr")
    assert r.returncode == 1 and "must end in .jpg" in r.stderr


def _camera_gain_map_photo(path: Path, exif: bytes | None = None) -> np.ndarray:
    """A gain-map JPEG as a phone saves one (here made by libultrahdr): a window 16x brighter than
    the room, which the SDR base clips. Returns its HDR rendition as libultrahdr decodes it."""
    radiance = np.clip(radiance_scene(96, 128, seed=4), 0.0, 1.0) * np.float32(0.4)
    radiance[20:50, 60:100] = 6.0
    U.write_ultrahdr(path, radiance, tonemap(radiance, "reinhard"), headroom_stops=3.0, exif=exif)
    return U.decode_hdr_rendition(path.read_bytes())


def test_expand_uses_the_gain_map_a_camera_recorded(tmp_path):
    """`hdr expand` of an Ultra HDR photo keeps the HDR its camera recorded instead of predicting one;
    --gain-map ignore expands the SDR base as any photo."""
    photo = tmp_path / "PXL_0001.jpg"
    recorded = _camera_gain_map_photo(photo)
    assert recorded.max() > 4.0  # the window, above SDR white
    r = hdr("expand", photo, "-o", tmp_path / "out.exr", "-b", "stack")
    assert r.returncode == 0, r.stderr
    assert "HDR rendition its camera recorded" in r.stderr and "not a stack prediction" in r.stderr
    assert "network" not in r.stdout  # no model was run
    out = read_hdr(tmp_path / "out.exr")
    np.testing.assert_allclose(out, recorded, rtol=1e-3, atol=1e-4)  # half-float EXR
    r = hdr("expand", photo, "-o", tmp_path / "base.exr", "--gain-map", "ignore")
    assert r.returncode == 0, r.stderr
    assert "HDR rendition" not in r.stderr and "network" in r.stdout
    assert read_hdr(tmp_path / "base.exr").max() < recorded.max()
    r = hdr("expand", photo, "-o", tmp_path / "x.exr", "--gain-map", "always")
    assert r.returncode != 0 and "--gain-map" in r.stderr and "Traceback" not in r.stderr


def test_gain_map_rendition_follows_the_exif_orientation(tmp_path):
    import piexif

    from hdrcli.io.frames import apply_orientation

    photo = tmp_path / "portrait.jpg"
    recorded = _camera_gain_map_photo(photo, exif=piexif.dump({"0th": {piexif.ImageIFD.Orientation: 6}}))
    r = hdr("expand", photo, "-o", tmp_path / "out.exr")
    assert r.returncode == 0, r.stderr
    out = read_hdr(tmp_path / "out.exr")
    assert out.shape == (128, 96, 3)  # stored 128 wide, shown upright
    np.testing.assert_allclose(out, apply_orientation(recorded, 6), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("damage", ["oversized gain map", "truncated gain map"])
def test_a_gain_map_that_cannot_be_used_falls_back_to_the_photo(tmp_path, damage):
    """A hostile or broken gain map is a warning: the SDR photo is expanded, nothing else changes."""
    photo = tmp_path / "photo.jpg"
    _camera_gain_map_photo(photo)
    data = bytearray(photo.read_bytes())
    start = U.ultrahdr_parameters(bytes(data))["gain_map_offset"]
    if damage == "oversized gain map":  # its frame header claims 60000 x 60000 pixels
        sof = next(off for marker, off, _ in U.jpeg_segments(bytes(data), start) if marker in (0xC0, 0xC1, 0xC2))
        data[sof + 1 : sof + 5] = (60000).to_bytes(2, "big") * 2
        expected = "larger than the photo"
    else:  # the gain map's entropy-coded data cut off
        del data[start + 600 :]
        data += b"\xff\xd9"
        expected = "gain map is not used"
    photo.write_bytes(bytes(data))
    r = hdr("expand", photo, "-o", tmp_path / "out.exr")
    assert r.returncode == 0, r.stderr
    assert expected in r.stderr and "gain map is not used" in r.stderr
    assert "network" in r.stdout  # the photo was expanded by the backend
