"""Single-image expansion keeps the photo where it is well exposed (issue 16).

hdrcli.merge.expand composes the HDR from the linearised photo and a prediction used only
in clipped highlights; these tests check that contract numerically (exact photo on
well-exposed pixels, unchanged chromaticity, no step at the clip border, no dark ring,
no lifted shadows) on generated images and on the real photos in ../shared/data/single,
and end to end through `hdr expand` (no clipped pixels, grey input, 16-bit input, --crf).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hdrcli.io.frames import read_frame
from hdrcli.io.hdr import read_hdr
from hdrcli.merge import expand as expand_module
from hdrcli.merge.expand import (
    _blur,
    _blur_at,
    border_scale,
    compose,
    contrast_slope,
    fill_from_anchors,
    fill_holes,
    guided_filter,
    highlight_alpha,
    linearise,
    reconstruct_clipped,
    region_boxes,
    srgb_decode,
)
from hdrcli.merge.response import save_response
from tests.conftest import ROOT, shared_path


def hdr(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hdrcli.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    v = np.clip(linear, 0, 1)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055).astype(np.float32)


def clipped_scene(h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(photo in [0, 1] sRGB, true radiance): a coloured textured scene with a lamp 8x over the clip."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(1)
    base = 0.05 + 0.4 * (xx / w) + 0.05 * cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2)
    radiance = base[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
    lamp = 8.0 * np.exp(-((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (2 * 10.0**2))
    radiance = radiance + lamp[..., None] * np.array([1.0, 0.95, 0.85], np.float32)
    return np.round(srgb_encode(radiance) * 255) / np.float32(255), radiance.astype(np.float32)


def chromaticity(rgb: np.ndarray) -> np.ndarray:
    return rgb / np.maximum(rgb.sum(-1, keepdims=True), 1e-12)


def test_no_clipped_pixels_gives_the_linearised_photo():
    rng = np.random.default_rng(0)
    photo = (0.1 + 0.8 * rng.random((40, 50, 3))).astype(np.float32)  # no pixel near 0 or 1
    result = compose(photo, np.full_like(photo, 7.0))  # any prediction: unused
    assert result.clipped_fraction == 0.0
    assert not result.alpha.any() and not result.shadow.any()
    np.testing.assert_array_equal(result.hdr, srgb_decode(photo))
    assert result.response == "srgb"


def test_well_exposed_pixels_are_the_photo_and_keep_their_colour():
    photo, _ = clipped_scene()
    # A prediction with a strong colour cast and a wrong scale, as the stack network produced.
    prediction = srgb_decode(photo) * np.array([3.0, 1.5, 0.7], np.float32) + 0.2
    result = compose(photo, prediction)
    well = result.well_exposed
    assert well.mean() > 0.7 and result.alpha.any()
    np.testing.assert_array_equal(result.hdr[well], result.linear[well])
    np.testing.assert_allclose(chromaticity(result.hdr[well]), chromaticity(result.linear[well]), atol=1e-6)


def test_prediction_is_scaled_to_the_photo_at_the_clip_border():
    photo, radiance = clipped_scene()
    lin = srgb_decode(photo)
    # Right shape inside the lamp, but 5x too bright and tinted: the border ratio fixes both.
    prediction = radiance * np.array([5.0, 4.0, 6.0], np.float32)
    result = compose(photo, prediction)
    ring = (result.alpha > 0) & (result.alpha < 0.5)
    assert ring.any()
    # Where the blend begins, the output differs from the photo by little (no step, no halo).
    assert np.max(np.abs(np.log(result.hdr[ring] / lin[ring]))) < 0.15
    # Inside the lamp the output follows the truth (up to the photo's scale), not the 5x prediction.
    core = result.alpha >= 1
    ratio = result.hdr[core].mean(-1) / radiance[core].mean(-1)
    assert 0.5 < np.median(ratio) < 2.0
    # Colour in the core follows the photo's border colour, not the prediction's tint.
    assert np.abs(chromaticity(result.hdr[core]) - chromaticity(radiance[core])).max() < 0.05


def test_partly_clipped_channels_take_their_neighbours_colour():
    """Sunlit yellow wood: red and green clip first, blue keeps measuring. The clipped
    channels are estimated from blue through the colour of the unclipped wood (up to 3x),
    a fully clipped patch inside takes the reconstructed surround (no white blotch, no
    grey core), and unclipped pixels stay exactly the linearised photo."""
    h, w = 64, 96
    xx = np.mgrid[0:h, 0:w][1].astype(np.float32)
    colour = np.array([1.0, 0.8, 0.3], np.float32)  # R / B = 3.3
    radiance = (0.2 + 1.8 * xx / w)[..., None] * colour  # red clips at x ~ 43, blue never
    radiance[28:36, 80:88] = 4.0  # a specular patch: every channel clipped
    photo = np.round(srgb_encode(radiance) * 255) / np.float32(255)
    lin = srgb_decode(photo)
    out = reconstruct_clipped(lin, photo)
    untouched = photo.max(-1) < 0.95
    np.testing.assert_array_equal(out[untouched], lin[untouched])
    assert np.all(out >= lin - 1e-7)
    partly = (photo.max(-1) >= 1.0) & (photo.min(-1) < 0.95)
    assert partly.any()
    # Red follows blue times the wood's ratio (within the 3x limit), not the clip level.
    expected = np.minimum(lin[partly][:, 2] * 1.0 / 0.3, 3.0)
    np.testing.assert_allclose(out[partly][:, 0], expected, rtol=0.1)
    patch = out[30:34, 82:86]
    ring = out[26:38, 78:90].copy()
    ring[2:10, 2:10] = np.nan
    assert np.nanmin(patch[..., 0]) >= 0.8 * np.nanmedian(ring[..., 0])  # no dark core
    assert patch[..., 2].mean() < patch[..., 0].mean() / 1.5  # the surround's colour, not white


def test_channel_reconstruction_keeps_the_hue_at_its_limit():
    """A saturated orange (R : G : B = 10 : 8 : 1) whose red and green clip: both estimates exceed
    the 3x limit. Compressed together, red stays above green; capping each channel alone made
    them equal (orange turned yellow: img_005's wax glow)."""
    xx = np.mgrid[0:48, 0:96][1].astype(np.float32)
    radiance = (0.05 + 7.0 * xx / 96)[..., None] * np.array([1.0, 0.8, 0.1], np.float32)
    photo = np.round(srgb_encode(radiance) * 255) / np.float32(255)
    lin = srgb_decode(photo)
    out = reconstruct_clipped(lin, photo)
    both = (photo[..., 0] >= 1.0) & (photo[..., 1] >= 1.0) & (photo[..., 2] < 0.9)
    assert both.any()
    assert np.all(out[both][:, :2] <= 3.0 + 1e-4)
    assert np.median(out[both][:, 0] / out[both][:, 1]) > 1.1


def test_clipped_values_are_a_lower_bound_no_dark_ring():
    photo, _ = clipped_scene()
    dark_prediction = np.full(photo.shape, 0.01, np.float32)  # a network that "darkens" the lamp
    result = compose(photo, dark_prediction)
    assert np.all(result.hdr[result.alpha > 0] >= result.linear[result.alpha > 0] - 1e-6)


def test_alpha_is_smooth_and_one_on_clipped_pixels():
    photo, _ = clipped_scene()
    alpha = highlight_alpha(photo)
    assert np.all(alpha[photo.max(-1) >= 1.0] == 1.0)
    # A widened blend: no jump from 0 to 1 between neighbours.
    assert np.abs(np.diff(alpha, axis=1)).max() < 0.7


def test_crushed_shadows_are_denoised_not_lifted():
    rng = np.random.default_rng(3)
    truth = np.full((64, 64, 3), 0.0004, np.float32)  # deep shadow, ~3/255 in sRGB
    noisy = np.clip(srgb_encode(truth) + rng.normal(0, 0.004, truth.shape).astype(np.float32), 0, 1)
    result = compose(noisy, None)
    assert result.shadow.mean() > 0.9
    assert result.hdr.std() < 0.6 * result.linear.std()  # denoised
    assert abs(result.hdr.mean() - result.linear.mean()) < 0.1 * result.linear.mean()  # mean kept: no haze


def test_guided_filter_keeps_edges_and_means():
    step = np.zeros((32, 32), np.float32)
    step[:, 16:] = 1.0
    out = guided_filter(step, step, radius=3, eps=1e-4)
    assert np.abs(out - step).max() < 0.05
    noise = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    flat = guided_filter(np.zeros_like(noise), noise, radius=3)
    assert abs(flat.mean() - noise.mean()) < 0.01


def test_border_scale_recovers_a_constant_factor():
    rng = np.random.default_rng(0)
    lin = (0.2 + rng.random((48, 64, 3))).astype(np.float32)
    anchors = np.zeros((48, 64), bool)
    anchors[::3, ::3] = True
    scale = border_scale(lin, lin * np.float32(4.0), anchors)
    np.testing.assert_allclose(scale, 0.25, rtol=1e-3)


def test_linearise_with_a_response_and_linear_data():
    codes = np.arange(256, dtype=np.float32) / 255
    response = np.repeat((codes**2.0)[:, None], 3, axis=1)
    image = np.full((2, 2, 3), 0.5, np.float32)
    np.testing.assert_allclose(linearise(image, response), 0.25, rtol=1e-3)
    np.testing.assert_array_equal(linearise(image, linear=True), image)
    raw = compose(image, None, linear=True)
    assert raw.response == "linear"
    np.testing.assert_array_equal(raw.hdr, image)


@pytest.mark.parametrize("name", [f"img_00{i}.png" for i in range(1, 8)])
def test_real_photos_keep_their_well_exposed_pixels(name):
    photo = read_frame(shared_path("single", name)).pixels
    small = cv2.resize(photo, (256, 192), interpolation=cv2.INTER_AREA)
    prediction = srgb_decode(small) * np.array([1.4, 0.9, 1.2], np.float32)  # a cast
    result = compose(small, prediction)
    well = result.well_exposed
    assert well.mean() > 0.3
    np.testing.assert_allclose(chromaticity(result.hdr[well]), chromaticity(result.linear[well]), atol=1e-6)
    assert np.isfinite(result.hdr).all() and (result.hdr >= 0).all()


def _weights(name: str) -> None:
    from hdrcli.models import get_spec

    if not get_spec(name).weights_path("lite").is_file():
        pytest.skip(f"no {name} weights")


def test_whole_image_and_tiled_expansion_agree():
    """The tile grid test of issue 16 on a real photo, downscaled to keep the test fast."""
    from hdrcli.runtime import TorchRunner
    from hdrcli.tonemap import mu_law

    _weights("twostage")
    photo = cv2.resize(read_frame(shared_path("single", "img_003.png")).pixels, (384, 288),
                       interpolation=cv2.INTER_AREA)
    whole = TorchRunner("twostage").expand(photo)
    tiled = TorchRunner("twostage", tile=192).expand(photo)
    top = max(float(whole.max()), 1.0)
    assert np.abs(mu_law(whole / top) - mu_law(tiled / top)).max() < 0.01


def _cli_expand(tmp_path: Path, photo: Path, *args) -> tuple[subprocess.CompletedProcess, Path]:
    _weights("twostage")
    out = tmp_path / "out.exr"
    r = hdr("-v", "expand", photo, "-o", out, "--no-preview", "--device", "cpu", *args)
    return r, out


def test_cli_no_clipped_pixels_note_and_linear_output(tmp_path):
    rng = np.random.default_rng(0)
    pixels = (30 + 200 * rng.random((48, 64, 3))).astype(np.uint8)  # 30..230: nothing clipped or crushed
    photo = tmp_path / "flat.png"
    cv2.imwrite(str(photo), pixels)
    r, out = _cli_expand(tmp_path, photo)
    assert r.returncode == 0, r.stderr
    assert "no clipped pixels" in r.stderr and "sRGB" in r.stderr
    assert "shadows denoised" not in r.stderr  # none are crushed either
    result = read_hdr(out)
    expected = srgb_decode(pixels[..., ::-1].astype(np.float32) / 255)
    np.testing.assert_allclose(result, expected, rtol=2e-3, atol=1e-4)  # half-float EXR


def test_cli_grey_and_16_bit_photos(tmp_path):
    yy, xx = np.mgrid[0:48, 0:64]
    grey = np.clip(xx * 5, 0, 255).astype(np.uint8)  # a ramp that clips on the right
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    r, out = _cli_expand(tmp_path, tmp_path / "grey.png")
    assert r.returncode == 0, r.stderr
    image = read_hdr(out)
    assert image.shape == (48, 64, 3)
    assert np.allclose(image[..., 0], image[..., 1], rtol=0.02, atol=1e-4)  # still grey
    wide = (np.clip(xx * 1300, 0, 65535)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "wide.png"), np.dstack([wide, wide, wide]))
    out.unlink()
    r, out = _cli_expand(tmp_path, tmp_path / "wide.png")
    assert r.returncode == 0, r.stderr
    assert np.isfinite(read_hdr(out)).all()


def test_cli_crf_is_used(tmp_path):
    codes = np.arange(256, dtype=np.float64) / 255
    save_response(tmp_path / "cam.crf", np.repeat((codes**3.0)[:, None], 3, axis=1))
    pixels = np.full((32, 32, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "mid.png"), pixels)
    r, out = _cli_expand(tmp_path, tmp_path / "mid.png", "--crf", tmp_path / "cam.crf")
    assert r.returncode == 0, r.stderr
    assert "cam.crf" in r.stderr
    np.testing.assert_allclose(read_hdr(out), (128 / 255) ** 3.0, rtol=3e-3)


def test_contrast_slope_maps_a_steeper_rendering_onto_the_photo():
    rng = np.random.default_rng(0)
    y_lin = rng.uniform(0.2, 0.9, (32, 32)).astype(np.float32)
    anchors = np.ones((32, 32), bool)
    steeper = y_lin ** 1.6 * 0.3  # a network rendering 1.6 stops per stop of the photo, any scale
    assert contrast_slope(y_lin, steeper, anchors) == pytest.approx(1 / 1.6, rel=1e-3)
    assert contrast_slope(y_lin, 2 * y_lin, anchors) == pytest.approx(1.0, rel=1e-3)
    assert contrast_slope(y_lin, steeper, np.zeros_like(anchors)) == 1.0  # no anchors: unchanged
    assert contrast_slope(y_lin, np.full_like(y_lin, 0.5), anchors) == 1.0  # flat prediction: unchanged
    assert contrast_slope(y_lin, y_lin ** 10, anchors) == 0.25  # clipped to its limits


@pytest.mark.parametrize("sigma", [64.0, 16.0, 4.0, 1.5])
def test_blur_at_some_pixels_equals_the_full_blur_there(sigma):
    """The sparse blur (coarse scales read from the small copy, fine ones in the pixels' box)
    gives the full-size blur's values, also at the image's edges and in odd sizes."""
    rng = np.random.default_rng(3)
    plane = rng.random((301, 437)).astype(np.float32)
    for rows, cols in [(np.array([0, 5, 150, 300]), np.array([0, 436, 200, 17])),
                       (np.array([120, 121, 140]), np.array([200, 230, 210]))]:
        np.testing.assert_allclose(_blur_at(plane, sigma, rows, cols), _blur(plane, sigma)[rows, cols],
                                   rtol=1e-5, atol=1e-6)


def test_fill_from_anchors_at_some_pixels_equals_the_full_fill():
    rng = np.random.default_rng(4)
    values = rng.normal(size=(200, 260, 3)).astype(np.float32)
    anchors = rng.random((200, 260)) < 0.02
    at = np.zeros((200, 260), bool)
    at[50:70, 100:180] = True
    dense = fill_from_anchors(values, anchors)
    np.testing.assert_allclose(fill_from_anchors(values, anchors, at=at), dense[at], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fill_from_anchors(values[anchors], anchors, at=at), dense[at], rtol=1e-5, atol=1e-5)


def test_clipped_regions_in_crops_give_the_whole_image_result(monkeypatch):
    """Two lamps far apart on a large photo: the highlight steps run in two crops around them
    (with the whole photo's statistics) and give what the whole-image pass gives, but for the
    fill of fully clipped cores, which starts from the median of the rings in its crop (0.45%
    here; without the channel reconstruction the two are identical)."""
    h, w = 1200, 2400
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    radiance = (0.05 + 0.5 * xx / w)[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
    for cy, cx in [(300, 400), (900, 2000)]:
        lamp = 6.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 12.0**2))
        radiance = radiance + lamp[..., None] * np.array([1.0, 0.9, 0.7], np.float32)
    photo = np.round(srgb_encode(radiance) * 255) / np.float32(255)
    prediction = radiance * np.float32(3.0)
    boxes = region_boxes(photo.max(-1) > 0.95, share=1.0)
    assert len(boxes) == 2
    assert sum((r.stop - r.start) * (c.stop - c.start) for r, c in boxes) < 0.5 * h * w
    monkeypatch.setattr(expand_module, "CROP_SHARE", 0.0)  # any box: the whole image
    whole = compose(photo, prediction).hdr
    monkeypatch.setattr(expand_module, "CROP_SHARE", 1.0)
    cropped = compose(photo, prediction).hdr
    changed = np.abs(whole - srgb_decode(photo)).max(-1) > 0
    assert changed.sum() > 500
    np.testing.assert_allclose(cropped, whole, rtol=1e-2, atol=1e-6)
    monkeypatch.setattr(expand_module, "CROP_SHARE", 0.0)
    whole = compose(photo, prediction, reconstruct=False).hdr
    monkeypatch.setattr(expand_module, "CROP_SHARE", 1.0)
    # Equal to float rounding: OpenCV's filters split rows among its threads differently for a
    # crop and for the whole image (1.4e-6 apart in a full CI run, bit-identical alone).
    np.testing.assert_allclose(compose(photo, prediction, reconstruct=False).hdr, whole, rtol=1e-5, atol=1e-7)


def test_fill_holes_of_a_large_region_raises_its_dark_centre():
    """A clipped region of 2.3 MP (a sky on a 12 MP photo) is filled on a ~1 MP copy: its lower
    centre rises to the ring around it, no pixel falls, a dome stays a dome (exact below 2 MP)."""
    n = 1520
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r = np.hypot(yy - n / 2, xx - n / 2)
    domain = r < 700
    ring = 2.0 * np.exp(-((r - 500) ** 2) / (2 * 40.0**2))
    values = (np.where(domain, ring + 0.2, 0.0)).astype(np.float32)
    filled = fill_holes(values, domain)
    assert np.all(filled >= values)
    np.testing.assert_array_equal(filled[~domain], values[~domain])
    centre = filled[n // 2 - 50:n // 2 + 50, n // 2 - 50:n // 2 + 50]
    assert np.all(centre > 0.95 * 2.2)  # raised from 0.2 to the ring's crest
    dome = np.where(domain, 2.0 - r / 700, 0.0).astype(np.float32)
    np.testing.assert_allclose(fill_holes(dome, domain)[domain], dome[domain], atol=0.01)
