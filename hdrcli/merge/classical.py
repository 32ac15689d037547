"""Radiance merges of an aligned bracket (Debevec, Robertson) and exposure fusion (Mertens).

Inputs are float32 RGB frames in [0, 1] (8- or 16-bit sources), sorted by exposure, with
their relative exposures; the output is linear radiance in the units of the shortest
exposure (relative exposures are divided by the shortest first).

The merges follow OpenCV's MergeDebevec (log-domain average, triangle weights averaged over
channels) and MergeRobertson (linear-domain, Gaussian weights, per channel), implemented in
numpy so that 16-bit and RAW frames keep their precision (the response is interpolated
between its 256 entries). With ``guard=False`` they reproduce OpenCV's results.

``guard=True`` (the default) fixes the known failure of those merges. A pixel that is
clipped in every frame, the darkest included (a lamp, the sun), gets the same small
weight in each frame, so its radiance becomes the *average* over frames of
f^-1(255)/t: pulled down by the long exposures into a dark hole, and, where only some
channels clip, tinted. With the guard:

* one weight per pixel for all channels, from the brightest channel on the highlight
  side and the darkest channel on the shadow side, so a frame in which any channel
  clips does not contribute (no colour casts);
* the shortest exposure keeps full weight in its highlights and the longest in its
  shadows, so clipped-everywhere pixels take the shortest frame's value (the best
  lower bound of their radiance) and black-everywhere pixels the longest frame's.
"""

from __future__ import annotations

import cv2
import numpy as np

_EPS = 1e-6


def _inverse_response(z: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Irradiance f^-1(z) for float pixel values z in [0, 1], per channel (RGB)."""
    code = np.clip(z, 0.0, 1.0) * np.float32(255.0)
    lo = np.minimum(code.astype(np.int32), 254)  # truncation == floor for code >= 0
    frac = code - lo
    out = np.empty(z.shape, dtype=np.float32)
    for c in range(3):
        table = np.ascontiguousarray(response[:, c], dtype=np.float32)
        step = np.diff(table, append=table[-1:])
        idx = lo[..., c]
        out[..., c] = table.take(idx) + frac[..., c] * step.take(idx)
    return out


def _triangle(z: np.ndarray) -> np.ndarray:
    """OpenCV's Debevec weights on a [0, 1] scale: code below 128, 255-code above (0 at both ends)."""
    code = z * 255.0
    return np.where(code < 128, code, 255.0 - code).astype(np.float32)


def _gaussian(z: np.ndarray) -> np.ndarray:
    """OpenCV's Robertson weights: a Gaussian bump reaching 0 at codes 0 and 255."""
    e4 = np.exp(4.0)
    v = z * 255.0 / (255.0 / 4.0) - 2.0
    return ((e4 / (e4 - 1.0)) * np.exp(-v * v) + 1.0 / (1.0 - e4)).astype(np.float32)


def _guarded_weight(z: np.ndarray, shape, first: bool, last: bool) -> np.ndarray:
    """One weight per pixel (H, W, 1), see the module docstring."""
    peak = shape(np.full(1, 0.5, np.float32))[0]
    # Explicit channel max/min: numpy reductions over a length-3 last axis are slow.
    z_max = np.maximum(np.maximum(z[..., 0], z[..., 1]), z[..., 2])[..., None]
    z_min = np.minimum(np.minimum(z[..., 0], z[..., 1]), z[..., 2])[..., None]
    high = np.where(z_max < 0.5, peak, shape(z_max))
    low = np.where(z_min > 0.5, peak, shape(z_min))
    if first:
        high = np.full_like(high, peak)
    if last:
        low = np.full_like(low, peak)
    return np.maximum(np.minimum(high, low), peak * 1e-4)


def _relative(exposures: list[float]) -> np.ndarray:
    times = np.asarray(exposures, dtype=np.float64)
    return times / times.min()


def merge_debevec(
    images: list[np.ndarray], exposures: list[float], response: np.ndarray, guard: bool = True
) -> np.ndarray:
    """Debevec & Malik (1997) log-domain merge.

    Args:
        images: aligned float32 RGB frames (H, W, 3) in [0, 1], sorted by exposure.
        exposures: relative exposure of each frame.
        response: (256, 3) inverse response (see :mod:`hdrcli.merge.response`).
        guard: protect clipped highlights/shadows (module docstring).

    Returns:
        float32 (H, W, 3) radiance in units of the shortest exposure.
    """
    times = _relative(exposures)
    acc = np.zeros(images[0].shape, np.float32)
    weight_sum = np.zeros(images[0].shape[:2] + (1,), np.float32)
    last = len(images) - 1
    for i, (z, t) in enumerate(zip(images, times)):
        if guard:
            w = _guarded_weight(z, _triangle, i == 0, i == last)
        else:
            # OpenCV falls back to equal weights where every frame has weight 0.
            w = _triangle(z).mean(axis=-1, keepdims=True) + np.float32(_EPS)
        # Interpolate f^-1 linearly, then take the log: exact for linear (RAW) data, and
        # identical to OpenCV's log-LUT at integer codes.
        log_irradiance = np.log(np.maximum(_inverse_response(z, response), np.float32(1e-10)))
        acc += w * (log_irradiance - np.float32(np.log(t)))
        weight_sum += w
    return np.exp(acc / np.maximum(weight_sum, _EPS)).astype(np.float32)


def merge_robertson(
    images: list[np.ndarray], exposures: list[float], response: np.ndarray, guard: bool = True
) -> np.ndarray:
    """Robertson et al. (2003) merge: E = sum(w t f^-1(z)) / sum(w t^2).

    Same arguments and result as :func:`merge_debevec`.
    """
    times = _relative(exposures)
    acc = np.zeros(images[0].shape, np.float32)
    weight_sum = np.zeros(images[0].shape if not guard else images[0].shape[:2] + (1,), np.float32)
    last = len(images) - 1
    for i, (z, t) in enumerate(zip(images, times)):
        w = _guarded_weight(z, _gaussian, i == 0, i == last) if guard else _gaussian(z)
        acc += np.float32(t) * w * _inverse_response(z, response)
        weight_sum += np.float32(t * t) * w
    return (acc / np.maximum(weight_sum, _EPS)).astype(np.float32)


def merge_mertens(images: list[np.ndarray]) -> np.ndarray:
    """Mertens et al. (2007) exposure fusion through OpenCV.

    Returns a display-referred (not radiance) float32 RGB image clipped to [0, 1]:
    OpenCV's result can overshoot [0, 1] by a few percent.
    """
    # OpenCV expects 8-bit-scaled values (it divides float input by 255 internally).
    fused = cv2.createMergeMertens().process([np.ascontiguousarray(im * 255.0, dtype=np.float32) for im in images])
    return np.clip(fused, 0.0, 1.0).astype(np.float32)
