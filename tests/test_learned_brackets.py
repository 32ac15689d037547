"""Learned backends on any bracket: 2 to 9 frames (and more), any spacing, any reference;
weight maps with the synthesis share; the ONNX export's bracket shape.

These run the networks inside the pytest process (about 1 GB resident). The hostile-input
tests measure their children's peak RSS, and a child forked from a large parent counts its
pages: this file must sort after tests/test_hostile_*.py (pytest runs files by name)."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from hdrcli.cli import app
from hdrcli.errors import HdrError
from hdrcli.pipeline import load_bracket, fuse_bracket
from tests.conftest import textured_scene


def _bracket(folder, stops: list[float], moving: bool = False) -> list[str]:
    """8-bit gamma-2.2 frames of one scene at the given EVs (files named by EV, sorted by exposure)."""
    folder.mkdir(parents=True, exist_ok=True)
    scene = (textured_scene(72, 96, stops=9) * 0.9).astype(np.float32)
    paths = []
    for i, ev in enumerate(stops):
        radiance = scene.copy()
        if moving and i != len(stops) // 2:
            radiance[20:44, 10 + 12 * i : 34 + 12 * i] *= 0.05  # a shadow, 4.3 stops deep, at another place per frame
        z = np.clip(radiance * 2.0**ev, 0, 1) ** (1 / 2.2)
        path = folder / f"f{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.round(z * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("stops,reference", [
    ([-1.0, 1.0], None),  # two frames
    ([-2.0, 0.0, 3.0], 0),  # reference at the short end
    ([-4.0, -3.0, -1.0, 0.0, 2.5], 4),  # uneven spacing, reference at the long end
    ([-4.2, -3.5, -2.8, -2.1, -1.4, -0.7, 0.0, 0.7, 1.4], None),  # nine frames 0.7 stops apart
])
def test_lffnet_fuses_any_bracket_and_keeps_static_pixels(tmp_path, stops, reference):
    paths = _bracket(tmp_path, stops)
    bracket = load_bracket(paths, ev=stops, reference=reference)
    learned = fuse_bracket(bracket, "lffnet", align="none", keep_maps=True)
    classical = fuse_bracket(load_bracket(paths, ev=stops, reference=reference), "debevec", align="none")
    n = len(stops)
    assert learned.image.shape == (72, 96, 3) and learned.frame_weights.shape == (n, 72, 96)
    np.testing.assert_allclose(learned.frame_weights.sum(0) + learned.synthesis_map, 1.0, atol=1e-4)
    # Every frame takes part; a frame that a longer unclipped one measures better everywhere (the
    # short frames of these brackets: the scene never clips in the longer ones) keeps only a
    # small shot-noise weight. The longest frame dominates its shadows.
    assert (learned.frame_weights > 1e-4).any(axis=(1, 2)).all()
    assert (learned.frame_weights[-1] > 0.05).any()
    # Static scene: where a frame measured the pixel the output is the frames' merge, close
    # to hdrcli's Debevec (same weights; the response is calibrated differently).
    well = learned.synthesis_map < 0.01
    assert well.mean() > 0.8
    ratio = np.median(learned.image[well].mean(-1) / np.maximum(classical.image[well].mean(-1), 1e-6))
    relative = np.abs(learned.image[well] / ratio - classical.image[well]) / np.maximum(classical.image[well], 1e-3)
    assert np.median(relative) < 0.1


def test_ghosted_frame_is_left_out_where_the_reference_sees(tmp_path):
    stops = [-2.0, 0.0, 2.0]
    paths = _bracket(tmp_path, stops, moving=True)
    result = fuse_bracket(load_bracket(paths, ev=stops), "lffnet", align="none", keep_maps=True)
    # the long frame's shadow (rows 20-44, columns 34-58) is a ghost: its weight there is small
    assert result.frame_weights[2, 26:38, 40:52].mean() < 0.1
    assert result.frame_weights[2, 50:, :].mean() > 0.2  # elsewhere it is the best-exposed frame


def test_save_weights_of_a_learned_fuse_hold_the_synthesis_share(tmp_path):
    import OpenEXR

    stops = [-2.0, 0.0, 2.0, 4.0]
    paths = _bracket(tmp_path / "in", stops)
    out = tmp_path / "out"
    out.mkdir()
    r = CliRunner().invoke(app, ["fuse", *paths, "--ev", ",".join(map(str, stops)), "-b", "lffnet", "-o",
                                 str(out / "x.exr"), "--save-weights", str(out / "x.maps.exr"), "--no-preview"])
    assert r.exit_code == 0, r.output
    with OpenEXR.File(str(out / "x.maps.exr")) as exr:
        channels = exr.channels()
        names = [f"weight.f{i}" for i in range(4)]
        assert {"ghost", "synthesis", *names} <= set(channels)
        total = sum(channels[k].pixels.astype(np.float32) for k in [*names, "synthesis"])
        np.testing.assert_allclose(total, 1.0, atol=5e-3)  # half floats


def test_onnx_runtime_names_the_bracket_shapes_it_takes(tmp_path):
    from hdrcli.runtime.onnx_runtime import OnnxRunner

    runner = OnnxRunner.__new__(OnnxRunner)  # the check runs before any session is used
    runner.name = "lffnet"
    runner._check_bracket(3, 1, False)
    with pytest.raises(HdrError, match="--runtime torch"):
        runner._check_bracket(5, 2, False)


def _large_photo_path(monkeypatch) -> None:
    """Small photos take the large-photo path (reduced synthesis, head in 96-pixel tiles)."""
    import hdrcli.runtime.runner as rt

    monkeypatch.setattr(rt, "SYNTHESIS_ABOVE", 20_000)
    monkeypatch.setattr(rt, "SYNTHESIS_PIXELS", 8_000)
    monkeypatch.setattr(rt, "HEAD_TILE", 96)


def _gamma_bracket() -> tuple[list[np.ndarray], list[float]]:
    """A 160 x 200 textured scene over 9 stops, 3 frames 2 stops apart, gamma-2.2 8-bit codes."""
    scene = (textured_scene(160, 200, stops=9) * 0.9).astype(np.float32)
    times = [1.0, 4.0, 16.0]
    return [(np.round(np.clip(scene * t / 4, 0, 1) ** (1 / 2.2) * 255) / 255).astype(np.float32) for t in times], times


def test_large_photos_merge_at_full_resolution_and_do_not_depend_on_tiles(monkeypatch):
    """Above SYNTHESIS_ABOVE the synthesis and the ghost gate run once at reduced size; the rest of
    the head runs at full resolution in tiles that equal one pass."""
    import hdrcli.runtime.runner as runner
    import hdrcli.runtime.torch_runtime as rt

    _large_photo_path(monkeypatch)
    frames, times = _gamma_bracket()
    tiled = rt.TorchRunner("lffnet").fuse(frames, times, maps=True)
    monkeypatch.setattr(runner, "HEAD_TILE", 400)
    whole = rt.TorchRunner("lffnet").fuse(frames, times, maps=True)
    full = rt.TorchRunner("lffnet", reduced_synthesis=False).fuse(frames, times, maps=True)
    assert np.abs(tiled - whole).max() < 1e-4
    # Where a frame measured the pixel the output is the frames' merge, whatever the synthesis.
    well = full[..., -1] < 1e-3
    assert well.mean() > 0.5
    np.testing.assert_allclose(tiled[..., :3][well], full[..., :3][well], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", ["lffnet", "dfgnet", "tunet"])
def test_onnx_runtime_runs_the_reduced_synthesis_as_torch(monkeypatch, name):
    """Above SYNTHESIS_ABOVE ONNX Runtime runs the shipped synthesis export once on the reduced
    bracket and the head export per tile: the output equals the torch runtime's."""
    pytest.importorskip("onnxruntime")
    import hdrcli.runtime.torch_runtime as rt
    from hdrcli.runtime.onnx_runtime import OnnxRunner
    from hdrcli.weights import synthesis_onnx_path

    if not synthesis_onnx_path(name, "lite").is_file():
        pytest.skip("no synthesis export shipped")
    _large_photo_path(monkeypatch)
    frames, times = _gamma_bracket()
    runner = OnnxRunner(name, device="cpu")
    assert runner.reduced_synthesis and runner._session is None  # the tile export is not even opened
    assert runner.head_path is not None  # the merge head runs on ONNX Runtime too
    got = runner.fuse(frames, times, maps=True)  # with the frames' weights and the synthesis share
    expected = rt.TorchRunner(name).fuse(frames, times, maps=True)
    assert got.shape == expected.shape == (*frames[0].shape[:2], 3 + 3 + 1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert runner._session is None


def test_runtime_auto_fuses_brackets_the_exports_do_not_take_on_torch(monkeypatch):
    pytest.importorskip("onnxruntime")
    import hdrcli.runtime as runtime

    monkeypatch.setitem(runtime.FASTER_RUNTIME, "lffnet", "onnx")
    runner = runtime.make_runner("lffnet", "auto", device="cpu")
    assert type(runner).__name__ == "OnnxRunner"
    scene = (textured_scene(64, 80, stops=6) * 0.9).astype(np.float32)
    frames = [(np.round(np.clip(scene * t / 4, 0, 1) ** (1 / 2.2) * 255) / 255).astype(np.float32) for t in (1.0, 8.0)]
    out = runner.fuse(frames, [1.0, 8.0])  # 2 frames: torch
    expected = runtime.TorchRunner("lffnet").fuse(frames, [1.0, 8.0])
    np.testing.assert_array_equal(out, expected)
    three = [*frames, frames[1]]  # 3 frames, but a small photo: torch too (the tile export is slower)
    np.testing.assert_array_equal(runner.fuse(three, [1.0, 8.0, 8.0]), runtime.TorchRunner("lffnet").fuse(three, [1.0, 8.0, 8.0]))
    assert runner._session is None and runner._synthesis is None  # no ONNX session was opened
    with pytest.raises(HdrError, match="--runtime torch"):  # asked for ONNX Runtime explicitly: refused
        runtime.make_runner("lffnet", "onnx", device="cpu").fuse(frames, [1.0, 8.0])
    with pytest.raises(HdrError, match="no weight maps"):  # the tile export (up to 1 MP) has none
        runtime.make_runner("lffnet", "onnx", device="cpu").fuse(three, [1.0, 8.0, 8.0], maps=True)
    # Known before any frame is read (hdr fuse's file list and options): torch from the start.
    for shape, kind in [((3, None, False), "OnnxRunner"), ((2, None, False), "TorchRunner"),
                        ((3, 0, False), "TorchRunner"), ((3, None, True), "OnnxRunner")]:
        assert type(runtime.make_runner("lffnet", "auto", device="cpu", bracket=shape)).__name__ == kind


@pytest.mark.parametrize("large", [False, True], ids=["whole-network tiles", "reduced synthesis"])
def test_warps_applied_tile_by_tile_equal_fusing_warped_frames(monkeypatch, large):
    """The runtime aligns each tile's window itself (no aligned copy of the bracket): on the
    full-resolution path that equals fusing frames warped beforehand; on the reduced path the
    small bracket is downsized, then warped (as the classical calibration copies), so only
    the merge's input is exact, and the output stays within float noise of it elsewhere."""
    import hdrcli.runtime.torch_runtime as rt
    from hdrcli.align import warp_frame

    if large:
        _large_photo_path(monkeypatch)
    frames, times = _gamma_bracket()
    warps = [np.array([[1, 0.004, 2.6], [-0.003, 1, -1.4], [0, 0, 1]]), None, np.array([[1, 0, -3], [0, 1, 2], [0, 0, 1]])]
    runner = rt.TorchRunner("lffnet", tile=None if large else 128)
    gamma = np.repeat(((np.arange(256) / 255.0) ** 2.2)[:, None], 3, 1)  # one response: self-calibration aside
    tiled = runner.fuse(frames, times, warps=warps, maps=True, response=gamma)
    warped = runner.fuse([warp_frame(f, w) for f, w in zip(frames, warps)], times, maps=True, response=gamma)
    if not large:  # OpenCV's fixed-point interpolation weights: a window's pixel may round differently
        np.testing.assert_allclose(tiled, warped, atol=1e-5)
    else:  # the synthesis and gate see a slightly different small bracket; the frames' merge is exact
        well = warped[..., -1] < 1e-3
        assert well.mean() > 0.5
        np.testing.assert_allclose(tiled[..., :3][well], warped[..., :3][well], rtol=2e-3, atol=1e-5)


def test_onnx_runtime_fuses_a_large_bracket_without_importing_torch(tmp_path):
    """`--runtime auto` for lffnet and dfgnet above 1 MP: backend lookup, the runtime choice, the
    synthesis and the merge head run on ONNX Runtime and numpy, and torch (1.0-1.3 s to import)
    is never loaded. Run in a fresh interpreter: this one has torch loaded."""
    pytest.importorskip("onnxruntime")
    from hdrcli.weights import head_onnx_path, synthesis_onnx_path

    if not all(p(n, "lite").is_file() for p in (synthesis_onnx_path, head_onnx_path) for n in ("dfgnet", "lffnet")):
        pytest.skip("no synthesis or head export shipped")
    scene = textured_scene(1000, 1100, stops=8).astype(np.float32)
    paths = []
    for i, t in enumerate((1.0, 4.0, 16.0)):  # 1.1 MP, gamma-2.2 8-bit frames 2 stops apart
        paths.append(tmp_path / f"f{i}.png")
        cv2.imwrite(str(paths[-1]), np.round(np.clip(scene * t / 16, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8))
    code = f"""
import sys
import numpy as np
from hdrcli.pipeline import fuse_bracket, load_bracket
bracket = load_bracket({[str(p) for p in paths]!r}, exposures=[1.0, 4.0, 16.0])
for name in ("dfgnet", "lffnet"):
    image = fuse_bracket(bracket, name, align="none").image
    assert image.shape == (1000, 1100, 3) and np.isfinite(image).all()
print("torch loaded:", "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch loaded: False" in out.stdout
