"""Decoding JPEG/PNG/TIFF with OpenCV, with the decoder's corruption warnings made visible.

OpenCV's imdecode returns an image for many damaged files: libjpeg fills a truncated
scan with grey after printing "Premature end of JPEG file" or "Corrupt JPEG data: N
extraneous bytes" to stderr, libtiff and libpng report through OpenCV's logger to stderr
too, and the caller sees only an array. The messages are written by C code to file
descriptor 2, so :func:`decoder_messages` points descriptor 2 at an anonymous in-memory
file (``memfd_create``; an unlinked temporary file elsewhere) for the duration of one
decode, under a lock, and returns what was written. Messages that report damage
(:func:`corruption_messages`) make the frame an error naming the file, unless the caller
allows corrupt frames, in which case they become one warning. Benign notes (an
"incorrect sRGB profile", unknown TIFF tags) are dropped.

Why this and not another decoder: OpenCV stays the decoder (same pixels as before, 8/16
bit, every TIFF layout it supports) and the capture needs no extra dependency; Pillow
would report truncation only, and not libtiff's strip errors.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

import cv2
import numpy as np

from hdrcli.errors import HdrError
from hdrcli.log import info, warn

_LOCK = threading.Lock()
_MAX_MESSAGE_BYTES = 64 << 10

_DAMAGE = re.compile(
    r"corrupt|premature|extraneous|truncat|not enough|too much|read error|decod\w* error|crc error|"
    r"invalid|incorrect|bad huffman|unexpected|failed|error|damaged|missing|seek",
    re.IGNORECASE,
)
_BENIGN = re.compile(
    r"iccp|srgb|profile|unknown field with tag|ascii value for tag|unknown adobe|tags are not sorted|"
    r"wrong data type|photometric|unknown jpeg process|extrasamples|application transferred too many",
    re.IGNORECASE,
)


@contextmanager
def decoder_messages() -> Iterator[list[str]]:
    """Collect what C code writes to stderr (file descriptor 2) inside the block."""
    lines: list[str] = []
    with _LOCK:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        try:
            sink = os.memfd_create("hdrcli-decoder-messages")
        except (AttributeError, OSError):
            with tempfile.TemporaryFile() as tmp:  # unlinked at once on POSIX
                sink = os.dup(tmp.fileno())
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to capture
            os.close(sink)
            yield lines
            return
        os.dup2(sink, 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.lseek(sink, 0, os.SEEK_SET)
            data = os.read(sink, _MAX_MESSAGE_BYTES)
            os.close(sink)
            lines.extend(line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip())


def corruption_messages(lines: list[str]) -> list[str]:
    """The decoder messages that report damaged data (see module docstring)."""
    return [line for line in lines if _DAMAGE.search(line) and not _BENIGN.search(line)]


def _clean(message: str) -> str:
    """A decoder message without OpenCV's log prefix ('[ WARN:0@0.1] global grfmt_tiff.cpp:117 ...')."""
    message = re.sub(r"^\[\s*\w+:\S*\]\s*(global\s+)?\S+:\d+\s+\S+\s*", "", message)
    message = re.sub(r"^(libpng (error|warning)|TIFF_Error|TIFF_Warning|Corrupt JPEG data):\s*", "", message)
    return message.strip().rstrip(".")


def report_corruption(problems: list[str], path: str | os.PathLike[str], kind: str, allow_corrupt: bool) -> None:
    """Raise (or, when allowed, warn) for a frame whose decoder reported damage."""
    if not problems:
        return
    first = _clean(problems[0])[:200]
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    if allow_corrupt:
        warn(f"{path}: corrupt {kind} data ({first}){more}; used anyway (--allow-corrupt)")
        return
    raise HdrError(f"corrupt {kind} data: {first}{more} (--allow-corrupt accepts such frames)", path)


def imdecode_checked(data: bytes, path: str | os.PathLike[str], kind: str, allow_corrupt: bool) -> np.ndarray:
    """cv2.imdecode (IMREAD_UNCHANGED) of an in-memory JPEG/PNG/TIFF; HdrError naming ``path``.

    The header must already have passed the pixel budget. Decoder warnings about damaged
    data raise HdrError unless ``allow_corrupt``; a cv2.error becomes one line.
    """
    buffer = np.frombuffer(data, np.uint8)
    try:
        with decoder_messages() as lines:
            image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        detail = _clean(str(exc).strip().splitlines()[-1] if str(exc).strip() else "decoder error")
        raise HdrError(f"corrupt {kind} file (OpenCV: {detail[:200]})", path) from None
    problems = corruption_messages(lines)
    for line in lines:
        if line not in problems:
            info(f"{path}: decoder note: {_clean(line)[:200]}")
    if image is None or image.size == 0:
        detail = f": {_clean(problems[0])[:200]}" if problems else ""
        raise HdrError(f"corrupt or truncated {kind} file (could not decode it{detail})", path)
    report_corruption(problems, path, kind, allow_corrupt)
    return image
