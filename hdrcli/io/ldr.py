"""Writing display-referred (LDR) images: previews, tone-mapped images, exposure fusion.

``.jpg``/``.jpeg`` (8-bit, quality 92), ``.png`` (8-bit), ``.tif``/``.tiff`` (16-bit).
Files appear whole or not at all.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from hdrcli.errors import HdrError
from hdrcli.io.atomic import atomic_path

LDR_OUTPUT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def check_ldr_extension(path: str | os.PathLike[str]) -> None:
    suffix = Path(path).suffix.lower()
    if suffix not in LDR_OUTPUT_EXTENSIONS:
        raise HdrError(f"unknown image extension '{suffix or '(none)'}'; use one of {', '.join(LDR_OUTPUT_EXTENSIONS)}", path)


def clip_display(display: np.ndarray) -> np.ndarray:
    """A display image as finite float32 in [0, 1] (NaN and -inf -> 0, +inf -> 1); the array
    itself when it already is, as tone maps return it (two reductions, no full-size copies)."""
    display = np.asarray(display, np.float32)
    if display.min(initial=0.0) >= 0.0 and display.max(initial=0.0) <= 1.0:  # NaN fails both tests
        return display
    return np.clip(np.nan_to_num(display, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def write_ldr(path: str | os.PathLike[str], display: np.ndarray, quality: int = 92, exif: bytes | None = None) -> Path:
    """Write a display-referred RGB image with values in [0, 1].

    ``exif``: an EXIF payload (hdrcli.io.metadata.exif_bytes) put into JPEG outputs.
    """
    check_ldr_extension(path)
    display = clip_display(display)
    suffix = Path(path).suffix.lower()
    if suffix in (".tif", ".tiff"):
        data = np.rint(display * 65535.0).astype(np.uint16)
        params: list[int] = []
    else:
        # rint(display * 255) in one pass without float temporaries (float32 product, round
        # half to even: the same bytes as numpy's, 5x faster); the abs is a no-op on [0, 1].
        data = cv2.convertScaleAbs(display, alpha=255.0)
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else []
    # Encoded in memory and written by Python: a full disk is an OSError naming the file (not
    # libpng noise on stderr), and no native code sees a file name (non-UTF-8 names crash imwrite).
    ok, encoded = cv2.imencode(".tif" if suffix == ".tiff" else suffix, cv2.cvtColor(data, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise HdrError("could not encode image", path)
    payload = encoded.tobytes()
    del encoded
    if exif and suffix in (".jpg", ".jpeg"):
        from hdrcli.io.metadata import insert_exif

        payload = insert_exif(payload, exif)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)
