"""Metadata carried from the reference frame (EXIF, EXR standard attributes), --strip-metadata,
broken EXIF, the robust dynamic range, and `hdr info`."""

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

from hdrcli.dynamic_range import dynamic_range
from hdrcli.io.hdr import write_hdr
from tests.conftest import EXAMPLES, radiance_scene, shared_path

piexif = pytest.importorskip("piexif")
HDR = [sys.executable, "-m", "hdrcli.cli"]
ARTIST = "Ada Example"
COPYRIGHT = "(c) 2026 Ada Example, CC BY 4.0"
LENS = "EF 24-70mm f/2.8L II USM"


def hdr(*args: str | Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run([*HDR, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


def _gps() -> dict:
    G = piexif.GPSIFD
    return {G.GPSVersionID: (2, 3, 0, 0), G.GPSLatitudeRef: b"N", G.GPSLatitude: ((47, 1), (22, 1), (3000, 100)),
            G.GPSLongitudeRef: b"E", G.GPSLongitude: ((8, 1), (32, 1), (1200, 100)),
            G.GPSAltitudeRef: 0, G.GPSAltitude: (408, 1)}


@pytest.fixture
def tagged_bracket(tmp_path) -> list[Path]:
    """The example bracket with artist, copyright, lens, UTC offset and GPS written by piexif."""
    folder = tmp_path / "in"
    folder.mkdir()
    frames = []
    for src in sorted((EXAMPLES / "bracket").glob("*.jpg")):
        dst = folder / src.name
        shutil.copy(src, dst)
        exif = piexif.load(str(dst))
        exif["0th"][piexif.ImageIFD.Artist] = ARTIST.encode()
        exif["0th"][piexif.ImageIFD.Copyright] = COPYRIGHT.encode()
        exif["Exif"][piexif.ExifIFD.LensModel] = LENS.encode()
        exif["Exif"][piexif.ExifIFD.OffsetTimeOriginal] = b"+02:00"
        exif["GPS"] = _gps()
        exif["1st"], exif["thumbnail"] = {}, None
        piexif.insert(piexif.dump(exif), str(dst))
        frames.append(dst)
    return frames


def test_fuse_carries_metadata_to_exr_and_preview(tmp_path, tagged_bracket):
    out = tmp_path / "room.exr"
    r = hdr("fuse", *tagged_bracket, "-o", out)
    assert r.returncode == 0, r.stderr
    import OpenEXR

    header = OpenEXR.File(str(out), header_only=True).header()
    assert header["owner"] == COPYRIGHT
    assert header["capDate"] == "2026:11:01 10:30:00"
    assert header["utcOffset"] == -7200.0  # OpenEXR: UTC = local time + utcOffset
    assert header["aperture"] == pytest.approx(8.0) and header["isoSpeed"] == pytest.approx(100.0)
    assert header["expTime"] > 0
    assert header["latitude"] == pytest.approx(47 + 22 / 60 + 30 / 3600, abs=1e-5)
    assert header["longitude"] == pytest.approx(8 + 32 / 60 + 12 / 3600, abs=1e-5)
    assert header["altitude"] == pytest.approx(408.0)
    assert np.allclose(header["chromaticities"], (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290), atol=1e-6)
    assert header["hdrcli:backend"] == "debevec"
    exif = piexif.load(str(tmp_path / "room.preview.jpg"))
    assert exif["0th"][piexif.ImageIFD.Artist] == ARTIST.encode()
    assert exif["0th"][piexif.ImageIFD.Copyright] == COPYRIGHT.encode()
    assert exif["0th"][piexif.ImageIFD.Orientation] == 1
    assert exif["0th"][piexif.ImageIFD.Make] == b"hdrcli"
    assert exif["Exif"][piexif.ExifIFD.LensModel] == LENS.encode()
    assert exif["Exif"][piexif.ExifIFD.DateTimeOriginal] == b"2026:11:01 10:30:00"
    assert exif["Exif"][piexif.ExifIFD.OffsetTimeOriginal] == b"+02:00"
    assert exif["GPS"][piexif.GPSIFD.GPSLatitude] == _gps()[piexif.GPSIFD.GPSLatitude]
    assert piexif.ExifIFD.ExposureTime not in exif["Exif"]  # one frame's exposure would misdescribe a merge


def test_exiftool_lists_the_carried_tags(tmp_path, tagged_bracket):
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool not installed (apt-get install libimage-exiftool-perl)")
    out = tmp_path / "room.jpg"
    r = hdr("fuse", *tagged_bracket, "-o", out, "--ultrahdr", "--preview", tmp_path / "room.preview.jpg")
    assert r.returncode == 0, r.stderr
    for path in (out, tmp_path / "room.preview.jpg"):
        tags = json.loads(subprocess.run(["exiftool", "-j", "-n", str(path)], capture_output=True, text=True,
                                         check=True).stdout)[0]
        assert tags["Artist"] == ARTIST and tags["Copyright"] == COPYRIGHT and tags["LensModel"] == LENS
        assert tags["GPSLatitude"] == pytest.approx(47.375, abs=1e-4)
        assert tags["Orientation"] == 1 and tags["DateTimeOriginal"] == "2026:11:01 10:30:00"
    tags = json.loads(subprocess.run(["exiftool", "-j", "-G1", "-a", str(out)], capture_output=True, text=True,
                                     check=True).stdout)[0]
    assert tags["MPF0:NumberOfImages"] == 2  # EXIF went in before the MPF segment: the container is intact


def test_strip_metadata(tmp_path, tagged_bracket):
    out = tmp_path / "room.exr"
    r = hdr("fuse", *tagged_bracket, "-o", out, "--strip-metadata")
    assert r.returncode == 0, r.stderr
    import OpenEXR

    header = OpenEXR.File(str(out), header_only=True).header()
    for key in ("owner", "capDate", "latitude", "longitude", "altitude", "utcOffset"):
        assert key not in header
    assert "chromaticities" in header  # a colour fact about the pixels, not personal data
    data = (tmp_path / "room.preview.jpg").read_bytes()
    assert b"Exif\x00\x00" not in data and ARTIST.encode() not in data
    out_u = tmp_path / "room_u.jpg"
    r = hdr("fuse", *tagged_bracket, "-o", out_u, "--ultrahdr", "--strip-metadata")
    assert r.returncode == 0, r.stderr
    assert ARTIST.encode() not in out_u.read_bytes() and b"GPS" not in out_u.read_bytes()


def test_broken_and_huge_exif_skipped_with_warning(tmp_path, tagged_bracket):
    (huge,) = [p for p in tagged_bracket if p.name == "room_0ev.jpg"]  # the reference (middle exposure)
    exif = piexif.load(str(huge))
    exif["0th"][piexif.ImageIFD.Artist] = b"A" * 5000
    exif["GPS"][piexif.GPSIFD.GPSLatitude] = ((47, 0), (22, 1), (30, 1))  # zero denominator
    piexif.insert(piexif.dump(exif), str(huge))
    out = tmp_path / "room.exr"
    r = hdr("fuse", *tagged_bracket, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "Artist" in r.stderr and "GPS" in r.stderr and "not carried" in r.stderr
    preview = piexif.load(str(tmp_path / "room.preview.jpg"))
    assert piexif.ImageIFD.Artist not in preview["0th"] and not preview["GPS"]
    assert preview["0th"][piexif.ImageIFD.Copyright] == COPYRIGHT.encode()  # good fields still carried
    # An EXIF block that is not EXIF at all: metadata skipped, image written.
    from hdrcli.io.metadata import read_metadata

    garbage = tmp_path / "garbage.jpg"
    data = (EXAMPLES / "bracket" / "room_0ev.jpg").read_bytes()
    body = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff" + b"\x00" * 40
    garbage.write_bytes(data[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + data[2:])
    assert read_metadata(garbage) is None or read_metadata(garbage).make is None


@pytest.mark.shared
def test_frobisher_exif_carried(tmp_path, frobisher):
    out = tmp_path / "frob.exr"
    r = hdr("fuse", *frobisher, "-o", out)
    assert r.returncode == 0, r.stderr
    exif = piexif.load(str(tmp_path / "frob.preview.jpg"))
    assert exif["0th"][piexif.ImageIFD.Make] == b"Canon"
    assert exif["0th"][piexif.ImageIFD.Model] == b"EOS 5D Mark II"
    assert exif["Exif"][piexif.ExifIFD.DateTimeOriginal] == b"2015:09:19 03:39:21"
    r = hdr("info", "--json", out)
    (info,) = json.loads(r.stdout)
    assert info["attributes"]["capDate"] == "2015:09:19 03:39:21"
    assert info["attributes"]["expTime"] == pytest.approx(1.0)  # the reference frame, 1 s
    assert info["attributes"]["aperture"] == pytest.approx(8.0)
    assert info["hdrcli"]["reference"] == "IMG_2601.jpg"
    assert 10.0 < info["dynamic_range_stops"] < 12.5  # measured 11.2


def test_dynamic_range_ignores_the_noise_floor():
    rng = np.random.default_rng(0)
    ramp = np.repeat((2.0 ** np.linspace(-12, 0, 512, dtype=np.float32))[None], 256, 0)
    clean = dynamic_range(ramp)
    assert clean.stops == pytest.approx(12.0, abs=0.05) and clean.noise_floor == 0.0
    noisy = dynamic_range(np.maximum(ramp + rng.normal(0, 2**-8, ramp.shape).astype(np.float32), 0))
    # Noise sigma 2^-8: SNR 6 at ~2^-5.4, so about 5.4 stops remain; the plain ratio says 15+.
    assert 4.5 < noisy.stops < 6.5 and noisy.raw_stops > 14
    assert noisy.noise_floor == pytest.approx(2**-5.5, rel=0.3)


def test_info_on_formats(tmp_path):
    radiance = radiance_scene(48, 64, stops=10.0)
    paths = [write_hdr(tmp_path / f"scene.{ext}", radiance) for ext in ("exr", "hdr", "pfm", "png", "tif")]
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.full((32, 32, 3), 128, np.uint8))
    r = hdr("info", "--json", *paths, frame, EXAMPLES / "bracket" / "room_0ev.jpg")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    formats = [row["format"] for row in rows]
    assert formats == ["OpenEXR", "Radiance RGBE", "PFM", "hdrcli 16-bit linear PNG", "hdrcli 16-bit linear TIFF",
                       "PNG", "JPEG"]
    for row in rows[:5]:
        assert row["width"] == 64 and row["height"] == 48
        assert row["dynamic_range_stops"] > 8  # the scene spans 10 stops (with texture and a hot spot)
    assert rows[0]["dtype"] == "half" and rows[0]["channels"] == ["R", "G", "B"]
    assert rows[-1]["exif"]["make"] == "hdrcli"
    text = hdr("info", paths[0])
    assert text.returncode == 0 and "dynamic range" in text.stdout and "stops" in text.stdout


def test_info_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty.exr"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not an image at all" * 10)
    r = hdr("info", tmp_path / "missing.exr", empty, junk, EXAMPLES / "bracket" / "room_0ev.jpg")
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors), r.stderr
    assert "Traceback" not in r.stderr
    assert "room_0ev.jpg: JPEG" in r.stdout  # the good file is still described


@pytest.mark.shared
def test_info_raw():
    raw = shared_path("raw", "RAW_KODAK_DC50.KDC")
    r = hdr("info", "--json", raw)
    assert r.returncode == 0, r.stderr
    (info,) = json.loads(r.stdout)
    assert info["format"] == "camera RAW" and info["raw"]["white_level"] > 0
    assert info["exif"]["make"] == "Eastman Kodak Company"
