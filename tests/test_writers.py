"""HDR writers and readers: round trips within each format's precision."""

from __future__ import annotations

import numpy as np
import pytest

from hdrcli.errors import HdrError
from hdrcli.io import read_hdr, write_hdr
from tests.conftest import radiance_scene, shared_path


@pytest.fixture
def hdr() -> np.ndarray:
    return radiance_scene(40, 56, stops=14).astype(np.float32)


def test_exr_half_round_trip(tmp_path, hdr):
    write_hdr(tmp_path / "a.exr", hdr)
    back = read_hdr(tmp_path / "a.exr")
    np.testing.assert_allclose(back, hdr, rtol=2**-11, atol=6e-8)  # half: 11-bit mantissa


def test_exr_float32_exact(tmp_path, hdr):
    write_hdr(tmp_path / "a.exr", hdr * 1e5, float32=True)  # beyond half range
    np.testing.assert_array_equal(read_hdr(tmp_path / "a.exr"), hdr * 1e5)


def test_exr_half_clips_to_half_max(tmp_path, hdr, caplog):
    with caplog.at_level("WARNING", logger="hdrcli"):
        write_hdr(tmp_path / "a.exr", hdr * 1e5)
    assert np.isfinite(read_hdr(tmp_path / "a.exr")).all() and "clipped" in caplog.text


def test_radiance_rgbe_round_trip(tmp_path, hdr):
    write_hdr(tmp_path / "a.hdr", hdr)
    back = read_hdr(tmp_path / "a.hdr")
    # RGBE: 8-bit mantissa shared by the pixel's channels, relative to its largest channel.
    assert np.all(np.abs(back - hdr) <= hdr.max(axis=-1, keepdims=True) / 128 + 1e-12)


def test_pfm_round_trip(tmp_path, hdr):
    write_hdr(tmp_path / "a.pfm", hdr)
    np.testing.assert_array_equal(read_hdr(tmp_path / "a.pfm"), hdr)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_round_trip_with_scale(tmp_path, hdr, ext):
    write_hdr(tmp_path / f"a{ext}", hdr)
    back = read_hdr(tmp_path / f"a{ext}")
    assert np.abs(back - hdr).max() <= hdr.max() / 131070 * 1.01  # half a 16-bit step


def test_sanitize_non_finite(tmp_path, hdr):
    hdr[0, 0, 0], hdr[0, 1, 1], hdr[0, 2, 2] = np.nan, np.inf, -5.0
    write_hdr(tmp_path / "a.exr", hdr, float32=True)
    back = read_hdr(tmp_path / "a.exr")
    assert np.isfinite(back).all() and back.min() >= 0
    assert back[0, 0, 0] == 0 and back[0, 1, 1] == np.nanmax(np.where(np.isfinite(hdr), hdr, np.nan))


def test_unknown_extension_leaves_nothing(tmp_path, hdr):
    with pytest.raises(HdrError, match="unknown output extension"):
        write_hdr(tmp_path / "a.xyz", hdr)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_temp_file(tmp_path, hdr, monkeypatch):
    import hdrcli.io.hdr as module

    def boom(*args, **kwargs):
        (args[0]).write_bytes(b"partial")
        raise HdrError("simulated encoder failure")

    monkeypatch.setattr(module, "_write_exr", boom)
    with pytest.raises(HdrError):
        write_hdr(tmp_path / "a.exr", hdr)
    assert list(tmp_path.iterdir()) == []


def test_reads_memorial_hdr_and_exr():
    hdr = read_hdr(shared_path("brackets", "memorial", "memorial.hdr"))
    assert hdr.shape == (714, 484, 3) and np.isfinite(hdr).all() and hdr.max() > 10 * np.median(hdr)
    exr = read_hdr(shared_path("formats", "memorial_piz.exr"))
    assert exr.shape == (768, 512, 3) and np.isfinite(exr).all()


def test_radiance_with_junk_before_signature(tmp_path, hdr):
    write_hdr(tmp_path / "clean.hdr", hdr)
    (tmp_path / "junk.hdr").write_bytes(b"written by some tool v1.0\n" + (tmp_path / "clean.hdr").read_bytes())
    np.testing.assert_array_equal(read_hdr(tmp_path / "junk.hdr"), read_hdr(tmp_path / "clean.hdr"))


@pytest.mark.parametrize(
    "name", ["AllHalfValues.exr", "WideFloatRange.exr", "luminance_only_Garden.exr", "BrightRings.exr"]
)
def test_exr_edge_cases(name):
    hdr = read_hdr(shared_path("formats", name))
    assert hdr.ndim == 3 and hdr.shape[2] == 3 and np.isfinite(hdr).all() and hdr.min() >= 0


def test_exr_luminance_chroma():
    rgb = read_hdr(shared_path("radiance", "openexr", "Flowers.exr"))
    assert rgb.shape == (734, 784, 3) and np.isfinite(rgb).all()
    assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 0.01 * rgb.mean()  # real colour, not grey
