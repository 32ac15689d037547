"""Ultra HDR gain-map JPEG: writing through libultrahdr (the ``imagecodecs`` binding), reading its parameters.

An Ultra HDR file is an ordinary JPEG (the SDR *base* rendition, shown by every viewer)
followed, in an MPF container, by a second JPEG: the *gain map*, the per-pixel log2 ratio
of the HDR rendition to the base. HDR displays (Android 14+, Chromium, iOS 18) apply the
gain map as far as their headroom allows. Here libultrahdr 1.4 (inside imagecodecs) does
all of the encoding: gain map, both JPEGs, ISO 21496-1 metadata, MPF container.

How scene radiance becomes the file (see :func:`hdr_rendition`):

* The HDR rendition is display-referred linear light with 1.0 = SDR white (203 nits, as
  libultrahdr takes linear input). It is the radiance times one scale ``k``, chosen so
  that the base rendition libultrahdr derives from it matches the preview tone map's
  mid-tones (the median over the pixels whose preview is between 2 % and 60 % linear):
  what the preview shows as mid-grey stays mid-grey.
* Highlights go up to ``2**headroom_stops`` x SDR white; above half of that a smooth
  shoulder (hue kept: the same factor on R, G, B) reaches the limit without a flat clip.
* The base (SDR) rendition is libultrahdr's own tone map of the HDR rendition: extended
  Reinhard on max(R, G, B), x (1 + x / W^2) / (1 + x), W = 10000/203 (measured, see
  :func:`libultrahdr_base`). The imagecodecs binding takes only the HDR image, so the base
  cannot be the preview itself; it is this global curve, anchored on the preview's mid-tones.

Precision (measured in tests/test_ultrahdr.py): the base decodes within JPEG precision of
:func:`libultrahdr_base`; the decoded HDR rendition matches the input within the 8-bit
log-encoded gain map plus JPEG error (median relative error < 3 %).
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np

from hdrcli.errors import HdrError
from hdrcli.io.atomic import atomic_path
from hdrcli.io.headers import jpeg_header
from hdrcli.log import warn

ULTRAHDR_EXTENSIONS = (".jpg", ".jpeg")
DEFAULT_HEADROOM_STOPS = 3.0
# libultrahdr takes linear input with 1.0 = SDR white (203 nits) and clips it at the PQ
# ceiling of 10000 nits, which is also the white point of its tone map (measured).
SDR_WHITE_NITS = 203.0
LIBULTRAHDR_WHITE = 10000.0 / SDR_WHITE_NITS
MAX_HEADROOM_STOPS = float(np.log2(LIBULTRAHDR_WHITE))
ISO_SIGNATURE = b"urn:iso:std:iso:ts:21496:-1\x00"
XMP_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"
MPF_SIGNATURE = b"MPF\x00"


def check_ultrahdr_extension(path: str | os.PathLike[str]) -> None:
    """Ultra HDR files are JPEGs: refuse any other extension before work starts."""
    suffix = Path(path).suffix.lower()
    if suffix not in ULTRAHDR_EXTENSIONS:
        raise HdrError(f"--ultrahdr writes a gain-map JPEG: the output must end in .jpg or .jpeg, not '{suffix or '(none)'}'", path)


def check_headroom(stops: float) -> float:
    if not np.isfinite(stops) or not 0.0 <= stops <= MAX_HEADROOM_STOPS:
        raise HdrError(f"--hdr-headroom must be between 0 and {MAX_HEADROOM_STOPS:.2f} stops, got {stops:g}")
    return float(stops)


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError:
        raise HdrError("Ultra HDR output needs the imagecodecs package (pip install imagecodecs)") from None
    if not imagecodecs.ULTRAHDR.available:
        raise HdrError("this imagecodecs build has no Ultra HDR (libultrahdr) codec")
    return imagecodecs


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, np.float32), 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def libultrahdr_base(hdr: np.ndarray) -> np.ndarray:
    """The linear base (SDR) rendition libultrahdr 1.4 derives from a linear HDR input.

    Extended Reinhard on max(R, G, B) with white point W = 10000/203, the same factor
    applied to all channels. Measured on ramps through imagecodecs: decoded base values
    agree within 1/255 (sRGB code values) on grey, within 6/255 (mean 2.2) on colours.
    """
    hdr = np.minimum(np.maximum(np.asarray(hdr, np.float32), 0.0), LIBULTRAHDR_WHITE)
    peak = hdr.max(axis=-1, keepdims=True)
    w2 = LIBULTRAHDR_WHITE**2
    mapped = peak * (1.0 + peak / w2) / (1.0 + peak)
    return (hdr * np.where(peak > 0, mapped / np.maximum(peak, 1e-12), 0.0)).astype(np.float32)


def _inverse_base(s: np.ndarray) -> np.ndarray:
    """x with libultrahdr's curve x (1 + x / W^2) / (1 + x) = s, for s in [0, 1)."""
    s = np.clip(np.asarray(s, np.float64), 0.0, 0.999)
    w2 = LIBULTRAHDR_WHITE**2
    return (-(1.0 - s) + np.sqrt((1.0 - s) ** 2 + 4.0 * s / w2)) * w2 / 2.0


def anchor_scale(radiance: np.ndarray, preview: np.ndarray) -> float:
    """Scale k so that libultrahdr's base of k x radiance matches the preview's mid-tones.

    ``preview`` is the sRGB-encoded preview tone map (H, W, 3) in [0, 1]. Per pixel the
    scale that would make the base equal the preview (on max(R, G, B)) is solved exactly;
    k is its median over the pixels whose linear preview is between 0.02 and 0.6.
    """
    lin = _srgb_to_linear(preview).max(axis=-1)
    peak = np.asarray(radiance, np.float32).max(axis=-1)
    mid = (lin > 0.02) & (lin < 0.6) & (peak > 0)
    if mid.sum() < 16:
        mid = (lin > 0) & (peak > 0)
    if not mid.any():
        return 1.0
    return float(np.median(_inverse_base(lin[mid]) / peak[mid]))


def neutralise_clipped(radiance: np.ndarray) -> np.ndarray:
    """Fade colour to neutral where the radiance reaches its own clipping plateau.

    A merge clips each channel at the shortest frame's clipping level; where one channel
    has clipped and the others not, the hue is wrong (yellow/magenta fringes around a
    window or the sun). Previews squeeze these to white; an HDR display shows them. When
    at least 0.1 % of the pixels sit on the plateau (max(R, G, B) >= 99.9 % of the image
    maximum), pixels are blended to grey (their max channel) with a smoothstep weight
    from 80 % to 100 % of that maximum.
    """
    peak = radiance.max(axis=-1, keepdims=True)
    top = float(peak.max(initial=0.0))
    if top <= 0 or float(np.mean(peak >= 0.999 * top)) < 1e-3:
        return radiance
    t = np.clip((peak - 0.8 * top) / (0.2 * top), 0.0, 1.0)
    weight = (t * t * (3.0 - 2.0 * t)).astype(np.float32)
    return (radiance * (1.0 - weight) + peak * weight).astype(np.float32)


def hdr_rendition(radiance: np.ndarray, scale: float, headroom_stops: float) -> np.ndarray:
    """Display-referred HDR (1.0 = SDR white): ``scale`` x radiance with a shoulder to 2**headroom.

    Below half the limit values are unchanged; above it max(R, G, B) follows
    L - (L - K) exp(-(x - K) / (L - K)) (K = L/2), continuous with slope 1 at K, reaching
    L only asymptotically, with R, G, B scaled by the same factor (hue kept).
    """
    hdr = np.maximum(np.nan_to_num(np.asarray(radiance, np.float32), posinf=0.0), 0.0)
    hdr = neutralise_clipped(hdr) * np.float32(scale)
    limit = float(2.0**headroom_stops)
    knee = limit / 2.0
    peak = hdr.max(axis=-1, keepdims=True)
    over = peak > knee
    if over.any():
        span = limit - knee
        shoulder = limit - span * np.exp(-(peak - knee) / span)
        factor = np.where(over, shoulder / np.maximum(peak, 1e-12), 1.0)
        hdr = hdr * factor.astype(np.float32)
    return hdr.astype(np.float32)


@dataclass
class UltraHdrResult:
    """What :func:`write_ultrahdr` wrote: the anchor scale and the HDR rendition's peak."""

    path: Path
    scale: float
    headroom_stops: float
    peak: float
    notes: list[str] = field(default_factory=list)


def encode_ultrahdr(hdr_display: np.ndarray, quality: int = 92, gain_map_scale: int = 1) -> bytes:
    """Encode a display-referred linear HDR image (1.0 = SDR white, Rec. 709 primaries) with libultrahdr."""
    codecs = _imagecodecs()
    h, w = hdr_display.shape[:2]
    if h < 8 or w < 8:
        raise HdrError(f"image too small for Ultra HDR ({w}x{h}; libultrahdr needs at least 8x8)")
    rgba = np.empty((h, w, 4), np.float16)
    rgba[..., :3] = np.minimum(hdr_display, LIBULTRAHDR_WHITE)
    rgba[..., 3] = 1.0
    try:
        data = codecs.ultrahdr_encode(rgba, level=quality, scale=gain_map_scale, gamut=codecs.ULTRAHDR.CG.BT_709)
    except Exception as exc:  # the binding raises UltrahdrError/ValueError with libultrahdr's message
        raise HdrError(f"Ultra HDR encoder failed ({exc})") from None
    return bytes(data)


def write_ultrahdr(
    path: str | os.PathLike[str],
    radiance: np.ndarray,
    preview: np.ndarray,
    *,
    headroom_stops: float = DEFAULT_HEADROOM_STOPS,
    exif: bytes | None = None,
    quality: int = 92,
) -> UltraHdrResult:
    """Write linear radiance (H, W, 3) as an Ultra HDR JPEG anchored on ``preview`` (sRGB, [0, 1]).

    ``exif`` (APP1 payload from :mod:`hdrcli.io.metadata`) is inserted into the primary
    image before the MPF segment, so the container's relative offsets stay valid.
    """
    check_ultrahdr_extension(path)
    headroom_stops = check_headroom(headroom_stops)
    scale = anchor_scale(radiance, preview)
    hdr = hdr_rendition(radiance, scale, headroom_stops)
    peak = float(hdr.max(initial=0.0))
    notes = []
    if peak <= 1.0 + 1e-3:
        notes.append("no highlights above SDR white: the HDR rendition has no headroom (0 stops) beyond the base")
    for note in notes:
        warn(note)
    try:
        data = encode_ultrahdr(hdr, quality=quality)
    except HdrError as exc:
        raise HdrError(str(exc), path) from None  # name the output the problem is about
    from hdrcli.io.metadata import insert_exif, with_description

    # Record how the HDR rendition relates to the radiance (shown by `hdr info`).
    notes_json = json.dumps({"hdrcli": {"radiance_scale": round(scale, 6), "headroom_stops": headroom_stops,
                                        "units": "HDR rendition = radiance x radiance_scale, 1.0 = SDR white"}})
    data = insert_exif(data, with_description(exif, notes_json))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return UltraHdrResult(Path(path), scale, headroom_stops, peak, notes)


def decode_ultrahdr(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Decode with libultrahdr: (base sRGB uint8 RGB, HDR linear float32 RGB with 1.0 = SDR white)."""
    codecs = _imagecodecs()
    try:
        base = codecs.ultrahdr_decode(np.frombuffer(data, np.uint8), dtype=np.uint8)[..., :3]
    except Exception as exc:
        raise HdrError(f"not a decodable Ultra HDR file ({exc})") from None
    return base, decode_hdr_rendition(data)


def decode_hdr_rendition(data: bytes) -> np.ndarray:
    """The HDR rendition of an Ultra HDR / ISO 21496-1 JPEG (base x gain map at full boost), decoded by
    libultrahdr: (H, W, 3) float32, linear light, 1.0 = SDR white (the base image's code 255)."""
    try:
        hdr = _imagecodecs().ultrahdr_decode(np.frombuffer(data, np.uint8))
    except Exception as exc:
        raise HdrError(f"not a decodable Ultra HDR file ({exc})") from None
    return np.ascontiguousarray(hdr[..., :3], np.float32)


def recorded_hdr(data: bytes, width: int, height: int) -> tuple[np.ndarray, dict] | None:
    """(HDR rendition, gain-map parameters) of a camera's gain-map JPEG (Ultra HDR, ISO 21496-1), or
    None for a JPEG without a gain map. ``width`` x ``height``: the primary image's size, checked
    against its header beforehand (the pixel budget).

    The gain map's own size must be within the primary's (a hostile file cannot make libultrahdr
    decode a larger image), and the decoded rendition must have the primary's size.

    Raises:
        HdrError: the gain map is there but cannot be used (the caller falls back to the base).
    """
    params = ultrahdr_parameters(data)
    if not params or "gain_map_offset" not in params:
        return None
    start = params["gain_map_offset"]
    gain_map = jpeg_header(BytesIO(data[start : start + (params.get("gain_map_bytes") or len(data))]))
    if gain_map.width > width or gain_map.height > height:
        raise HdrError(f"its gain map ({gain_map.width}x{gain_map.height}) is larger than the photo ({width}x{height})")
    hdr = decode_hdr_rendition(data)
    if hdr.shape[:2] != (height, width):
        raise HdrError(f"its HDR rendition decodes to {hdr.shape[1]}x{hdr.shape[0]}, not the photo's {width}x{height}")
    if not np.isfinite(hdr).all():
        raise HdrError("its HDR rendition holds non-finite values")
    return np.maximum(hdr, 0.0, out=hdr), params


# --------------------------------------------------------------------------- reading parameters

def jpeg_segments(data: bytes, start: int = 0, limit: int = 256):
    """(marker, payload offset, payload length) of the header segments of the JPEG at ``start``."""
    if data[start : start + 2] != b"\xff\xd8":
        return
    pos = start + 2
    for _ in range(limit):
        if pos + 4 > len(data) or data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # EOI / start of scan: no more header segments
            return
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if length < 2 or pos + 2 + length > len(data):
            return
        yield marker, pos + 4, length - 2
        pos += 2 + length


def _mpf_images(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of the images listed in the primary image's MPF segment (offsets absolute)."""
    for marker, off, length in jpeg_segments(data):
        if marker != 0xE2 or data[off : off + 4] != MPF_SIGNATURE:
            continue
        tiff = off + 4
        order = data[tiff : tiff + 2]
        end = {b"II": "<", b"MM": ">"}.get(order)
        if end is None:
            return []
        try:
            ifd = tiff + struct.unpack(end + "I", data[tiff + 4 : tiff + 8])[0]
            count = struct.unpack(end + "H", data[ifd : ifd + 2])[0]
            entries = {}
            for i in range(min(count, 64)):
                e = ifd + 2 + 12 * i
                tag, _typ, n, value = struct.unpack(end + "HHII", data[e : e + 12])
                entries[tag] = (n, value)
            n_images = entries.get(0xB001, (0, 0))[1]
            mp_entry = entries.get(0xB002)
            if mp_entry is None:
                return []
            images = []
            for i in range(min(n_images, 16)):
                e = tiff + mp_entry[1] + 16 * i
                _attr, size, offset, _d1, _d2 = struct.unpack(end + "IIIHH", data[e : e + 16])
                images.append((0 if i == 0 else tiff + offset, size))
            return images
        except struct.error:
            return []
    return []


def _parse_iso21496(payload: bytes) -> dict:
    """ISO 21496-1 gain-map metadata (big-endian fractions) -> plain floats, log2 units."""
    if len(payload) < 5:
        return {"iso_version_only": True}
    min_version, writer_version, flags = struct.unpack(">HHB", payload[:5])
    channels = 3 if flags & 0x80 else 1
    pos = 5

    def take(fmt: str):
        nonlocal pos
        size = struct.calcsize(fmt)
        values = struct.unpack(">" + fmt, payload[pos : pos + size])
        pos += size
        return values

    out: dict = {"minimum_version": min_version, "writer_version": writer_version,
                 "multichannel": bool(flags & 0x80), "use_base_colour_space": bool(flags & 0x40)}
    if flags & 0x08:  # one common denominator
        den, base_n, alt_n = take("III")
        den = den or 1
        out["base_hdr_headroom"] = base_n / den
        out["alternate_hdr_headroom"] = alt_n / den
        per = [take("iiIii") for _ in range(channels)]
        fields = [(c[0] / den, c[1] / den, c[2] / den, c[3] / den, c[4] / den) for c in per]
    else:
        bn, bd, an, ad = take("IIII")
        out["base_hdr_headroom"] = bn / (bd or 1)
        out["alternate_hdr_headroom"] = an / (ad or 1)
        fields = []
        for _ in range(channels):
            v = take("iIiIIIiIiI")
            fields.append(tuple(v[i] / (v[i + 1] or 1) for i in range(0, 10, 2)))
    names = ("gain_map_min", "gain_map_max", "gamma", "base_offset", "alternate_offset")
    for j, name in enumerate(names):
        out[name] = [round(f[j], 6) for f in fields]
    return out


_XMP_HDRGM = re.compile(rb'hdrgm:(\w+)\s*=\s*"([^"]*)"')


def ultrahdr_parameters(data: bytes) -> dict | None:
    """Gain-map parameters of an Ultra HDR / ISO 21496-1 JPEG, or None for a plain JPEG.

    Reads the MPF directory of the primary image, then the gain-map image's ISO 21496-1
    APP2 block and/or XMP ``hdrgm:`` attributes. Values in stops (log2) where the format
    stores them so: ``gain_map_max`` = log2(max content boost), ``alternate_hdr_headroom``
    = the display headroom at which the full gain map applies.
    """
    images = _mpf_images(data)
    result: dict = {}
    candidates = [off for off, _ in images[1:]] or []
    has_iso_primary = any(
        m == 0xE2 and data[o : o + len(ISO_SIGNATURE)] == ISO_SIGNATURE for m, o, _ in jpeg_segments(data)
    )
    for start in candidates:
        for marker, off, length in jpeg_segments(data, start):
            payload = data[off : off + length]
            if marker == 0xE2 and payload.startswith(ISO_SIGNATURE):
                try:
                    result["iso21496"] = _parse_iso21496(payload[len(ISO_SIGNATURE):])
                except struct.error:
                    result["iso21496"] = {"error": "truncated ISO 21496-1 block"}
            elif marker == 0xE1 and payload.startswith(XMP_SIGNATURE):
                attrs = {k.decode(): v.decode(errors="replace") for k, v in _XMP_HDRGM.findall(payload)}
                if attrs:
                    result["xmp_hdrgm"] = attrs
        if result:
            result["gain_map_offset"] = start
            result["gain_map_bytes"] = dict(images).get(start)
            break
    if not result and not has_iso_primary:
        return None
    iso = result.get("iso21496", {})
    if "gain_map_max" in iso:
        result["max_content_boost"] = round(float(2.0 ** max(iso["gain_map_max"])), 4)
        result["min_content_boost"] = round(float(2.0 ** min(iso["gain_map_min"])), 4)
        result["hdr_capacity_max_stops"] = iso.get("alternate_hdr_headroom")
    return result
