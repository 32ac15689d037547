"""EXIF metadata through exifread: exposure time, aperture, ISO, capture time, orientation.

Only the fields hdrcli needs are parsed, into an :class:`ExifInfo` with plain Python
types (seconds, f-number, ISO, datetime). Camera RAW files that are TIFF-based (CR2, NEF,
DNG, ARW, KDC, ...) carry the same tags, sometimes in the main IFD ("Image ...") instead
of the EXIF sub-IFD ("EXIF ..."), so both prefixes are looked up.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

import logging

import exifread

# exifread logs "file does not have exif data" for every PNG; missing EXIF is reported by hdrcli itself.
logging.getLogger("exifread").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class ExifInfo:
    """Exposure-related EXIF fields of one file; ``None`` where the tag is missing.

    Attributes:
        exposure_time: shutter time in seconds (> 0).
        f_number: aperture as an f-number N (> 0).
        iso: ISO speed rating (> 0).
        exposure_bias: exposure compensation in EV stops.
        datetime_original: capture time, with sub-second precision when present.
        make, model: camera maker and model strings.
        orientation: EXIF orientation 1..8 (1 = as stored).
    """

    exposure_time: float | None = None
    f_number: float | None = None
    iso: float | None = None
    exposure_bias: float | None = None
    datetime_original: datetime | None = None
    make: str | None = None
    model: str | None = None
    orientation: int = 1

    @property
    def camera(self) -> str | None:
        """'Make Model' of the camera, or None when neither is known."""
        parts = [p for p in (self.make, self.model) if p]
        return " ".join(parts) if parts else None


def _tag(tags: dict[str, Any], name: str) -> Any:
    for prefix in ("EXIF ", "Image ", "MakerNote "):
        if prefix + name in tags:
            return tags[prefix + name]
    return None


def _number(tag: Any) -> float | None:
    """First value of a numeric/rational tag as float; None when absent or unusable."""
    if tag is None:
        return None
    values = getattr(tag, "values", None)
    if isinstance(values, (list, tuple)) and values:
        value = values[0]
    else:
        value = values if values is not None else str(tag)
    try:
        if hasattr(value, "num") and hasattr(value, "den"):
            if value.den == 0:
                return None
            return float(Fraction(int(value.num), int(value.den)))
        return float(Fraction(str(value)))
    except (ValueError, ZeroDivisionError, TypeError):
        return None


def _text(tag: Any) -> str | None:
    if tag is None:
        return None
    text = str(tag).strip().strip("\x00").strip()
    return text or None


def _datetime(tags: dict[str, Any]) -> datetime | None:
    raw = _text(_tag(tags, "DateTimeOriginal")) or _text(_tag(tags, "DateTime"))
    if raw is None:
        return None
    try:
        stamp = datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    subsec = _text(_tag(tags, "SubSecTimeOriginal"))
    if subsec and subsec.isdigit():
        stamp = stamp.replace(microsecond=int(round(float("0." + subsec) * 1e6)) % 1_000_000)
    return stamp


def parse_exif_bytes(data: bytes) -> ExifInfo:
    """Parse EXIF from a file's bytes; a file with no EXIF gives an empty ExifInfo."""
    try:
        tags = exifread.process_file(io.BytesIO(data), details=False)
    except Exception:  # exifread raises assorted errors on files without EXIF
        tags = {}
    return _info_from_tags(tags)


def _info_from_tags(tags: dict[str, Any]) -> ExifInfo:
    orientation = _number(_tag(tags, "Orientation"))
    positive = lambda v: v if v is not None and v > 0 else None  # noqa: E731
    return ExifInfo(
        exposure_time=positive(_number(_tag(tags, "ExposureTime"))),
        f_number=positive(_number(_tag(tags, "FNumber"))),
        iso=positive(_number(_tag(tags, "ISOSpeedRatings")) or _number(_tag(tags, "PhotographicSensitivity"))),
        exposure_bias=_number(_tag(tags, "ExposureBiasValue")),
        datetime_original=_datetime(tags),
        make=_text(_tag(tags, "Make")),
        model=_text(_tag(tags, "Model")),
        orientation=int(orientation) if orientation and 1 <= orientation <= 8 else 1,
    )


def read_exif(path: str) -> ExifInfo:
    """Read the exposure-related EXIF of an image or RAW file.

    Only regular files are opened (never blocking on a FIFO or reading a device), and
    exifread reads the tags it needs from the open file instead of the whole file.

    Raises:
        HdrError: the path is missing or not a regular file.
    """
    from hdrcli.io.safe_open import open_regular

    with open_regular(path, "image") as fh:
        return parse_exif_file(fh)


def parse_exif_file(fh: Any) -> ExifInfo:
    """Parse EXIF from an open binary file (exifread seeks to the tags; the file is not read whole)."""
    fh.seek(0)
    if fh.read(12)[4:8] == b"ftyp":  # HEIF: exifread's own HEIF parser fails on libheif's files
        from hdrcli.io.limits import max_file_bytes

        if fh.seek(0, os.SEEK_END) > max_file_bytes():  # pillow-heif reads the whole file
            return ExifInfo()
        fh.seek(0)
        return parse_exif_bytes(exif_tiff_block(heif_exif(fh)))
    try:
        fh.seek(0)
        tags = exifread.process_file(fh, details=False)
    except Exception:  # noqa: BLE001 - exifread raises assorted errors on files without EXIF
        tags = {}
    return _info_from_tags(tags)


def heif_exif(source: Any) -> bytes:
    """The EXIF item of a HEIF file (a path or an open binary file) as pillow-heif gives it, which
    parses the container without decoding pixels; b"" without pillow-heif, EXIF or a valid file."""
    try:
        import pillow_heif
    except ImportError:
        return b""
    try:
        return pillow_heif.open_heif(source).info.get("exif") or b""
    except Exception:  # noqa: BLE001 - a damaged container has no usable EXIF; decoding reports it
        return b""


def exif_tiff_block(blob: bytes) -> bytes:
    """An EXIF block without its b"Exif\\0\\0" prefix (the TIFF structure exifread and piexif parse)."""
    return blob[6:] if blob.startswith(b"Exif\x00\x00") else blob
