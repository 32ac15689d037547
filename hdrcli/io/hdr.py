"""HDR image files: writers chosen by extension, and readers for the same formats.

Formats (all hold linear RGB radiance, float32 arrays (H, W, 3) in memory):

========  ==========================================================================
``.exr``  OpenEXR through the ``openexr`` package, PIZ compression; half floats by
          default (11-bit mantissa, max 65504: larger values are clipped to it),
          float32 with ``float32=True``.
``.hdr``  Radiance RGBE (8-bit mantissa per channel + shared exponent, ~1% precision).
``.pfm``  Portable float map, float32.
``.png``  16-bit PNG, **linear** values scaled so the image maximum is 65535. The scale
          is stored in a ``tEXt`` chunk (keyword ``hdrcli``, text ``scale=<float>``):
          radiance = value / 65535 * scale. Absolute error <= scale / 131070.
``.tif``  16-bit TIFF, same encoding; the scale is in the ImageDescription tag as JSON
          ``{"hdrcli": {"scale": <float>}}``.
========  ==========================================================================

Non-finite values are replaced (NaN -> 0, +inf -> the largest finite value) and negative
values are clipped to 0 before writing, since radiance is non-negative.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hdrcli.errors import HdrError
from hdrcli.io.atomic import atomic_path
from hdrcli.io.decode import decoder_messages, imdecode_checked
from hdrcli.io.headers import ImageHeader, check_file_size, check_tiles, exr_header, png_header, tiff_header
from hdrcli.io.limits import allow_corrupt_setting, check_pixels, max_file_bytes, max_pixels_setting
from hdrcli.io.safe_open import descriptor_path, file_size, open_regular, read_bounded
from hdrcli.log import warn

HDR_EXTENSIONS = (".exr", ".hdr", ".pfm", ".png", ".tif", ".tiff")
HALF_MAX = 65504.0
_PNG_KEY = b"hdrcli"


def output_format(path: str | os.PathLike[str]) -> str:
    """The HDR format ('exr', 'hdr', 'pfm', 'png', 'tif') for an output path."""
    suffix = Path(path).suffix.lower()
    if suffix not in HDR_EXTENSIONS:
        known = ", ".join(HDR_EXTENSIONS)
        raise HdrError(f"unknown output extension '{suffix or '(none)'}'; use one of {known}", path)
    return "tif" if suffix == ".tiff" else suffix[1:]


def sanitize(rgb: np.ndarray) -> np.ndarray:
    """Finite, non-negative float32 version of an HDR image (see module docstring); the
    array itself when it already is (no full-size copies: 145 MB each at 12 MP)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    lo, hi = float(rgb.min(initial=0.0)), float(rgb.max(initial=0.0))  # NaN propagates through both
    if np.isfinite(lo) and np.isfinite(hi):
        return rgb if lo >= 0.0 else np.maximum(rgb, 0.0)
    finite = np.isfinite(rgb)
    if not finite.all():
        top = float(rgb[finite].max()) if finite.any() else 0.0
        rgb = np.nan_to_num(rgb, nan=0.0, posinf=top, neginf=0.0)
    return np.maximum(rgb, 0.0)


# --------------------------------------------------------------------------- writers

def _to_half(rgb: np.ndarray) -> np.ndarray:
    """Finite non-negative float32 (H, W, 3) as float16, values above HALF_MAX clipped to it
    (with a warning). OpenCV converts: numpy's float16 cast took 1.7 s on a 12 MP merge,
    OpenCV's 0.05 s, with the same bits (round to nearest even)."""
    if float(rgb.max(initial=0.0)) > HALF_MAX:
        warn(f"values above {HALF_MAX:g} clipped to fit half floats (use --float32 to keep them)")
        rgb = np.minimum(rgb, np.float32(HALF_MAX))
    if rgb.size == 0:  # (OpenCV returns None for an empty array)
        return rgb.astype(np.float16)
    h, w, c = rgb.shape
    # One channel of w * c columns: the scale 1.0 is then unambiguous (OpenCV versions read a
    # scalar for a multi-channel array as (s, 0, 0, 0) or (s, s, s, s)).
    half = cv2.multiply(np.ascontiguousarray(rgb, np.float32).reshape(h, w * c), 1.0, dtype=cv2.CV_16F)
    return half.reshape(h, w, c)


def _write_exr(tmp: Path, rgb: np.ndarray, float32: bool, metadata: dict[str, str],
               attributes: dict[str, Any] | None = None) -> None:
    import OpenEXR

    pixels = rgb.astype(np.float32, copy=False) if float32 else _to_half(rgb)
    header: dict[str, Any] = {
        # PIZ (lossless wavelet): on a 12 MP half-float merge half the CPU time of ZIP and a
        # 5% smaller file (0.53 s / 43.4 MB against 1.0 s / 45.7 MB; bench/exr_write.py).
        "compression": OpenEXR.PIZ_COMPRESSION,
        "type": OpenEXR.scanlineimage,
    }
    header.update(attributes or {})  # standard attributes (capDate, owner, chromaticities, ...)
    header.update({f"hdrcli:{k}": str(v) for k, v in metadata.items()})
    for key, value in header.items():  # file names that are not UTF-8 (surrogates): bytes kept as \xNN
        if isinstance(value, str):
            header[key] = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    with OpenEXR.File(header, {"RGB": np.ascontiguousarray(pixels)}) as exr:
        exr.write(str(tmp))


def _scale_for_16bit(rgb: np.ndarray) -> float:
    top = float(rgb.max(initial=0.0))
    return top if top > 0 else 1.0


def _png_text_chunk(keyword: bytes, text: bytes) -> bytes:
    body = keyword + b"\x00" + text
    return struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)


def _write_png16(tmp: Path, rgb: np.ndarray) -> None:
    scale = _scale_for_16bit(rgb)
    quantised = np.clip(np.rint(rgb.astype(np.float64) * (65535.0 / scale)), 0, 65535).astype(np.uint16)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(quantised, cv2.COLOR_RGB2BGR))
    if not ok:
        raise HdrError("PNG encoder failed", tmp)
    data = encoded.tobytes()
    # Insert the scale as a tEXt chunk right after IHDR (8-byte signature + 25-byte IHDR).
    chunk = _png_text_chunk(_PNG_KEY, f"scale={scale!r}".encode())
    tmp.write_bytes(data[:33] + chunk + data[33:])


def _write_tiff16(tmp: Path, rgb: np.ndarray) -> None:
    import tifffile

    scale = _scale_for_16bit(rgb)
    quantised = np.clip(np.rint(rgb.astype(np.float64) * (65535.0 / scale)), 0, 65535).astype(np.uint16)
    tifffile.imwrite(
        tmp, quantised, photometric="rgb", compression="zlib",
        description=json.dumps({"hdrcli": {"scale": scale, "encoding": "linear"}}), metadata=None,
    )


def _write_cv2(tmp: Path, rgb: np.ndarray) -> None:
    # Encoded in memory, written by Python: a full disk is an OSError, not OpenCV log lines.
    ok, encoded = cv2.imencode(tmp.suffix.lower(), cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2BGR))
    if not ok:
        raise HdrError("OpenCV could not write this format", tmp)
    tmp.write_bytes(encoded.tobytes())


def write_hdr(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    *,
    float32: bool = False,
    metadata: dict[str, str] | None = None,
    attributes: dict[str, Any] | None = None,
) -> Path:
    """Write linear RGB radiance (H, W, 3) to ``path``, format chosen by its extension.

    The file appears whole or not at all (temporary file + rename). ``float32`` selects
    full floats for EXR (half otherwise); ``metadata`` goes into EXR header attributes
    ``hdrcli:<key>``; ``attributes`` are typed OpenEXR standard attributes (see
    hdrcli.io.metadata.exr_attributes), EXR only.
    """
    fmt = output_format(path)
    rgb = sanitize(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    with atomic_path(path) as tmp:
        if fmt == "exr":
            _write_exr(tmp, rgb, float32, metadata or {}, attributes)
        elif fmt == "png":
            _write_png16(tmp, rgb)
        elif fmt == "tif":
            _write_tiff16(tmp, rgb)
        else:  # hdr, pfm
            _write_cv2(tmp, rgb)
    return Path(path)


def write_maps(path: str | os.PathLike[str], maps: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    """Write named single-channel float maps (H, W), e.g. merge weights and ghost maps, as
    one multi-channel half-float OpenEXR file (ZIP); ``metadata`` as ``hdrcli:<key>`` attributes."""
    import OpenEXR

    if Path(path).suffix.lower() != ".exr":
        raise HdrError("weight and ghost maps are written as OpenEXR: use a .exr name", path)
    header: dict[str, Any] = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    header.update({f"hdrcli:{k}": str(v).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                   for k, v in (metadata or {}).items()})
    channels = {name: np.ascontiguousarray(np.nan_to_num(m, nan=0.0).astype(np.float16)) for name, m in maps.items()}
    with atomic_path(path) as tmp:
        with OpenEXR.File(header, channels) as exr:
            exr.write(str(tmp))
    return Path(path)


# --------------------------------------------------------------------------- readers

def _read_exr(path: Path, fh: Any, budget: int) -> np.ndarray:
    import OpenEXR

    parts = exr_header(fh, path)
    header_end = fh.tell()
    for part in parts:
        check_pixels(part.width, part.height, path, channels=len(part.channels), bytes_per_sample=4,
                     max_pixels=budget, what="OpenEXR image")
    if sum(p.width * p.height for p in parts) > budget:
        check_pixels(1, sum(p.width * p.height for p in parts), path, max_pixels=budget, what="OpenEXR file (all parts)")
    # A file too short for its chunks is refused before OpenEXR allocates the declared image.
    declared = ImageHeader(parts[0].width, parts[0].height, len(parts[0].channels), 4,
                           min_file_bytes=header_end + sum(p.min_bytes for p in parts))
    too_small = check_file_size(declared, file_size(fh))
    if too_small:
        raise HdrError(too_small, path)
    try:
        with OpenEXR.File(descriptor_path(fh, path), separate_channels=True) as exr:
            channels = {name: np.asarray(ch.pixels, dtype=np.float32) for name, ch in exr.channels().items()}
    except Exception as exc:  # the binding raises plain RuntimeError/Exception on bad files
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise HdrError(f"not a readable OpenEXR file ({detail})", path) from None
    if all(c in channels for c in "RGB"):
        return np.stack([channels["R"], channels["G"], channels["B"]], axis=-1)
    if "Y" in channels and "RY" in channels and "BY" in channels:
        return _luminance_chroma_to_rgb(channels["Y"], channels["RY"], channels["BY"])
    if "Y" in channels:
        return np.repeat(channels["Y"][:, :, None], 3, axis=2)
    if len(channels) == 1:
        (only,) = channels.values()
        return np.repeat(only[:, :, None], 3, axis=2)
    raise HdrError(f"no RGB or Y channels (has {', '.join(sorted(channels))})", path)


def _luminance_chroma_to_rgb(y: np.ndarray, ry: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Decode OpenEXR's luminance/chroma encoding (Rec. 709 primaries, chroma subsampled 2x2).

    RY = (R - Y) / Y and BY = (B - Y) / Y, so R = Y (1 + RY), B = Y (1 + BY), and G
    follows from Y = 0.2126 R + 0.7152 G + 0.0722 B.
    """
    h, w = y.shape
    ry = cv2.resize(ry, (w, h), interpolation=cv2.INTER_LINEAR)
    by = cv2.resize(by, (w, h), interpolation=cv2.INTER_LINEAR)
    r = y * (1.0 + ry)
    b = y * (1.0 + by)
    g = (y - 0.2126 * r - 0.0722 * b) / 0.7152
    return np.maximum(np.stack([r, g, b], axis=-1), 0.0)


_HEADER_PREFIX = 1 << 16  # Radiance/PFM headers must lie within the first 64 KiB


def radiance_header(prefix: bytes, path: Path | None = None) -> tuple[int, int, str, str, int]:
    """Parse a Radiance header: (width, height, Y token, X token order, offset of the pixels).

    Junk before the ``#?RADIANCE`` / ``#?RGBE`` line (up to 4 KiB) is tolerated. The
    resolution line is ``-Y H +X W`` for the usual top-to-bottom, left-to-right order; the
    other seven orientations (``+Y``, ``-X``, X before Y) are accepted too. Only
    ``FORMAT=32-bit_rle_rgbe`` is read (XYZE files are refused rather than misread).
    """
    start = prefix.find(b"#?", 0, 4096)
    if start < 0:
        raise HdrError("not a Radiance RGBE (.hdr) file (no #?RADIANCE line)", path)
    pos = start
    while True:
        end = prefix.find(b"\n", pos)
        if end < 0:
            raise HdrError("truncated Radiance header (no resolution line in the first 64 KiB)", path)
        line = prefix[pos:end].strip()
        pos = end + 1
        if line.upper().startswith(b"FORMAT=") and line[7:].strip().lower() != b"32-bit_rle_rgbe":
            raise HdrError(f"unsupported Radiance pixel format '{line[7:].decode('latin-1')}' (only 32-bit_rle_rgbe)", path)
        if not line and pos - 1 > start:  # blank line: the resolution line follows
            break
    end = prefix.find(b"\n", pos)
    if end < 0:
        raise HdrError("truncated Radiance header (no resolution line)", path)
    tokens = prefix[pos:end].split()
    try:
        if len(tokens) != 4 or tokens[0][1:] not in (b"X", b"Y") or tokens[2][1:] not in (b"X", b"Y") \
                or tokens[0][1:] == tokens[2][1:] or tokens[0][:1] not in b"+-" or tokens[2][:1] not in b"+-":
            raise ValueError
        first, second = int(tokens[1]), int(tokens[3])
    except ValueError:
        raise HdrError(f"corrupt Radiance resolution line '{prefix[pos:end][:40].decode('latin-1')}'", path) from None
    ytok, xtok = (tokens[0], tokens[2]) if tokens[0][1:] == b"Y" else (tokens[2], tokens[0])
    height, width = (first, second) if tokens[0][1:] == b"Y" else (second, first)
    order = "yx" if tokens[0][1:] == b"Y" else "xy"
    return width, height, ytok.decode() + xtok.decode(), order, end + 1


def _rgbe_scanlines(data: bytes, offset: int, lines: int, length: int, path: Path) -> np.ndarray:
    """Decode ``lines`` scanlines of ``length`` RGBE pixels (new-style RLE or flat) to uint8 (lines, length, 4).

    As in Greg Ward's reference reader: a scanline starting with 2, 2 and its length
    (8..32767) is run-length encoded channel by channel; anything else means the rest of
    the image is stored flat.
    """
    out = np.empty((lines, length, 4), np.uint8)
    view = memoryview(data)
    n = len(data)
    pos = offset
    line = bytearray(4 * length)
    for y in range(lines):
        if not 8 <= length <= 0x7FFF or pos + 4 > n or data[pos] != 2 or data[pos + 1] != 2 or data[pos + 2] & 0x80:
            need = (lines - y) * length * 4
            if pos + need > n:
                raise HdrError("truncated Radiance file (pixel data ends early)", path)
            out[y:] = np.frombuffer(view[pos : pos + need], np.uint8).reshape(lines - y, length, 4)
            return out
        if (data[pos + 2] << 8 | data[pos + 3]) != length:
            raise HdrError(f"corrupt Radiance file (scanline {y} has the wrong length)", path)
        pos += 4
        for channel in range(4):
            i = channel * length
            stop = i + length
            while i < stop:
                if pos >= n:
                    raise HdrError("truncated Radiance file (pixel data ends early)", path)
                count = data[pos]
                if count > 128:  # a run of one value
                    count -= 128
                    if i + count > stop or pos + 1 >= n:
                        raise HdrError(f"corrupt Radiance file (bad run length in scanline {y})", path)
                    line[i : i + count] = data[pos + 1 : pos + 2] * count
                    pos += 2
                else:  # literal bytes
                    if count == 0 or i + count > stop or pos + 1 + count > n:
                        raise HdrError(f"corrupt Radiance file (bad run length in scanline {y})", path)
                    line[i : i + count] = view[pos + 1 : pos + 1 + count]
                    pos += 1 + count
                i += count
        out[y] = np.frombuffer(line, np.uint8).reshape(4, length).T
    return out


def _read_radiance(path: Path, fh: Any, budget: int) -> np.ndarray:
    """Radiance RGBE read with numpy (no temporary files; OpenCV's decoder copies the input to TMPDIR)."""
    prefix = fh.read(_HEADER_PREFIX)
    width, height, orientation, order, offset = radiance_header(prefix, path)
    check_pixels(width, height, path, channels=4, bytes_per_sample=1, max_pixels=budget, what="Radiance image")
    least = width * height * 4 // 64  # RLE stores at most 127 equal bytes in 2
    if file_size(fh) < least:
        raise HdrError(f"truncated Radiance file: {file_size(fh):,} bytes cannot hold the {width}x{height} "
                       f"image its header declares (at least {least:,})", path)
    if orientation == "-Y+X" and order == "yx" and prefix.startswith(b"#?"):
        # Fast path (C, ~5x faster than the loop below): OpenCV reading the already opened
        # file by name. Only imdecode (from memory) makes OpenCV copy the input to TMPDIR.
        try:
            with decoder_messages():
                image = cv2.imread(descriptor_path(fh, path), cv2.IMREAD_UNCHANGED)
        except (cv2.error, HdrError):
            image = None
        if image is not None and image.ndim == 3 and image.shape[:2] == (height, width):
            return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_BGR2RGB)
    # Everything else, and the precise error for damaged files: our own reader.
    data = read_bounded(fh, max_file_bytes(budget), path, "HDR file")
    lines, length = (height, width) if order == "yx" else (width, height)
    rgbe = _rgbe_scanlines(data, offset, lines, length, path)
    # Radiance pixel = mantissa * 2**(exponent - 136); exponent 0 is black (Ward's rgbe2float,
    # float32 arithmetic as in OpenCV's reader, so values are bit-identical).
    exponent = rgbe[:, :, 3].astype(np.int32)
    factor = np.ldexp(np.float32(1.0), exponent - 136).astype(np.float32)
    factor[exponent == 0] = 0.0
    rgb = rgbe[:, :, :3].astype(np.float32) * factor[:, :, None]
    if order == "xy":  # stored column by column
        rgb = rgb.transpose(1, 0, 2)
    if orientation.startswith("+Y"):
        rgb = rgb[::-1]
    if orientation.endswith("-X"):
        rgb = rgb[:, ::-1]
    return np.ascontiguousarray(rgb)


def pfm_header(prefix: bytes, path: Path | None = None) -> tuple[int, int, int, bool, int]:
    """Parse a PFM header: (width, height, channels, little endian, offset of the pixels)."""
    match = re.match(rb"(P[Ff])\s+(\d{1,9})\s+(\d{1,9})\s+(\S{1,64})\s", prefix)
    if match is None:
        raise HdrError("not a readable PFM file (bad header)", path)
    try:
        scale = float(match.group(4))
    except ValueError:
        raise HdrError(f"corrupt PFM header (scale '{match.group(4).decode('latin-1')}')", path) from None
    if not math.isfinite(scale) or scale == 0.0:
        raise HdrError(f"corrupt PFM header (scale {scale})", path)
    channels = 3 if match.group(1) == b"PF" else 1
    return int(match.group(2)), int(match.group(3)), channels, scale < 0, match.end()


def _read_pfm(path: Path, fh: Any, budget: int) -> np.ndarray:
    """PFM read with numpy: float32 samples, rows stored bottom to top."""
    width, height, channels, little, offset = pfm_header(fh.read(_HEADER_PREFIX), path)
    check_pixels(width, height, path, channels=channels, bytes_per_sample=4, max_pixels=budget, what="PFM image")
    data = read_bounded(fh, max_file_bytes(budget), path, "HDR file")
    need = width * height * channels * 4
    if len(data) - offset < need:
        raise HdrError(f"truncated PFM file ({len(data) - offset} of {need} pixel bytes)", path)
    image = np.frombuffer(data, "<f4" if little else ">f4", count=width * height * channels, offset=offset)
    image = image.astype(np.float32).reshape(height, width, channels)[::-1]
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image)


def _checked_scale(value: Any, path: Path) -> float:
    """hdrcli's radiance scale: a finite number > 0 that float32 can hold, else HdrError."""
    try:
        scale = float(value)
    except (TypeError, ValueError, OverflowError):
        raise HdrError(f"corrupt hdrcli radiance scale {str(value)[:40]!r} (not a number)", path) from None
    if not math.isfinite(scale) or not 0.0 < scale <= float(np.finfo(np.float32).max):
        raise HdrError(f"corrupt hdrcli radiance scale {scale!r} (must be finite and > 0)", path)
    return scale


def _png_scale(data: bytes, path: Path | None = None) -> float | None:
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            return None
        if kind == b"tEXt":
            body = data[pos + 8 : pos + 8 + length]
            key, _, text = body.partition(b"\x00")
            if key == _PNG_KEY and text.startswith(b"scale="):
                return _checked_scale(text[6:].decode("latin-1"), path or Path("?"))
        pos += 12 + length
    return None


def _tiff_scale(data: bytes, path: Path) -> float | None:
    import io

    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            description = tif.pages[0].description or ""
        value = json.loads(description)["hdrcli"]["scale"]
    except Exception:  # noqa: BLE001 - tifffile/json raise many types on foreign or damaged files
        return None
    return _checked_scale(value, path)


def _read_16bit(path: Path, fh: Any, fmt: str, budget: int, allow_corrupt: bool) -> np.ndarray:
    header = png_header(fh, path) if fmt == "png" else tiff_header(fh, path)
    check_pixels(header.width, header.height, path, channels=header.channels,
                 bytes_per_sample=header.bytes_per_sample, max_pixels=budget, what=fmt.upper())
    if fmt == "tif":
        check_tiles(header, path, budget)
    data = read_bounded(fh, max_file_bytes(budget), path, "HDR file")
    scale = _png_scale(data, path) if fmt == "png" else _tiff_scale(data, path)
    if scale is None:
        raise HdrError("16-bit image without hdrcli's radiance scale tag: not an HDR file written by hdrcli", path)
    image = imdecode_checked(data, path, fmt.upper(), allow_corrupt)
    if image.dtype != np.uint16 or image.ndim != 3 or image.shape[2] != 3:
        raise HdrError("corrupt 16-bit image (hdrcli writes 16-bit RGB)", path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(scale / 65535.0)


def read_hdr(
    path: str | os.PathLike[str], *, max_pixels: int | None = None, allow_corrupt: bool | None = None
) -> np.ndarray:
    """Read an HDR image (.exr, .hdr/.pic, .pfm, or hdrcli's 16-bit .png/.tif) as float32 RGB.

    The size the header declares is checked against the pixel budget before decoding
    (``max_pixels``; None: the configured budget, default 200 MP, see
    :mod:`hdrcli.io.limits`). ``allow_corrupt`` (None: configured, default False) accepts
    16-bit PNG/TIFF files whose decoder reported damage, with a warning.
    """
    path = Path(path)
    budget = max_pixels_setting(max_pixels)
    suffix = path.suffix.lower()
    if suffix not in (".exr", ".hdr", ".pic", ".rgbe", ".pfm", ".png", ".tif", ".tiff"):
        raise HdrError(f"unknown HDR extension '{suffix}'; expected .exr, .hdr, .pfm, .png or .tif", path)
    with open_regular(path, "HDR image") as fh:
        if file_size(fh) == 0:
            raise HdrError("empty file (0 bytes)", path)
        if suffix == ".exr":
            rgb = _read_exr(path, fh, budget)
        elif suffix in (".hdr", ".pic", ".rgbe"):
            rgb = _read_radiance(path, fh, budget)
        elif suffix == ".pfm":
            rgb = _read_pfm(path, fh, budget)
        else:
            rgb = _read_16bit(path, fh, "png" if suffix == ".png" else "tif", budget, allow_corrupt_setting(allow_corrupt))
    return sanitize(rgb)
