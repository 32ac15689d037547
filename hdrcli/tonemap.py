"""Tone mapping: HDR radiance to a display image that looks like a well-exposed photo.

Every operator first sets the exposure: the image is scaled so that its log-average
luminance (the geometric mean, Reinhard's "key") maps to middle grey 0.18, optionally
shifted by ``exposure`` EV. Then the operator compresses the range, and a final stretch
maps the 99.5th percentile of luminance to white (OpenCV's Drago and Mantiuk outputs are
otherwise dim), followed by sRGB encoding where the operator does not encode itself.

Operators (``TONEMAPS``):

* ``reinhard``: OpenCV TonemapReinhard (global photographic operator, gamma 2.2).
* ``drago``: OpenCV TonemapDrago (adaptive logarithmic mapping, bias 0.85).
* ``mantiuk``: OpenCV TonemapMantiuk (contrast-domain operator, local contrast kept).
* ``mulaw``: the learning field's mu-law curve T(H) = log(1 + mu H) / log(1 + mu) with
  mu = 5000 on H scaled to [0, 1] by its 99.9th percentile (how papers show results).
* ``filmic``: a smooth shoulder (Reinhard's x / (1 + x) with white point) then sRGB.
"""

from __future__ import annotations

import cv2
import numpy as np

from hdrcli.align import linear_to_srgb
from hdrcli.errors import HdrError

TONEMAPS = ("reinhard", "drago", "mantiuk", "mulaw", "filmic")
MU = 5000.0
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 relative luminance of linear RGB, shape (H, W)."""
    return (np.asarray(rgb, np.float32) @ _LUMA).astype(np.float32)


def mu_law(hdr: np.ndarray, mu: float = MU) -> np.ndarray:
    """T(H) = log(1 + mu H) / log(1 + mu) for H in [0, 1] (values above 1 are clipped)."""
    h = np.clip(np.asarray(hdr, np.float32), 0.0, 1.0)
    return (np.log1p(mu * h) / np.log1p(mu)).astype(np.float32)


def auto_expose(hdr: np.ndarray, exposure: float = 0.0, key: float = 0.18) -> np.ndarray:
    """Scale ``hdr`` so its log-average luminance is ``key`` * 2**exposure."""
    lum = luminance(hdr)
    positive = lum[lum > 0]
    if positive.size == 0:
        return np.zeros_like(hdr, dtype=np.float32)
    log_average = float(np.exp(np.mean(np.log(positive + 1e-6))))
    return (hdr * np.float32(key * 2.0**exposure / max(log_average, 1e-12))).astype(np.float32)


def _stretch(display: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    top = float(np.percentile(luminance(display), percentile))
    if top > 1e-6:
        display = display / np.float32(top)
    return np.clip(display, 0.0, 1.0)


def _opencv(op, rgb: np.ndarray) -> np.ndarray:
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2BGR)
    out = op.process(bgr)
    return cv2.cvtColor(np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0), cv2.COLOR_BGR2RGB)


def tonemap(hdr: np.ndarray, method: str = "reinhard", exposure: float = 0.0) -> np.ndarray:
    """Tone map linear RGB radiance (H, W, 3) to a display-referred image in [0, 1].

    Args:
        hdr: non-negative linear RGB (any scale).
        method: one of ``TONEMAPS``.
        exposure: brightness change in EV stops applied before tone mapping.

    Returns:
        float32 (H, W, 3) sRGB-encoded values in [0, 1].
    """
    if method not in TONEMAPS:
        raise HdrError(f"unknown tone map '{method}' (use {', '.join(TONEMAPS)})")
    hdr = np.maximum(np.nan_to_num(np.asarray(hdr, np.float32), posinf=0.0), 0.0)
    if method == "mulaw":
        scale = float(np.percentile(hdr, 99.9)) * 2.0 ** (-exposure)
        return mu_law(hdr / np.float32(scale if scale > 0 else 1.0))
    exposed = auto_expose(hdr, exposure)
    operators = {
        "reinhard": lambda: cv2.createTonemapReinhard(gamma=2.2, intensity=0.0, light_adapt=0.8, color_adapt=0.0),
        "drago": lambda: cv2.createTonemapDrago(gamma=2.2, saturation=1.0, bias=0.85),
        "mantiuk": lambda: cv2.createTonemapMantiuk(gamma=2.2, scale=0.75, saturation=1.0),
    }
    if method in operators:
        display = _stretch(_opencv(operators[method](), exposed))
        # These operators normalise brightness themselves, so the exposure change is
        # applied to their (gamma 2.2) output.
        return np.clip(display * np.float32(2.0 ** (exposure / 2.2)), 0.0, 1.0) if exposure else display
    # filmic: extended Reinhard with the white point at the 99.9th percentile.
    lum = luminance(exposed)
    white = max(float(np.percentile(lum, 99.9)), 1.0)
    mapped = lum * (1.0 + lum / white**2) / (1.0 + lum)
    ratio = np.where(lum > 1e-8, mapped / np.maximum(lum, 1e-8), 0.0)[..., None]
    return linear_to_srgb(np.clip(exposed * ratio, 0.0, 1.0))


def to_uint8(display: np.ndarray) -> np.ndarray:
    """Display image in [0, 1] to uint8 with rounding."""
    return np.clip(np.rint(display * 255.0), 0, 255).astype(np.uint8)
