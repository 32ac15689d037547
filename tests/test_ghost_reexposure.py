"""Ghost maps, per-frame weights (--save-weights), re-exposure consistency (hdr eval --real),
and the exposure-scaled Debevec weights that keep long brackets' colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hdrcli.cli import app
from hdrcli.merge import merge_debevec
from hdrcli.merge.ghost import debevec_weight_maps, ghost_maps
from hdrcli.metrics import forward_response, reexposure_psnr
from tests.conftest import SHARED, textured_scene

TIMES = [1.0, 4.0, 16.0]


def gamma_response(gamma: float = 2.2) -> np.ndarray:
    return np.repeat(((np.arange(256) / 255.0) ** gamma)[:, None], 3, 1).astype(np.float32)


def photograph(radiance: np.ndarray, t: float, pedestal: float = 0.0) -> np.ndarray:
    """8-bit gamma-2.2 frame; ``pedestal``: a black level (codes) the sensor never goes below."""
    z = np.clip(radiance * t, 0, 1) ** (1 / 2.2) * 255
    return (np.round(np.maximum(z, pedestal)) / 255).astype(np.float32)


@pytest.fixture
def scene() -> np.ndarray:
    return (textured_scene(96, 128, stops=9) * 0.9).astype(np.float32)


def test_forward_response_inverts_the_response():
    response = gamma_response()
    z = np.linspace(0, 1, 256, dtype=np.float32)[None, :, None].repeat(3, axis=2)
    irradiance = response[np.arange(256)][None]
    np.testing.assert_allclose(forward_response(irradiance, response), z, atol=1e-6)


def test_ghost_map_flags_a_moving_object_only(scene):
    frames = [photograph(scene, t) for t in TIMES]
    moved = frames[2].copy()
    moved[36:48, 50:66] = 0.2  # an object that is only in the long frame
    maps = ghost_maps([frames[0], frames[1], moved], TIMES, gamma_response(), reference=1)
    assert maps.shape == (3, 96, 128)
    assert not maps[1].any()  # the reference is never flagged
    inside = maps[2, 38:46, 52:64]
    assert inside.mean() > 0.8
    outside = maps[2].copy()
    outside[28:56, 42:74] = 0
    assert outside.mean() < 0.01
    assert maps[0].mean() < 0.01


def test_weight_maps_sum_to_one_and_favour_long_frames_in_shadows(scene):
    frames = [photograph(scene, t) for t in TIMES]
    weights = debevec_weight_maps(frames, TIMES)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, rtol=1e-5)
    shadows = frames[2].max(-1) < 0.5
    assert (weights[2][shadows] > weights[0][shadows]).mean() > 0.95


def test_pedestal_of_short_frames_does_not_wash_out_colour():
    # A red-brown interior, 8 frames one stop apart; the short frames bottom out on a black
    # pedestal of 14 codes (as Memorial's do): they must not outvote the frames that measured it.
    radiance = np.zeros((16, 16, 3), np.float32) + np.array([0.004, 0.002, 0.001], np.float32)
    times = [2.0**k for k in range(8)]
    frames = [photograph(radiance, t, pedestal=14) for t in times]
    hdr = merge_debevec(frames, times, gamma_response())
    ratio = float(np.median(hdr[..., 0] / hdr[..., 1]))
    assert abs(ratio - 2.0) < 0.25, ratio


def test_reexposure_psnr_is_high_for_the_truth_and_low_for_fog(scene):
    response = gamma_response()
    frames = [photograph(scene, t) for t in TIMES]
    good = reexposure_psnr(scene * 3.0, frames, TIMES, response, reference=1)  # any global scale
    assert good["reference"] > 40 and good["mean"] > 38
    assert abs(good["scale"] * 3.0 - 1.0) < 0.05
    fog = scene * 0.6 + 0.4 * float(np.median(scene))  # grey haze over the scene
    bad = reexposure_psnr(fog, frames, TIMES, response, reference=1)
    assert bad["reference"] < good["reference"] - 10


def _write_bracket(folder: Path, scene: np.ndarray) -> list[Path]:
    import cv2

    folder.mkdir(parents=True)
    paths = []
    for k, t in enumerate(TIMES):
        path = folder / f"f{k}.png"  # name order = exposure order, as exposure.txt lists them
        u8 = np.round(photograph(scene, t) * 255).astype(np.uint8)
        cv2.imwrite(str(path), cv2.cvtColor(u8, cv2.COLOR_RGB2BGR))
        paths.append(path)
    (folder / "exposure.txt").write_text("-2\n0\n2\n")
    return paths


def test_save_weights_writes_named_maps(tmp_path, scene):
    import OpenEXR

    paths = _write_bracket(tmp_path / "b", scene)
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(app, ["fuse", *map(str, paths), "--ev", "-2,0,2", "-o", str(out / "x.exr"),
                                      "--save-weights", str(out / "x.maps.exr"), "--no-preview"])
    assert result.exit_code == 0, result.output
    with OpenEXR.File(str(out / "x.maps.exr")) as exr:
        channels = exr.channels()
        assert {"ghost", "weight.f0", "weight.f1", "weight.f2", "ghost.f2"} <= set(channels)
        total = sum(channels[f"weight.{n}"].pixels.astype(np.float32) for n in ("f0", "f1", "f2"))
        np.testing.assert_allclose(total, 1.0, atol=3e-3)  # half floats
    again = CliRunner().invoke(app, ["fuse", *map(str, paths), "--ev", "-2,0,2", "-o", str(out / "y.exr"),
                                     "--save-weights", str(out / "x.maps.exr"), "--no-preview"])
    assert again.exit_code == 1 and "exists" in again.output
    assert not (out / "y.exr").exists()  # nothing written when one output is refused


def test_eval_real_scores_brackets_without_ground_truth(tmp_path, scene):
    _write_bracket(tmp_path / "shoot" / "one", scene)
    result = CliRunner().invoke(app, ["eval", "-b", "debevec", "--real", str(tmp_path / "shoot"), "--json"])
    assert result.exit_code == 0, result.output
    import json

    rows = json.loads(result.output[result.output.index("{"):])["brackets"]
    assert len(rows) == 1 and rows[0]["frames"] == 3
    assert rows[0]["reexposure_ref_db"] > 35


@pytest.mark.shared
def test_eval_real_finds_the_shared_brackets():
    from hdrcli.evaluation import find_real_brackets

    root = SHARED / "brackets"
    if not root.is_dir():
        pytest.skip("needs ../shared/data/brackets")
    found = {name: (len(frames), listed) for name, frames, listed in find_real_brackets(root)}
    assert found["memorial"][0] == 16 and found["memorial"][1].name == "memorial.txt"
    assert found["samsung_dynamic/118"][0] == 4  # hdr_gt.png is the reference, not a frame


def test_wide_blur_on_a_downsized_copy_matches_the_direct_blur():
    """The ghost maps' large-scale blur (sigma 5% of the long side) runs on a downsized copy: within
    a few per cent of the direct Gaussian, which at 12 MP took ~25 s per call."""
    import cv2

    from hdrcli.merge.ghost import _wide_blur

    image = (textured_scene(600, 800, seed=3, stops=4).mean(-1)).astype(np.float32)
    for sigma in (32.0, 40.0):  # the image spans 15-25 sigmas, as a photo does (sigma: 5% of its long side)
        direct = cv2.GaussianBlur(image, (0, 0), sigma)
        error = np.abs(_wide_blur(image, sigma) - direct) / float(np.ptp(direct))
        assert error.shape == image.shape
        assert error.max() < 0.035 and error[100:-100, 100:-100].max() < 0.005  # borders 2.7-2.9%, inside 0.2%


def test_fill_holes_in_the_domains_box_equals_the_whole_image_reconstruction():
    """Hole filling works in the domain's bounding box (with a 1-pixel frame): the same as running
    the morphological reconstruction over the whole image."""
    import cv2

    from hdrcli.merge.expand import fill_holes

    rng = np.random.default_rng(5)
    values = cv2.GaussianBlur(rng.random((120, 160)).astype(np.float32), (0, 0), 3)
    domain = np.zeros(values.shape, bool)
    domain[30:70, 50:110] = True
    domain[40:50, 60:70] = False  # a hole inside the domain
    marker = np.where(domain, np.float32(values.max()), values)
    for _ in range(2000):  # the reference: reconstruction by erosion over the whole image
        nxt = np.maximum(cv2.erode(marker, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE), values)
        if np.array_equal(nxt, marker):
            break
        marker = nxt
    np.testing.assert_array_equal(fill_holes(values, domain), marker)
