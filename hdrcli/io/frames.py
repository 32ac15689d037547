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
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hdrcli.errors import HdrError
from hdrcli.io.exif import ExifInfo, parse_exif_bytes

RAW_EXTENSIONS = frozenset(
    ".3fr .ari .arw .cr2 .cr3 .crw .dcr .dng .erf .fff .iiq .k25 .kdc .mef .mos .mrw "
    ".nef .nrw .orf .pef .raf .raw .rw2 .rwl .sr2 .srf .srw .x3f".split()
)
LDR_EXTENSIONS = frozenset(".jpg .jpeg .jpe .png .tif .tiff".split())

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
    """

    path: Path
    pixels: np.ndarray
    bit_depth: int
    linear: bool
    exif: ExifInfo = field(default_factory=ExifInfo)

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


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an (H, W, C) array from stored to display order (EXIF orientation 1..8)."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, k=1),
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(pixels))


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
    return image.astype(np.float32) * np.float32(scale), depth


def _read_ldr(path: Path, data: bytes, kind: str, exif: ExifInfo) -> Frame:
    if kind == "jpeg" and not jpeg_is_complete(data):
        raise HdrError("truncated or corrupt JPEG (no end-of-image marker)", path)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise HdrError(f"corrupt or truncated {kind.upper()} file (could not decode it)", path)
    pixels, depth = _to_float_rgb(image, path)
    return Frame(path, apply_orientation(pixels, exif.orientation), depth, linear=False, exif=exif)


def _read_raw(path: Path, exif: ExifInfo) -> Frame:
    import rawpy  # imported lazily: only RAW input needs libraw

    try:
        with rawpy.imread(str(path)) as raw:
            # Linear demosaic: gamma (1, 1), camera white balance, no auto-brightening,
            # 16-bit output so the values stay proportional to scene radiance.
            rgb = raw.postprocess(
                gamma=(1, 1), no_auto_bright=True, use_camera_wb=True, output_bps=16
            )
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise HdrError(f"camera RAW file could not be decoded ({type(exc).__name__})", path) from None
    pixels = rgb.astype(np.float32) / np.float32(65535.0)
    # libraw applies the stored flip itself, so EXIF orientation is already accounted for.
    return Frame(path, pixels, 16, linear=True, exif=exif)


def read_frame(path: str | os.PathLike[str]) -> Frame:
    """Read one photograph (JPEG/PNG/TIFF at 8 or 16 bit, or camera RAW).

    Raises:
        HdrError: the file is missing, empty, truncated, or not an image hdrcli reads.
    """
    path = Path(path)
    if not path.exists():
        raise HdrError("no such file", path)
    if path.is_dir():
        raise HdrError("is a directory, not an image (a scene folder must hold exposure.txt)", path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HdrError(f"cannot read file ({exc.strerror})", path) from None
    if not data:
        raise HdrError("empty file (0 bytes)", path)
    exif = parse_exif_bytes(data)
    if path.suffix.lower() in RAW_EXTENSIONS:
        return _read_raw(path, exif)
    kind = sniff_format(data)
    if kind is None:
        expected = path.suffix.lstrip(".").upper() or "image"
        raise HdrError(f"not a {expected} file: content is not JPEG, PNG, TIFF or camera RAW", path)
    return _read_ldr(path, data, kind, exif)


def read_frames(paths: list[str | os.PathLike[str]]) -> list[Frame]:
    """Read several frames and check that they can form one bracket (same size, same kind)."""
    frames = [read_frame(p) for p in paths]
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
