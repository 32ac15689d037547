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
    """side x side mosaics of well-chosen pixels, one per frame, for :func:`solve_debevec`.

    A regular grid of samples (OpenCV's CalibrateDebevec) lands mostly on a few large
    uniform areas of a real photo and leaves parts of the curve unconstrained. Debevec & Malik
    recommend pixels that span the whole range and sit in smooth regions (so slight
    misalignment does not matter). Pixels are picked stratified by the reference frame's
    brightness among pixels whose neighbourhood is smooth in every frame, then packed into
    a mosaic (one sample per mosaic pixel).
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


def _monotone(response: np.ndarray, anchor: int = 128) -> np.ndarray:
    """Strictly increasing version of a curve: brighter pixels never map to less light.

    Made so from code ``anchor`` outwards (Debevec's solve fixes its scale there): codes
    above it are raised to their darker neighbours' level, codes below it lowered to their
    brighter neighbours'. Debevec's solver leaves the extreme codes poorly constrained;
    raised from code 0 upwards, one such value (green's 3.9 at code 0 of a 2-frame Memorial
    bracket 3 stops apart, 4x its value at code 128) flattened the whole channel and made the
    merge green. A tiny slope (0.01% per code) keeps the inverse well defined where the
    curve would otherwise be flat.
    """
    log_r = np.log(np.maximum(response, 1e-10)).astype(np.float64) - np.arange(256)[:, None] * 1e-4
    out = log_r.copy()
    out[anchor:] = np.maximum.accumulate(log_r[anchor:], axis=0)
    out[:anchor + 1] = np.minimum.accumulate(log_r[anchor::-1], axis=0)[::-1]
    return np.exp(out + np.arange(256)[:, None] * 1e-4).astype(np.float32)


DEBEVEC_SMOOTHNESS = 10.0  # Debevec & Malik's lambda (OpenCV's default too)
_HAT_FLOOR = 1e-3  # keeps codes 0 and 255 (weight 0 in the paper) from leaving a sample unconstrained


def solve_debevec(samples: list[np.ndarray], exposures: list[float],
                  smoothness: float = DEBEVEC_SMOOTHNESS) -> np.ndarray:
    """Debevec & Malik's (1997) least-squares inverse response from sampled pixel values.

    Per channel, the unknowns are g(z) = log irradiance x time of code z (256 values) and
    one log irradiance per sample; each (sample, frame) gives ``w(z) (g(z) - log E) =
    w(z) log t``, with the hat weight ``w(z) = min(z, 255 - z)``, plus ``smoothness *
    w(z) * g''(z) = 0`` and ``g(128) = 0``. The same system as OpenCV's CalibrateDebevec
    (curves agree to float32 precision, 0.2-2.4% at the sparsely sampled darkest codes),
    solved in float64 through its normal equations with the sample unknowns eliminated
    (each touches only its own rows): a 256 x 256 system instead of OpenCV's SVD of the
    full (samples x frames) x (256 + samples) matrix, 10 ms against 1.6 s for 576
    samples.

    Args:
        samples: one uint8 array per frame, the same pixels in each (any shape, 3 channels
            last), e.g. the mosaics of :func:`_sample_mosaic`.
        exposures: exposure of each frame (any common unit, > 0).
        smoothness: lambda, the weight of the curvature term.

    Returns:
        float32 (256, 3) inverse response, exp(g): irradiance x time, 1 at code 128.
    """
    codes = np.stack([np.asarray(s).reshape(-1, 3) for s in samples], axis=1).astype(np.intp)  # (P, N, 3)
    n_samples = codes.shape[0]
    levels = np.arange(256)
    hat = np.minimum(levels, 255 - levels) + _HAT_FLOOR
    log_t = np.log(np.asarray(exposures, np.float64))
    inner = np.arange(1, 255)  # curvature rows at codes 1..254
    curvature = np.zeros((254, 256))
    for offset, coefficient in ((-1, 1.0), (0, -2.0), (1, 1.0)):
        curvature[inner - 1, inner + offset] = coefficient * smoothness * hat[inner]
    prior = curvature.T @ curvature
    prior[128, 128] += 1.0  # g(128) = 0
    sample_of = np.repeat(np.arange(n_samples), codes.shape[1])
    out = np.empty((256, 3))
    for c in range(3):
        z = codes[..., c]
        w2 = hat[z] ** 2  # (P, N): squared row weights
        gg = prior + np.diag(np.bincount(z.ravel(), w2.ravel(), minlength=256))
        g_rhs = np.bincount(z.ravel(), (w2 * log_t).ravel(), minlength=256)
        coupling = np.zeros((256, n_samples))  # d(normal eq. of g) / d(log E)
        np.add.at(coupling, (z.ravel(), sample_of), -w2.ravel())
        e_diag = w2.sum(axis=1)
        e_rhs = -(w2 * log_t).sum(axis=1)
        scaled = coupling / e_diag
        out[:, c] = np.linalg.solve(gg - scaled @ coupling.T, g_rhs - scaled @ e_rhs)
    return np.exp(out).astype(np.float32)


def calibrate_response(
    images_u8: list[np.ndarray], exposures: list[float], method: str = "debevec", shared: bool = True
) -> np.ndarray:
    """Estimate the inverse camera response from aligned 8-bit frames.

    Debevec calibration solves :func:`solve_debevec` on 576 well-spread, smooth pixels
    (see :func:`_sample_mosaic`); Robertson's runs in OpenCV. Pixel values no frame
    contains are interpolated.

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
        response = solve_debevec(_sample_mosaic(images), times)
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
    import io

    from hdrcli.io.safe_open import read_text_bounded

    path = Path(path)
    text = read_text_bounded(path, "camera response file")  # regular files of at most 1 MiB
    try:
        table = np.loadtxt(io.StringIO(text), dtype=np.float64, comments="#", ndmin=2)
    except (ValueError, OverflowError) as exc:
        raise HdrError(f"not a camera response file ({str(exc).splitlines()[0][:120]})", path) from None
    if not np.all(np.isfinite(table)):
        raise HdrError("camera response holds non-finite values (nan or inf)", path)
    if table.shape == (256, 1):
        table = np.repeat(table, 3, axis=1)
    if table.shape != (256, 3):
        raise HdrError(f"camera response must have 256 rows of 3 values, got {table.shape}", path)
    if not np.all(np.diff(table, axis=0) >= 0):
        raise HdrError("camera response is not monotonically increasing", path)
    return normalize_response(table)


# ----------------------------------------------------------------------------- self-calibration

CANONICAL_GAMMA = 2.2  # the learned backends' input convention (Kalantari 2017): LDR = irradiance**(1/2.2)
_SELF_CAL_DEGREE = 3
_SELF_CAL_SIDE = 64  # frames are area-averaged to this short side: less noise, less misalignment
_SELF_CAL_RANGE = (0.02, 0.97)  # pixel values used (black and clipped pixels carry no ratio)
_SELF_CAL_PRIOR = 1e-3  # ridge towards gamma 2.2, relative to the number of pixel pairs
_SELF_CAL_MAX_PAIRS = 200_000
_SELF_CAL_MIN_SLOPE = 0.05  # least d(log irradiance)/d(code) of a fitted curve (gamma 2.2: >= 2.2)
_FLOOR_SHARE = 0.2  # share of the shortest frame within 3 codes of its 0.5th percentile that makes a floor
_FLOOR_MAX = 40 / 255
LUT_LEVELS = 65536  # re-encoding tables: one entry per 16-bit input level


def _log_inverse_basis(z: np.ndarray) -> np.ndarray:
    """Basis of the log inverse response: [log z, z - 1, z^2 - 1, z^3 - 1] (all 0 at z = 1)."""
    z = np.clip(z, 1e-4, 1.0)
    return np.stack([np.log(z)] + [z**k - 1 for k in range(1, _SELF_CAL_DEGREE + 1)], axis=-1)


def self_calibrate(frames: list[np.ndarray], exposures: list[float], iterations: int = 5) -> np.ndarray:
    """Estimate the inverse camera response of a bracket from its own pixels (no EXIF, no target).

    A parametric radiometric self-calibration in the spirit of Mitsunaga & Nayar (1999):
    the log inverse response is modelled as ``g(z) = a log z + sum_k b_k (z^k - 1)``
    (k = 1..3), which is exactly 0 at z = 1, so the clipping level of a frame maps to
    irradiance 1 and the curve carries an absolute scale. Co-located pixels of adjacent
    frames must satisfy ``g(z_j) - g(z_i) = log(t_j / t_i)``: a linear least-squares
    problem in (a, b), solved with Tukey reweighting so that moving objects and
    misaligned edges (which break the pairing) drop out, and a weak ridge towards gamma
    2.2 for brackets that constrain little; the curve is constrained to increase. On the
    held-out simulated brackets (201 real DoRF curves, sensor noise, motion) the fitted
    curve is within 0.13 stops of the true one on average, against 0.58 stops for assuming
    gamma 2.2
    (``python scripts/self_calibration_accuracy.py``). Codes are counted above the
    bracket's black floor (:func:`black_floor`; 0 for digital cameras, codes 12-16 for the
    Memorial film scans), which maps to irradiance 0.

    Args:
        frames: display-referred RGB frames (H, W, 3) in [0, 1], ordered by exposure, of
            one scene; any bit depth. Small misalignment and moving objects are tolerated.
        exposures: relative exposure of each frame (any common unit).
        iterations: reweighting rounds.

    Returns:
        The (256, 3) inverse response (see module docstring; entry 255 is 1 in every
        channel, one curve for all channels, each above its floor). Gamma 2.2 when the
        bracket has too few usable pixel pairs or the fit is not increasing.
    """
    times = np.asarray(exposures, dtype=np.float64)
    factor = min(1.0, _SELF_CAL_SIDE / min(frames[0].shape[:2]))
    small = [cv2.resize(np.asarray(f, np.float32), None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
             if factor < 1 else np.asarray(f, np.float32) for f in frames]
    gamma = np.array([CANONICAL_GAMMA] + [0.0] * _SELF_CAL_DEGREE)
    if not np.all(times[1:] > times[:-1]):
        return _response_table(gamma)
    floor = black_floor(frames[0])
    small = [(f - floor) / (1.0 - floor) for f in small]  # codes above the floor, in [0, 1]
    params = _robust_fit(*_pixel_pairs(small, times), gamma, iterations)
    return _response_table(gamma if params is None else params, floor)


def black_floor(shortest: np.ndarray) -> np.ndarray:
    """Per-channel code (in [0, 1]) that a bracket's darkest pixels pile up at: 0 for most cameras.

    Film scans and some phone pipelines lift black to a floor (Memorial: codes 12-16, where
    78% of the shortest frame's pixels lie). Read as light, the floor made a long bracket's
    short frames "see" shadows that only its long frames measured: the learned merge's
    16-frame Memorial turned teal (R/G 0.39 of memorial.hdr's, 14.2 dB PSNR-mu). A floor
    counts only where a large share of the shortest frame sits within 3 codes of its 0.5th
    percentile; it is at most 40 codes.

    Args:
        shortest: the shortest exposure (H, W, 3) in [0, 1].
    """
    step = max(1, int(np.sqrt(shortest.shape[0] * shortest.shape[1] / 250_000)))
    sample = np.asarray(shortest[::step, ::step], np.float32).reshape(-1, 3)
    floor = np.percentile(sample, 0.5, axis=0)
    piled = np.mean(sample <= floor + 3 / 255, axis=0) >= _FLOOR_SHARE
    return np.where(piled & (floor >= 2 / 255), np.minimum(floor, _FLOOR_MAX), 0.0).astype(np.float32)


def _pixel_pairs(small: list[np.ndarray], times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Design rows and log exposure ratios from co-located pixel values of adjacent frames."""
    lo, hi = _SELF_CAL_RANGE
    rows, ratios = [], []
    for i in range(len(small) - 1):
        a, b = small[i].reshape(-1), small[i + 1].reshape(-1)
        ok = (a > lo) & (a < hi) & (b > lo) & (b < hi)
        rows.append(_log_inverse_basis(b[ok]) - _log_inverse_basis(a[ok]))
        ratios.append(np.full(int(ok.sum()), np.log(times[i + 1] / times[i])))
    return np.concatenate(rows), np.concatenate(ratios)


def _log_inverse_slope(z: np.ndarray) -> np.ndarray:
    """Derivative of :func:`_log_inverse_basis` in z: rows that give g'(z) when multiplied by the parameters."""
    z = np.clip(z, 1e-4, 1.0)
    return np.stack([1.0 / z] + [k * z ** (k - 1) for k in range(1, _SELF_CAL_DEGREE + 1)], axis=-1)


def _robust_fit(design: np.ndarray, target: np.ndarray, prior: np.ndarray, iterations: int) -> np.ndarray | None:
    """Tukey-reweighted least squares with a weak ridge towards ``prior``; None when there are too
    few pairs or no increasing curve explains them better than ``prior`` does.

    The free fit is kept when it is increasing. When it is not, the fit is redone constrained
    to increase (:func:`_irls` with ``increasing``) and kept if its median pair residual beats
    the prior's. Why: with wide spacing and a strong toe (3 stops apart, irradiance 0.1 at
    code 5) the pairs only constrain the curve's two ends; the free fit dipped by 0.01 near
    white and was thrown away for gamma 2.2, 1.7 stops off (constrained: 0.2 stops). On
    2-frame brackets with motion the constrained fit can be far off (2.5 stops) where the
    prior is not; the residual tells them apart (0.74 against 0.32 there, 0.26 against 4.6
    on the toe curve).
    """
    if target.size < 100:
        return None
    if target.size > _SELF_CAL_MAX_PAIRS:  # deterministic subsample
        keep = np.random.default_rng(0).choice(target.size, _SELF_CAL_MAX_PAIRS, replace=False)
        design, target = design[keep], target[keep]
    params = _irls(design, target, prior, iterations, increasing=False)
    if _is_increasing(params):
        return params
    params = _irls(design, target, prior, iterations, increasing=True)
    fits_better = np.median(np.abs(design @ params - target)) < np.median(np.abs(design @ prior - target))
    return params if _is_increasing(params) and fits_better else None


def _is_increasing(params: np.ndarray) -> bool:
    return bool(np.all(np.diff(_log_inverse_basis(np.linspace(*_SELF_CAL_RANGE, 256)) @ params) > 0))


def _irls(design: np.ndarray, target: np.ndarray, prior: np.ndarray, iterations: int,
          increasing: bool) -> np.ndarray:
    """Tukey-reweighted ridge least squares; with ``increasing``, each solve keeps an active set of
    rows g'(z) = ``_SELF_CAL_MIN_SLOPE`` at the codes where the curve would fall below that slope."""
    ridge = np.sqrt(_SELF_CAL_PRIOR * target.size) * np.eye(prior.size)
    slope_rows = _log_inverse_slope(np.linspace(*_SELF_CAL_RANGE, 64))
    stiffness = 10.0 * np.sqrt(target.size)  # the constraint rows outweigh all pixel pairs together
    weights = np.ones_like(target)
    params = prior
    for _ in range(iterations):
        sw = np.sqrt(weights)
        active = np.zeros(slope_rows.shape[0], bool)
        for _ in range(10 if increasing else 1):
            params = np.linalg.lstsq(
                np.vstack([design * sw[:, None], ridge, stiffness * slope_rows[active]]),
                np.concatenate([target * sw, ridge @ prior, np.full(int(active.sum()), stiffness * _SELF_CAL_MIN_SLOPE)]),
                rcond=None)[0]
            grown = active | (slope_rows @ params < _SELF_CAL_MIN_SLOPE)
            if not increasing or np.array_equal(grown, active):
                break
            active = grown
        residual = design @ params - target
        scale = 1.4826 * np.median(np.abs(residual)) + 1e-6
        u = residual / (4.685 * scale)
        weights = np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)
    return params


def _response_table(params: np.ndarray, floor: np.ndarray | None = None) -> np.ndarray:
    """(256, 3) inverse response from the parameters of the log-domain model, on the codes above
    ``floor`` (3,) per channel (see :func:`black_floor`); the floor and below carry no light."""
    floor = np.zeros(3) if floor is None else np.asarray(floor, np.float64)
    above = ((np.arange(256) / 255.0)[:, None] - floor) / (1.0 - floor)
    table = np.where(above > 0, np.exp(_log_inverse_basis(np.maximum(above, 0)) @ params), 0.0)
    table[0] = 0.0  # black carries no light
    return table.astype(np.float32)


def canonical_luts(response: np.ndarray) -> np.ndarray:
    """Lookup tables that re-encode frames as a gamma-2.2 camera would have recorded them.

    The learned backends take frames in the field's convention (LDR = irradiance**(1/2.2));
    real cameras use other curves (the 201 DoRF curves differ from gamma 2.2 by 0.57 stops
    on average). A network cannot infer a global curve from a local patch, so the frames
    are linearised with ``response`` and re-encoded: ``(response(z) / response(1))**(1/2.2)``.

    Args:
        response: (256, 3) inverse response (from :func:`self_calibrate`,
            :func:`calibrate_response`, a file, or :func:`linear_response` for RAW).

    Returns:
        float32 (3, 65536): entry ``[c, k]`` is the re-encoded value of channel c at input
        level k / 65535 (16-bit, the finest precision an input frame has; a lookup is ~20x
        faster than interpolating every pixel).
    """
    table = normalize_response(response)
    levels = np.linspace(0.0, 1.0, LUT_LEVELS)
    codes = np.arange(256) / 255.0
    return np.stack([np.clip(np.interp(levels, codes, table[:, c]), 0.0, 1.0) ** (1.0 / CANONICAL_GAMMA)
                     for c in range(3)]).astype(np.float32)


def canonical_frames(frames: list[np.ndarray], response: np.ndarray) -> list[np.ndarray]:
    """Frames (H, W, 3) in [0, 1], any bit depth, re-encoded to gamma 2.2 (see :func:`canonical_luts`)."""
    luts = canonical_luts(response)
    out = []
    for frame in frames:
        index = np.rint(np.clip(frame, 0.0, 1.0) * (LUT_LEVELS - 1)).astype(np.uint16)
        out.append(np.stack([luts[c][index[..., c]] for c in range(3)], axis=-1))
    return out


def canonical_bracket(frames: list[np.ndarray], exposures: list[float],
                      response: np.ndarray | None = None) -> list[np.ndarray]:
    """Frames in the learned backends' convention: self-calibrated unless ``response`` is given."""
    return canonical_frames(frames, self_calibrate(frames, exposures) if response is None else response)
