"""The field's image-quality metrics on HDR images (numpy), with REFERENCE.md's conventions.

* PSNR-mu: PSNR of mu-law tone-mapped images, T(H) = log(1 + mu H) / log(1 + mu),
  mu = 5000, H in the shortest exposure's units clipped to [0, 1], peak 1.
* PSNR-l: PSNR of the linear images (peak 1).
* SSIM-mu / SSIM-l: SSIM (Wang et al. 2004) with an 11x11 Gaussian window (sigma 1.5),
  K1 = 0.01, K2 = 0.03, data range 1, averaged over channels, borders (5 px) excluded;
  the same definition as scikit-image's ``structural_similarity(gaussian_weights=True,
  use_sample_covariance=False, data_range=1)``.
"""

from __future__ import annotations

import cv2
import numpy as np

from hdrcli.merge.classical import inverse_response
from hdrcli.tonemap import mu_law


def psnr(x: np.ndarray, y: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak**2 / mse)


def _gaussian_kernel(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    g = cv2.getGaussianKernel(size, sigma, cv2.CV_64F)
    return g @ g.T


def ssim(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM over channels of (H, W) or (H, W, C) images (see module docstring)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    kernel = _gaussian_kernel()
    pad = 5
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for c in range(x.shape[2]):
        a, b = x[..., c], y[..., c]
        f = lambda img: cv2.filter2D(img, cv2.CV_64F, kernel, borderType=cv2.BORDER_REFLECT)  # noqa: E731
        ma, mb = f(a), f(b)
        saa, sbb, sab = f(a * a) - ma * ma, f(b * b) - mb * mb, f(a * b) - ma * mb
        s = ((2 * ma * mb + c1) * (2 * sab + c2)) / ((ma * ma + mb * mb + c1) * (saa + sbb + c2))
        values.append(s[pad:-pad, pad:-pad].mean())
    return float(np.mean(values))


def hdr_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """PSNR-mu, PSNR-l, SSIM-mu, SSIM-l of (H, W, 3) HDR images in the shortest exposure's units."""
    pred = np.clip(pred, 0, 1)
    target = np.clip(target, 0, 1)
    tp, tt = mu_law(pred), mu_law(target)
    return {
        "psnr_mu": psnr(tp, tt),
        "psnr_l": psnr(pred, target),
        "ssim_mu": ssim(tp, tt),
        "ssim_l": ssim(pred, target),
    }


def _saturation(image: np.ndarray) -> np.ndarray:
    top = image.max(-1)
    return (top - image.min(-1)) / np.maximum(top, 1e-6)


def saturation_ratio(pred: np.ndarray, target: np.ndarray) -> float:
    """Colour fidelity: median saturation (max - min) / max of ``pred`` over that of
    ``target``, on coloured (target saturation > 0.1), unclipped, not-black pixels of
    the target. 1 = as colourful as the truth; < 1 desaturated; > 1 oversaturated.
    Scale-invariant, so it measures colour apart from brightness errors."""
    target_sat = _saturation(target)
    ok = (target.max(-1) > 1e-3) & (target.max(-1) < 0.99) & (target_sat > 0.1)
    if not ok.any():
        return float("nan")
    return float(np.median(_saturation(np.clip(pred, 0, None))[ok]) / np.median(target_sat[ok]))


def scale_aligned(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``pred`` times the median ratio target/pred over well-defined pixels (single-image HDR
    is only known up to scale)."""
    p, t = pred.mean(-1), target.mean(-1)
    ok = (p > 1e-4) & (t > 1e-4)
    scale = float(np.median(t[ok] / p[ok])) if ok.any() else 1.0
    return pred * np.float32(scale)


def single_image_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Scores after scale alignment, both normalised by the target's maximum."""
    pred = scale_aligned(pred, target)
    top = float(target.max()) or 1.0
    return hdr_scores(pred / top, target / top)


def forward_response(irradiance: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Pixel values in [0, 1] that the camera records for ``irradiance`` (H, W, 3).

    ``response`` is the (256, 3) inverse response (increasing); this is its inverse,
    interpolated between codes, clipped to [0, 1] (black and clipping).
    """
    codes = np.arange(256, dtype=np.float32) / np.float32(255.0)
    out = np.empty(irradiance.shape, np.float32)
    for c in range(3):
        table = np.maximum.accumulate(np.asarray(response[:, c], np.float64))
        out[..., c] = np.interp(irradiance[..., c], table, codes, left=0.0, right=1.0)
    return out


def reexposure_psnr(
    hdr: np.ndarray,
    frames: list[np.ndarray],
    exposures: list[float],
    response: np.ndarray,
    reference: int,
    ghosts: np.ndarray | None = None,
    well_exposed: tuple[int, int] = (5, 250),
) -> dict[str, object]:
    """Re-exposure consistency of a fused HDR with its own bracket (no ground truth needed).

    The HDR is rendered back through the bracket's camera response at each frame's
    exposure and compared with that frame on its well-exposed pixels (every channel's
    8-bit value within ``well_exposed``). The HDR's global scale is first matched to the
    reference frame (median ratio over its well-exposed pixels), since backends differ
    in their radiance unit; the scale is reported.

    Args:
        hdr: (H, W, 3) linear radiance, any global scale.
        frames: aligned float32 RGB frames in [0, 1], sorted by exposure.
        exposures: relative exposure of each frame.
        response: (256, 3) inverse camera response of the bracket.
        reference: index of the reference frame.
        ghosts: optional (N, H, W) ghost maps; pixels > 0.5 are left out for the
            non-reference frames.

    Returns:
        ``{"reference": dB, "frames": [dB per frame], "mean": dB over frames, "scale": s}``,
        PSNR in the 8-bit domain (peak 255).
    """
    lo, hi = well_exposed[0] / 255.0, well_exposed[1] / 255.0
    t = np.asarray(exposures, np.float64) / float(min(exposures))
    ref = frames[reference]
    ref_ok = (ref.min(-1) >= lo) & (ref.max(-1) <= hi)
    measured = inverse_response(ref, response).mean(-1) / np.float32(t[reference])
    hdr_lum = np.clip(hdr, 0, None).mean(-1)
    ok = ref_ok & (hdr_lum > 0) & (measured > 0)
    scale = float(np.median(measured[ok] / hdr_lum[ok])) if ok.any() else 1.0
    scores = []
    for i, (frame, exposure) in enumerate(zip(frames, t)):
        usable = (frame.min(-1) >= lo) & (frame.max(-1) <= hi)
        if ghosts is not None and i != reference:
            usable &= ghosts[i] <= 0.5
        if not usable.any():
            scores.append(float("nan"))
            continue
        rendered = forward_response(hdr * np.float32(scale * exposure), response)
        scores.append(psnr(rendered[usable] * 255.0, frame[usable] * 255.0, peak=255.0))
    finite = [s for s in scores if np.isfinite(s)]
    return {"reference": scores[reference], "frames": scores,
            "mean": float(np.mean(finite)) if finite else float("nan"), "scale": scale}
