"""Aligning the frames of a bracket to its reference frame.

Methods:

* ``none``: frames are used as they are (tripod shots).
* ``mtb``: OpenCV's median threshold bitmap alignment (Ward 2003): integer translation,
  robust to exposure differences, fast. Fixes tripod bumps, not hand-held rotation. The
  shift is kept only if it makes edges agree better than no shift (see below).
* ``ecc``: enhanced-correlation (Evangelidis & Psarakis 2008) homography, estimated
  coarse to fine on exposure-matched greyscale images and started from the MTB shift.
  Handles hand-held shots (translation, rotation, perspective).

Every candidate warp (none, the MTB shift, the ECC homography) is scored by how well the
frames' edges agree (normalised correlation of gradient magnitudes on pixels clipped in
neither frame) and the best is used, ties going to the simpler warp: MTB misjudges very
dark or very bright frames and ECC can drift on heavily clipped ones.

Before comparing two frames for ECC, each is brought to the reference's exposure
(linearised, scaled by the exposure ratio, clipped) and pixels clipped in either frame are
masked out, since correlation cannot see through saturation.
"""

from __future__ import annotations

import cv2
import numpy as np

from hdrcli.errors import HdrError
from hdrcli.exposure import Bracket
from hdrcli.log import info

ALIGN_METHODS = ("none", "mtb", "ecc")
_ECC_MAX_SIDE = 1536  # finest pyramid level used for estimation; the warp is scaled up


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear (IEC 61966-2-1)."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] to sRGB encoding."""
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055).astype(np.float32)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return (rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)).astype(np.float32)


def exposure_matched_gray(pixels: np.ndarray, linear: bool, gain: float) -> np.ndarray:
    """Greyscale, display-encoded image of a frame brought to another exposure by ``gain``."""
    lin = _luma(pixels if linear else srgb_to_linear(pixels)) * np.float32(gain)
    return linear_to_srgb(lin)


def _gray8(pixels: np.ndarray, linear: bool) -> np.ndarray:
    y = _luma(pixels)
    if linear:
        y = linear_to_srgb(y)
    return np.clip(np.rint(y * 255), 0, 255).astype(np.uint8)


def mtb_shift(reference: np.ndarray, moving: np.ndarray, linear: bool = False, max_bits: int = 6) -> tuple[int, int]:
    """(dx, dy) translation that moves ``moving`` onto ``reference`` (OpenCV AlignMTB)."""
    mtb = cv2.createAlignMTB(max_bits=max_bits)
    dx, dy = mtb.calculateShift(_gray8(reference, linear), _gray8(moving, linear))
    return int(dx), int(dy)


def _translate(pixels: np.ndarray, dx: int, dy: int) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    h, w = pixels.shape[:2]
    return cv2.warpAffine(pixels, matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


def ecc_homography(
    reference_gray: np.ndarray, moving_gray: np.ndarray, init: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """3x3 homography W with moving(W(x)) ~ reference(x), estimated coarse to fine."""
    h, w = reference_gray.shape
    finest = min(1.0, _ECC_MAX_SIDE / max(h, w))
    scales = [finest]
    while max(h, w) * scales[-1] > 400:
        scales.append(scales[-1] / 2)
    warp = init.astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5)
    for s in reversed(scales):
        size = (max(8, round(w * s)), max(8, round(h * s)))
        ref_s = cv2.resize(reference_gray, size, interpolation=cv2.INTER_AREA)
        mov_s = cv2.resize(moving_gray, size, interpolation=cv2.INTER_AREA)
        mask_s = None if mask is None else cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        scale = np.diag([s, s, 1.0]).astype(np.float32)
        warp_s = scale @ warp @ np.linalg.inv(scale)
        _, warp_s = cv2.findTransformECC(ref_s, mov_s, warp_s.astype(np.float32), cv2.MOTION_HOMOGRAPHY, criteria, mask_s, 5)
        warp = np.linalg.inv(scale) @ warp_s @ scale
    return warp / warp[2, 2]


def _gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy)


def edge_agreement(reference_gray: np.ndarray, moving_gray: np.ndarray, warp: np.ndarray, valid: np.ndarray) -> float:
    """Normalised correlation of gradient magnitudes after warping ``moving`` by ``warp``.

    Computed at most _ECC_MAX_SIDE pixels wide, on ``valid`` pixels away from the border.
    Tone-curve differences between exposures barely change it; misalignment lowers it.
    """
    h, w = reference_gray.shape
    s = min(1.0, _ECC_MAX_SIDE / max(h, w))
    size = (max(8, round(w * s)), max(8, round(h * s)))
    scale = np.diag([s, s, 1.0])
    warp_s = scale @ warp @ np.linalg.inv(scale)
    ref = cv2.resize(reference_gray, size, interpolation=cv2.INTER_AREA)
    mov = cv2.warpPerspective(
        cv2.resize(moving_gray, size, interpolation=cv2.INTER_AREA), warp_s, size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )
    mask = cv2.resize(valid, size, interpolation=cv2.INTER_NEAREST).astype(bool)
    by, bx = size[1] // 20, size[0] // 20
    mask[:by], mask[-by:], mask[:, :bx], mask[:, -bx:] = False, False, False, False
    a, b = _gradient_magnitude(ref)[mask], _gradient_magnitude(mov)[mask]
    if a.size < 100:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-12))


def align_bracket(bracket: Bracket, method: str = "mtb") -> list[np.ndarray]:
    """Pixels of each frame of ``bracket`` aligned to its reference frame.

    Returns a list of float32 (H, W, 3) arrays in the bracket's order; the reference
    frame is returned unchanged. Uncovered borders repeat the nearest edge pixel.
    """
    if method not in ALIGN_METHODS:
        raise HdrError(f"unknown alignment '{method}' (use {', '.join(ALIGN_METHODS)})")
    frames = bracket.frames
    if method == "none":
        return [f.pixels for f in frames]
    ref = bracket.reference
    ref_frame = frames[ref]
    out: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        if i == ref:
            out.append(frame.pixels)
            continue
        gain = bracket.exposures[ref] / bracket.exposures[i]
        # Compare both at the darker of the two exposures so neither is pushed into clipping.
        g_ref = exposure_matched_gray(ref_frame.pixels, ref_frame.linear, min(1.0, 1.0 / gain))
        g_mov = exposure_matched_gray(frame.pixels, frame.linear, min(1.0, gain))
        valid = ((g_ref > 0.02) & (g_ref < 0.97) & (g_mov > 0.02) & (g_mov < 0.97)).astype(np.uint8)
        # Candidates, simplest first; the one whose edges agree best with the reference wins
        # (ties keep the simpler). MTB alone misjudges very dark or very bright frames.
        dx, dy = mtb_shift(ref_frame.pixels, frame.pixels, frame.linear)
        candidates = [np.eye(3, dtype=np.float32)]
        if dx or dy:
            candidates.append(np.array([[1, 0, -dx], [0, 1, -dy], [0, 0, 1]], np.float32))
        scores = [edge_agreement(g_ref, g_mov, w, valid) for w in candidates]
        if method == "ecc":
            start = candidates[int(np.argmax(scores))]
            try:
                warp = ecc_homography(g_ref, g_mov, start, valid if valid.mean() > 0.05 else None)
                candidates.append(warp)
                scores.append(edge_agreement(g_ref, g_mov, warp, valid))
            except cv2.error:
                info(f"{frame.name}: ECC alignment did not converge")
        best = int(np.argmax(scores))
        warp = candidates[best]
        if best == 0:
            out.append(frame.pixels)
        elif best == 1 and (dx or dy):
            out.append(_translate(frame.pixels, dx, dy))
        else:
            h, w = frame.pixels.shape[:2]
            out.append(
                cv2.warpPerspective(
                    frame.pixels, warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                    borderMode=cv2.BORDER_REPLICATE,
                )
            )
        info(f"{frame.name}: aligned by {['none', 'mtb', 'ecc'][best if (dx or dy) or best == 0 else 2]}")
    return out
