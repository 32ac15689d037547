"""Cheap header parsers: the size an image file declares, read before anything is decoded.

Each parser reads only the few bytes of the header from a seekable binary file and returns
an :class:`ImageHeader` (width, height, samples per pixel, bytes per sample), so the pixel
budget (:mod:`hdrcli.io.limits`) can refuse a file that claims to be huge before a decoder
allocates its pixels. They are written here rather than taken from a library because
the decoders' own header readers (OpenCV, OpenEXR) allocate or decode as they go, and
because each format's size field is a few bytes at a documented place:

* JPEG: the SOFn segment (ITU T.81 B.2.2): precision, height, width, components;
* PNG: the IHDR chunk, first in the file (PNG spec 11.2.2);
* TIFF / BigTIFF: tags 256/257/258/277 (and strip/tile sizes) of the first IFD, the
  page OpenCV decodes;
* OpenEXR: the ``dataWindow``, ``channels``, ``type`` and ``pixelAspectRatio`` attributes of
  every part (OpenEXR file layout, "Header").

Malformed headers raise :class:`HdrError`; no parser reads more than the file holds or
loops more than a bounded number of times.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from hdrcli.errors import HdrError

_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_MAX_SEGMENTS = 10_000  # JPEG segments / TIFF tags / EXR attributes walked at most


@dataclass(frozen=True)
class ImageHeader:
    """What a header declares: size in pixels, samples per pixel and bytes per sample."""

    width: int
    height: int
    channels: int
    bytes_per_sample: int
    tile_width: int = 0  # TIFF strips/tiles: the decoder's buffer is this large (0: none)
    tile_height: int = 0
    min_file_bytes: int = 0  # no valid file of this size can be smaller (see check_file_size)


def check_file_size(header: ImageHeader, size: int) -> str | None:
    """A problem when a file of ``size`` bytes cannot hold the image its header declares.

    The bounds are what the codec can achieve at best, so no valid file is refused:
    deflate (PNG) never compresses more than 1032:1, and a baseline Huffman JPEG spends
    at least 2 bits (DC difference + end of block) on each 8x8 luma block. A tiny file
    declaring a large image is thus refused before the decoder allocates the image.
    """
    if size < header.min_file_bytes:
        return (f"file is {size:,} bytes, too small for the {header.width}x{header.height} image its header "
                f"declares (at least {header.min_file_bytes:,} bytes): truncated or corrupt")
    return None


def _read_exact(fh: BinaryIO, n: int, path: str | os.PathLike[str] | None, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise HdrError(f"truncated {what} header", path)
    return data


def jpeg_header(fh: BinaryIO, path: str | os.PathLike[str] | None = None) -> ImageHeader:
    """Size of a JPEG from its first start-of-frame segment (EXIF thumbnails sit inside APP1 and are skipped)."""
    fh.seek(0)
    if fh.read(2) != b"\xff\xd8":
        raise HdrError("not a JPEG file (no start-of-image marker)", path)
    for _ in range(_MAX_SEGMENTS):
        byte = fh.read(1)
        if not byte:
            break
        if byte != b"\xff":
            raise HdrError("corrupt JPEG header (expected a marker)", path)
        marker = fh.read(1)
        while marker == b"\xff":  # fill bytes
            marker = fh.read(1)
        if not marker:
            break
        code = marker[0]
        if code == 0xD8 or code == 0x01 or 0xD0 <= code <= 0xD7:
            continue
        if code in (0xD9, 0xDA):
            raise HdrError("corrupt JPEG header (image data before any frame header)", path)
        length = struct.unpack(">H", _read_exact(fh, 2, path, "JPEG"))[0]
        if length < 2:
            raise HdrError("corrupt JPEG header (segment length below 2)", path)
        if code in _JPEG_SOF:
            body = _read_exact(fh, 6, path, "JPEG")
            precision, height, width, components = struct.unpack(">BHHB", body)
            if height == 0:
                raise HdrError("JPEG declares its height later in the file (DNL marker): not supported", path)
            # Baseline/extended Huffman: >= 2 bits per 8x8 luma block. Progressive Huffman: >= 1 bit
            # (every block's DC difference has a code of at least 1 bit; libjpeg spends 2 on a flat
            # grey image). Arithmetic coding can do better, so it gets no bound.
            least = {0xC0: width * height // 256, 0xC1: width * height // 256, 0xC2: width * height // 512}.get(code, 0)
            return ImageHeader(width, height, max(components, 1), 2 if precision > 8 else 1, min_file_bytes=least)
        fh.seek(length - 2, os.SEEK_CUR)
    raise HdrError("truncated or corrupt JPEG (no frame header)", path)


_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def png_header(fh: BinaryIO, path: str | os.PathLike[str] | None = None) -> ImageHeader:
    """Size of a PNG from its IHDR chunk."""
    fh.seek(0)
    data = fh.read(29)
    if len(data) < 29 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise HdrError("truncated or corrupt PNG header (no IHDR chunk)", path)
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if colour not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16):
        raise HdrError(f"corrupt PNG header (bit depth {depth}, colour type {colour})", path)
    channels = 1 if colour == 3 else _PNG_CHANNELS[colour]  # palette: one index per pixel in the data
    filtered = height * (1 + (width * channels * depth + 7) // 8)  # bytes deflate must produce
    return ImageHeader(width, height, _PNG_CHANNELS[colour], 2 if depth == 16 else 1, min_file_bytes=filtered // 1032)


# TIFF field types: (size in bytes, struct code)
_TIFF_TYPES = {1: (1, "B"), 3: (2, "H"), 4: (4, "I"), 8: (2, "h"), 9: (4, "i"), 16: (8, "Q"), 17: (8, "q")}


def tiff_header(fh: BinaryIO, path: str | os.PathLike[str] | None = None) -> ImageHeader:
    """Size of the first page of a TIFF or BigTIFF (the page the decoder reads)."""
    fh.seek(0)
    head = fh.read(16)
    if head[:2] == b"II":
        order = "<"
    elif head[:2] == b"MM":
        order = ">"
    else:
        raise HdrError("not a TIFF file", path)
    if len(head) < 8:
        raise HdrError("truncated TIFF header", path)
    version = struct.unpack(order + "H", head[2:4])[0]
    if version == 42:
        big, offset = False, struct.unpack(order + "I", head[4:8])[0]
    elif version == 43 and len(head) >= 16:
        big, offset = True, struct.unpack(order + "Q", head[8:16])[0]
    else:
        raise HdrError(f"corrupt TIFF header (version {version})", path)
    fh.seek(offset)
    count_size, entry_size = (8, 20) if big else (2, 12)
    raw = fh.read(count_size)
    if len(raw) != count_size:
        raise HdrError("corrupt TIFF header (first directory beyond the end of the file)", path)
    count = struct.unpack(order + ("Q" if big else "H"), raw)[0]
    if count > _MAX_SEGMENTS:
        raise HdrError(f"corrupt TIFF header ({count} tags in the first directory)", path)
    entries = fh.read(count * entry_size)
    if len(entries) != count * entry_size:
        raise HdrError("truncated TIFF directory", path)
    tags: dict[int, int] = {}
    inline = 8 if big else 4
    for i in range(count):
        entry = entries[i * entry_size : (i + 1) * entry_size]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag not in (256, 257, 258, 259, 277, 278, 322, 323) or kind not in _TIFF_TYPES:
            continue
        n = struct.unpack(order + ("Q" if big else "I"), entry[4 : 4 + inline])[0]
        size, code = _TIFF_TYPES[kind]
        if n < 1:
            continue
        value_field = entry[4 + inline :]
        if size * n <= inline:  # first value stored in the entry itself
            value = struct.unpack(order + code, value_field[:size])[0]
        else:  # values elsewhere: read the first one
            where = struct.unpack(order + ("Q" if big else "I"), value_field)[0]
            here = fh.tell()
            fh.seek(where)
            first = fh.read(size)
            fh.seek(here)
            if len(first) != size:
                raise HdrError("corrupt TIFF header (tag value beyond the end of the file)", path)
            value = struct.unpack(order + code, first)[0]
        tags[tag] = int(value)
    if 256 not in tags or 257 not in tags:
        raise HdrError("corrupt TIFF header (no image width or length)", path)
    bits = tags.get(258, 1)
    samples = tags.get(277, 1)
    if not 1 <= bits <= 64:
        raise HdrError(f"corrupt TIFF header ({bits} bits per sample)", path)
    width, height = tags[256], tags[257]
    if 322 in tags or 323 in tags:
        tile_w, tile_h = tags.get(322, 0), tags.get(323, 0)
    else:  # strips: the decoder buffers RowsPerStrip rows (at most the image height)
        tile_w, tile_h = width, min(tags.get(278, height), height)
    # Best compression ratio each codec can reach: none 1, PackBits 64 (2 bytes for a run
    # of 128), LZW ~2730 (a 12-bit code stands for at most 4096 bytes), deflate 1032.
    ratio = {1: 1, 32773: 64, 5: 2730, 8: 1032, 32946: 1032}.get(tags.get(259, 1), 0)
    least = width * height * samples * bits // 8 // ratio if ratio else 0
    return ImageHeader(width, height, samples, max(1, (bits + 7) // 8), tile_w, tile_h, min_file_bytes=least)


def check_tiles(header: ImageHeader, path: str | os.PathLike[str] | None, max_pixels: int) -> None:
    """Refuse TIFF strips/tiles whose buffer would dwarf the image itself."""
    tile = header.tile_width * header.tile_height
    if header.tile_width < 0 or header.tile_height < 0:
        raise HdrError("corrupt TIFF header (negative tile size)", path)
    if tile > max(4 * header.width * header.height, 1 << 20) or tile > max_pixels:
        raise HdrError(
            f"TIFF declares {header.tile_width}x{header.tile_height} tiles for a "
            f"{header.width}x{header.height} image: refused (decoder buffer too large)", path)


# ----------------------------------------------------------------------------- OpenEXR

_EXR_MAGIC = b"\x76\x2f\x31\x01"
_EXR_SAMPLE_BYTES = {0: 4, 1: 2, 2: 4}  # UINT, HALF, FLOAT
# Scan lines per chunk of each compression (OpenEXR file layout, "Scan Line Blocks"), and the
# most it can compress the samples: none 1, RLE 64 (128 equal bytes in 2), deflate 1032 (ZIP,
# ZIPS; PXR24 first stores float32 in 24 bits: 1376). PIZ, B44, DWA and the newer codecs get no
# bound on their data, only on their chunks' headers and offsets.
_EXR_LINES = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256, 10: 256, 11: 32}
_EXR_BEST_RATIO = {0: 1, 1: 64, 2: 1032, 3: 1032, 5: 1376}


@dataclass(frozen=True)
class ExrPart:
    """One part of an OpenEXR file: data window size, channels (name, bytes, x/y sampling), and
    the fewest bytes its offset table and chunks can take (0: unknown)."""

    width: int
    height: int
    channels: tuple[tuple[str, int, int, int], ...]
    kind: str
    min_bytes: int = 0


def _exr_min_part_bytes(width: int, height: int, channels: tuple[tuple[str, int, int, int], ...],
                        compression: int | None, tile: tuple[int, int] | None, multipart: bool) -> int:
    """Least bytes of a part's offset table and chunks: 8 per offset, each chunk's header (scan
    lines: y and size, 8 bytes; tiles: 4 coordinates and size, 20; multi-part: + the part
    number), and its samples at the compression's best ratio. Tiles count level 0 only."""
    if tile is not None:
        chunks, header = -(-width // tile[0]) * -(-height // tile[1]), 20
    elif compression in _EXR_LINES:
        chunks, header = -(-height // _EXR_LINES[compression]), 8
    else:
        return 0
    raw = sum(-(-width // xs) * -(-height // ys) * size for _, size, xs, ys in channels)
    ratio = _EXR_BEST_RATIO.get(compression) if compression is not None else None
    return chunks * (8 + header + (4 if multipart else 0)) + (raw // ratio if ratio else 0)


def _exr_string(fh: BinaryIO, limit: int, path: str | os.PathLike[str] | None) -> bytes:
    out = bytearray()
    while True:
        c = fh.read(1)
        if not c:
            raise HdrError("truncated OpenEXR header", path)
        if c == b"\x00":
            return bytes(out)
        out += c
        if len(out) > limit:
            raise HdrError("corrupt OpenEXR header (attribute name too long)", path)


def _exr_channels(value: bytes, path: str | os.PathLike[str] | None) -> tuple[tuple[str, int, int, int], ...]:
    channels = []
    pos = 0
    while pos < len(value) and value[pos] != 0:
        end = value.find(b"\x00", pos)
        if end < 0 or end + 17 > len(value):
            raise HdrError("corrupt OpenEXR header (channel list)", path)
        name = value[pos:end].decode("utf-8", "replace")
        pixel_type, _, _, _, _, xs, ys = struct.unpack("<iBBBBii", value[end + 1 : end + 17])
        if pixel_type not in _EXR_SAMPLE_BYTES or xs < 1 or ys < 1:
            raise HdrError(f"corrupt OpenEXR header (channel '{name}': type {pixel_type}, sampling {xs}x{ys})", path)
        channels.append((name, _EXR_SAMPLE_BYTES[pixel_type], xs, ys))
        pos = end + 17
        if len(channels) > 1024:
            raise HdrError("corrupt OpenEXR header (more than 1024 channels)", path)
    return tuple(channels)


def exr_header(fh: BinaryIO, path: str | os.PathLike[str] | None = None) -> list[ExrPart]:
    """The parts of an OpenEXR file as their headers declare them.

    Non-finite or non-positive ``pixelAspectRatio`` and non-finite ``screenWindowWidth``
    are refused here (OpenEXR's own check reports them less clearly).
    """
    fh.seek(0)
    head = fh.read(8)
    if len(head) < 8 or head[:4] != _EXR_MAGIC:
        raise HdrError("not an OpenEXR file (bad magic number)", path)
    flags = struct.unpack("<I", head[4:8])[0]
    if flags & 0xFF != 2:
        raise HdrError(f"unsupported OpenEXR version {flags & 0xFF}", path)
    long_names, multipart = bool(flags & 0x400), bool(flags & 0x1000)
    name_limit = 255 if long_names else 31
    parts: list[ExrPart] = []
    attributes = 0
    while True:
        values: dict[bytes, tuple[bytes, bytes]] = {}
        while True:
            name = _exr_string(fh, name_limit, path)
            if not name:
                break
            kind = _exr_string(fh, name_limit, path)
            size = struct.unpack("<i", _read_exact(fh, 4, path, "OpenEXR"))[0]
            if size < 0 or size > (16 << 20):
                raise HdrError(f"corrupt OpenEXR header (attribute '{name.decode('latin-1')}' of {size} bytes)", path)
            if name in (b"dataWindow", b"channels", b"pixelAspectRatio", b"screenWindowWidth", b"type",
                        b"compression", b"tiles"):
                values[name] = (kind, _read_exact(fh, size, path, "OpenEXR"))
            else:
                fh.seek(size, os.SEEK_CUR)
            attributes += 1
            if attributes > _MAX_SEGMENTS:
                raise HdrError("corrupt OpenEXR header (too many attributes)", path)
        if not values and parts:  # the empty header ending a multi-part file
            break
        if b"dataWindow" not in values or b"channels" not in values:
            raise HdrError("corrupt OpenEXR header (no dataWindow or channels)", path)
        window = values[b"dataWindow"][1]
        if len(window) != 16:
            raise HdrError("corrupt OpenEXR header (dataWindow)", path)
        xmin, ymin, xmax, ymax = struct.unpack("<iiii", window)
        for key in (b"pixelAspectRatio", b"screenWindowWidth"):
            if key in values and len(values[key][1]) == 4:
                number = struct.unpack("<f", values[key][1])[0]
                if not math.isfinite(number) or (key == b"pixelAspectRatio" and number <= 0):
                    raise HdrError(f"corrupt OpenEXR header ({key.decode()} = {number})", path)
        default_kind = b"tiledimage" if flags & 0x200 else b"scanlineimage"
        kind_value = values.get(b"type", (b"", default_kind))[1].rstrip(b"\x00").decode("latin-1")
        width, height = xmax - xmin + 1, ymax - ymin + 1
        channels = _exr_channels(values[b"channels"][1], path)
        compression = values[b"compression"][1][0] if len(values.get(b"compression", (b"", b""))[1]) == 1 else None
        tile = None
        if kind_value.startswith("tiled"):
            desc = values.get(b"tiles", (b"", b""))[1]
            if len(desc) != 9:
                raise HdrError("corrupt OpenEXR header (tiled image without a tile description)", path)
            tile = struct.unpack("<II", desc[:8])
            if min(tile) < 1:
                raise HdrError(f"corrupt OpenEXR header (tiles of {tile[0]}x{tile[1]})", path)
        least = _exr_min_part_bytes(width, height, channels, compression, tile, multipart) if width > 0 < height else 0
        parts.append(ExrPart(width, height, channels, kind_value, least))
        if not multipart or len(parts) > 64:
            break
    if flags & 0x800 or any(p.kind.startswith("deep") for p in parts):
        raise HdrError("deep OpenEXR images are not supported", path)
    return parts
