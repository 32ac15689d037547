"""Camera response curves (CRF): calibration with OpenCV, normalisation, and files.

A response here is the *inverse* camera curve as a float32 array (256, 3): entry
``[z, c]`` is the relative irradiance that produces pixel value z (0..255) in channel c
(RGB order). hdrcli normalises it so that the mean over channels of entry 255 is 1: a
pixel at the clipping level of the shortest exposure then merges to radiance ~1, the
same unit as the learned backends (Kalantari convention).

Response files are plain text: a comment header, then 256 lines of three numbers
(R G B) for pixel values 0..255.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from hdrcli.errors import HdrError
from hdrcli.io.atomic import atomic_path

CALIBRATION_METHODS = ("debevec", "robertson")
_CALIBRATION_MAX_PIXELS = 1_000_000  # calibration uses statistics only: downscale larger frames


def normalize_response(response: np.ndarray) -> np.ndarray:
    """Scale a (256, 3) inverse response so that mean(response[255]) == 1."""
    response = np.asarray(response, dtype=np.float32).reshape(256, 3)
    top = float(response[255].mean())
    if not np.isfinite(response).all() or top <= 0:
        raise HdrError("camera response calibration failed (non-finite or non-positive curve)")
    return response / np.float32(top)


def linear_response() -> np.ndarray:
    """The response of linear data (camera RAW): irradiance = z / 255."""
    return np.repeat((np.arange(256, dtype=np.float32) / 255.0)[:, None], 3, axis=1)


def _downscaled(images: list[np.ndarray]) -> list[np.ndarray]:
    h, w = images[0].shape[:2]
    factor = (_CALIBRATION_MAX_PIXELS / (h * w)) ** 0.5
    if factor >= 1:
        return images
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images]


def _sample_mosaic(images: list[np.ndarray], side: int = 24, seed: int = 0) -> list[np.ndarray]:
    """side x side mosaics of well-chosen pixels, one per frame, for OpenCV's calibrators.

    OpenCV's CalibrateDebevec samples a regular grid, which on real photos lands mostly on
    a few large uniform areas and leaves parts of the curve unconstrained. Debevec & Malik
    recommend pixels that span the whole range and sit in smooth regions (so slight
    misalignment does not matter). Pixels are picked stratified by the reference frame's
    brightness among pixels whose neighbourhood is smooth in every frame, then packed into
    a mosaic that OpenCV's grid samples exactly (one sample per mosaic pixel).
    """
    kernel = np.ones((5, 5), np.uint8)
    smooth = np.ones(images[0].shape[:2], bool)
    informative = np.zeros(images[0].shape[:2], bool)
    for im in images:
        gray = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
        smooth &= cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, kernel) <= 12
        # A sample clipped or black in every frame constrains nothing and leaves OpenCV's
        # linear system singular (NaN curves): keep pixels well exposed in some frame.
        low = np.minimum(np.minimum(im[..., 0], im[..., 1]), im[..., 2])
        high = np.maximum(np.maximum(im[..., 0], im[..., 1]), im[..., 2])
        informative |= (low > 5) & (high < 250)
    smooth &= informative
    reference = cv2.cvtColor(images[len(images) // 2], cv2.COLOR_RGB2GRAY).astype(np.int32)
    rng = np.random.default_rng(seed)
    n_bins, wanted = 32, side * side
    bins = reference // (256 // n_bins)
    candidates = [np.flatnonzero(smooth.ravel() & (bins.ravel() == b)) for b in range(n_bins)]
    candidates = [c for c in candidates if c.size]
    if not candidates:
        candidates = [np.arange(reference.size)]
    chosen: list[np.ndarray] = []
    per_bin = max(1, wanted // len(candidates))
    for c in candidates:
        chosen.append(rng.choice(c, size=min(per_bin, c.size), replace=False))
    picked = np.concatenate(chosen)
    if picked.size < wanted:  # top up from all smooth pixels (or all pixels)
        pool = np.flatnonzero(smooth.ravel()) if smooth.any() else np.flatnonzero(informative.ravel())
        pool = pool if pool.size else np.arange(reference.size)
        picked = np.concatenate([picked, rng.choice(pool, size=wanted - picked.size, replace=pool.size < wanted)])
    picked = rng.permutation(picked)[:wanted]
    return [np.ascontiguousarray(im.reshape(-1, 3)[picked].reshape(side, side, 3)) for im in images]


def _fill_unobserved(response: np.ndarray) -> np.ndarray:
    """Interpolate (in log space) entries a calibrator left non-finite or non-positive."""
    response = response.astype(np.float64).copy()
    codes = np.arange(256)
    for c in range(3):
        ok = np.isfinite(response[:, c]) & (response[:, c] > 0)
        if ok.sum() < 2:
            raise HdrError("camera response calibration failed (too few distinct pixel values)")
        response[:, c] = np.exp(np.interp(codes, codes[ok], np.log(response[ok, c])))
    return response.astype(np.float32)


def _monotone(response: np.ndarray) -> np.ndarray:
    """Strictly increasing version of a curve: brighter pixels never map to less light.

    Debevec's solver leaves the extreme codes poorly constrained; a tiny slope (0.01%
    per code) keeps the inverse well defined where the curve would otherwise be flat.
    """
    log_r = np.log(np.maximum(response, 1e-10)).astype(np.float64)
    ramp = np.arange(256)[:, None] * 1e-4
    return np.exp(np.maximum.accumulate(log_r - ramp, axis=0) + ramp).astype(np.float32)


def calibrate_response(
    images_u8: list[np.ndarray], exposures: list[float], method: str = "debevec", shared: bool = True
) -> np.ndarray:
    """Estimate the inverse camera response from aligned 8-bit frames.

    Debevec calibration runs on a mosaic of well-spread, smooth pixels (see
    :func:`_sample_mosaic`); pixel values no frame contains are interpolated.

    Args:
        images_u8: uint8 RGB frames (H, W, 3) of one static scene, aligned.
        exposures: relative exposure of each frame (any common unit).
        method: 'debevec' (Debevec & Malik 1997, lambda 10, 576 chosen samples) or
            'robertson' (Robertson et al. 2003, every pixel). Both run on a <= 1 MP copy.
        shared: use one curve shape for all channels (mean of the per-channel log
            curves, each keeping its own value at pixel 128, so grey stays grey).

    Returns:
        The normalised (256, 3) inverse response (see module docstring).
    """
    if method not in CALIBRATION_METHODS:
        raise HdrError(f"unknown calibration '{method}' (use {', '.join(CALIBRATION_METHODS)})")
    times = np.asarray(exposures, dtype=np.float32)
    # Calibration needs statistics, not resolution: a <= 1 MP copy keeps it fast.
    images = _downscaled([np.ascontiguousarray(im) for im in images_u8])
    if method == "debevec":
        mosaic = _sample_mosaic(images)
        calibrator = cv2.createCalibrateDebevec(samples=mosaic[0].shape[0] * mosaic[0].shape[1], random=False)
        response = calibrator.process(mosaic, times)
    else:  # Robertson uses every pixel
        response = cv2.createCalibrateRobertson().process(images, times)
    response = _fill_unobserved(response.reshape(256, 3))
    if method == "robertson":
        # OpenCV's Robertson curve has no smoothness term and zig-zags from code to code
        # (dozens of reversals on real JPEGs), which bands the merge: smooth it in log space.
        response = np.exp(cv2.GaussianBlur(np.log(response)[:, None, :], (1, 0), sigmaX=0.1, sigmaY=4.0,
                                           borderType=cv2.BORDER_REPLICATE)[:, 0, :])
    response = _monotone(response)
    if shared:
        # One curve for all channels (geometric mean, each channel's scale kept): camera
        # JPEG pipelines apply one tone curve after white balance, and per-channel solves
        # disagree most at the poorly sampled extremes, which tints highlights.
        log_r = np.log(response)
        mid = log_r[128]
        shape = (log_r - mid).mean(axis=1, keepdims=True)
        response = np.exp(shape + mid).astype(np.float32)
    return normalize_response(response)


def save_response(path: str | os.PathLike[str], response: np.ndarray) -> Path:
    """Write a response curve as text (see module docstring); atomic."""
    response = np.asarray(response, dtype=np.float64).reshape(256, 3)
    lines = [
        "# hdrcli camera response (inverse CRF): relative irradiance per pixel value",
        "# 256 rows for pixel values 0..255; columns R G B; normalised so mean of row 255 = 1",
    ]
    lines += [" ".join(f"{v:.9g}" for v in row) for row in response]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)


def load_response(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a response file written by :func:`save_response` (or any 256x3 / 256x1 table)."""
    path = Path(path)
    try:
        table = np.loadtxt(path, dtype=np.float64, comments="#", ndmin=2)
    except (OSError, ValueError) as exc:
        raise HdrError(f"not a camera response file ({exc})", path) from None
    if table.shape == (256, 1):
        table = np.repeat(table, 3, axis=1)
    if table.shape != (256, 3):
        raise HdrError(f"camera response must have 256 rows of 3 values, got {table.shape}", path)
    if not np.all(np.diff(table, axis=0) >= 0):
        raise HdrError("camera response is not monotonically increasing", path)
    return normalize_response(table)
