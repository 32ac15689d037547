"""Hostile and broken input files: pixel budget from headers, special files, bounded text,
corrupt frames, bad radiance scales, Radiance/PFM readers without temporary files,
non-UTF-8 names, and a small deterministic mutation loop.

Every hostile file is generated here in tmp_path; nothing binary is committed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from hdrcli.errors import HdrError
from hdrcli.exposure import read_exposure_file
from hdrcli.io.exif import read_exif
from hdrcli.io.frames import read_frame, read_frames
from hdrcli.io.hdr import radiance_header, read_hdr, write_hdr
from hdrcli.io.headers import jpeg_header, png_header, tiff_header
from hdrcli.io.limits import DEFAULT_MAX_PIXELS, configure, max_pixels_setting
from hdrcli.merge.response import linear_response, load_response, save_response
from tests.conftest import radiance_scene, shared_path

HDR = [sys.executable, "-m", "hdrcli.cli"]


@pytest.fixture(autouse=True)
def _no_hang():
    """Fail instead of hanging (a FIFO must never block a reader)."""
    def timeout(*_):
        raise TimeoutError("reader blocked for 20 s")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def _default_limits():
    """Default budget and policy in each test; configure() writes os.environ, so restore it after."""
    names = ("HDRCLI_MAX_PIXELS", "HDRCLI_ALLOW_CORRUPT")
    saved = {name: os.environ.pop(name, None) for name in names}
    yield
    for name in names:
        os.environ.pop(name, None)
        if saved[name] is not None:
            os.environ[name] = saved[name]


# ----------------------------------------------------------------------------- generated files

def _photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], axis=-1)
    return np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _jpeg(h: int = 48, w: int = 64) -> bytes:
    return cv2.imencode(".jpg", _photo(h, w))[1].tobytes()


def _png(h: int = 48, w: int = 64) -> bytes:
    return cv2.imencode(".png", _photo(h, w))[1].tobytes()


def _sof(data: bytes) -> int:
    pos = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))  # baseline or progressive frame header
    assert pos > 0
    return pos


def _with_jpeg_size(data: bytes, w: int, h: int) -> bytes:
    pos = _sof(data)
    return data[: pos + 5] + struct.pack(">HH", h, w) + data[pos + 9 :]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _with_png_size(data: bytes, w: int, h: int) -> bytes:
    ihdr = struct.pack(">II", w, h) + data[24:29]
    return data[:8] + _chunk(b"IHDR", ihdr) + data[33:]


def _tiff(w: int, h: int, samples: int = 3, bits: int = 8, pixels: bytes | None = None) -> bytes:
    """A minimal little-endian uncompressed TIFF (one strip) declaring w x h."""
    data = pixels if pixels is not None else b"\x80" * 64
    tags = [(256, 4, w), (257, 4, h), (258, 3, bits), (259, 3, 1), (262, 3, 2 if samples >= 3 else 1),
            (273, 4, 0), (277, 3, samples), (278, 4, h), (279, 4, len(data))]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(tags) + 4
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        value = data_offset if tag == 273 else value
        field = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
        ifd += struct.pack("<HHI", tag, kind, 1) + field
    return b"II*\x00" + struct.pack("<I", ifd_offset) + ifd + b"\x00" * 4 + data


def _exr_bytes(tmp_path: Path, h: int = 6, w: int = 8) -> bytes:
    path = tmp_path / "seed.exr"
    write_hdr(path, radiance_scene(h, w))
    return path.read_bytes()


def _with_exr_attribute(data: bytes, name: bytes, value: bytes) -> bytes:
    pos = data.find(name + b"\x00")
    assert pos > 0
    start = data.index(b"\x00", pos + len(name) + 1) + 1 + 4  # after type name and size
    return data[:start] + value + data[start + len(value) :]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _huge_files(tmp_path: Path) -> dict[str, Path]:
    """Small files declaring 16000x16000 or more (over the 200 MP default budget)."""
    exr = _with_exr_attribute(_exr_bytes(tmp_path), b"dataWindow", struct.pack("<iiii", 0, 0, 39999, 39999))
    return {
        "jpeg": _write(tmp_path, "huge.jpg", _with_jpeg_size(_jpeg(), 16000, 16000)),
        "png": _write(tmp_path, "huge.png", _with_png_size(_png(), 20000, 20000)),
        "tiff": _write(tmp_path, "huge.tif", _tiff(60000, 60000)),
        "pfm": _write(tmp_path, "huge.pfm", b"PF\n50000 50000\n-1.0\n" + b"\x00" * 4096),
        "hdr": _write(tmp_path, "huge.hdr", b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n"
                      + (b"\x02\x02\x75\x30" + b"\xff\x01" * 8) * 64),
        "exr": _write(tmp_path, "huge.exr", exr),
    }


# ----------------------------------------------------------------------------- 1. pixel budget

@pytest.mark.parametrize("kind", ["jpeg", "png", "tiff", "pfm", "hdr", "exr"])
def test_header_size_over_budget_is_refused_before_decoding(tmp_path, kind):
    path = _huge_files(tmp_path)[kind]
    reader = read_frame if kind in ("jpeg", "png", "tiff") else read_hdr
    with pytest.raises(HdrError, match="over the budget|absurd") as info:
        reader(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_refused_files_keep_memory_small(tmp_path):
    """Peak RSS of a process that is refused every huge file stays near its baseline (<< 1 GB)."""
    files = _huge_files(tmp_path)
    script = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # an attempt to allocate would fail loudly
        from hdrcli.errors import HdrError
        from hdrcli.io.frames import read_frame
        from hdrcli.io.hdr import read_hdr
        def peak_kb():  # this process's own memory map (ru_maxrss keeps the forking parent's peak)
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        base = peak_kb()
        for kind, path in {json.dumps({k: str(v) for k, v in files.items()})}.items():
            try:
                (read_frame if kind in ("jpeg", "png", "tiff") else read_hdr)(path)
            except HdrError:
                pass
            else:
                raise SystemExit(kind + " accepted")
        print(base // 1024, peak_kb() // 1024)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    base_mb, peak_mb = map(int, result.stdout.split())
    assert peak_mb - base_mb < 100 and peak_mb < 1024, (base_mb, peak_mb)


def test_budget_is_one_setting(tmp_path, monkeypatch):
    path = _write(tmp_path, "small.png", _png(30, 40))  # 1200 pixels
    assert read_frame(path).size == (40, 30)
    with pytest.raises(HdrError, match="over the budget"):
        read_frame(path, max_pixels=1000)
    assert read_frame(path, max_pixels=1200).size == (40, 30)
    assert max_pixels_setting() == DEFAULT_MAX_PIXELS
    configure(max_pixels=1000)  # what --max-pixels does; inherited by worker processes
    assert os.environ["HDRCLI_MAX_PIXELS"] == "1000"
    with pytest.raises(HdrError, match="over the budget"):
        read_frames([path, path])
    with pytest.raises(HdrError, match="over the budget"):
        read_hdr(_write(tmp_path, "x.pfm", b"PF\n40 30\n-1\n" + b"\0" * 40 * 30 * 12))
    with pytest.raises(HdrError, match="at least 1"):
        configure(max_pixels=0)


def test_raw_budget_checked_from_libraw_sizes():
    raw = shared_path("raw", "RAW_KODAK_DC50.KDC")
    with pytest.raises(HdrError, match="camera RAW .* over the budget"):
        read_frame(raw, max_pixels=100_000)
    assert read_frame(raw).size == (768, 512)


@pytest.mark.parametrize("kind", ["jpeg", "progressive jpeg", "png"])
def test_tiny_file_declaring_large_image_within_budget_is_refused(tmp_path, kind):
    if kind == "png":
        data = _with_png_size(_png(), 12000, 12000)
    else:
        progressive = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if kind.startswith("progressive") else []
        data = _with_jpeg_size(cv2.imencode(".jpg", _photo(48, 64), progressive)[1].tobytes(), 12000, 12000)
        assert (b"\xff\xc2" in data) == bool(progressive)
    with pytest.raises(HdrError, match="too small for the 12000x12000 image"):
        read_frame(_write(tmp_path, "small.jpg" if "jpeg" in kind else "small.png", data))


def test_progressive_jpeg_bound_keeps_flat_images(tmp_path):
    """A flat progressive JPEG is the best libjpeg compresses (about 2 bits per 8x8 luma block; the
    bound is 1): grey and colour, any quality, read."""
    for image in (np.full((1000, 1000, 3), 128, np.uint8), np.zeros((1000, 1000), np.uint8)):
        for quality in (5, 95):
            data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, quality])[1]
            assert read_frame(_write(tmp_path, "flat.jpg", data.tobytes())).size == (1000, 1000)


def test_tiff_channels_and_tiles_are_bounded(tmp_path):
    with pytest.raises(HdrError, match="channels"):
        read_frame(_write(tmp_path, "chan.tif", _tiff(10000, 10000, samples=60000)))
    with pytest.raises(HdrError, match="bits per sample|absurd"):
        read_frame(_write(tmp_path, "bits.tif", _tiff(100, 100, bits=200)))


def test_header_parsers_read_real_sizes(tmp_path):
    import io

    assert (jpeg_header(io.BytesIO(_jpeg(48, 64))).width, jpeg_header(io.BytesIO(_jpeg(48, 64))).height) == (64, 48)
    assert png_header(io.BytesIO(_png(30, 20))).width == 20
    header = tiff_header(io.BytesIO(cv2.imencode(".tif", _photo(30, 20).astype(np.uint16))[1].tobytes()))
    assert (header.width, header.height, header.channels, header.bytes_per_sample) == (20, 30, 3, 2)
    import tifffile

    big = io.BytesIO()
    tifffile.imwrite(big, _photo(25, 35), bigtiff=True)
    assert tiff_header(big).width == 35


# ----------------------------------------------------------------------------- 2. special files

def _special_files(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    files = {"fifo": fifo, "dev-zero symlink": zero, "dev-null": Path("/dev/null")}
    sock_path = tmp_path / "sock.jpg"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    files["socket"] = sock_path
    return files


@pytest.mark.parametrize("reader", ["frame", "hdr", "exposure", "crf", "exif"])
def test_special_files_are_refused_without_blocking(tmp_path, reader):
    for name, path in _special_files(tmp_path).items():
        call = {
            "frame": lambda p: read_frame(p),
            "hdr": lambda p: read_hdr(p),
            "exposure": lambda p: read_exposure_file(p, ["a", "b"]),
            "crf": lambda p: load_response(p),
            "exif": lambda p: read_exif(str(p)),
        }[reader]
        if reader == "hdr":
            link = tmp_path / f"{name.replace(' ', '_')}.hdr"
            link.symlink_to(path)
            path = link
        with pytest.raises(HdrError, match="FIFO|character device|socket|not a regular file|unknown HDR") as info:
            call(path)
        assert str(path) in str(info.value), name


def test_text_inputs_have_a_size_limit(tmp_path):
    big = tmp_path / "exposures.txt"
    big.write_text("1/60\n" * 300_000)  # 1.5 MB
    with pytest.raises(HdrError, match="larger than the limit"):
        read_exposure_file(big, ["a", "b"])
    crf = tmp_path / "big.crf"
    crf.write_text("1 1 1\n" * 250_000)
    with pytest.raises(HdrError, match="larger than the limit"):
        load_response(crf)
    scene = tmp_path / "scene"
    scene.mkdir()
    (scene / "exposure.txt").symlink_to("/dev/zero")
    from hdrcli.io.scene import read_scene

    cv2.imwrite(str(scene / "a.tif"), _photo())
    with pytest.raises(HdrError, match="character device|exposure.txt"):
        read_scene(scene)


def test_text_inputs_binary_or_bad_values(tmp_path):
    binary = _write(tmp_path, "b.txt", b"\x00\x01\x02")
    with pytest.raises(HdrError, match="binary"):
        read_exposure_file(binary, ["a"])
    crf = tmp_path / "nan.crf"
    save_response(crf, linear_response())
    crf.write_text(crf.read_text().replace("1 1 1", "nan nan nan"))
    with pytest.raises(HdrError, match="non-finite|monoton"):
        load_response(crf)


# ----------------------------------------------------------------------------- 3. corrupt frames

def _corrupt_jpegs() -> dict[str, bytes]:
    good = _jpeg(64, 96)
    sos = good.find(b"\xff\xda")
    return {
        # bytes after the scan before EOI: "Corrupt JPEG data: N extraneous bytes before marker 0xd9"
        "extraneous": good[:-2] + b"\xff\x00" * 0 + b"\x12\x34\x56" + b"\xff\xd9",
        # scan cut short but EOI present: "Corrupt JPEG data: premature end of data segment"
        "premature": good[: sos + (len(good) - sos) // 3] + b"\xff\xd9",
    }


@pytest.mark.parametrize("case", ["extraneous", "premature"])
def test_corrupt_jpeg_is_an_error_unless_allowed(tmp_path, case, caplog):
    path = _write(tmp_path, f"{case}.jpg", _corrupt_jpegs()[case])
    with pytest.raises(HdrError, match="corrupt JPEG data") as info:
        read_frame(path)
    assert str(path) in str(info.value) and "--allow-corrupt" in str(info.value)
    with caplog.at_level("WARNING", logger="hdrcli"):
        frame = read_frame(path, allow_corrupt=True)
    assert frame.size == (96, 64)
    assert any("corrupt JPEG" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


def test_truncated_jpeg_allowed_with_warning(tmp_path):
    path = _write(tmp_path, "cut.jpg", _jpeg(64, 96)[:-200])
    with pytest.raises(HdrError, match="truncated"):
        read_frame(path)
    assert read_frame(path, allow_corrupt=True).size == (96, 64)


def test_allow_corrupt_is_a_setting(tmp_path, monkeypatch):
    path = _write(tmp_path, "x.jpg", _corrupt_jpegs()["extraneous"])
    configure(allow_corrupt=True)
    assert read_frame(path).size == (96, 64)
    configure(allow_corrupt=False)
    with pytest.raises(HdrError):
        read_frame(path)


def test_corrupt_png_and_tiff(tmp_path):
    import tifffile

    png = bytearray(_png(64, 96))
    idat = png.find(b"IDAT")
    png[idat + 40 : idat + 60] = b"\x55" * 20
    with pytest.raises(HdrError, match="corrupt") as info:
        read_frame(_write(tmp_path, "bad.png", bytes(png)))
    assert "bad.png" in str(info.value)
    tif = tmp_path / "z.tif"
    tifffile.imwrite(tif, _photo(64, 96), compression="zlib")
    data = bytearray(tif.read_bytes())
    strip = tiff_header_strip(data)
    data[strip + 10 : strip + 40] = b"\xaa" * 30
    with pytest.raises(HdrError, match="corrupt TIFF") as info:
        read_frame(_write(tmp_path, "bad.tif", bytes(data)))
    assert "bad.tif" in str(info.value) and "\n" not in str(info.value)


def tiff_header_strip(data: bytearray) -> int:
    """Offset of the first strip of a little-endian TIFF (tag 273)."""
    ifd = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[ifd : ifd + 2])[0]
    for i in range(count):
        tag, kind, n, value = struct.unpack("<HHII", data[ifd + 2 + 12 * i : ifd + 14 + 12 * i])
        if tag == 273:
            return value if n == 1 else struct.unpack("<I", data[value : value + 4])[0]
    raise AssertionError("no strip offsets")


def test_opencv_errors_become_one_line(tmp_path, monkeypatch):
    path = _write(tmp_path, "a.png", _png())

    def boom(*_):
        raise cv2.error("OpenCV(5.0) loadsave.cpp:1: error: (-215:Assertion failed) size.width>0\n in function 'imdecode'\n")

    monkeypatch.setattr(cv2, "imdecode", boom)
    with pytest.raises(HdrError, match="corrupt PNG file \\(OpenCV") as info:
        read_frame(path)
    assert "\n" not in str(info.value) and "a.png" in str(info.value)


# ----------------------------------------------------------------------------- 4. scales and header values

def _hdrcli_png(tmp_path: Path, scale_text: bytes) -> Path:
    path = tmp_path / "r.png"
    write_hdr(path, radiance_scene(12, 16))
    data = path.read_bytes()
    pos = data.find(b"tEXthdrcli\x00")
    length = struct.unpack(">I", data[pos - 4 : pos])[0]
    chunk = _chunk(b"tEXt", b"hdrcli\x00scale=" + scale_text)
    path.write_bytes(data[: pos - 4] + chunk + data[pos + 4 + length + 4 :])
    return path


@pytest.mark.parametrize("scale", [b"abc", b"nan", b"inf", b"-1", b"0", b"1e400", b""])
def test_hdrcli_png_with_bad_scale(tmp_path, scale):
    path = _hdrcli_png(tmp_path, scale)
    with pytest.raises(HdrError, match="radiance scale") as info:
        read_hdr(path)
    assert "r.png" in str(info.value)


def test_hdrcli_png_scale_roundtrip_still_works(tmp_path):
    scene = radiance_scene(12, 16)
    path = _hdrcli_png(tmp_path, repr(float(scene.max())).encode())
    assert np.allclose(read_hdr(path), scene, atol=float(scene.max()) / 60000)


def test_hdrcli_tiff_with_nan_scale(tmp_path):
    import tifffile

    path = tmp_path / "r.tif"
    tifffile.imwrite(path, np.zeros((8, 8, 3), np.uint16), photometric="rgb",
                     description='{"hdrcli": {"scale": NaN}}', metadata=None)
    with pytest.raises(HdrError, match="radiance scale"):
        read_hdr(path)


@pytest.mark.parametrize("scale", [b"nan", b"inf", b"-inf", b"0", b"abc", b"1e999"])
def test_pfm_bad_scale(tmp_path, scale):
    path = _write(tmp_path, "x.pfm", b"PF\n4 3\n" + scale + b"\n" + b"\0" * 4 * 3 * 12)
    with pytest.raises(HdrError, match="PFM"):
        read_hdr(path)


def test_pfm_reader_matches_opencv(tmp_path):
    image = (np.random.default_rng(1).random((13, 17, 3)) * 50).astype(np.float32)
    cv2.imwrite(str(tmp_path / "a.pfm"), image)
    assert np.array_equal(read_hdr(tmp_path / "a.pfm"), image[:, :, ::-1])
    big_endian = b"PF\n2 1\n1.0\n" + np.array([[1, 2, 3, 4, 5, 6]], ">f4").tobytes()
    assert read_hdr(_write(tmp_path, "b.pfm", big_endian)).tolist() == [[[1, 2, 3], [4, 5, 6]]]
    with pytest.raises(HdrError, match="truncated PFM"):
        read_hdr(_write(tmp_path, "c.pfm", big_endian[:-4]))


@pytest.mark.parametrize("attribute, value, message", [
    (b"pixelAspectRatio", struct.pack("<f", float("nan")), "pixelAspectRatio"),
    (b"pixelAspectRatio", struct.pack("<f", -1.0), "pixelAspectRatio"),
    (b"screenWindowWidth", struct.pack("<f", float("inf")), "screenWindowWidth"),
    (b"dataWindow", struct.pack("<iiii", 0, 0, -5, 3), "invalid size"),
    (b"dataWindow", struct.pack("<iiii", -2**31, 0, 2**31 - 1, 3), "absurd"),
])
def test_exr_absurd_header_values(tmp_path, attribute, value, message):
    path = _write(tmp_path, "bad.exr", _with_exr_attribute(_exr_bytes(tmp_path), attribute, value))
    with pytest.raises(HdrError, match=message) as info:
        read_hdr(path)
    assert "bad.exr" in str(info.value)


def test_exr_too_short_for_its_declared_image_is_refused_before_decoding(tmp_path):
    """A small EXR declaring 100 MP (within the budget): its offset table and chunks alone need
    more bytes than the file has, so it is refused before OpenEXR allocates ~1.2 GB."""
    data = _with_exr_attribute(_exr_bytes(tmp_path), b"dataWindow", struct.pack("<iiii", 0, 0, 9999, 9999))
    path = _write(tmp_path, "short.exr", data)
    with pytest.raises(HdrError, match=r"too small for the 10000x10000 image") as info:
        read_hdr(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("compression", ["NO", "RLE", "ZIPS", "ZIP", "PIZ", "PXR24", "B44", "DWAA", "DWAB", "ZSTD"])
def test_exr_size_bound_accepts_every_compression(tmp_path, compression):
    """The least size per compression never refuses a valid file: flat images (best compression)
    and noise, scan lines and tiles, half and float; uncompressed files sit exactly on the bound."""
    import OpenEXR

    rng = np.random.default_rng(1)
    for image in (np.full((60, 80, 3), 0.5, np.float32), rng.random((60, 80, 3), dtype=np.float32)):
        for tiled in (False, True):
            for dtype in (np.float16, np.float32):
                header = {"compression": getattr(OpenEXR, f"{compression}_COMPRESSION"),
                          "type": OpenEXR.tiledimage if tiled else OpenEXR.scanlineimage}
                if tiled:
                    tiles = OpenEXR.TileDescription()
                    tiles.xSize, tiles.ySize = 16, 24
                    header["tiles"] = tiles
                path = tmp_path / f"{compression}.exr"
                with OpenEXR.File(header, {"RGB": image.astype(dtype)}) as exr:
                    exr.write(str(path))
                pixels = read_hdr(path)  # B44 and DWA are lossy: shape and mean level only
                assert pixels.shape == image.shape and abs(float(pixels.mean()) - float(image.mean())) < 0.02
    if compression == "NO":  # exact: one byte short is refused
        path.write_bytes(path.read_bytes()[:-1])
        with pytest.raises(HdrError, match="too small"):
            read_hdr(path)


# ----------------------------------------------------------------------------- 5. Radiance without temp files

def _rgbe_file(tmp_path: Path, name: str = "r.hdr") -> tuple[Path, np.ndarray]:
    scene = radiance_scene(24, 40)
    path = tmp_path / name
    write_hdr(path, scene)
    return path, read_hdr(path)


def test_radiance_reader_variants(tmp_path):
    path, reference = _rgbe_file(tmp_path)
    data = path.read_bytes()
    expected = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert np.array_equal(reference, expected)
    # a line before the signature (as memorial.hdr) goes through the numpy RLE reader
    junk = _write(tmp_path, "junk.hdr", b"written by some tool\n" + data)
    assert np.array_equal(read_hdr(junk), expected)
    width, height, orientation, order, offset = radiance_header(data)
    assert (width, height, orientation, order) == (40, 24, "-Y+X", "yx")
    # bottom-to-top storage: the same pixels, flipped
    flipped = _write(tmp_path, "flip.hdr", data.replace(b"-Y 24 +X 40", b"+Y 24 +X 40"))
    assert np.array_equal(read_hdr(flipped), expected[::-1])
    # flat (not run-length encoded) pixels
    header = data[:offset]
    rgbe = np.zeros((24, 40, 4), np.uint8)
    rgbe[..., :3] = 128
    rgbe[..., 3] = 129  # 0.5 * 2 = 1.0
    flat = _write(tmp_path, "flat.hdr", header + rgbe.tobytes())
    assert np.allclose(read_hdr(flat), 1.0)
    with pytest.raises(HdrError, match="truncated Radiance|corrupt Radiance"):
        read_hdr(_write(tmp_path, "cut.hdr", b"x\n" + data[: len(data) * 2 // 3]))
    with pytest.raises(HdrError, match="32-bit_rle_rgbe"):
        read_hdr(_write(tmp_path, "xyz.hdr", data.replace(b"32-bit_rle_rgbe", b"32-bit_rle_xyze")))


def test_tonemap_of_hdr_leaves_temp_folder_empty(tmp_path, monkeypatch):
    from hdrcli.pipeline import tonemap_file

    path, _ = _rgbe_file(tmp_path)
    data = path.read_bytes()
    junk = _write(tmp_path, "junk.hdr", b"junk line\n" + data)
    cut = _write(tmp_path, "cut.hdr", data[: len(data) // 2])
    huge = _write(tmp_path, "huge.hdr", data.replace(b"-Y 24 +X 40", b"-Y 40000 +X 40000"))
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setenv("OPENCV_TEMP_PATH", str(temp))
    # cv2.imdecode (hdrcli's old reader) leaves its "__opencv_temp.*" copy of huge.hdr in TMPDIR
    # (OpenCV 5.0 raises on the size after writing the copy); every case below would show it.
    for source, ok in ((path, True), (junk, True), (cut, False), (huge, False)):
        try:
            tonemap_file(source, tmp_path / f"{source.stem}.jpg")
            assert ok, source
        except HdrError:
            assert not ok, source
        assert list(temp.iterdir()) == [], source
    with pytest.raises(HdrError):  # also past the pixel budget: refused from the file size, no decode
        read_hdr(huge, max_pixels=2_000_000_000)
    assert list(temp.iterdir()) == []


def test_learned_runs_leave_the_temp_folder_empty(tmp_path):
    """onnxruntime 1.31's telemetry SDK writes $TMPDIR/.ses when it loads, and torch's ONNX export
    fills $TMPDIR/torchinductor_USER: both are given a private scratch folder, removed after."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.clip(np.arange(64 * 96 * 3).reshape(64, 96, 3) % 256, 0, 255).astype(np.uint8))
    env = dict(os.environ, TMPDIR=str(temp))
    for args in (["expand", photo, "-o", tmp_path / "out.exr", "--runtime", "onnx", "--device", "cpu"],
                 ["export", "--backend", "twostage", "--whole", "-o", tmp_path / "twostage.onnx"]):
        r = subprocess.run([sys.executable, "-m", "hdrcli.cli", *map(str, args)], capture_output=True, text=True,
                           env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        assert list(temp.iterdir()) == [], args[0]


def test_private_scratch_points_libraries_at_a_folder_it_removes(monkeypatch, tmp_path):
    import tempfile

    from hdrcli.io.atomic import private_scratch

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    before = tempfile.tempdir
    with private_scratch() as folder:
        assert os.environ["TMPDIR"] == str(folder) == tempfile.gettempdir()
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"].startswith(str(folder))
        (folder / ".ses").write_text("left by a library")
    assert not folder.exists() and os.environ["TMPDIR"] == str(tmp_path)
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ and tempfile.tempdir == before


# ----------------------------------------------------------------------------- 6. names

def test_non_utf8_file_names(tmp_path):
    base = os.fsencode(tmp_path)
    png = os.fsdecode(base + b"/caf\xe9.png")
    Path(png).write_bytes(_png())
    assert read_frame(png).size == (64, 48)
    exr = os.fsdecode(base + b"/\xff\xfe.exr")
    write_hdr(tmp_path / "plain.exr", radiance_scene(6, 8))  # (writing to such names is the writers' business)
    Path(exr).write_bytes((tmp_path / "plain.exr").read_bytes())
    assert read_hdr(exr).shape == (6, 8, 3)
    hdr_file = os.fsdecode(base + b"/r\xe9.hdr")
    write_hdr(tmp_path / "plain.hdr", radiance_scene(6, 8))
    Path(hdr_file).write_bytes((tmp_path / "plain.hdr").read_bytes())
    assert read_hdr(hdr_file).shape == (6, 8, 3)
    # (ASCII output name: writing to non-UTF-8 names is the writers' business)
    result = subprocess.run([*HDR, "tonemap", os.fsencode(exr), "-o", base + b"/out.jpg"],
                            capture_output=True, env=dict(os.environ, NO_COLOR="1"), timeout=120)
    assert b"Traceback" not in result.stderr
    assert result.returncode == 0 or len(result.stderr.strip().splitlines()) == 1, result.stderr


# ----------------------------------------------------------------------------- 7. mutation loop

def _seeds(tmp_path: Path) -> dict[str, bytes]:
    import tifffile

    tif = tmp_path / "seed.tif"
    tifffile.imwrite(tif, _photo(40, 56), compression="zlib")
    hdr_path, _ = _rgbe_file(tmp_path, "seed.hdr")
    write_hdr(tmp_path / "seed.pfm", radiance_scene(10, 12))
    write_hdr(tmp_path / "seed16.png", radiance_scene(10, 12))
    return {
        ".jpg": _jpeg(40, 56), ".png": _png(40, 56), ".tif": tif.read_bytes(),
        ".hdr": hdr_path.read_bytes(), ".pfm": (tmp_path / "seed.pfm").read_bytes(),
        ".exr": _exr_bytes(tmp_path, 10, 12), "16.png": (tmp_path / "seed16.png").read_bytes(),
    }


def test_mutated_files_only_raise_hdr_error(tmp_path):
    """Bit flips, truncations and header edits (deterministic): HdrError or a valid image, nothing else."""
    rng = random.Random(13)
    outcomes = {"ok": 0, "refused": 0}
    for suffix, seed in _seeds(tmp_path).items():
        for i in range(25):
            data = bytearray(seed)
            op = i % 4
            if op == 0:
                for _ in range(rng.randint(1, 20)):
                    p = rng.randrange(len(data))
                    data[p] ^= 1 << rng.randrange(8)
            elif op == 1:
                data = data[: rng.randrange(1, len(data))]
            elif op == 2:
                p = rng.randrange(min(len(data), 200) - 4)
                data[p : p + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00", b"9999"])
            else:
                p = rng.randrange(len(data))
                data[p : p + 64] = bytes(len(data[p : p + 64]))
            path = _write(tmp_path, f"m{i}{suffix}", bytes(data))
            try:
                if suffix in (".jpg", ".png", ".tif"):
                    image = read_frame(path).pixels
                else:
                    image = read_hdr(path)
                assert image.ndim == 3 and image.shape[2] == 3 and np.isfinite(image).all()
                outcomes["ok"] += 1
            except HdrError as exc:
                assert "\n" not in str(exc) and str(path) in str(exc)
                outcomes["refused"] += 1
    assert outcomes["refused"] > 50, outcomes


# ----------------------------------------------------------------------------- CLI options

def _cli(*args, env=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", **(env or {}))
    env.pop("HDRCLI_MAX_PIXELS", None)
    env.pop("HDRCLI_ALLOW_CORRUPT", None)
    return subprocess.run([*HDR, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_cli_max_pixels_and_allow_corrupt(tmp_path):
    huge = _huge_files(tmp_path)["jpeg"]
    # Two stops darker than the corrupt frame's picture: with --ev 0,2 the two make a bracket.
    good = _write(tmp_path, "good.jpg", cv2.imencode(".jpg", _photo(64, 96) // 2)[1].tobytes())
    bad = _write(tmp_path, "bad.jpg", _corrupt_jpegs()["extraneous"])
    out = tmp_path / "out"
    out.mkdir()
    result = _cli("fuse", huge, good, "--ev", "0,2", "-o", out / "a.exr")
    assert result.returncode == 1 and len(_error_lines(result)) == 1
    assert _error_lines(result)[0].startswith(f"error: {huge}: JPEG is 16000x16000")
    result = _cli("fuse", good, bad, "--ev", "0,2", "-b", "mertens", "--align", "none", "-o", out / "b.jpg")
    assert result.returncode == 1 and "corrupt JPEG data" in result.stderr and str(bad) in result.stderr
    assert len(_error_lines(result)) == 1, result.stderr  # libjpeg's own line is not shown
    result = _cli("fuse", good, bad, "--ev", "0,2", "-b", "mertens", "--align", "none", "-o", out / "b.jpg",
                  "--allow-corrupt")
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr and "corrupt JPEG" in result.stderr
    exr = tmp_path / "r.exr"
    write_hdr(exr, radiance_scene(12, 16))
    result = _cli("tonemap", exr, "-o", out / "t.jpg", "--max-pixels", "100")
    assert result.returncode == 1 and "over the budget of 100 pixels" in result.stderr
    assert not (out / "t.jpg").exists()
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    result = _cli("fuse", fifo, good, "--ev", "0,2", "-o", out / "c.exr")
    assert result.returncode == 1 and len(_error_lines(result)) == 1 and "FIFO" in result.stderr


def test_jpeg_scan_bomb_is_refused(tmp_path):
    good = _jpeg(48, 64)
    padding = b"\xff\xda" * 600
    bomb = good[:2] + b"\xff\xfe" + struct.pack(">H", len(padding) + 2) + padding + good[2:]
    with pytest.raises(HdrError, match="more than 500 scans"):
        read_frame(_write(tmp_path, "bomb.jpg", bomb))
