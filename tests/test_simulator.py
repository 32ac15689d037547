"""Camera simulator brackets: N frames, layout, realism steps, batches, legacy validation set.

Built from three small radiance maps of ../shared/data (skipped when absent), patch 64.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from hdrcli.training.camera import (
    MAX_SPAN_STOPS,
    CameraSimulator,
    NoiseProfiles,
    PhoneStyle,
    draw_frame_count,
    draw_gaps,
    draw_reference,
    jpeg_roundtrip,
    night_lights,
    validation_brackets,
    validation_singles,
    inverse_response_table,
)
from hdrcli.training.data import SimulatedData, canonical_sample
from tests.conftest import SHARED, shared_path

MAPS = ("other/HDRMark_small.hdr", "other/Grace_Cathedral.hdr", "cc0/hotel_room_blender-dwab.exr")
PATCH = 64
# sha256 of the 8-bit codes of validation_brackets(sim, per_map=2) on MAPS (patch 64, max_side 256),
# computed with the original 3-frame simulator: the legacy validation set must not change.
LEGACY_DIGEST = "0845a787d134802c54c7a1306207f6793b378e6ae5c5644ebdac27c8b6e2419d"
# The same for validation_singles(sim, per_map=2): the single-image validation set must not change.
LEGACY_SINGLES_DIGEST = "9d0f064dceefa79da10f05f10dd79ed37447c0cc96470fae495b64067d82a02e"


@pytest.fixture(scope="module")
def sim() -> CameraSimulator:
    paths = [shared_path("radiance", *m.split("/")) for m in MAPS]
    return CameraSimulator(paths, patch=PATCH, max_side=256, data_dir=SHARED)


def _check(sample, n: int) -> None:
    assert sample.ldr.shape == (n, PATCH, PATCH, 3) and sample.ldr.dtype == np.float32
    assert sample.hdr.shape == (PATCH, PATCH, 3) and sample.exposures.shape == (n,)
    assert sample.exposures[0] == 1 and np.all(np.diff(sample.exposures) > 0)
    assert np.log2(sample.exposures[-1]) <= MAX_SPAN_STOPS + 1e-3
    assert 0 <= sample.reference < n
    assert 0 <= sample.ldr.min() and sample.ldr.max() <= 1 and 0 <= sample.hdr.min() and sample.hdr.max() <= 1


@pytest.mark.parametrize("n", range(2, 10))
def test_bracket_has_n_sorted_frames(sim, n):
    rng = np.random.default_rng(n)
    sample = sim.bracket(rng, frames=n)
    _check(sample, n)
    fixed = sim.bracket(rng, frames=n, reference=n - 1)
    assert fixed.reference == n - 1
    _check(fixed, n)


def test_random_layout_draws():
    rng = np.random.default_rng(0)
    counts = np.bincount([draw_frame_count(rng) for _ in range(3000)], minlength=10)
    assert counts[:2].sum() == 0 and counts[2:].min() > 0
    assert counts[3] > counts[4] and counts[5] > counts[6]  # 3 and 5 favoured
    for n in (2, 5, 9):
        for _ in range(200):
            gaps = draw_gaps(rng, n)
            assert gaps.shape == (n - 1,) and gaps.sum() <= MAX_SPAN_STOPS + 1e-9 and np.all(gaps > 0)
            if gaps.sum() < MAX_SPAN_STOPS - 1e-6:
                assert np.all((gaps >= 0.7) & (gaps <= 4.0))
    refs = np.array([draw_reference(rng, 7) for _ in range(3000)])
    assert refs.min() == 0 and refs.max() == 6 and 0.65 < np.mean(refs == 3) < 0.82


def test_bracket_rejects_bad_layout(sim):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        sim.bracket(rng, frames=1)
    with pytest.raises(ValueError):
        sim.bracket(rng, frames=3, reference=3)
    with pytest.raises(ValueError):
        sim.bracket(rng, frames=3, realism={"fog": 1.0})


def test_batch_shares_frames_and_reference(sim):
    data = SimulatedData(sim, "multi-exposure", seed=3)
    for _ in range(2):
        batch = data.batch(3)
        n = batch["ldr"].shape[1]
        assert 2 <= n <= 9 and batch["ldr"].shape == (3, n, 3, PATCH, PATCH)
        assert batch["exposures"].shape == (3, n) and batch["hdr"].shape == (3, 3, PATCH, PATCH)
        assert batch["reference"].dtype == torch.long and batch["reference"].dim() == 0
        assert 0 <= int(batch["reference"]) < n
        assert batch["codes"].shape == batch["ldr"].shape  # the frames as recorded, for the merge head
    two = SimulatedData(sim, "multi-exposure", seed=4, frames=2).batch(2)  # self-calibration of 2 frames
    assert two["ldr"].shape[:2] == (2, 2) and torch.isfinite(two["ldr"]).all()


def test_canonical_sample_up_to_nine_frames(sim):
    sample = canonical_sample(sim.bracket(np.random.default_rng(9), frames=9))
    assert sample.ldr.shape == (9, PATCH, PATCH, 3) and np.isfinite(sample.ldr).all()
    assert 0 <= sample.ldr.min() and sample.ldr.max() <= 1


def test_night_is_dark_with_bright_spots(sim):
    night = {"night": 1.0, "phone": 0.0}
    plain = {"night": 0.0, "phone": 0.0, "high_iso": 0.0}
    med = {}
    for name, realism in (("night", night), ("plain", plain)):
        samples = [sim.bracket(np.random.default_rng(s), frames=3, reference=1, realism=realism, motion=False)
                   for s in range(4)]
        med[name] = np.mean([np.median(s.ldr[s.reference]) for s in samples])
        if name == "night":
            assert all({"night", "high_iso"} <= set(s.effects) for s in samples)
    assert med["night"] < med["plain"] - 0.05
    lights = night_lights(np.random.default_rng(1), 80, 8, key=0.01)
    lum = lights.mean(axis=-1)
    assert lum.max() >= 0.5 * 0.5  # peak >= 50x the key (colour spread allowed)
    assert 0 < np.mean(lum > 0.1) < 0.1  # small spots
    assert lum[:8].max() < lum.max() and np.ptp(lights.reshape(-1, 3)[lum.argmax()]) > 0  # inside, coloured


def test_phone_processing_changes_pixels(sim):
    irradiance = sim._crop(np.random.default_rng(0), PATCH) * np.float32(0.5)
    style = PhoneStyle.draw(np.random.default_rng(1), PATCH)
    plain = sim._expose(np.random.default_rng(2), irradiance, 0, 0, 1.0)
    phone = sim._expose(np.random.default_rng(2), irradiance, 0, 0, 1.0, style)
    assert phone.shape == plain.shape and phone.dtype == np.float32
    assert 0 <= phone.min() and phone.max() <= 1 and np.abs(phone - plain).mean() > 1e-3
    jpeg = jpeg_roundtrip(plain, 80)
    assert jpeg.shape == plain.shape and 0 < np.abs(jpeg - plain).mean() < 0.05
    sample = sim.bracket(np.random.default_rng(5), frames=4, realism={"phone": 1.0})
    assert "phone" in sample.effects
    _check(sample, 4)


def test_high_iso_profiles():
    profiles = NoiseProfiles.load(shared_path("noise", "darktable_noiseprofiles.json").parents[1])
    assert profiles.iso.shape == (len(profiles.a),)
    high = profiles.in_iso_range(800, 6400)
    assert high.size and np.all((profiles.iso[high] >= 800) & (profiles.iso[high] <= 6400))
    assert profiles.in_iso_range(1e12, 2e12).size == len(profiles.a)  # none match: any profile


def test_legacy_validation_set_unchanged(sim):
    samples = validation_brackets(sim, per_map=2)
    assert [s.motion for s in samples] == [False, True] * len(MAPS)
    for s in samples:
        assert s.ldr.shape == (3, PATCH, PATCH, 3) and s.reference == 1 and s.effects == ()
        assert s.exposures.tolist() in ([1.0, 4.0, 16.0], [1.0, 8.0, 64.0])
    codes = np.concatenate([np.round(s.ldr * 255).astype(np.uint8).ravel() for s in samples])
    assert hashlib.sha256(codes.tobytes()).hexdigest() == LEGACY_DIGEST
    more = validation_brackets(sim, per_map=2, frames=5)
    again = validation_brackets(sim, per_map=2, frames=5)
    assert all(s.ldr.shape[0] == 5 and s.reference == 2 and s.effects == () for s in more)
    np.testing.assert_array_equal(more[3].ldr, again[3].ldr)


def test_single_photos_plain_by_default_realistic_on_request(sim):
    plain = validation_singles(sim, per_map=2)
    assert all(s.effects == () for s in plain)
    codes = np.concatenate([np.round(s.ldr * 255).astype(np.uint8).ravel() for s in plain])
    assert hashlib.sha256(codes.tobytes()).hexdigest() == LEGACY_SINGLES_DIGEST
    night = sim.single(np.random.default_rng(3), {"night": 1.0, "phone": 1.0})
    assert {"night", "high_iso", "phone"} <= set(night.effects)
    assert night.ldr.shape == (PATCH, PATCH, 3) and 0 <= night.ldr.min() and night.ldr.max() <= 1
    assert night.hdr.max() > 1  # light sources beyond the photo's clipping level
    assert np.mean(night.ldr.max(-1) >= 254.5 / 255) > 0  # ... which the photo clips
    effects = [s.effects for s in validation_singles(sim, per_map=2, realism=True)]
    assert any(effects) and effects == [s.effects for s in validation_singles(sim, per_map=2, realism=True)]
    batch = SimulatedData(sim, "single-image", seed=1, realism=False).batch(2)
    assert batch["ldr"].shape == (2, 3, PATCH, PATCH)


def test_inverse_response_table_inverts_the_simulated_curve():
    from hdrcli.merge.expand import srgb_decode
    from hdrcli.training.camera import CameraCurves

    curves = CameraCurves.load(SHARED)
    table = inverse_response_table(curves.curves[curves.names.index("srgb")])
    assert table.shape == (256, 3) and table[255].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(table[:, 1], srgb_decode(np.arange(256) / 255.0), atol=2e-3)
    for index in range(len(curves.names)):  # every curve: finite, increasing, 0 at black
        t = inverse_response_table(curves.curves[index])[:, 0]
        assert np.isfinite(t).all() and np.all(np.diff(t) >= 0) and t[0] <= 0.05
