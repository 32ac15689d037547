"""End-to-end CLI tests: the `hdr` command on the bundled example, real brackets, bad input."""

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

from hdrcli import __version__
from hdrcli.io import read_hdr
from tests.conftest import EXAMPLES, digest, shared_path

HDR = [sys.executable, "-m", "hdrcli.cli"]


def hdr(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run([*HDR, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def assert_valid_hdr(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    image = read_hdr(path)
    assert np.isfinite(image).all() and image.min() >= 0 and image.max() > 0
    if shape:
        assert image.shape[:2] == shape
    return image


def assert_preview(path: Path) -> None:
    preview = cv2.imread(str(path))
    assert preview is not None
    mean = preview.mean()
    assert 40 < mean < 215, f"preview too dark or bright: mean {mean:.0f}"


def test_version_and_backends():
    result = hdr("--version")
    assert result.returncode == 0 and __version__ in result.stdout
    result = hdr("backends", "--json")
    names = {b["name"]: b for b in json.loads(result.stdout)}
    assert {"debevec", "robertson", "mertens"} <= set(names)
    assert names["mertens"]["output"] == "display"


def test_console_script_installed():
    exe = shutil.which("hdr")
    if exe is None:
        pytest.skip("hdr console script not on PATH (package not installed)")
    assert subprocess.run([exe, "--version"], capture_output=True, text=True).returncode == 0


def test_fuse_example_bracket(tmp_path, example_bracket):
    before = digest(example_bracket)
    result = hdr("fuse", *example_bracket, "-o", tmp_path / "room.exr")
    assert result.returncode == 0, result.stderr
    image = assert_valid_hdr(tmp_path / "room.exr", (480, 720))
    assert_preview(tmp_path / "room.preview.jpg")
    # The window (sky) is brighter than the dark floor by many stops.
    assert np.log2(image[60:240, 70:290].mean() / image[400:, :300].mean()) > 5
    assert digest(example_bracket) == before  # inputs untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["room.exr", "room.preview.jpg"]


@pytest.mark.parametrize("ext", [".exr", ".hdr", ".png", ".tif"])
def test_fuse_real_bracket_every_format(tmp_path, frobisher, ext):
    out = tmp_path / f"frobisher{ext}"
    result = hdr("fuse", *frobisher, "-o", out, "--tonemap", "drago")
    assert result.returncode == 0, result.stderr
    image = assert_valid_hdr(out, (426, 640))
    assert_preview(tmp_path / "frobisher.preview.jpg")
    assert np.percentile(image, 99.9) / np.percentile(image[image > 0], 0.1) > 2**8


def test_fuse_memorial_with_opencv_list(tmp_path):
    folder = shared_path("brackets", "memorial")
    frames = sorted(folder.glob("memorial*.png"))
    result = hdr("fuse", *frames, "--exposure-file", folder / "memorial.txt", "-o", tmp_path / "m.hdr")
    assert result.returncode == 0, result.stderr
    ours = assert_valid_hdr(tmp_path / "m.hdr", (714, 484))
    reference = read_hdr(folder / "memorial.hdr")
    # Agreement with Debevec's own radiance map, up to scale: correlation of log luminance.
    a, b = np.log(ours.mean(-1) + 1e-6).ravel(), np.log(reference.mean(-1) + 1e-6).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.97


def test_fuse_handheld_iphone_ecc(tmp_path):
    frames = sorted(shared_path("brackets", "iphone_handheld").glob("*.jpeg"))
    result = hdr("fuse", *frames, "-o", tmp_path / "night.exr", "--align", "ecc")
    assert result.returncode == 0, result.stderr
    assert_valid_hdr(tmp_path / "night.exr", (3024, 4032))
    assert_preview(tmp_path / "night.preview.jpg")


def test_fuse_options(tmp_path, frobisher):
    crf = tmp_path / "canon.crf"
    r = hdr("fuse", *frobisher, "-o", tmp_path / "a.exr", "--save-crf", crf, "--no-preview", "--float32", "-b", "debevec")
    assert r.returncode == 0, r.stderr
    assert crf.exists() and not (tmp_path / "a.preview.jpg").exists()
    r = hdr("fuse", *frobisher, "-o", tmp_path / "b.exr", "--crf", crf, "--preview", tmp_path / "p.png", "--tonemap", "mantiuk")
    assert r.returncode == 0, r.stderr
    a, b = read_hdr(tmp_path / "a.exr"), read_hdr(tmp_path / "b.exr")
    np.testing.assert_allclose(b, a, rtol=2e-3, atol=1e-6)  # same response: same radiance (b is half)
    assert (tmp_path / "p.png").exists()
    # User exposures override EXIF: 3 stops apart in input order.
    r = hdr("fuse", *frobisher, "-o", tmp_path / "c.exr", "--ev", "0,3,6", "--reference", "IMG_2600.jpg")
    assert r.returncode == 0, r.stderr
    r = hdr("fuse", *frobisher, "-o", tmp_path / "d.exr", "--exposures", "1/8,1,8", "--align", "none", "-b", "robertson")
    assert r.returncode == 0, r.stderr
    # Existing output: refused without --overwrite, replaced with it.
    r = hdr("fuse", *frobisher, "-o", tmp_path / "d.exr")
    assert r.returncode != 0 and "exists" in r.stderr
    r = hdr("fuse", *frobisher, "-o", tmp_path / "d.exr", "--overwrite")
    assert r.returncode == 0, r.stderr


def test_mertens_writes_ldr_only(tmp_path, example_bracket):
    r = hdr("fuse", *example_bracket, "-b", "mertens", "-o", tmp_path / "m.jpg")
    assert r.returncode == 0, r.stderr
    assert_preview(tmp_path / "m.jpg")
    r = hdr("fuse", *example_bracket, "-b", "mertens", "-o", tmp_path / "m.exr")
    assert r.returncode != 0 and "display-referred" in r.stderr


def test_tonemap_command(tmp_path):
    memorial = shared_path("brackets", "memorial", "memorial.hdr")
    for method in ("reinhard", "drago", "mantiuk", "mulaw", "filmic"):
        r = hdr("tonemap", memorial, "-o", tmp_path / f"{method}.jpg", "--tonemap", method)
        assert r.returncode == 0, r.stderr
        assert_preview(tmp_path / f"{method}.jpg")
    junk = tmp_path / "junk.hdr"
    junk.write_bytes(b"exported by a camera app\n" + memorial.read_bytes().replace(b"#?RGBE", b"#?RADIANCE", 1))
    r = hdr("tonemap", junk, "-o", tmp_path / "junk.jpg")
    assert r.returncode == 0, r.stderr


def test_fuse_kalantari_scene_folder(tmp_path, example_bracket):
    scene = tmp_path / "001"
    scene.mkdir()
    by_ev = sorted(example_bracket, key=lambda p: float(p.stem.split("_")[1].removesuffix("ev")))
    for i, path in enumerate(by_ev):  # -2, 0, +2 EV, as exposure.txt lists them
        image = cv2.imread(str(path)).astype(np.uint16) * 257
        cv2.imwrite(str(scene / f"input_{i}.tif"), image)
    (scene / "exposure.txt").write_text("-2\n0\n2\n")
    r = hdr("fuse", scene, "-o", tmp_path / "scene.exr")
    assert r.returncode == 0, r.stderr
    assert_valid_hdr(tmp_path / "scene.exr", (480, 720))


# ----------------------------------------------------------------------------- bad input

def _bad_inputs(tmp: Path, frobisher: list[Path]) -> dict[str, tuple[list, str]]:
    (tmp / "empty.jpg").write_bytes(b"")
    (tmp / "text.jpg").write_text("this is not a photo\n")
    (tmp / "cut.jpg").write_bytes(frobisher[0].read_bytes()[:40000])
    small = cv2.imread(str(frobisher[1]))[:100, :120]
    cv2.imwrite(str(tmp / "small.jpg"), small)
    plain = cv2.imread(str(frobisher[0]))
    cv2.imwrite(str(tmp / "noexif_a.png"), plain)
    cv2.imwrite(str(tmp / "noexif_b.png"), plain // 2)
    (tmp / "copy.jpg").write_bytes(frobisher[0].read_bytes())  # the same EXIF exposure, another file
    f0, f1, f2 = map(str, frobisher)
    out = str(tmp / "out" / "o.exr")
    return {
        "empty file": ([tmp / "empty.jpg", f1, "-o", out], "empty file"),
        "text named .jpg": ([tmp / "text.jpg", f1, "-o", out], "not a JPG file"),
        "truncated jpeg": ([tmp / "cut.jpg", f1, "-o", out], "truncated"),
        "single frame": ([f0, "-o", out], "at least 2 frames"),
        "different sizes": ([f0, tmp / "small.jpg", "-o", out], "differs"),
        "no exposure info": ([tmp / "noexif_a.png", tmp / "noexif_b.png", "-o", out], "no exposure time"),
        "same exposure": ([f0, tmp / "copy.jpg", "-o", out], "same exposure"),
        "same file twice": ([f0, f1, f0, "-o", out], "given twice"),
        "missing output folder": ([f0, f1, f2, "-o", tmp / "nowhere" / "o.exr"], "does not exist"),
        "unwritable output folder": ([f0, f1, f2, "-o", "/proc/o.exr"], "not writable"),
        "unknown extension": ([f0, f1, f2, "-o", tmp / "out" / "o.xyz"], "unknown output extension"),
        "missing file": ([f0, tmp / "nope.jpg", "-o", out], "no such file"),
        "bad exposure list": ([f0, f1, f2, "--exposures", "1/8,abc,8", "-o", out], "cannot read"),
    }


@pytest.mark.parametrize(
    "case",
    ["empty file", "text named .jpg", "truncated jpeg", "single frame", "different sizes", "no exposure info",
     "same exposure", "same file twice", "missing output folder", "unwritable output folder", "unknown extension",
     "missing file", "bad exposure list"],
)
def test_bad_input(tmp_path, frobisher, case):
    (tmp_path / "out").mkdir()
    args, message = _bad_inputs(tmp_path, frobisher)[case]
    inputs = [Path(a) for a in args if Path(str(a)).is_file()]
    before = digest(inputs)
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    result = hdr("fuse", *args)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing  # nothing written
    assert digest(inputs) == before  # inputs untouched


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (4, 4)])
@pytest.mark.parametrize("align", ["ecc", "mtb"])
def test_fuse_of_frames_a_few_pixels_wide(tmp_path, shape, align):
    """Frames too small to align are fused as they are (OpenCV's AlignMTB killed the process with
    SIGSEGV on a side of 1 pixel)."""
    rng = np.random.default_rng(0)
    radiance = rng.random((*shape, 3)).astype(np.float32) * 2
    frames = []
    for i, ev in enumerate((-2, 0, 2)):
        path = tmp_path / f"f{i}.png"
        cv2.imwrite(str(path), (np.clip(radiance * 2.0**ev, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8))
        frames.append(path)
    result = hdr("fuse", *frames, "--ev=-2,0,2", "--align", align, "-o", tmp_path / "out.exr", "-v")
    assert result.returncode == 0, result.stderr
    assert "too small to align" in result.stderr + result.stdout
    assert_valid_hdr(tmp_path / "out.exr", shape)


def test_tonemap_bad_input(tmp_path):
    (tmp_path / "x.exr").write_text("not exr")
    r = hdr("tonemap", tmp_path / "x.exr", "-o", tmp_path / "x.jpg")
    assert r.returncode != 0 and "OpenEXR" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.jpg").exists()


# ----------------------------------------------------------------------------- learned backends

def _weights(name: str) -> None:
    from hdrcli.runtime.runner import available_sizes

    if not available_sizes(name):
        pytest.skip(f"no weights for {name}")


@pytest.mark.parametrize("name", ["lffnet", "dfgnet", "tunet"])
def test_fuse_learned_backends(tmp_path, example_bracket, name):
    _weights(name)
    r = hdr("fuse", *example_bracket, "-b", name, "-o", tmp_path / "room.exr", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    image = assert_valid_hdr(tmp_path / "room.exr", (480, 720))
    assert image.max() <= 1.0 + 1e-3  # shortest exposure's units, sigmoid / tanh output
    assert_preview(tmp_path / "room.preview.jpg")


def test_fuse_learned_onnx_runtime(tmp_path, example_bracket):
    _weights("lffnet")
    from hdrcli.runtime.export import onnx_path
    from hdrcli.runtime.runner import DEFAULT_TILE, available_sizes

    if not onnx_path("lffnet", available_sizes("lffnet")[0], DEFAULT_TILE["lffnet"]).is_file():
        pytest.skip("no ONNX export shipped")
    r = hdr("fuse", *example_bracket, "-b", "lffnet", "--runtime", "onnx", "-o", tmp_path / "onnx.exr", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    r = hdr("fuse", *example_bracket, "-b", "lffnet", "--runtime", "torch", "-o", tmp_path / "torch.exr", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    a, b = read_hdr(tmp_path / "onnx.exr"), read_hdr(tmp_path / "torch.exr")
    assert np.abs(np.log1p(5000 * a) - np.log1p(5000 * b)).max() / np.log1p(5000) < 2e-3


@pytest.mark.parametrize("name", ["twostage", "stack"])
def test_expand_learned_backends(tmp_path, name):
    _weights(name)
    photo = EXAMPLES / "single" / "street.jpg"
    extra = ["--save-stack", str(tmp_path / "stack")] if name == "stack" else []
    r = hdr("expand", photo, "-b", name, "-o", tmp_path / "street.exr", "--device", "cpu", *extra)
    assert r.returncode == 0, r.stderr
    image = assert_valid_hdr(tmp_path / "street.exr", (480, 720))
    assert_preview(tmp_path / "street.preview.jpg")
    assert image.max() > 1.0  # expanded beyond the photo's clipping level
    if name == "stack":
        assert len(list((tmp_path / "stack").glob("*.png"))) >= 5


def test_learned_backend_errors(tmp_path, example_bracket):
    r = hdr("expand", EXAMPLES / "single" / "street.jpg", "-b", "lffnet", "-o", tmp_path / "x.exr")
    assert r.returncode != 0 and "fuses brackets" in r.stderr
    r = hdr("fuse", *example_bracket, "-b", "twostage", "-o", tmp_path / "x.exr")
    assert r.returncode != 0 and "single-image" in r.stderr
    assert not list(tmp_path.iterdir())


def test_cli_refuses_a_frame_given_twice(tmp_path, example_bracket):
    twice = [example_bracket[0], example_bracket[1], example_bracket[0]]
    run = hdr("fuse", *twice, "--ev", "-2,0,2", "-o", tmp_path / "out.exr")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "given twice" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_cli_refuses_exposures_in_the_wrong_order(tmp_path):
    pair = [shared_path("brackets", "samsung_dynamic", "118", name) for name in ("input_3.png", "input_4.png")]
    run = hdr("fuse", *pair, "--exposures", "1,9", "-o", tmp_path / "out.exr")  # input_3 is the brighter frame
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "input_4.png is darker than input_3.png" in run.stderr and "check --exposures" in run.stderr
    assert not list(tmp_path.iterdir())
    run = hdr("fuse", *pair[::-1], "--exposures", "1,9", "-o", tmp_path / "out.exr")
    assert run.returncode == 0, run.stderr
    # Without exposures (these PNGs have no EXIF) the error suggests values in the files' order.
    run = hdr("fuse", *pair, "-o", tmp_path / "none.exr")
    assert run.returncode != 0 and "no exposure time in EXIF" in run.stderr
    suggested = [float(v) for v in run.stderr.split("--exposures ")[-1].split()[0].split(",")]
    assert suggested[0] / suggested[1] == pytest.approx(9.0, rel=0.1)  # input_3 is the brighter frame
