"""Resource limits for reading user files: the pixel budget and the text-file size cap.

Every image reader checks the size that the file's *header* declares against the pixel
budget before it decodes anything, so a small file that claims to be 16000x16000 is
refused without allocating its pixels. The budget is one number, ``max_pixels``
(width x height of one frame, default 200 megapixels); a reader takes it as an argument,
and ``None`` means the process-wide value set with :func:`configure` (the CLI's
``--max-pixels``). :func:`configure` also exports it in the environment
(``HDRCLI_MAX_PIXELS``, ``HDRCLI_ALLOW_CORRUPT``) so worker processes inherit it whatever
their start method.

Besides width x height, the decoded size (pixels x channels x bytes per sample) is
bounded by ``max_pixels x MAX_BYTES_PER_PIXEL`` (the size of a float32 RGBA image), which
catches files declaring thousands of channels or 64-bit samples.
"""

from __future__ import annotations

import os

from hdrcli.errors import HdrError

DEFAULT_MAX_PIXELS = 200_000_000  # per frame (width x height)
MAX_BYTES_PER_PIXEL = 16  # decoded bytes per pixel allowed: float32 RGBA
MAX_TEXT_BYTES = 1 << 20  # exposure lists, camera response files: 1 MiB
MAX_SIDE = 1 << 20  # no real image is wider or taller than ~1 million pixels

_ENV_MAX_PIXELS = "HDRCLI_MAX_PIXELS"
_ENV_ALLOW_CORRUPT = "HDRCLI_ALLOW_CORRUPT"


def configure(*, max_pixels: int | None = None, allow_corrupt: bool | None = None) -> None:
    """Set the process-wide pixel budget and corrupt-frame policy (``None`` leaves a value as is).

    Args:
        max_pixels: most pixels (width x height) one frame may declare, >= 1.
        allow_corrupt: accept frames whose decoder reported corruption, with a warning.
    """
    if max_pixels is not None:
        max_pixels = int(max_pixels)
        if max_pixels < 1:
            raise HdrError(f"--max-pixels must be at least 1, got {max_pixels}")
        os.environ[_ENV_MAX_PIXELS] = str(max_pixels)
    if allow_corrupt is not None:
        os.environ[_ENV_ALLOW_CORRUPT] = "1" if allow_corrupt else "0"


def max_pixels_setting(max_pixels: int | None = None) -> int:
    """The pixel budget to use: ``max_pixels`` when given, else the configured one."""
    if max_pixels is not None:
        return int(max_pixels)
    text = os.environ.get(_ENV_MAX_PIXELS, "")
    try:
        value = int(text)
    except ValueError:
        return DEFAULT_MAX_PIXELS
    return value if value >= 1 else DEFAULT_MAX_PIXELS


def allow_corrupt_setting(allow_corrupt: bool | None = None) -> bool:
    """The corrupt-frame policy to use: ``allow_corrupt`` when given, else the configured one."""
    if allow_corrupt is not None:
        return bool(allow_corrupt)
    return os.environ.get(_ENV_ALLOW_CORRUPT, "0") == "1"


def max_file_bytes(max_pixels: int | None = None) -> int:
    """Largest image file read into memory: an uncompressed image at the budget plus 64 MiB of metadata."""
    return max_pixels_setting(max_pixels) * MAX_BYTES_PER_PIXEL + (64 << 20)


def check_pixels(
    width: int,
    height: int,
    path: str | os.PathLike[str] | None,
    *,
    channels: int = 3,
    bytes_per_sample: int = 1,
    max_pixels: int | None = None,
    what: str = "image",
) -> None:
    """Refuse an image whose declared size is empty, absurd or over the pixel budget.

    Args:
        width, height: size in pixels as the header declares it.
        channels: samples per pixel (1..); bytes_per_sample: bytes per sample (1, 2, 4, 8).
        max_pixels: budget (width x height); None for the configured one.
    """
    budget = max_pixels_setting(max_pixels)
    if width <= 0 or height <= 0:
        raise HdrError(f"{what} header declares an empty or invalid size {width}x{height}", path)
    if width > MAX_SIDE or height > MAX_SIDE:
        raise HdrError(f"{what} header declares an absurd size {width}x{height}", path)
    pixels = width * height
    if pixels > budget:
        raise HdrError(
            f"{what} is {width}x{height} = {pixels:,} pixels, over the budget of {budget:,} pixels "
            "per image (raise it with --max-pixels)", path)
    if channels < 1 or bytes_per_sample < 1:
        raise HdrError(f"{what} header declares {channels} channels of {bytes_per_sample} bytes", path)
    if pixels * channels * bytes_per_sample > budget * MAX_BYTES_PER_PIXEL:
        raise HdrError(
            f"{what} header declares {channels} channels of {bytes_per_sample} bytes at {width}x{height}: "
            f"{pixels * channels * bytes_per_sample / 2**30:.1f} GiB decoded, over the pixel budget "
            "(raise it with --max-pixels)", path)
