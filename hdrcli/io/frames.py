"""Reading input frames: 8/16-bit JPEG, PNG and TIFF, and camera RAW through rawpy.

Every reader returns a :class:`Frame`: float32 RGB pixels in [0, 1], shape (H, W, 3),
with the EXIF orientation already applied, plus where the values came from (bit depth,
and whether they are linear sensor values or display-referred camera output).

The file is read into memory once; the type is decided from its content (magic bytes),
not its name, except that TIFF-based RAW formats are recognised by extension. Problems a
user can cause (empty, truncated or mislabelled files) raise :class:`HdrError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hdrcli.errors import HdrError
from hdrcli.io.decode import imdecode_checked, report_corruption
from hdrcli.io.exif import ExifInfo, exif_tiff_block, parse_exif_bytes, parse_exif_file
from hdrcli.io.headers import check_file_size, check_tiles, jpeg_header, png_header, tiff_header
from hdrcli.io.limits import allow_corrupt_setting, check_pixels, max_file_bytes, max_pixels_setting
from hdrcli.io.safe_open import descriptor_path, file_size, open_regular, read_bounded
from hdrcli.log import warn

RAW_EXTENSIONS = frozenset(
    ".3fr .ari .arw .cr2 .cr3 .crw .dcr .dng .erf .fff .iiq .k25 .kdc .mef .mos .mrw "
    ".nef .nrw .orf .pef .raf .raw .rw2 .rwl .sr2 .srf .srw .x3f".split()
)
LDR_EXTENSIONS = frozenset(".jpg .jpeg .jpe .png .tif .tiff .heic .heif .hif".split())
# ISO base media file brands of HEIF still images (HEVC-coded: iPhones' default, Canon/Sony/
# Fujifilm HEIF); read through the optional pillow-heif package (libheif).
HEIF_BRANDS = frozenset((b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"))
_MAX_JPEG_SCANS = 500  # as libjpeg-turbo's TJFLAG_LIMITSCANS; real progressive files have ~10

_MAGIC = {
    b"\xff\xd8\xff": "jpeg",
    b"\x89PNG\r\n\x1a\n": "png",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
}


@dataclass
class Frame:
    """One input photograph.

    Attributes:
        path: the file it was read from.
        pixels: float32 array (H, W, 3), RGB, values in [0, 1].
        bit_depth: quantisation of the source (8 or 16).
        linear: True when pixels are linear in scene radiance (camera RAW), False when
            a camera response curve was applied (JPEG/PNG/TIFF from a camera).
        exif: exposure metadata of the file.
        hdr_rendition: a camera's gain-map JPEG (Ultra HDR, ISO 21496-1) read with
            ``hdr_rendition=True``: its recorded HDR rendition, float32 (H, W, 3), linear light,
            1.0 = SDR white (the pixels' 1.0), oriented as the pixels; else None.
        gain_map: that file's gain-map parameters (:func:`hdrcli.io.ultrahdr.ultrahdr_parameters`).
    """

    path: Path
    pixels: np.ndarray
    bit_depth: int
    linear: bool
    exif: ExifInfo = field(default_factory=ExifInfo)
    hdr_rendition: np.ndarray | None = None
    gain_map: dict | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    @property
    def name(self) -> str:
        return self.path.name

    def as_uint8(self) -> np.ndarray:
        """Pixels quantised to uint8 RGB (what OpenCV's photo module expects)."""
        return np.clip(np.rint(self.pixels * 255.0), 0, 255).astype(np.uint8)


def sniff_format(data: bytes) -> str | None:
    """'jpeg', 'png' or 'tiff' from the first bytes of a file, else None."""
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return "heif"
    return None


def jpeg_is_complete(data: bytes) -> bool:
    """True when the JPEG's primary image runs to its end-of-image marker.

    OpenCV decodes a truncated JPEG without an error (grey rows at the bottom), so the
    marker structure is walked: segments up to each start-of-scan, then the
    entropy-coded data (where 0xFF is followed by 0x00 or a restart marker), until EOI.
    """
    pos, n = 2, len(data)
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > n:
            return False
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:  # start of scan: skip entropy-coded data
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    return False
                nxt = data[pos + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    pos += 1 if nxt == 0xFF else 2
                    continue
                break
    return False


# EXIF orientation -> the OpenCV operation from stored to display order (about 5x faster
# than numpy's strided copies of flipped or rotated views).
_ORIENTATIONS = {
    2: lambda a: cv2.flip(a, 1),  # mirrored left-right
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),  # mirrored top-bottom
    5: cv2.transpose,
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: cv2.transpose(cv2.rotate(a, cv2.ROTATE_180)),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an (H, W) or (H, W, C) array from stored to display order (EXIF orientation 1..8)."""
    op = _ORIENTATIONS.get(orientation)
    if op is None:
        return np.ascontiguousarray(pixels)
    out = op(pixels)
    return out.reshape(out.shape[:2] + pixels.shape[2:])  # OpenCV drops a trailing axis of 1


def _to_float_rgb(image: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    """OpenCV's decoded array (BGR/BGRA/grey, uint8/uint16) to float RGB in [0, 1]."""
    if image.dtype == np.uint8:
        depth, scale = 8, 1.0 / 255.0
    elif image.dtype == np.uint16:
        depth, scale = 16, 1.0 / 65535.0
    else:
        raise HdrError(f"unsupported sample type {image.dtype} (expected 8- or 16-bit integers)", path)
    if image.ndim == 2:
        image = image[:, :, None].repeat(3, axis=2)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.shape[2] == 1:
        image = image.repeat(3, axis=2)
    else:
        raise HdrError(f"unsupported channel count {image.shape[2]}", path)
    return np.multiply(image, np.float32(scale), dtype=np.float32), depth  # one pass, no integer-to-float copy


def _read_ldr(path: Path, data: bytes, kind: str, exif: ExifInfo, allow_corrupt: bool = False,
              hdr_rendition: bool = False) -> Frame:
    if kind == "jpeg" and not jpeg_is_complete(data):
        report_corruption(["truncated or corrupt JPEG (no end-of-image marker)"], path, "JPEG", allow_corrupt)
        data = data + b"\xff\xd9"  # allowed: OpenCV decodes what is there only up to an end marker
    if kind == "jpeg" and data.count(b"\xff\xda") > _MAX_JPEG_SCANS:
        # Each progressive scan re-reads the whole image: thousands of them make a small file a time bomb.
        report_corruption([f"more than {_MAX_JPEG_SCANS} scans"], path, "JPEG", allow_corrupt)
    image = imdecode_checked(data, path, kind.upper(), allow_corrupt)
    # Oriented as decoded (8 or 16 bit): a quarter of the bytes of the float frame to move.
    pixels, depth = _to_float_rgb(apply_orientation(image, exif.orientation), path)
    frame = Frame(path, pixels, depth, linear=False, exif=exif)
    if hdr_rendition and kind == "jpeg":
        from hdrcli.io.ultrahdr import recorded_hdr

        try:
            recorded = recorded_hdr(data, image.shape[1], image.shape[0])
        except HdrError as exc:  # the photo itself is fine: it is used without its gain map
            warn(f"{path.name}: {exc}; its gain map is not used")
            recorded = None
        if recorded is not None:
            frame.hdr_rendition, frame.gain_map = apply_orientation(recorded[0], exif.orientation), recorded[1]
    return frame


def _read_heif(path: Path, data: bytes, max_pixels: int | None = None) -> Frame:
    """A HEIF/HEIC still image (a phone's default format) through pillow-heif: its size is checked
    against the pixel budget before decoding; 10/12-bit images are read at 16 bits. libheif applies
    the container's rotation and mirroring, so the pixels are upright and EXIF orientation is not
    applied again."""
    from io import BytesIO

    try:
        import pillow_heif
    except ImportError:
        raise HdrError("reading HEIC/HEIF needs the optional pillow-heif package: "
                       "pip install 'hdrcli[heif]'", path) from None
    try:
        heif = pillow_heif.open_heif(BytesIO(data), convert_hdr_to_8bit=False)  # parses, does not decode
        width, height = heif.size
        deep = int(heif.info.get("bit_depth", 8)) > 8
        check_pixels(width, height, path, channels=3, bytes_per_sample=2 if deep else 1,
                     max_pixels=max_pixels, what="HEIF")
        image = np.asarray(heif)  # decodes: (H, W, 3|4) uint8, or uint16 for 10/12-bit images
        blob = heif.info.get("exif") or b""
    except HdrError:
        raise
    except (ValueError, RuntimeError, OSError, SyntaxError, MemoryError, KeyError, TypeError) as exc:
        raise HdrError(f"HEIF file could not be decoded ({' '.join(str(exc).split())})", path) from None
    if image.ndim == 2:  # monochrome
        image = image[..., None].repeat(3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype not in (np.uint8, np.uint16):
        raise HdrError(f"unsupported HEIF image ({image.dtype}, shape {image.shape})", path)
    exif = parse_exif_bytes(exif_tiff_block(blob))
    exif = replace(exif, orientation=1)  # libheif has applied the container's transformations
    rgb = np.ascontiguousarray(image[..., :3])
    scale = np.float32(1.0 / (255.0 if rgb.dtype == np.uint8 else 65535.0))
    return Frame(path, np.multiply(rgb, scale, dtype=np.float32), 8 if rgb.dtype == np.uint8 else 16,
                 linear=False, exif=exif)


def _read_raw(path: Path, fh: Any, exif: ExifInfo, max_pixels: int | None = None) -> Frame:
    import rawpy  # imported lazily: only RAW input needs libraw

    try:
        with rawpy.RawPy() as raw:
            # open_file parses the header only (libraw reads the rest on demand, through
            # /proc/self/fd: the very file that was checked); sizes are checked before unpacking.
            raw.open_file(descriptor_path(fh, path))
            sizes = raw.sizes
            check_pixels(sizes.raw_width, sizes.raw_height, path, channels=1, bytes_per_sample=2,
                         max_pixels=max_pixels, what="camera RAW sensor")
            check_pixels(sizes.iwidth, sizes.iheight, path, channels=4, bytes_per_sample=2,
                         max_pixels=max_pixels, what="camera RAW image")
            # Linear demosaic: gamma (1, 1), camera white balance, no auto-brightening,
            # 16-bit output so the values stay proportional to scene radiance.
            rgb = raw.postprocess(
                gamma=(1, 1), no_auto_bright=True, use_camera_wb=True, output_bps=16
            )
    except (rawpy.LibRawError, OSError, ValueError, MemoryError) as exc:
        raise HdrError(f"camera RAW file could not be decoded ({type(exc).__name__})", path) from None
    pixels = rgb.astype(np.float32) / np.float32(65535.0)
    # libraw applies the stored flip itself, so EXIF orientation is already accounted for.
    return Frame(path, pixels, 16, linear=True, exif=exif)


def read_frame(
    path: str | os.PathLike[str], *, max_pixels: int | None = None, allow_corrupt: bool | None = None,
    hdr_rendition: bool = False,
) -> Frame:
    """Read one photograph (JPEG/PNG/TIFF at 8 or 16 bit, or camera RAW).

    The size the header declares is checked against the pixel budget before decoding.

    Args:
        max_pixels: most pixels (width x height) accepted; None for the configured budget
            (:func:`hdrcli.io.limits.configure`, default 200 MP).
        allow_corrupt: accept frames whose decoder reported damaged data (with a warning);
            None for the configured policy (default False).
        hdr_rendition: also decode the HDR rendition of a camera's gain-map JPEG (Ultra HDR, ISO
            21496-1) into ``Frame.hdr_rendition``; a gain map that cannot be used is a warning.

    Raises:
        HdrError: the file is missing, empty, not a regular file, over the pixel budget,
            truncated, corrupt, or not an image hdrcli reads.
    """
    path = Path(path)
    budget = max_pixels_setting(max_pixels)
    allow = allow_corrupt_setting(allow_corrupt)
    if os.path.isdir(path):  # (never raises, unlike Path.is_dir on over-long names)
        raise HdrError("is a directory, not an image (a scene folder must hold exposure.txt)", path)
    with open_regular(path, "image") as fh:
        if file_size(fh) == 0:
            raise HdrError("empty file (0 bytes)", path)
        if path.suffix.lower() in RAW_EXTENSIONS:
            if file_size(fh) > max_file_bytes(budget):
                raise HdrError(f"camera RAW file of {file_size(fh):,} bytes is over the limit for the pixel budget", path)
            return _read_raw(path, fh, parse_exif_file(fh), budget)
        kind = sniff_format(fh.read(16))
        if kind is None:
            expected = path.suffix.lstrip(".").upper() or "image"
            raise HdrError(f"not a {expected} file: content is not JPEG, PNG, TIFF or camera RAW", path)
        if kind == "heif":
            if file_size(fh) > max_file_bytes(budget):
                raise HdrError(f"HEIF file of {file_size(fh):,} bytes is over the limit for the pixel budget", path)
            return _read_heif(path, read_bounded(fh, max_file_bytes(budget), path, "image file"), budget)
        header = {"jpeg": jpeg_header, "png": png_header, "tiff": tiff_header}[kind](fh, path)
        check_pixels(header.width, header.height, path, channels=header.channels,
                     bytes_per_sample=header.bytes_per_sample, max_pixels=budget, what=kind.upper())
        if kind == "tiff":
            check_tiles(header, path, budget)
        too_small = check_file_size(header, file_size(fh))
        if too_small:
            report_corruption([too_small], path, kind.upper(), allow)
        data = read_bounded(fh, max_file_bytes(budget), path, "image file")
    return _read_ldr(path, data, kind, parse_exif_bytes(data), allow, hdr_rendition)


def read_frames(
    paths: list[str | os.PathLike[str]], *, max_pixels: int | None = None, allow_corrupt: bool | None = None
) -> list[Frame]:
    """Read several frames and check that they can form one bracket (same size, same kind).

    ``max_pixels`` and ``allow_corrupt`` apply to each frame (see :func:`read_frame`).
    """
    frames = [read_frame(p, max_pixels=max_pixels, allow_corrupt=allow_corrupt) for p in paths]
    if frames:
        first = frames[0]
        for frame in frames[1:]:
            if frame.pixels.shape != first.pixels.shape:
                w, h = frame.size
                w0, h0 = first.size
                raise HdrError(f"size {w}x{h} differs from {first.name} ({w0}x{h0}); frames of a bracket must match", frame.path)
            if frame.linear != first.linear:
                raise HdrError(f"mixes camera RAW and processed images ({first.name}); use one kind per bracket", frame.path)
    return frames
