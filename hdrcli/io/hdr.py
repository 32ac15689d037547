"""HDR image files: writers chosen by extension, and readers for the same formats.

Formats (all hold linear RGB radiance, float32 arrays (H, W, 3) in memory):

========  ==========================================================================
``.exr``  OpenEXR through the ``openexr`` package, ZIP compression; half floats by
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
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hdrcli.errors import HdrError
from hdrcli.io.atomic import atomic_path
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
    """Finite, non-negative float32 copy of an HDR image (see module docstring)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    finite = np.isfinite(rgb)
    if not finite.all():
        top = float(rgb[finite].max()) if finite.any() else 0.0
        rgb = np.nan_to_num(rgb, nan=0.0, posinf=top, neginf=0.0)
    return np.maximum(rgb, 0.0)


# --------------------------------------------------------------------------- writers

def _write_exr(tmp: Path, rgb: np.ndarray, float32: bool, metadata: dict[str, str]) -> None:
    import OpenEXR

    if float32:
        pixels = rgb.astype(np.float32)
    else:
        if float(rgb.max(initial=0.0)) > HALF_MAX:
            warn(f"values above {HALF_MAX:g} clipped to fit half floats (use --float32 to keep them)")
        pixels = np.minimum(rgb, HALF_MAX).astype(np.float16)
    header: dict[str, Any] = {
        "compression": OpenEXR.ZIP_COMPRESSION,
        "type": OpenEXR.scanlineimage,
    }
    header.update({f"hdrcli:{k}": str(v) for k, v in metadata.items()})
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
    if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2BGR)):
        raise HdrError("OpenCV could not write this format", tmp)


def write_hdr(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    *,
    float32: bool = False,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write linear RGB radiance (H, W, 3) to ``path``, format chosen by its extension.

    The file appears whole or not at all (temporary file + rename). ``float32`` selects
    full floats for EXR (half otherwise); ``metadata`` goes into EXR header attributes.
    """
    fmt = output_format(path)
    rgb = sanitize(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    with atomic_path(path) as tmp:
        if fmt == "exr":
            _write_exr(tmp, rgb, float32, metadata or {})
        elif fmt == "png":
            _write_png16(tmp, rgb)
        elif fmt == "tif":
            _write_tiff16(tmp, rgb)
        else:  # hdr, pfm
            _write_cv2(tmp, rgb)
    return Path(path)


# --------------------------------------------------------------------------- readers

def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            channels = {name: np.asarray(ch.pixels, dtype=np.float32) for name, ch in exr.channels().items()}
    except Exception as exc:  # the binding raises plain RuntimeError/Exception on bad files
        raise HdrError(f"not a readable OpenEXR file ({exc})", path) from None
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


def _read_radiance(path: Path, data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        # Tolerate junk before the '#?RADIANCE' / '#?RGBE' signature line.
        start = data.find(b"#?", 0, 4096)
        if start >= 0:
            end = data.find(b"\n", start)
            fixed = b"#?RADIANCE" + data[end:] if end > 0 else b""
            image = cv2.imdecode(np.frombuffer(fixed, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise HdrError("not a readable Radiance RGBE (.hdr) file", path)
    return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_BGR2RGB)


def _png_scale(data: bytes) -> float | None:
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
                return float(text[6:])
        pos += 12 + length
    return None


def _read_16bit(path: Path, data: bytes, fmt: str) -> np.ndarray:
    scale = None
    if fmt == "png":
        scale = _png_scale(data)
    else:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                description = tif.pages[0].description or ""
            scale = float(json.loads(description)["hdrcli"]["scale"])
        except (ValueError, KeyError, TypeError, OSError, tifffile.TiffFileError):
            scale = None
    if scale is None:
        raise HdrError("16-bit image without hdrcli's radiance scale tag: not an HDR file written by hdrcli", path)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16:
        raise HdrError("corrupt 16-bit image", path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(scale / 65535.0)


def read_hdr(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an HDR image (.exr, .hdr/.pic, .pfm, or hdrcli's 16-bit .png/.tif) as float32 RGB."""
    path = Path(path)
    if not path.is_file():
        raise HdrError("no such file", path)
    suffix = path.suffix.lower()
    if suffix == ".exr":
        rgb = _read_exr(path)
    else:
        data = path.read_bytes()
        if not data:
            raise HdrError("empty file (0 bytes)", path)
        if suffix in (".hdr", ".pic", ".rgbe"):
            rgb = _read_radiance(path, data)
        elif suffix == ".pfm":
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise HdrError("not a readable PFM file", path)
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else np.repeat(image[:, :, None], 3, 2)
        elif suffix in (".png", ".tif", ".tiff"):
            rgb = _read_16bit(path, data, "png" if suffix == ".png" else "tif")
        else:
            raise HdrError(f"unknown HDR extension '{suffix}'; expected .exr, .hdr, .pfm, .png or .tif", path)
    return sanitize(rgb)
