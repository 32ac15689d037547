"""Reading frames: formats, bit depths, orientation, RAW, scene folders, corrupt files."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from PIL import Image

from hdrcli.errors import HdrError
from hdrcli.io import read_frame, read_frames
from hdrcli.io.frames import apply_orientation, jpeg_is_complete
from hdrcli.io.scene import read_scene
from tests.conftest import shared_path


def _pattern(h=30, w=40) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 6 % 256, yy * 8 % 256, (xx + yy) * 3 % 256], -1).astype(np.uint8)


def test_png_and_tiff_8_and_16_bit(tmp_path):
    rgb8 = _pattern()
    rgb16 = rgb8.astype(np.uint16) * 257 + 3
    for ext in (".png", ".tif"):
        cv2.imwrite(str(tmp_path / f"a8{ext}"), rgb8[..., ::-1])
        cv2.imwrite(str(tmp_path / f"a16{ext}"), rgb16[..., ::-1])
        f8, f16 = read_frame(tmp_path / f"a8{ext}"), read_frame(tmp_path / f"a16{ext}")
        assert (f8.bit_depth, f16.bit_depth) == (8, 16)
        np.testing.assert_allclose(f8.pixels, rgb8 / 255.0, atol=1e-6)
        np.testing.assert_allclose(f16.pixels, rgb16 / 65535.0, atol=1e-6)
        assert f8.pixels.dtype == np.float32 and not f8.linear


def test_grey_and_alpha_inputs(tmp_path):
    grey = _pattern()[..., 0]
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    rgba = np.dstack([_pattern()[..., ::-1], np.full(grey.shape, 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert read_frame(tmp_path / "g.png").pixels.shape == (30, 40, 3)
    np.testing.assert_allclose(read_frame(tmp_path / "a.png").pixels, _pattern() / 255.0, atol=1e-6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_opencv(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_pattern(24, 40)).save(path, quality=95, exif=exif.tobytes())
    ours = read_frame(path).as_uint8()
    theirs = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)  # applies orientation
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def test_orientation_helper_shapes():
    a = np.zeros((2, 3, 3))
    assert apply_orientation(a, 6).shape == (3, 2, 3) and apply_orientation(a, 3).shape == (2, 3, 3)


def test_iphone_rotated_like_opencv():
    path = sorted(shared_path("brackets", "iphone_handheld").glob("*.jpeg"))[0]
    frame = read_frame(path)
    assert frame.size == (4032, 3024)  # stored 3024x4032, orientation 8 turns it to landscape
    reference = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_8)
    ours = cv2.resize(frame.as_uint8(), (reference.shape[1], reference.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(ours.astype(int) - reference[..., ::-1].astype(int)).mean() < 6


def test_raw_linear_read():
    frame = read_frame(shared_path("raw", "RAW_KODAK_DC50.KDC"))
    assert frame.linear and frame.bit_depth == 16
    assert frame.pixels.shape == (512, 768, 3)
    assert 0.0 <= frame.pixels.min() and frame.pixels.max() <= 1.0
    # Linear data: far darker on average than a gamma-encoded rendering of the same shot.
    assert 0.02 < frame.pixels.mean() < 0.4
    assert frame.exif.exposure_time == pytest.approx(87 / 20000)


def test_jpeg_completeness(frobisher):
    data = frobisher[0].read_bytes()
    assert jpeg_is_complete(data)
    assert not jpeg_is_complete(data[: len(data) // 2])
    assert not jpeg_is_complete(data[:-2])


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty file"), (b"hello, I am text\n", "not a JPG file"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "corrupt")],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(HdrError, match=message) as info:
        read_frame(path)
    assert "bad.jpg" in str(info.value)


def test_truncated_jpeg(tmp_path, frobisher):
    path = tmp_path / "cut.jpg"
    path.write_bytes(frobisher[0].read_bytes()[:30000])
    with pytest.raises(HdrError, match="truncated"):
        read_frame(path)


def test_bad_raw(tmp_path):
    path = tmp_path / "fake.cr2"
    path.write_bytes(b"II*\x00" + b"\x00" * 100)
    with pytest.raises(HdrError, match="camera RAW"):
        read_frame(path)


def test_size_mismatch(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), _pattern(30, 40))
    cv2.imwrite(str(tmp_path / "b.png"), _pattern(32, 40))
    with pytest.raises(HdrError, match="differs"):
        read_frames([tmp_path / "a.png", tmp_path / "b.png"])


def test_kalantari_scene_folder(tmp_path):
    for i, name in enumerate(("262A0898.tif", "262A0899.tif", "262A0900.tif")):
        cv2.imwrite(str(tmp_path / name), (_pattern().astype(np.uint16) * 257 // (i + 1)))
    (tmp_path / "exposure.txt").write_text("0\n3\n6\n")
    frames, exposures = read_scene(tmp_path)
    assert [f.name for f in frames] == ["262A0898.tif", "262A0899.tif", "262A0900.tif"]
    assert exposures == [1.0, 8.0, 64.0]
    assert all(f.bit_depth == 16 for f in frames)
    (tmp_path / "exposure.txt").unlink()
    with pytest.raises(HdrError, match="exposure.txt"):
        read_scene(tmp_path)
