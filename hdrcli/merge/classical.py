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
  lower bound of their radiance) and black-everywhere pixels the longest frame's;
* (Debevec) each frame's weight is scaled by (t / t_max) ** 0.25: a longer exposure
  measures the same radiance with more signal (under shot noise the variance of its
  log-radiance estimate falls as 1 / (E t)), so where several frames are well exposed the
  longer ones count more. Without it, the short frames of a long bracket, whose dark
  pixels sit on the sensor's black pedestal (codes 12-18 in Memorial's 1/1024 s frame,
  for 8 stops of exposure), outvote the frames that measured those pixels: the 16-frame
  Memorial merge lost half its red (R/G 0.54 of memorial.hdr's) and scored 25.3 dB
  PSNR-mu against memorial.hdr. Measured powers (16-frame Memorial / mean of 7 Memorial
  sub-brackets / simulated static held-out set): 0: 25.3 / 25.4 / 39.05; 0.25: 29.3 / 26.1
  / 39.09; 0.5: 29.6 / 26.0 / 38.88; 1 (the shot-noise optimum for exact curves): 30.3 /
  - / 37.50, which loses on the simulated set, whose long frames sit on compressive
  camera curves that 8-bit quantisation makes coarse.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

_EPS = 1e-6


def _inverse_response(z: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Irradiance f^-1(z) for float pixel values z in [0, 1], per channel (RGB)."""
    code = np.clip(z, 0.0, 1.0) * np.float32(255.0)
    lo = np.minimum(code.astype(np.int32), 254)  # truncation == floor for code >= 0
    frac = code - lo.astype(np.float32)  # float32 (float32 - int32 would promote to float64)
    out = np.empty(z.shape, dtype=np.float32)
    for c in range(3):
        table = np.ascontiguousarray(response[:, c], dtype=np.float32)
        step = np.diff(table, append=table[-1:])
        idx = lo[..., c]
        out[..., c] = table.take(idx) + frac[..., c] * step.take(idx)
    return out


inverse_response = _inverse_response  # public name for ghost maps and re-exposure scores


def _triangle(z: np.ndarray) -> np.ndarray:
    """OpenCV's Debevec weights on a [0, 1] scale: code below 128, 255-code above (0 at both ends)."""
    code = z * 255.0
    return np.where(code < 128, code, 255.0 - code).astype(np.float32)


def _gaussian(z: np.ndarray) -> np.ndarray:
    """OpenCV's Robertson weights: a Gaussian bump reaching 0 at codes 0 and 255."""
    e4 = np.exp(4.0)
    v = z * 255.0 / (255.0 / 4.0) - 2.0
    return ((e4 / (e4 - 1.0)) * np.exp(-v * v) + 1.0 / (1.0 - e4)).astype(np.float32)


EXPOSURE_WEIGHT_POWER = 0.25  # frame weight ~ (t / t_max) ** power (module docstring)
# The learned merge head's power on a frame's dark pixels (ExposureMergeHead). Not used here:
# in this merge it cost 0.34 dB on the simulated static set (38.68 against 39.02 dB) for
# +0.07 dB on the 16-frame Memorial.
SHADOW_WEIGHT_POWER = 1.0


LEVELS = 65536  # lookup tables: one entry per 16-bit input level (8-bit codes k land exactly on k * 257)


def levels(z: np.ndarray) -> np.ndarray:
    """Pixel values in [0, 1] as uint16 table indices (nearest 16-bit level)."""
    index = np.clip(z, 0.0, 1.0) * np.float32(LEVELS - 1)
    index += np.float32(0.5)  # round half up: truncation below is floor for values >= 0
    return index.astype(np.uint16)


def guarded_weight_tables(shape: Callable[[np.ndarray], np.ndarray], first: bool, last: bool,
                          floor: float = 1e-4, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A frame's guarded weight (module docstring) as two float32 (LEVELS,) tables, looked up by
    the level of a pixel's brightest channel and of its darkest: the weight is their minimum
    (:func:`weight_from_levels`). ``shape``: the hat (triangle or Gaussian); ``first`` /
    ``last``: the shortest / longest frame; weights are at least ``floor`` x the peak, then
    multiplied by ``scale``."""
    z = np.linspace(0.0, 1.0, LEVELS, dtype=np.float32)
    peak = shape(np.full(1, 0.5, np.float32))[0]
    hat = shape(z)
    # The shortest frame keeps full weight in its highlights, the longest in its shadows.
    high = np.full(LEVELS, peak, np.float32) if first else np.where(z < 0.5, peak, hat)
    low = np.full(LEVELS, peak, np.float32) if last else np.where(z > 0.5, peak, hat)
    # max(min(high, low), f) == min(max(high, f), max(low, f)): the floor goes into both tables.
    return tuple((np.maximum(t, peak * np.float32(floor)) * np.float32(scale)).astype(np.float32)
                 for t in (high, low))


def debevec_weight_tables(index: int, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`guarded_weight_tables` of frame ``index`` of a Debevec merge, with its exposure scale."""
    scale = (times[index] / times.max()) ** EXPOSURE_WEIGHT_POWER
    # The floor (a clipped or black frame's weight) scales with the smallest frame scale, so
    # that it stays negligible next to any frame that measured the pixel.
    floor = 1e-4 * (times.min() / times.max()) ** EXPOSURE_WEIGHT_POWER / scale
    return guarded_weight_tables(_triangle, index == 0, index == len(times) - 1, floor, scale)


def weight_from_levels(index: np.ndarray, tables: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(H, W, 1) weight from (H, W, 3) levels and :func:`debevec_weight_tables`."""
    brightest = np.maximum(np.maximum(index[..., 0], index[..., 1]), index[..., 2])
    darkest = np.minimum(np.minimum(index[..., 0], index[..., 1]), index[..., 2])
    return np.minimum(tables[0].take(brightest), tables[1].take(darkest))[..., None]


def debevec_weight(z: np.ndarray, index: int, times: np.ndarray, guard: bool = True) -> np.ndarray:
    """The weight (H, W, 1) of frame ``index`` (pixels ``z`` in [0, 1]) in :func:`merge_debevec`.

    ``times``: relative exposures of the bracket, sorted. Unnormalised; see the module
    docstring for the guarded weights and the exposure scaling.
    """
    if not guard:
        # OpenCV falls back to equal weights where every frame has weight 0.
        return _triangle(z).mean(axis=-1, keepdims=True) + np.float32(_EPS)
    return weight_from_levels(levels(z), debevec_weight_tables(index, np.asarray(times, np.float64)))


def irradiance_table(response: np.ndarray) -> np.ndarray:
    """float64 (3, LEVELS): f^-1(z) per channel at every 16-bit level, interpolated linearly
    between the response's 256 codes (exact for linear (RAW) data and at integer codes)."""
    grid = np.linspace(0.0, 1.0, LEVELS)
    codes = np.arange(256) / 255.0
    return np.stack([np.interp(grid, codes, np.asarray(response[:, c], np.float64)) for c in range(3)])


def log_irradiance_table(response: np.ndarray, exposure: float) -> np.ndarray:
    """float32 (3, LEVELS): log(f^-1(z) / exposure) per channel at every 16-bit level
    (:func:`irradiance_table`; OpenCV's log-LUT at integer codes), floored at 1e-10 before the log."""
    return (np.log(np.maximum(irradiance_table(response), 1e-10)) - np.log(exposure)).astype(np.float32)


def _relative(exposures: list[float]) -> np.ndarray:
    times = np.asarray(exposures, dtype=np.float64)
    return times / times.min()


# Rows per band of the chunked merges: a band's temporaries (~10 arrays of rows x width x 3
# float32) stay in the CPU caches, instead of a dozen full-size arrays (2 GB at 12 MP).
_BAND_PIXELS = 1 << 18


def _bands(height: int, width: int) -> list[tuple[int, int]]:
    rows = max(1, _BAND_PIXELS // max(1, width))
    return [(y, min(height, y + rows)) for y in range(0, height, rows)]


def run_bands(work: Callable[[int, int], None], height: int, width: int, threads: int | None = None) -> None:
    """Call ``work(y0, y1)`` for every band of rows, on ``threads`` threads (numpy releases the
    GIL; default :func:`hdrcli.threads.current`). Also the tone map's colour step."""
    from hdrcli.threads import current

    bands = _bands(height, width)
    n = min(threads or current(), len(bands))
    if n <= 1:
        for y0, y1 in bands:
            work(y0, y1)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n) as pool:
        for _ in pool.map(lambda band: work(*band), bands):
            pass


def frame_rows(images, warps, i: int, y0: int, y1: int) -> np.ndarray:
    """Rows y0:y1 of frame ``i`` aligned by its warp (None: as recorded), without a full-size copy."""
    if warps is None or warps[i] is None:
        return images[i][y0:y1]
    from hdrcli.align import warp_frame  # alignment is the layer below: frames are warped band by band

    return warp_frame(images[i], warps[i], (y0, y1))


def merge_debevec(
    images: list[np.ndarray], exposures: list[float], response: np.ndarray, guard: bool = True,
    warps: list[np.ndarray | None] | None = None, threads: int | None = None,
) -> np.ndarray:
    """Debevec & Malik (1997) log-domain merge.

    Args:
        images: float32 RGB frames (H, W, 3) in [0, 1], sorted by exposure; aligned, or
            aligned on the fly by ``warps``.
        exposures: relative exposure of each frame.
        response: (256, 3) inverse response (see :mod:`hdrcli.merge.response`).
        guard: protect clipped highlights/shadows (module docstring).
        warps: per frame, None or a warp from :func:`hdrcli.align.estimate_warps`,
            applied band by band (no aligned full-size copies).
        threads: bands merged in parallel (default :func:`hdrcli.threads.current`).

    Returns:
        float32 (H, W, 3) radiance in units of the shortest exposure.
    """
    times = _relative(exposures)
    h, w = images[0].shape[:2]
    out = np.empty((h, w, 3), np.float32)

    # Per frame, log irradiance and weights are table lookups on 16-bit levels: 8-bit and
    # 16-bit codes are exact, warped (interpolated) values within 1/65535 of their level.
    # Half the time of computing them per pixel (1.7 s -> 0.8 s at 12 MP, 3 frames).
    log_tables = [log_irradiance_table(response, t).reshape(-1) for t in times]
    channel_offset = np.arange(3, dtype=np.int32) * LEVELS  # flat index of (channel, level)
    weight_tables = [debevec_weight_tables(i, times) for i in range(len(images))] if guard else None

    def work(y0: int, y1: int) -> None:
        acc = np.zeros((y1 - y0, w, 3), np.float32)
        weight_sum = np.zeros((y1 - y0, w, 1), np.float32)
        for i in range(len(images)):
            z = frame_rows(images, warps, i, y0, y1)
            index = levels(z)
            wt = debevec_weight(z, i, times, guard) if weight_tables is None else weight_from_levels(
                index, weight_tables[i])
            log_irradiance = log_tables[i].take(index + channel_offset)
            log_irradiance *= wt
            acc += log_irradiance
            weight_sum += wt
        acc /= np.maximum(weight_sum, np.float32(_EPS))
        np.exp(acc, out=out[y0:y1])

    run_bands(work, h, w, threads)
    return out


def merge_robertson(
    images: list[np.ndarray], exposures: list[float], response: np.ndarray, guard: bool = True,
    warps: list[np.ndarray | None] | None = None, threads: int | None = None,
) -> np.ndarray:
    """Robertson et al. (2003) merge: E = sum(w t f^-1(z)) / sum(w t^2).

    Same arguments and result as :func:`merge_debevec`.
    """
    times = _relative(exposures)
    last = len(images) - 1
    h, w = images[0].shape[:2]
    out = np.empty((h, w, 3), np.float32)

    tables = [guarded_weight_tables(_gaussian, i == 0, i == last) for i in range(len(images))]

    def work(y0: int, y1: int) -> None:
        acc = np.zeros((y1 - y0, w, 3), np.float32)
        weight_sum = np.zeros((y1 - y0, w, 1 if guard else 3), np.float32)
        for i, t in enumerate(times):
            z = frame_rows(images, warps, i, y0, y1)
            wt = weight_from_levels(levels(z), tables[i]) if guard else _gaussian(z)
            acc += np.float32(t) * wt * _inverse_response(z, response)
            weight_sum += np.float32(t * t) * wt
        np.divide(acc, np.maximum(weight_sum, np.float32(_EPS)), out=out[y0:y1])

    run_bands(work, h, w, threads)
    return out


def merge_mertens(images: list[np.ndarray]) -> np.ndarray:
    """Mertens et al. (2007) exposure fusion through OpenCV.

    Returns a display-referred (not radiance) float32 RGB image clipped to [0, 1]:
    OpenCV's result can overshoot [0, 1] by a few percent.
    """
    # OpenCV expects 8-bit-scaled values (it divides float input by 255 internally).
    fused = cv2.createMergeMertens().process([np.ascontiguousarray(im * 255.0, dtype=np.float32) for im in images])
    return np.clip(fused, 0.0, 1.0).astype(np.float32)
