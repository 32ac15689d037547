"""Photo metadata carried from the reference frame to hdrcli's outputs, through ``piexif``.

What is carried (and nothing else: no maker notes, thumbnails or exposure settings of
one frame that would misdescribe a merge):

* EXIF of JPEG outputs (previews, tone-mapped images, Ultra HDR files): Make, Model,
  LensMake, LensModel, DateTimeOriginal (+ SubSecTimeOriginal, OffsetTimeOriginal),
  the GPS IFD when present, Artist, Copyright; Orientation = 1 (hdrcli already rotated
  the pixels); Software = hdrcli version.
* OpenEXR standard attributes (:func:`exr_attributes`): ``capDate``, ``utcOffset``,
  ``expTime``, ``aperture``, ``isoSpeed`` (of the reference frame), ``owner`` (Copyright,
  else Artist), ``comments``, ``latitude``/``longitude``/``altitude``, and always
  ``chromaticities`` (Rec. 709 / sRGB primaries, D65 white).

Broken or oversized metadata is never fatal: the field (or, when the EXIF block cannot
be parsed at all, all of it) is skipped with a warning, and the image is still written.
``--strip-metadata`` passes ``None`` everywhere: only chromaticities and hdrcli's own
processing attributes remain.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hdrcli.log import warn

# Rec. 709 / sRGB primaries and D65 white (x, y): red, green, blue, white.
REC709_CHROMATICITIES = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
MAX_TEXT = 512          # longest text field carried (bytes)
MAX_EXIF_BYTES = 60_000  # a JPEG APP1 segment holds at most 65533 bytes
_DATE = re.compile(r"^\d{4}:\d{2}:\d{2} \d{2}:\d{2}:\d{2}$")
_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


@dataclass
class PhotoMetadata:
    """The carried fields of one frame; None where absent or unusable.

    Attributes:
        datetime_original: 'YYYY:MM:DD HH:MM:SS' (local time of capture).
        subsec: digits of the sub-second part.
        offset: UTC offset of the capture time, '+HH:MM'.
        gps: piexif GPS IFD ({tag: value}), validated.
        exposure_time, f_number, iso: of the reference frame (seconds, N, ISO).
        source: the file it came from.
    """

    make: str | None = None
    model: str | None = None
    lens_make: str | None = None
    lens_model: str | None = None
    datetime_original: str | None = None
    subsec: str | None = None
    offset: str | None = None
    artist: str | None = None
    copyright: str | None = None
    gps: dict[int, Any] = field(default_factory=dict)
    exposure_time: float | None = None
    f_number: float | None = None
    iso: float | None = None
    source: str | None = None

    def summary(self) -> dict[str, Any]:
        """Plain JSON-able dict of the present fields (GPS as decimal degrees)."""
        out = {k: v for k, v in self.__dict__.items() if v not in (None, {}, "") and k not in ("gps", "source")}
        lat_lon = gps_degrees(self.gps)
        if lat_lon is not None:
            out["gps"] = {"latitude": round(lat_lon[0], 6), "longitude": round(lat_lon[1], 6)}
            if lat_lon[2] is not None:
                out["gps"]["altitude_m"] = round(lat_lon[2], 2)
        return out


def _text(value: Any, name: str, source: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        if len(value) > MAX_TEXT:
            warn(f"{source}: EXIF {name} is {len(value)} bytes long: not carried")
            return None
        value = value.split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    text = str(value).strip()
    if not text:
        return None
    if any(ord(c) < 32 for c in text):
        warn(f"{source}: EXIF {name} has control characters: not carried")
        return None
    return text


def _rational(value: Any) -> float | None:
    try:
        num, den = value
        return float(num) / float(den) if den else None
    except (TypeError, ValueError):
        return None


def _valid_gps(gps: dict[int, Any], source: str) -> dict[int, Any]:
    """Keep the GPS IFD only if latitude/longitude are well-formed rationals in range."""
    import piexif

    G = piexif.GPSIFD
    if not gps:
        return {}
    try:
        lat = gps.get(G.GPSLatitude)
        lon = gps.get(G.GPSLongitude)
        if lat is None or lon is None:
            return {}
        for triple in (lat, lon):
            if len(triple) != 3 or any(_rational(v) is None for v in triple):
                raise ValueError("malformed degrees/minutes/seconds")
        degrees = gps_degrees(gps)
        if degrees is None or not (-90 <= degrees[0] <= 90 and -180 <= degrees[1] <= 180):
            raise ValueError("coordinates out of range")
    except (TypeError, ValueError) as exc:
        warn(f"{source}: EXIF GPS block is broken ({exc}): not carried")
        return {}
    keep = (G.GPSVersionID, G.GPSLatitudeRef, G.GPSLatitude, G.GPSLongitudeRef, G.GPSLongitude,
            G.GPSAltitudeRef, G.GPSAltitude, G.GPSTimeStamp, G.GPSDateStamp)
    return {k: gps[k] for k in keep if k in gps}


def gps_degrees(gps: dict[int, Any]) -> tuple[float, float, float | None] | None:
    """(latitude, longitude, altitude in metres or None) of a piexif GPS IFD, or None."""
    import piexif

    G = piexif.GPSIFD
    try:
        lat = sum(_rational(v) / 60**i for i, v in enumerate(gps[G.GPSLatitude]))
        lon = sum(_rational(v) / 60**i for i, v in enumerate(gps[G.GPSLongitude]))
    except (KeyError, TypeError, ValueError):
        return None
    if gps.get(G.GPSLatitudeRef, b"N") in (b"S", "S"):
        lat = -lat
    if gps.get(G.GPSLongitudeRef, b"E") in (b"W", "W"):
        lon = -lon
    alt = _rational(gps.get(G.GPSAltitude)) if G.GPSAltitude in gps else None
    if alt is not None and gps.get(G.GPSAltitudeRef) == 1:
        alt = -alt
    return lat, lon, alt


def read_metadata(path: str | os.PathLike[str]) -> PhotoMetadata | None:
    """The carried EXIF fields of an image file, or None when it has none (or they are unreadable).

    Reads JPEG, TIFF and TIFF-based RAW files through piexif (HEIF: its EXIF item, found by
    pillow-heif); other files (PNG without EXIF, non-TIFF RAW) give None. Never raises for bad metadata: warns and returns None.
    """
    import piexif

    path = Path(path)
    source = path.name
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
        if head[:2] == b"\xff\xd8" or head[:4] in (b"II*\x00", b"MM\x00*"):
            exif = piexif.load(str(path))
        elif head[4:8] == b"ftyp":  # HEIF: its EXIF item, through pillow-heif (no pixels decoded)
            from hdrcli.io.exif import exif_tiff_block, heif_exif

            blob = exif_tiff_block(heif_exif(str(path)))
            if not blob:
                return None
            exif = piexif.load(b"Exif\x00\x00" + blob)
        else:
            return None
    except Exception as exc:  # piexif raises assorted errors on malformed blocks
        warn(f"{source}: EXIF metadata unreadable ({type(exc).__name__}): not carried")
        return None
    zeroth, ex = exif.get("0th", {}) or {}, exif.get("Exif", {}) or {}
    I, E = piexif.ImageIFD, piexif.ExifIFD
    meta = PhotoMetadata(source=source)
    meta.make = _text(zeroth.get(I.Make), "Make", source)
    meta.model = _text(zeroth.get(I.Model), "Model", source)
    meta.artist = _text(zeroth.get(I.Artist), "Artist", source)
    meta.copyright = _text(zeroth.get(I.Copyright), "Copyright", source)
    meta.lens_make = _text(ex.get(E.LensMake), "LensMake", source)
    meta.lens_model = _text(ex.get(E.LensModel), "LensModel", source)
    date = _text(ex.get(E.DateTimeOriginal), "DateTimeOriginal", source)
    meta.datetime_original = date if date and _DATE.match(date) else None
    subsec = _text(ex.get(E.SubSecTimeOriginal), "SubSecTimeOriginal", source)
    meta.subsec = subsec if subsec and subsec.isdigit() and len(subsec) <= 9 else None
    offset = _text(ex.get(E.OffsetTimeOriginal), "OffsetTimeOriginal", source)
    meta.offset = offset if offset and _OFFSET.match(offset) else None
    meta.gps = _valid_gps(exif.get("GPS", {}) or {}, source)
    meta.exposure_time = _rational(ex.get(E.ExposureTime))
    meta.f_number = _rational(ex.get(E.FNumber))
    iso = ex.get(E.ISOSpeedRatings)
    meta.iso = float(iso[0] if isinstance(iso, tuple) and iso else iso) if isinstance(iso, (int, tuple)) and iso else None
    return meta


def exif_bytes(meta: PhotoMetadata | None, software: str) -> bytes | None:
    """An EXIF APP1 payload for JPEG outputs (see module docstring), or None when nothing to carry."""
    import piexif

    if meta is None:
        return None
    I, E = piexif.ImageIFD, piexif.ExifIFD
    zeroth: dict[int, Any] = {I.Orientation: 1, I.Software: software.encode()}
    exif: dict[int, Any] = {}
    for tag, value in ((I.Make, meta.make), (I.Model, meta.model), (I.Artist, meta.artist), (I.Copyright, meta.copyright)):
        if value:
            zeroth[tag] = value.encode("utf-8")
    for tag, value in ((E.LensMake, meta.lens_make), (E.LensModel, meta.lens_model),
                       (E.DateTimeOriginal, meta.datetime_original), (E.SubSecTimeOriginal, meta.subsec),
                       (E.OffsetTimeOriginal, meta.offset)):
        if value:
            exif[tag] = value.encode("utf-8")
    try:
        data = piexif.dump({"0th": zeroth, "Exif": exif, "GPS": dict(meta.gps), "1st": {}, "thumbnail": None})
    except Exception as exc:  # piexif rejects values of the wrong type
        warn(f"{meta.source}: EXIF metadata could not be written ({type(exc).__name__}: {exc}): not carried")
        return None
    if len(data) > MAX_EXIF_BYTES:
        warn(f"{meta.source}: EXIF metadata is {len(data)} bytes, more than a JPEG segment holds: not carried")
        return None
    return data


def with_description(exif: bytes | None, text: str) -> bytes:
    """``exif`` (or a new EXIF block) with ImageDescription = ``text`` (hdrcli's processing notes)."""
    import piexif

    data = piexif.load(exif) if exif else {"0th": {}, "Exif": {}, "GPS": {}, "1st": {}, "thumbnail": None}
    data["0th"][piexif.ImageIFD.ImageDescription] = text.encode("utf-8")
    data["1st"], data["thumbnail"] = {}, None
    return piexif.dump(data)


def hdrcli_description(path: str | os.PathLike[str]) -> dict[str, Any]:
    """hdrcli's JSON notes in a JPEG's ImageDescription (``{"hdrcli": {...}}``), or {}."""
    import json

    import piexif

    try:
        text = piexif.load(str(path)).get("0th", {}).get(piexif.ImageIFD.ImageDescription, b"")
        value = json.loads(text.decode("utf-8")) if text else {}
    except Exception:  # noqa: BLE001 - not hdrcli's, or not JSON
        return {}
    return value.get("hdrcli", {}) if isinstance(value, dict) and isinstance(value.get("hdrcli"), dict) else {}


def insert_exif(jpeg: bytes, exif: bytes) -> bytes:
    """Insert an EXIF payload into a JPEG's header (before any APP2/MPF segment), replacing one there."""
    import piexif

    out = io.BytesIO()
    piexif.insert(exif, jpeg, out)
    return out.getvalue()


def utc_offset_seconds(offset: str | None) -> float | None:
    """OpenEXR's utcOffset for an EXIF offset '+HH:MM': UTC = local time + utcOffset, in seconds."""
    if not offset or not _OFFSET.match(offset):
        return None
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    return -sign * float(timedelta(hours=hours, minutes=minutes).total_seconds())


def exr_attributes(meta: PhotoMetadata | None, comments: str | None = None) -> dict[str, Any]:
    """OpenEXR standard header attributes (typed values for the ``openexr`` package)."""
    attrs: dict[str, Any] = {"chromaticities": REC709_CHROMATICITIES}
    if comments:
        attrs["comments"] = comments
    if meta is None:
        return attrs
    if meta.datetime_original:
        try:
            datetime.strptime(meta.datetime_original, "%Y:%m:%d %H:%M:%S")
            attrs["capDate"] = meta.datetime_original
        except ValueError:
            pass
    offset = utc_offset_seconds(meta.offset)
    if offset is not None:
        attrs["utcOffset"] = offset
    for key, value in (("expTime", meta.exposure_time), ("aperture", meta.f_number), ("isoSpeed", meta.iso)):
        if value is not None and value > 0:
            attrs[key] = float(value)
    owner = meta.copyright or meta.artist
    if owner:
        attrs["owner"] = owner
    degrees = gps_degrees(meta.gps) if meta.gps else None
    if degrees is not None:
        attrs["latitude"], attrs["longitude"] = float(degrees[0]), float(degrees[1])
        if degrees[2] is not None:
            attrs["altitude"] = float(degrees[2])
    return attrs
