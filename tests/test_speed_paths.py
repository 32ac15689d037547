"""The fast paths of `hdr fuse` (issue 14): banded warps and merges, cheap tripod alignment,
thread settings, per-stage timings and checks that fail before any frame is read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hdrcli import threads
from hdrcli.align import estimate_warps, warp_frame
from hdrcli.errors import HdrError
from hdrcli.exposure import make_bracket
from hdrcli.io.frames import Frame
from hdrcli.io.hdr import sanitize
from hdrcli.merge import merge_debevec, merge_robertson
from hdrcli.pipeline import STAGES, check_fuse_options, describe_timings, fuse
from tests.conftest import textured_scene

TIMES = [0.25, 1.0, 4.0]


def photograph(radiance: np.ndarray, t: float) -> np.ndarray:
    return (np.round(np.clip(radiance * t, 0, 1) ** (1 / 2.2) * 255) / 255).astype(np.float32)


def gamma_response() -> np.ndarray:
    return np.repeat(((np.arange(256) / 255.0) ** 2.2)[:, None], 3, 1).astype(np.float32)


def bracket_of(images: list[np.ndarray]):
    return make_bracket([Frame(Path(f"f{i}.png"), im, 8, False) for i, im in enumerate(images)], TIMES)


HOMOGRAPHY = np.array([[0.999, -0.02, 4.3], [0.02, 0.999, -3.1], [1e-5, 0, 1]], np.float32)
TRANSLATION = np.array([[1, 0, -3], [0, 1, 2], [0, 0, 1]], np.float32)


@pytest.mark.parametrize("warp", [HOMOGRAPHY, TRANSLATION, None], ids=["homography", "translation", "none"])
def test_a_band_of_rows_warps_like_the_whole_image(warp):
    image = photograph(textured_scene(90, 130, seed=3) * 2, 1.0)
    whole = warp_frame(image, warp)
    for y0, y1 in ((0, 17), (17, 60), (60, 90)):
        np.testing.assert_allclose(warp_frame(image, warp, (y0, y1)), whole[y0:y1], atol=1e-5)
    for (y0, y1), (x0, x1) in (((0, 40), (0, 50)), ((33, 90), (50, 130)), ((5, 6), (129, 130))):  # learned tiles
        np.testing.assert_allclose(warp_frame(image, warp, (y0, y1), (x0, x1)), whole[y0:y1, x0:x1], atol=1e-5)


def test_warp_scaled_per_axis_maps_points_like_the_resized_images():
    """A warp given for full-size frames, expressed for frames resized by (sx, sy), moves the
    resized pixel centres where the full-size warp moves theirs."""
    from hdrcli.align import scale_warp

    sx, sy = 576 / 1414, 432 / 1060
    small = scale_warp(HOMOGRAPHY, (sx, sy))
    for x, y in ((10.0, 20.0), (700.0, 500.0), (1400.0, 1050.0)):
        moved = HOMOGRAPHY.astype(np.float64) @ [x, y, 1.0]
        moved = moved[:2] / moved[2]
        centre = [(x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5, 1.0]
        got = small.astype(np.float64) @ centre
        np.testing.assert_allclose(got[:2] / got[2], (moved + 0.5) * [sx, sy] - 0.5, atol=1e-3)
    np.testing.assert_allclose(scale_warp(HOMOGRAPHY, (0.5, 0.5)), scale_warp(HOMOGRAPHY, 0.5))


def test_reduced_synthesis_size_is_fft_friendly():
    """The reduced bracket keeps the photo's aspect and about the asked pixels, on sides that are
    multiples of 16 (prime sides made the FFT blocks 1.7x slower)."""
    from hdrcli.runtime.runner import reduced_size

    for height, width in ((1060, 1414), (3024, 4032), (4243, 5657), (1000, 1500), (333, 5000)):
        w, h = reduced_size(height, width, 250_000)
        assert w % 16 == 0 and h % 16 == 0
        assert abs(w * h / 250_000 - 1) < 0.15
        assert abs((w / h) / (width / height) - 1) < 0.1
    assert reduced_size(1060, 1414, 250_000) == (576, 432)


@pytest.mark.parametrize("merge", [merge_debevec, merge_robertson])
@pytest.mark.parametrize("guard", [True, False])
def test_banded_merge_with_warps_equals_merging_warped_frames(monkeypatch, merge, guard):
    import hdrcli.merge.classical as classical

    monkeypatch.setattr(classical, "_BAND_PIXELS", 128 * 9)  # many bands, several threads
    scene = textured_scene(100, 128, seed=4) * 2
    images = [photograph(scene, t) for t in TIMES]
    warps = [HOMOGRAPHY, None, TRANSLATION]
    warped = [warp_frame(im, w) for im, w in zip(images, warps)]
    expected = merge(warped, TIMES, gamma_response(), guard=guard, threads=1)
    banded = merge(images, TIMES, gamma_response(), guard=guard, warps=warps, threads=2)
    # The Debevec merge looks values up on 16-bit levels: warped values that differ by a
    # float rounding can land on adjacent levels (5e-5 relative at most).
    np.testing.assert_allclose(banded, expected, rtol=1e-4)


def test_tripod_bracket_is_not_warped_and_shaken_frame_is():
    scene = textured_scene(240, 320, seed=5) * 2
    images = [photograph(scene, t) for t in TIMES]
    assert estimate_warps(bracket_of(images), "ecc") == [None, None, None]
    shifted = cv2.warpAffine(images[2], np.float32([[1, 0, 4], [0, 1, -3]]), (320, 240), borderMode=cv2.BORDER_REFLECT)
    warps = estimate_warps(bracket_of([images[0], images[1], shifted]), "ecc")
    assert warps[0] is None and warps[1] is None and warps[2] is not None
    inner = (slice(12, -12), slice(12, -12))
    aligned = warp_frame(shifted, warps[2])
    assert np.abs(aligned[inner] - images[2][inner]).mean() < 0.2 * np.abs(shifted[inner] - images[2][inner]).mean()


def test_covered_area_is_what_every_warped_frame_covers():
    """--crop's rectangle: whole frames without warps; a translation loses exactly its shift; a
    rotation keeps a rectangle every warped frame covers with its own pixels, tight to a pixel."""
    from hdrcli.align import covered_area

    assert covered_area([None, None], 80, 100) == (0, 80, 0, 100)
    shift = np.array([[1, 0, 3], [0, 1, -2], [0, 0, 1]], np.float32)  # output p shows frame pixel p + (3, -2)
    assert covered_area([shift, None], 80, 100) == (2, 80, 0, 97)
    warps = [HOMOGRAPHY, None, TRANSLATION]
    y0, y1, x0, x1 = covered_area(warps, 240, 320)
    for warp in (HOMOGRAPHY, TRANSLATION):
        ones = cv2.warpPerspective(np.ones((240, 320), np.float32), warp.astype(np.float64), (320, 240),
                                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0)
        assert ones[y0:y1, x0:x1].min() == 1.0
    assert (y1 - y0) * (x1 - x0) > 0.85 * 240 * 320
    grown = [(y0 - 1, y1, x0, x1), (y0, y1 + 1, x0, x1), (y0, y1, x0 - 1, x1), (y0, y1, x0, x1 + 1)]
    for a, b, c, d in grown:  # no edge can move out by one pixel and stay fully covered
        if a < 0 or c < 0 or b > 240 or d > 320:
            continue
        cover = [cv2.warpPerspective(np.ones((240, 320), np.float32), w.astype(np.float64), (320, 240),
                                     flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0)[a:b, c:d].min()
                 for w in (HOMOGRAPHY, TRANSLATION)]
        assert min(cover) < 1.0


def test_fuse_crop_keeps_only_the_covered_area(tmp_path, example_bracket):
    """The example bracket is hand-held (one frame aligned by ECC): --crop drops the repeated edges,
    the weight maps are cropped alike; a tripod bracket is not cropped."""
    out, _ = fuse(example_bracket, tmp_path / "c.exr", crop=True, no_preview=True, save_weights=tmp_path / "m.exr")
    h, w = out.image.shape[:2]
    assert out.crop is not None and (h, w) == (out.crop[1] - out.crop[0], out.crop[3] - out.crop[2])
    assert h < 480 and w < 720 and h * w > 0.9 * 480 * 720
    import OpenEXR

    with OpenEXR.File(str(tmp_path / "m.exr")) as exr:
        assert all(ch.pixels.shape[:2] == (h, w) for ch in exr.channels().values())
    scene = textured_scene(120, 160, seed=2) * 2
    paths = []
    for i, t in enumerate(TIMES):
        paths.append(tmp_path / f"t{i}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(np.round(photograph(scene, t) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    still, _ = fuse(paths, tmp_path / "s.exr", exposures=TIMES, crop=True, no_preview=True)
    assert still.crop is None and still.image.shape[:2] == (120, 160)


def test_estimate_warps_only_for_the_frames_asked():
    scene = textured_scene(120, 160, seed=6) * 2
    images = [photograph(scene, t) for t in TIMES]
    images[0] = cv2.warpAffine(images[0], np.float32([[1, 0, 5], [0, 1, 2]]), (160, 120), borderMode=cv2.BORDER_REFLECT)
    assert estimate_warps(bracket_of(images), "ecc", indices=[2]) == [None, None, None]


def test_threads_configure_sets_every_library():
    import torch

    before = threads.current()
    try:
        assert threads.configure(1) == 1 and threads.current() == 1
        assert cv2.getNumThreads() == 1 and torch.get_num_threads() == 1
        assert threads.configure(None) == threads.available_cores() == len(os.sched_getaffinity(0))
        assert torch.get_num_threads() == threads.available_cores()
        with pytest.raises(ValueError):
            threads.configure(-1)
    finally:
        threads.configure(before)


def test_onnx_session_uses_the_configured_threads():
    pytest.importorskip("onnxruntime")
    from hdrcli.runtime import make_runner

    before = threads.current()
    try:
        threads.configure(1)
        try:
            runner = make_runner("lffnet", "onnx", device="cpu")
        except HdrError as exc:
            pytest.skip(f"no ONNX export: {exc}")
        assert runner._open_tiles().get_session_options().intra_op_num_threads == 1
        assert runner._open_synthesis().get_session_options().intra_op_num_threads == 1
    finally:
        threads.configure(before)


def test_runtime_auto_picks_a_runner():
    from hdrcli.runtime import FASTER_RUNTIME, auto_runtime, make_runner

    assert auto_runtime("lffnet") in ("torch", "onnx") and set(FASTER_RUNTIME) >= {"lffnet", "dfgnet", "tunet"}
    runner = make_runner("lffnet", "auto", device="cpu")
    assert type(runner).__name__ == {"torch": "TorchRunner", "onnx": "OnnxRunner"}[auto_runtime("lffnet")]


def test_twostage_auto_runs_the_whole_photo_export_and_hands_mid_size_photos_to_torch(monkeypatch):
    """`hdr expand -b twostage` under auto: ONNX Runtime's whole-photo export (no tiles, no torch);
    photos run whole above ONNX_WHOLE_PIXELS (twice torch's memory there) go to torch. Both agree."""
    from hdrcli.runtime import auto_runtime, make_runner, onnx_runtime

    if auto_runtime("twostage") != "onnx":
        pytest.skip("twostage's whole-photo export is not current")
    rng = np.random.default_rng(0)
    photo = np.clip(rng.random((96, 128, 3)) * 1.3, 0, 1).astype(np.float32)
    runner = make_runner("twostage", "auto", device="cpu")
    assert type(runner).__name__ == "OnnxRunner" and runner.whole_path is not None
    small = runner.predict(photo)
    assert runner._torch is None
    monkeypatch.setattr(onnx_runtime, "ONNX_WHOLE_PIXELS", 96 * 128 - 1)
    handed = runner.predict(photo)
    assert runner._torch is not None
    np.testing.assert_allclose(handed, small, rtol=2e-3, atol=2e-4)
    explicit = make_runner("twostage", "onnx", device="cpu")  # no fallback: ONNX Runtime whatever the size
    explicit.predict(photo)
    assert explicit._torch is None


def test_auto_loads_its_torch_fallback_when_prepared(monkeypatch):
    """What auto hands to torch is loaded by ``prepare`` (timed as loading, not as the network):
    a bracket of 1 MP or less, or a 1.1-2 MP photo; a larger bracket stays on ONNX Runtime."""
    from hdrcli.runtime import auto_runtime, make_runner

    if auto_runtime("lffnet") != "onnx":
        pytest.skip("lffnet's exports are not current")
    runner = make_runner("lffnet", "auto", device="cpu")
    runner.prepare(1200, 1600, 3, None)
    assert runner._torch is None
    runner.prepare(480, 720, 3, None)
    assert runner._torch is not None
    photo_runner = make_runner("twostage", "auto", device="cpu")
    photo_runner.prepare(1000, 1500)
    assert type(photo_runner).__name__ != "OnnxRunner" or photo_runner._torch is not None


@pytest.mark.parametrize("backend,files,kwargs,message", [
    ("lffnet", 1, {}, "at least 2 frames"),
    ("lffnet", 3, {"reference": "3"}, "out of range"),
    ("debevec", 3, {"reference": "7"}, "out of range"),
    ("debevec", 3, {"exposures": [1.0, 2.0]}, "2 exposures given for 3 frames"),
    ("debevec", 3, {"align": "sift"}, "unknown alignment"),
    ("twostage", 3, {}, "single-image backend"),
])
def test_impossible_options_fail_before_reading(tmp_path, backend, files, kwargs, message):
    # The frames do not exist: the error must come from the options, before any read.
    frames = [tmp_path / f"missing{i}.jpg" for i in range(files)]
    with pytest.raises(HdrError, match=message):
        check_fuse_options(backend, frames, **kwargs)
    with pytest.raises(HdrError, match=message):
        fuse(frames, tmp_path / "out.exr", backend=backend, **kwargs)
    assert not list(tmp_path.iterdir())


def test_missing_onnx_export_fails_before_reading(tmp_path):
    frames = [tmp_path / f"missing{i}.jpg" for i in range(3)]
    with pytest.raises(HdrError, match="no ONNX export"):
        fuse(frames, tmp_path / "out.exr", backend="lffnet", runtime="onnx", tile=384, device="cpu")


def test_fuse_records_every_stage(tmp_path, example_bracket):
    result, written = fuse(example_bracket, tmp_path / "out.exr", threads=1)
    for key in ("read_s", "exif_s", "align_s", "calibrate_s", "merge_s", "exr_s", "preview_s"):
        assert result.timings[key] >= 0, key
    text = describe_timings(result.timings)
    assert text.startswith("read ") and "calibrate" in text and text.endswith("s") and "total" in text
    assert {k for k, _ in STAGES} >= set(result.timings) - {"write_s"}
    assert [p.name for p in written] == ["out.exr", "out.preview.jpg"]
    # The frames' pixels were released before the writers (memory of a 12 MP default fuse),
    # their shapes kept.
    frame = result.bracket.frames[0]
    assert frame.pixels.strides == (0, 0, 0) and frame.size == (720, 480)


def test_cli_threads_and_timings(tmp_path, example_bracket):
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    run = subprocess.run([sys.executable, "-m", "hdrcli.cli", "-v", "fuse", *map(str, example_bracket),
                          "-o", str(tmp_path / "x.exr"), "--threads", "1"], capture_output=True, text=True, env=env,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    assert "time: read" in run.stdout and "align" in run.stdout and "total" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "hdrcli.cli", "fuse", *map(str, example_bracket),
                          "-o", str(tmp_path / "y.exr"), "--threads", "0"], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "threads" in bad.stderr and not (tmp_path / "y.exr").exists()


def test_sanitize_keeps_clean_images_without_copying():
    clean = np.ones((4, 5, 3), np.float32)
    assert sanitize(clean) is clean
    dirty = clean.copy()
    dirty[0, 0] = [np.nan, np.inf, -1.0]
    out = sanitize(dirty)
    assert np.isfinite(out).all() and out.min() >= 0 and out[0, 0, 0] == 0 and out[0, 0, 1] == 1.0


@pytest.mark.parametrize("busy", [True, False])
def test_openmp_waits_passively_only_on_a_busy_machine_and_before_torch_loads(tmp_path, example_bracket, busy):
    """OMP_WAIT_POLICY=PASSIVE (no spinning) is set when the machine is busy, and `hdr fuse` sets it
    before a learned backend imports torch (libgomp reads it only then); on a quiet machine the
    spinning default stays (faster there)."""
    import json
    import subprocess
    import sys

    script = f"""
import json, os, sys
os.environ.pop("OMP_WAIT_POLICY", None)
import hdrcli.threads as threads
threads.machine_busy = lambda: {busy}
seen = []
original = threads.configure
def configure(n=None):
    seen.append("torch" in sys.modules)
    return original(n)
threads.configure = configure
import hdrcli.pipeline as pipeline
pipeline.configure_threads = configure
pipeline.fuse({[str(p) for p in example_bracket]!r}, {str(tmp_path / "out.exr")!r}, backend="lffnet", device="cpu",
              runtime="torch", threads=1)
print(json.dumps({{"torch_before": seen[0], "policy": os.environ.get("OMP_WAIT_POLICY")}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["torch_before"] is False
    assert result["policy"] == ("PASSIVE" if busy else None)
