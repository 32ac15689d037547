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
