"""Where frames of a bracket disagree with its reference: ghost maps.

A frame disagrees with the reference where, brought to the reference's exposure through
the camera response, it differs by more than its noise allows: a moving object, a
misregistered edge, or a change of light. Only pixels well exposed in both frames can
be compared; elsewhere a frame is not flagged (its merge weight is small there anyway).

Used by ``hdr fuse --save-weights`` (a retouching mask) and by the re-exposure
consistency score of real brackets (:func:`hdrcli.metrics.reexposure_psnr`), which
leaves flagged pixels out.
"""

from __future__ import annotations

import cv2
import numpy as np

from hdrcli.merge.classical import debevec_weight, frame_rows, irradiance_table, levels, run_bands

# Pixel values compared for ghosts: away from black (sensor pedestals, e.g. codes 12-18 in
# Memorial's short frames, and noise) and from the shoulder, where the response is least known.
WELL_EXPOSED = (24.0 / 255.0, 235.0 / 255.0)
GHOST_THRESHOLD_STOPS = 0.8  # local disagreement (after smoothing) that counts as a ghost
_WIDE = 0.05  # scale (share of the long side) of disagreement taken as tone mapping, not motion
_WIDE_BLUR_PIXELS = 8.0  # the wide blur's sigma in pixels of its downsized copy (see _wide_blur)
_NOISE_STOPS = 0.15  # extra tolerance per stop of exposure difference (noise, response error)


def _wide_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``sigma`` pixels (tens to hundreds), computed on a copy downsized so that
    sigma is ~8 of its pixels, then upsampled bilinearly: at that scale the result is smooth, and
    the direct blur's cost grows with sigma (12 MP, sigma 200: ~25 s per blur, 100 s per bracket)."""
    factor = max(1, int(sigma // _WIDE_BLUR_PIXELS))
    if factor == 1:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    # BORDER_REFLECT mirrors at the image's edge, as the full-size blur's default (reflect-101) does
    # within a pixel; reflect-101 on the coarse copy would mirror a whole coarse pixel inside it.
    blurred = cv2.GaussianBlur(small, (0, 0), sigma * small.shape[1] / w, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)


def _luminance_tables(exposure: float, response: np.ndarray) -> np.ndarray:
    """(3, LEVELS) per channel and 16-bit level: irradiance / exposure / 3 (see :func:`_luminance_log`)."""
    return (irradiance_table(response) / (3.0 * exposure)).astype(np.float32)


def _luminance_log(frame: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """log2 of the frame's mean irradiance over channels / exposure, through 16-bit lookup tables
    of the response (:func:`_luminance_tables`; as the merges: exact on 8- and 16-bit codes; 4x
    faster than interpolating)."""
    index = levels(frame)
    irradiance = np.zeros(frame.shape[:2], np.float32)
    for c in range(3):
        irradiance += tables[c].take(index[..., c])
    return np.log2(np.maximum(irradiance, np.float32(1e-12)))


def _per_band(frames: list[np.ndarray], warps: list[np.ndarray | None], i: int, measure,
              dtype: type = np.float32) -> np.ndarray:
    """``measure`` (a function of an (h, W, 3) band of pixels -> (h, W)) of frame ``i`` aligned by
    its warp, computed band by band as the merges read frames (:func:`frame_rows`, :func:`run_bands`):
    no aligned full-size copy of the frame is made."""
    h, w = frames[i].shape[:2]
    if warps[i] is None:
        return measure(frames[i])
    out = np.empty((h, w), dtype)

    def work(y0: int, y1: int) -> None:
        out[y0:y1] = measure(frame_rows(frames, warps, i, y0, y1))

    run_bands(work, h, w)
    return out


def _well_exposed(frame: np.ndarray) -> np.ndarray:
    lo = np.minimum(np.minimum(frame[..., 0], frame[..., 1]), frame[..., 2])
    hi = np.maximum(np.maximum(frame[..., 0], frame[..., 1]), frame[..., 2])
    return (lo >= WELL_EXPOSED[0]) & (hi <= WELL_EXPOSED[1])


def ghost_maps(
    frames: list[np.ndarray], exposures: list[float], response: np.ndarray, reference: int,
    warps: list[np.ndarray | None] | None = None,
) -> np.ndarray:
    """Per-frame ghost maps of an aligned bracket.

    Args:
        frames: float32 RGB frames (H, W, 3) in [0, 1], sorted by exposure; aligned, or
            aligned band by band by ``warps``.
        exposures: relative exposure of each frame.
        response: (256, 3) inverse camera response (see :mod:`hdrcli.merge.response`).
        reference: index of the reference frame (never flagged).
        warps: per frame, None or a warp from :func:`hdrcli.align.estimate_warps`.

    Returns:
        float32 (N, H, W) in [0, 1]: 1 where frame i disagrees with the reference by
        more than ``GHOST_THRESHOLD_STOPS`` (plus noise allowance), ramping from 0 at
        half that; 0 where either frame is not well exposed.
    """
    warps = [None] * len(frames) if warps is None else warps

    def log_luminance(i: int) -> np.ndarray:
        tables = _luminance_tables(exposures[i], response)
        return _per_band(frames, warps, i, lambda band: _luminance_log(band, tables))

    ref_log = log_luminance(reference)
    ref_ok = _per_band(frames, warps, reference, _well_exposed, bool)
    side = max(frames[0].shape[:2])
    sigma = max(1.0, side / 800.0)  # disagreement of single noisy pixels is not a ghost
    maps = np.zeros((len(frames),) + frames[0].shape[:2], np.float32)
    for i, exposure in enumerate(exposures):
        if i == reference:
            continue
        ok = (ref_ok & _per_band(frames, warps, i, _well_exposed, bool)).astype(np.float32)
        diff = (log_luminance(i) - ref_log) * ok
        # Mean disagreement over the comparable pixels of a small neighbourhood.
        num = cv2.GaussianBlur(diff, (0, 0), sigma)
        den = cv2.GaussianBlur(ok, (0, 0), sigma)
        local = num / np.maximum(den, 1e-3)
        # Disagreement that is smooth over a large part of the frame is not a moving object
        # but a camera's local tone mapping or vignetting (phone JPEGs): measured against the
        # large-scale disagreement around each pixel.
        wide_sigma = max(_WIDE * side, 32.0)
        wide = _wide_blur(num, wide_sigma) / np.maximum(_wide_blur(den, wide_sigma), 1e-3)
        local = np.abs(local - wide)
        threshold = GHOST_THRESHOLD_STOPS + _NOISE_STOPS * abs(np.log2(exposure / exposures[reference]))
        ramp = np.clip((local - threshold / 2) / (threshold / 2), 0.0, 1.0)
        maps[i] = ramp * (den > 0.25)
    return maps


def debevec_weight_maps(frames: list[np.ndarray], exposures: list[float], guard: bool = True,
                        warps: list[np.ndarray | None] | None = None) -> np.ndarray:
    """Each frame's share (N, H, W), summing to 1 per pixel, in :func:`hdrcli.merge.merge_debevec`
    (``warps``: as :func:`ghost_maps`)."""
    times = np.asarray(exposures, np.float64) / float(min(exposures))
    warps = [None] * len(frames) if warps is None else warps
    weights = np.stack([_per_band(frames, warps, i, lambda band, i=i: debevec_weight(band, i, times, guard)[..., 0])
                        for i in range(len(frames))])
    weights /= np.maximum(weights.sum(axis=0, keepdims=True), np.float32(1e-12))
    return weights


def weight_and_ghost_maps(
    frames: list[np.ndarray], names: list[str], exposures: list[float], response: np.ndarray, reference: int,
    weights: np.ndarray | None = None, warps: list[np.ndarray | None] | None = None,
) -> dict[str, np.ndarray]:
    """Named maps for ``hdr fuse --save-weights``: ``ghost`` (the largest ghost value over
    the frames), then ``ghost.NAME`` and, when ``weights`` (N, H, W) are given,
    ``weight.NAME`` for every frame (NAME: the frame's file name). ``warps``: as :func:`ghost_maps`."""
    ghosts = ghost_maps(frames, exposures, response, reference, warps)
    maps = {"ghost": ghosts.max(axis=0)}
    for i, name in enumerate(names):
        maps[f"ghost.{name}"] = ghosts[i]
        if weights is not None:
            maps[f"weight.{name}"] = weights[i]
    return maps
