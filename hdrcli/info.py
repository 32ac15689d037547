"""``hdr info``: what an image file is.

Format, size, channels and storage type, value range, a robust dynamic range
(:mod:`hdrcli.dynamic_range`), metadata (EXIF summary or OpenEXR standard attributes),
hdrcli's own attributes, and for Ultra HDR JPEGs the gain-map parameters.

Value statistics are taken on linear values: HDR files as stored (radiance); Ultra HDR
files on the HDR rendition libultrahdr decodes (1.0 = SDR white); ordinary JPEG/PNG/TIFF
frames after sRGB decoding (16-bit TIFF/PNG frames likewise); RAW files on the linear
demosaic hdrcli merges (white = 1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hdrcli.dynamic_range import dynamic_range
from hdrcli.errors import HdrError

DR_METHOD = ("log2(p99.9 / p0.1) of Rec. 709 luminance over the pixels above the noise floor "
             "(top of the brightest half-stop band below the median luminance with SNR < 6)")
_EXR_STANDARD = ("capDate", "utcOffset", "expTime", "aperture", "isoSpeed", "owner", "comments", "chromaticities",
                 "latitude", "longitude", "altitude", "whiteLuminance")
_EXR_MAGIC = b"\x76\x2f\x31\x01"


def _json_value(value: Any) -> Any:
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return round(value, 6) if np.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return _json_value(value.item())
    return str(value)


def _stats(linear: np.ndarray) -> dict[str, Any]:
    dr = dynamic_range(linear)
    finite = linear[np.isfinite(linear)]
    return {
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "dynamic_range_stops": round(dr.stops, 2),
        "dynamic_range": {k: (round(v, 8) if isinstance(v, float) else v) for k, v in dr.as_dict().items()},
    }


def _exr_channel_types(path: Path) -> list[tuple[str, str]]:
    """(name, 'uint'|'half'|'float') of the first part's channels, from the header's chlist."""
    import struct

    with open(path, "rb") as fh:
        head = fh.read(65536)
    pos, found = 8, []
    kinds = {0: "uint", 1: "half", 2: "float"}
    try:
        while pos < len(head) and head[pos] != 0:
            name_end = head.index(b"\x00", pos)
            type_end = head.index(b"\x00", name_end + 1)
            attr, attr_type = head[pos:name_end], head[name_end + 1 : type_end]
            size = struct.unpack("<i", head[type_end + 1 : type_end + 5])[0]
            value = head[type_end + 5 : type_end + 5 + size]
            if attr == b"channels" and attr_type == b"chlist":
                p = 0
                while p < len(value) and value[p] != 0:
                    end = value.index(b"\x00", p)
                    pixel_type = struct.unpack("<i", value[end + 1 : end + 5])[0]
                    found.append((value[p:end].decode(errors="replace"), kinds.get(pixel_type, "?")))
                    p = end + 17
                return found
            pos = type_end + 5 + size
    except (ValueError, struct.error):
        pass
    return found


def _exr_info(path: Path) -> dict[str, Any]:
    import OpenEXR

    from hdrcli.io.hdr import read_hdr

    rgb = read_hdr(path)  # first: the hardened reader checks the file and the pixel budget
    names, types = [], set()
    try:
        header = dict(OpenEXR.File(str(path), header_only=True).header())
    except Exception:  # noqa: BLE001 - the pixels were readable; the header is informative only
        header = {}
    for name, pixel_type in _exr_channel_types(path):
        names.append(name)
        types.add(pixel_type)
    window = header.get("dataWindow")
    result: dict[str, Any] = {
        "format": "OpenEXR",
        "compression": str(header.get("compression", "")).split(".")[-1].replace("_COMPRESSION", "").lower() or None,
        "channels": sorted(names, key=lambda n: ("RGBAY".index(n) if n in "RGBAY" and n else 9, n)),
        "dtype": "/".join(sorted(types)) or None,
        "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
        "data_window": _json_value(window) if window is not None else None,
        "attributes": {k: _json_value(header[k]) for k in _EXR_STANDARD if k in header},
        "hdrcli": {k.split(":", 1)[1]: _json_value(v) for k, v in header.items() if k.startswith("hdrcli:")},
    }
    result.update(_stats(rgb))
    return result


def _ultrahdr_info(path: Path, data: bytes, params: dict) -> dict[str, Any]:
    from hdrcli.io.metadata import hdrcli_description, read_metadata
    from hdrcli.io.ultrahdr import decode_ultrahdr

    from hdrcli.io.headers import jpeg_header
    from hdrcli.io.limits import check_pixels

    with open(path, "rb") as fh:  # the decoder allocates the declared size: check it first
        header = jpeg_header(fh, path)
    check_pixels(header.width, header.height, path, channels=4, bytes_per_sample=2, what="Ultra HDR image")
    base, hdr = decode_ultrahdr(data)
    meta = read_metadata(path)
    result: dict[str, Any] = {
        "format": "Ultra HDR JPEG (gain map)",
        "width": int(base.shape[1]), "height": int(base.shape[0]),
        "channels": ["R", "G", "B"], "dtype": "uint8 base + gain map",
        "gain_map": _json_value(params),
        "values": "HDR rendition decoded by libultrahdr, linear, 1.0 = SDR white",
        "exif": meta.summary() if meta else {},
        "hdrcli": hdrcli_description(path),
    }
    result.update(_stats(hdr))
    return result


def _frame_info(path: Path, kind: str) -> dict[str, Any]:
    from hdrcli.align import srgb_to_linear
    from hdrcli.io.exif import read_exif
    from hdrcli.io.frames import read_frame
    from hdrcli.io.metadata import read_metadata

    frame = read_frame(path)
    linear = frame.pixels if frame.linear else srgb_to_linear(frame.pixels)
    meta = read_metadata(path)
    exif = frame.exif if kind == "heif" else read_exif(str(path))  # exifread reads no HEIF container
    summary = meta.summary() if meta else {}
    for key in ("exposure_time", "f_number", "iso"):  # exifread knows RAW maker layouts piexif does not
        value = getattr(exif, key, None)
        if value is not None and key not in summary:
            summary[key] = value
    if not meta and exif.camera:
        summary.setdefault("camera", exif.camera)
    result: dict[str, Any] = {
        "format": {"raw": "camera RAW", "jpeg": "JPEG", "png": "PNG", "tiff": "TIFF", "heif": "HEIF"}.get(kind, kind),
        "width": int(frame.pixels.shape[1]), "height": int(frame.pixels.shape[0]),
        "channels": ["R", "G", "B"], "dtype": f"uint{frame.bit_depth}",
        "values": "linear (RAW demosaic, white = 1)" if frame.linear else "sRGB-decoded to linear, white = 1",
        "exif": summary,
    }
    if kind == "raw":
        result.update(_raw_details(path))
    result.update(_stats(linear))
    return result


def _raw_details(path: Path) -> dict[str, Any]:
    try:
        import rawpy

        with rawpy.imread(str(path)) as raw:
            return {"raw": {
                "sensor_size": [int(raw.sizes.raw_width), int(raw.sizes.raw_height)],
                "white_level": int(raw.white_level),
                "black_levels": [int(v) for v in raw.black_level_per_channel],
                "camera_white_balance": [round(float(v), 4) for v in raw.camera_whitebalance],
                "color_description": raw.color_desc.decode(errors="replace"),
            }}
    except Exception:  # noqa: BLE001 - details are optional; the frame itself was read
        return {}


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Everything ``hdr info`` reports about one file, as a JSON-able dict (raises HdrError)."""
    from hdrcli.io.frames import RAW_EXTENSIONS, sniff_format

    path = Path(path)
    if not path.exists():
        raise HdrError("no such file", path)
    if not path.is_file():
        raise HdrError("not a file", path)
    size = path.stat().st_size
    if size == 0:
        raise HdrError("empty file (0 bytes)", path)
    with open(path, "rb") as fh:
        head = fh.read(16)
    suffix = path.suffix.lower()
    kind = sniff_format(head)
    if head.startswith(_EXR_MAGIC):
        result = _exr_info(path)
    elif head.startswith(b"#?") or suffix in (".hdr", ".pic", ".rgbe") or head[:2] in (b"PF", b"Pf"):
        from hdrcli.io.hdr import read_hdr

        rgb = read_hdr(path)
        result = {"format": "Radiance RGBE" if not head[:2] in (b"PF", b"Pf") else "PFM",
                  "width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "channels": ["R", "G", "B"],
                  "dtype": "rgbe" if not head[:2] in (b"PF", b"Pf") else "float32"}
        result.update(_stats(rgb))
    elif kind == "jpeg":
        from hdrcli.io.ultrahdr import ultrahdr_parameters

        from hdrcli.io.limits import max_file_bytes

        if size > max_file_bytes():
            raise HdrError(f"file of {size / 1e6:.0f} MB is larger than any image within the pixel budget", path)
        data = path.read_bytes()
        params = ultrahdr_parameters(data)
        result = _ultrahdr_info(path, data, params) if params else _frame_info(path, "jpeg")
    elif kind in ("png", "tiff") and suffix not in RAW_EXTENSIONS:
        from hdrcli.io.hdr import read_hdr

        try:  # hdrcli's own 16-bit linear HDR files carry a scale tag
            rgb = read_hdr(path if suffix in (".png", ".tif", ".tiff") else path)
        except HdrError:
            result = _frame_info(path, kind)
        else:
            result = {"format": f"hdrcli 16-bit linear {kind.upper()}", "width": int(rgb.shape[1]),
                      "height": int(rgb.shape[0]), "channels": ["R", "G", "B"], "dtype": "uint16 x scale"}
            result.update(_stats(rgb))
    elif suffix in RAW_EXTENSIONS:
        result = _frame_info(path, "raw")
    elif kind == "heif":
        result = _frame_info(path, "heif")
    else:
        raise HdrError("not an image format hdrcli reads (EXR, HDR, PFM, JPEG, PNG, TIFF, HEIF, camera RAW)", path)
    return {"file": str(path), "bytes": size, **result, "dynamic_range_method": DR_METHOD}
