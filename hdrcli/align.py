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
_ECC_MAX_SIDE = 1536  # finest ECC pyramid level for images given to ecc_homography directly
# Alignment is estimated on copies at most this wide and the warp scaled up: on 12 MP
# frames this is 1/27 of the pixels (issue 14; accuracy in bench/align_choice.py). 1024 cost
# ECC's finest level 0.09 s per frame and found the same warps within the noise: iPhone
# residual misalignment 0.3456 at 1024, 0.3472 at 768 (640 lost accuracy on the 720-px example
# bracket: p95 error 0.096 -> 0.130 stops in bench/classical_quality.py; 768: unchanged).
_ESTIMATE_MAX_SIDE = 768
# ECC iterations per pyramid level and the parameter change that stops them: 60 / 1e-5 ran
# to the limit on most frames for no better edge agreement (bench/align_choice.py).
_ECC_STOP = (30, 1e-4)
# The coarse look (below) only decides whether a frame moved: on a static frame ECC does not
# meet its 1e-4 stop in noise and ran all 30 iterations, 0.11 s per frame at 360 px (a third of a
# tripod bracket's alignment); 10 give the same decisions (bench/memorial_align.py, README).
_COARSE_ECC_STOP = (10, 1e-4)
# Choosing among candidate warps (see _pick), measured on ../shared/data/brackets/memorial
# (tripod, 16 frames) with bench/memorial_align.py.
_PICK_MIN_GAIN = 0.35
_MIN_AGREEMENT = 0.1
# The coarse look (ecc): at this size a warp must remove _COARSE_MIN_GAIN of the
# misalignment, else the frame is not aligned and its finer estimation skipped. Memorial's
# tripod frames gained <= 5% there, hand-held frames 23-66% (bench/memorial_align.py).
_COARSE_SIDE = 360
_COARSE_MIN_GAIN = 0.15
# Frames with a shorter side are not aligned: a shift or homography estimated on a few pixels is
# noise (a 4 x 4 bracket got a 3-pixel MTB shift), and OpenCV's AlignMTB crashes the process
# (SIGSEGV) on a side of 1 pixel.
MIN_ALIGN_SIDE = 32
NEGLIGIBLE_MOTION_PX = 0.5  # full-resolution pixels: smaller estimated motion is not warped (tripod)


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear (IEC 61966-2-1)."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] to sRGB encoding."""
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055).astype(np.float32)


_LUMA = np.array([[0.2126, 0.7152, 0.0722]], np.float32)


def _luma(rgb: np.ndarray) -> np.ndarray:
    # cv2.transform, not ``rgb @ weights``: numpy's BLAS matrix-vector product sums in an
    # order that depends on its thread count, and the warps (so the merge) followed it.
    return cv2.transform(np.ascontiguousarray(rgb, np.float32), _LUMA)


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
    """(dx, dy) translation that moves ``moving`` onto ``reference`` (OpenCV AlignMTB); (0, 0)
    for images under MIN_ALIGN_SIDE pixels on a side (AlignMTB crashes on a side of 1)."""
    if min(reference.shape[:2]) < MIN_ALIGN_SIDE:
        return 0, 0
    # AlignMTB halves the image max_bits times; on a non-square image whose short side
    # is below 2**max_bits the pyramid levels disagree in size and OpenCV asserts
    # (found by scripts/fuzz.py on 48x64 brackets). Cap the depth by the short side.
    max_bits = max(1, min(max_bits, int(np.log2(max(2, min(reference.shape[:2]))))))
    mtb = cv2.createAlignMTB(max_bits=max_bits)
    dx, dy = mtb.calculateShift(_gray8(reference, linear), _gray8(moving, linear))
    return int(dx), int(dy)


def _translate(pixels: np.ndarray, dx: int, dy: int) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    h, w = pixels.shape[:2]
    return cv2.warpAffine(pixels, matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


def _scaled_warp(warp: np.ndarray, s: float | tuple[float, float]) -> np.ndarray:
    """A warp estimated on images scaled by ``s`` (pixel centres kept; (sx, sy) per axis) expressed at scale 1."""
    sx, sy = (s, s) if np.isscalar(s) else s
    scale = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], np.float64)
    full = np.linalg.inv(scale) @ np.asarray(warp, np.float64) @ scale
    return (full / full[2, 2]).astype(np.float32)


def scale_warp(warp: np.ndarray, s: float | tuple[float, float]) -> np.ndarray:
    """A full-resolution warp expressed for the image resized by ``s`` (pixel centres kept; (sx, sy) per axis)."""
    return _scaled_warp(warp, 1.0 / s if np.isscalar(s) else (1.0 / s[0], 1.0 / s[1]))


def motion_px(warp: np.ndarray, width: int, height: int) -> float:
    """Largest displacement of the image corners under ``warp``, in pixels (0 for the identity)."""
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], np.float64).T
    moved = np.asarray(warp, np.float64) @ corners
    return float(np.abs(moved[:2] / moved[2] - corners[:2]).max())


def ecc_homography(
    reference_gray: np.ndarray, moving_gray: np.ndarray, init: np.ndarray, mask: np.ndarray | None = None,
    negligible_px: float = 0.0, stop: tuple[int, float] = _ECC_STOP,
) -> np.ndarray:
    """3x3 homography W with moving(W(x)) ~ reference(x), estimated coarse to fine.

    The finest level is at most _ECC_MAX_SIDE pixels wide (callers pass estimation-size
    images), the coarsest about 400. When ``negligible_px`` > 0 and the coarsest level
    finds a motion below it (in pixels of the given images) from an identity start, the
    identity is returned without the finer levels: a tripod frame costs one small solve.
    ``stop``: (most iterations, smallest parameter change) per level.
    """
    h, w = reference_gray.shape
    finest = min(1.0, _ECC_MAX_SIDE / max(h, w))
    scales = [finest]
    while max(h, w) * scales[-1] > 400:
        scales.append(scales[-1] / 2)
    warp = init.astype(np.float32)
    identity_start = motion_px(init, w, h) == 0.0
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, *stop)
    for level, s in enumerate(reversed(scales)):
        size = (max(8, round(w * s)), max(8, round(h * s)))
        if s == 1.0:
            ref_s, mov_s, mask_s = reference_gray, moving_gray, mask
        else:
            ref_s = cv2.resize(reference_gray, size, interpolation=cv2.INTER_AREA)
            mov_s = cv2.resize(moving_gray, size, interpolation=cv2.INTER_AREA)
            mask_s = None if mask is None else cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        scale = np.diag([s, s, 1.0]).astype(np.float32)
        warp_s = scale @ warp @ np.linalg.inv(scale)
        _, warp_s = cv2.findTransformECC(ref_s, mov_s, warp_s.astype(np.float32), cv2.MOTION_HOMOGRAPHY, criteria, mask_s, 5)
        warp = np.linalg.inv(scale) @ warp_s @ scale
        if level == 0 and identity_start and negligible_px > 0 and motion_px(warp, w, h) < negligible_px:
            return np.eye(3, dtype=np.float32)
    return (warp / warp[2, 2]).astype(np.float32)


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
    if s < 1.0:
        reference_gray = cv2.resize(reference_gray, size, interpolation=cv2.INTER_AREA)
        moving_gray = cv2.resize(moving_gray, size, interpolation=cv2.INTER_AREA)
        valid = cv2.resize(valid, size, interpolation=cv2.INTER_NEAREST)
    if motion_px(warp_s, *size) == 0.0:
        mov = moving_gray
    else:
        mov = cv2.warpPerspective(moving_gray, warp_s, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REPLICATE)
    mask = valid.astype(bool)
    by, bx = size[1] // 20, size[0] // 20
    mask[:by], mask[-by:], mask[:, :bx], mask[:, -bx:] = False, False, False, False
    a, b = _gradient_magnitude(reference_gray)[mask], _gradient_magnitude(mov)[mask]
    if a.size < 100:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-12))


def _small(pixels: np.ndarray, s: float) -> np.ndarray:
    if s >= 1.0:
        return pixels
    h, w = pixels.shape[:2]
    return cv2.resize(pixels, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)


def estimate_warps(bracket: Bracket, method: str = "ecc", indices: list[int] | None = None) -> list[np.ndarray | None]:
    """How to align each frame of ``bracket`` to its reference, without warping any pixels.

    Returns one entry per frame: None where the frame is used as it is (the reference, a
    frame not in ``indices``, or one whose best candidate is no motion), else a 3x3
    float32 inverse-map homography at full resolution for :func:`warp_frame` (an integer
    translation for MTB). Estimation runs on copies at most _ESTIMATE_MAX_SIDE pixels wide
    (MTB for ``mtb`` at full resolution, since its shift is in whole pixels), so its cost
    does not grow with the megapixels; a frame whose motion is below
    NEGLIGIBLE_MOTION_PX full-resolution pixels is not warped (tripod brackets).
    """
    if method not in ALIGN_METHODS:
        raise HdrError(f"unknown alignment '{method}' (use {', '.join(ALIGN_METHODS)})")
    frames = bracket.frames
    warps: list[np.ndarray | None] = [None] * len(frames)
    if method == "none":
        return warps
    ref = bracket.reference
    ref_frame = frames[ref]
    h, w = ref_frame.pixels.shape[:2]
    if min(h, w) < MIN_ALIGN_SIDE:
        info(f"frames of {w} x {h} pixels are too small to align (under {MIN_ALIGN_SIDE}): used as they are")
        return warps
    s = min(1.0, _ESTIMATE_MAX_SIDE / max(h, w))
    coarse = min(1.0, _COARSE_SIDE / max(h, w))
    refs: dict[float, np.ndarray] = {}
    ref_lins: dict[float, np.ndarray] = {}

    def reference_at(scale: float) -> tuple[np.ndarray, np.ndarray]:
        """The reference at ``scale`` and its linear luminance, made when first needed (a tripod
        bracket never needs the finer scale: its linearisation was a tenth of a 1.5 MP fuse)."""
        if scale not in refs:
            refs[scale] = _small(ref_frame.pixels, scale)
            ref_lins[scale] = _luma(refs[scale] if ref_frame.linear else srgb_to_linear(refs[scale]))
        return refs[scale], ref_lins[scale]

    def candidates_at(scale: float, i: int, small: np.ndarray, stop: tuple[int, float] = _ECC_STOP):
        """Candidate warps at ``scale`` (simplest first), their edge agreements and the MTB shift."""
        frame = frames[i]
        gain = bracket.exposures[ref] / bracket.exposures[i]
        ref_small, ref_lin = reference_at(scale)
        # Compare both at the darker of the two exposures so neither is pushed into clipping.
        g_ref = linear_to_srgb(ref_lin * np.float32(min(1.0, 1.0 / gain)))
        g_mov = exposure_matched_gray(small, frame.linear, min(1.0, gain))
        valid = ((g_ref > 0.02) & (g_ref < 0.97) & (g_mov > 0.02) & (g_mov < 0.97)).astype(np.uint8)
        if method == "mtb":
            dx, dy = mtb_shift(ref_frame.pixels, frame.pixels, frame.linear)
            shift = (-dx * scale, -dy * scale)
        else:
            dx, dy = mtb_shift(ref_small, small, frame.linear)
            shift = (-float(dx), -float(dy))
        candidates, kinds = [np.eye(3, dtype=np.float32)], ["none"]
        if dx or dy:
            candidates.append(np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]], np.float32))
            kinds.append("mtb")
        scores = [edge_agreement(g_ref, g_mov, c, valid) for c in candidates]
        if method == "ecc":
            start = candidates[int(np.argmax(scores))]
            try:
                warp = ecc_homography(g_ref, g_mov, start, valid if valid.mean() > 0.05 else None,
                                      negligible_px=NEGLIGIBLE_MOTION_PX * scale, stop=stop)
                if motion_px(warp, *g_ref.shape[::-1]) > 0.0:
                    candidates.append(warp)
                    kinds.append("ecc")
                    scores.append(edge_agreement(g_ref, g_mov, warp, valid))
            except cv2.error:
                info(f"{frame.name}: ECC alignment did not converge")
        return candidates, kinds, scores, (dx, dy)

    wanted = range(len(frames)) if indices is None else indices
    for i in wanted:
        frame = frames[i]
        if i == ref:
            continue
        if method == "ecc" and coarse < s:
            # A look at <= _COARSE_SIDE pixels first: where no warp helps there (tripod
            # frames), the finer estimation is skipped.
            _, kinds, scores, _ = candidates_at(coarse, i, _small(frame.pixels, coarse), _COARSE_ECC_STOP)
            if _pick(scores, kinds, _COARSE_MIN_GAIN) == 0:
                info(f"{frame.name}: aligned by none (no motion found at {_COARSE_SIDE} px)")
                continue
        candidates, kinds, scores, (dx, dy) = candidates_at(s, i, _small(frame.pixels, s))
        best = _pick(scores, kinds)
        chosen = "none"
        if best == 1 and (dx or dy):
            chosen = "mtb"
            if method == "mtb":  # whole full-resolution pixels, applied without resampling
                warps[i] = np.array([[1, 0, -dx], [0, 1, -dy], [0, 0, 1]], np.float32)
            else:
                warps[i] = _scaled_warp(candidates[best], s)
        elif best > 0:
            chosen = "ecc"
            warps[i] = _scaled_warp(candidates[best], s)
        if warps[i] is not None and motion_px(warps[i], w, h) < NEGLIGIBLE_MOTION_PX:
            warps[i], chosen = None, "none (motion below half a pixel)"
        info(f"{frame.name}: aligned by {chosen}")
    return warps


def _pick(scores: list[float], kinds: list[str], ecc_gain: float = _PICK_MIN_GAIN) -> int:
    """Index of the candidate to use, simplest first: the MTB shift when its edges agree
    better than no warp (as before), the ECC homography only when it removes at least
    ``ecc_gain`` of the remaining misalignment (1 - edge agreement). A warp whose edge
    agreement stays below _MIN_AGREEMENT is never used: the frames are too far apart in
    exposure to compare (Memorial's 1/1024 s frame: MTB shifted it 33 px for 0.07).

    Tripod frames get small spurious warps from exposure-dependent edges (bloom around
    bright windows): on the 16-frame Memorial they gained 3-30% and every one of them
    lowered PSNR-mu against memorial.hdr; real hand-held motion gains 45-85%
    (iphone_handheld, the shaken example bracket).
    """
    best = 0
    for i in range(1, len(scores)):
        need = ecc_gain if kinds[i] == "ecc" else 0.0
        if scores[i] >= _MIN_AGREEMENT and 1.0 - scores[i] < (1.0 - scores[best]) * (1.0 - need):
            best = i
    return best


def covered_area(warps: list[np.ndarray | None], height: int, width: int, side: int = 256) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the largest axis-aligned rectangle of output pixels that every frame,
    aligned by its warp from :func:`estimate_warps`, covers with its own pixels (elsewhere
    :func:`warp_frame` repeats an edge pixel). The whole image when no frame is warped.

    Found on a grid of about ``side`` cells per side (largest rectangle of covered cells),
    then each edge pushed outwards pixel by pixel while the rectangle's corners stay covered:
    the covered area is convex (an intersection of the frames' convex footprints), so covered
    corners mean a covered rectangle.
    """
    moved = [np.asarray(w, np.float64) for w in warps if w is not None]
    if not moved:
        return 0, height, 0, width

    def covered(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        points = np.stack([xs, ys, np.ones_like(xs)]).reshape(3, -1).astype(np.float64)
        inside = np.ones(points.shape[1], bool)
        for warp in moved:  # inverse maps: output pixel p shows the frame's pixel warp @ p
            u, v, z = warp @ points
            u, v = u / z, v / z
            inside &= (z > 0) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
        return inside.reshape(np.shape(xs))

    step = max(1.0, max(height, width) / side)
    gy, gx = np.arange(0, height, step), np.arange(0, width, step)
    mask = covered(*np.meshgrid(gx, gy))
    best, box = 0, None
    heights = np.zeros(len(gx), int)
    for row in range(len(gy)):  # largest rectangle of True cells, row by row (histogram and stack)
        heights = np.where(mask[row], heights + 1, 0)
        stack: list[int] = []
        for col in range(len(gx) + 1):
            current = heights[col] if col < len(gx) else 0
            while stack and heights[stack[-1]] >= current:
                top = stack.pop()
                left = stack[-1] + 1 if stack else 0
                area = int(heights[top]) * (col - left)
                if area > best:
                    best, box = area, (row - int(heights[top]) + 1, row + 1, left, col)
            stack.append(col)
    if box is None:
        raise HdrError("no part of the image is covered by every aligned frame: the frames do not overlap")
    y0, y1 = int(np.ceil(gy[box[0]])), int(gy[box[1] - 1]) + 1
    x0, x1 = int(np.ceil(gx[box[2]])), int(gx[box[3] - 1]) + 1

    def inside(a: int, b: int, c: int, d: int) -> bool:
        return bool(covered(np.array([c, d - 1, c, d - 1], float), np.array([a, a, b - 1, b - 1], float)).all())

    for _ in range(2):  # push each edge out while the corners stay covered
        while y0 > 0 and inside(y0 - 1, y1, x0, x1):
            y0 -= 1
        while y1 < height and inside(y0, y1 + 1, x0, x1):
            y1 += 1
        while x0 > 0 and inside(y0, y1, x0 - 1, x1):
            x0 -= 1
        while x1 < width and inside(y0, y1, x0, x1 + 1):
            x1 += 1
    return y0, y1, x0, x1


def _integer_translation(warp: np.ndarray) -> bool:
    return bool(np.array_equal(warp[:2, :2], np.eye(2)) and np.array_equal(warp[2], [0, 0, 1])
                and np.all(warp[:2, 2] == np.round(warp[:2, 2])))


def warp_frame(pixels: np.ndarray, warp: np.ndarray | None, rows: tuple[int, int] | None = None,
               cols: tuple[int, int] | None = None) -> np.ndarray:
    """Rows ``rows`` = (start, stop) and columns ``cols`` (default all) of ``pixels`` aligned by a
    warp from :func:`estimate_warps`.

    Integer translations are applied without resampling; other warps bilinearly.
    Uncovered borders repeat the nearest edge pixel. Computing a window gives the same values
    as the whole image (the chunked merges and the learned runtime's tiles rely on it).
    """
    h, w = pixels.shape[:2]
    y0, y1 = rows if rows is not None else (0, h)
    x0, x1 = cols if cols is not None else (0, w)
    if warp is None:
        return pixels[y0:y1, x0:x1]
    offset = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
    window = np.asarray(warp, np.float64) @ offset  # dst (x, y) of the window is (x0 + x, y0 + y) of the image
    if _integer_translation(np.asarray(warp)):
        return cv2.warpAffine(pixels, window[:2].astype(np.float32), (x1 - x0, y1 - y0),
                              flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return cv2.warpPerspective(pixels, window, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)


def align_bracket(bracket: Bracket, method: str = "mtb", indices: list[int] | None = None) -> list[np.ndarray]:
    """Pixels of each frame of ``bracket`` aligned to its reference frame.

    Returns a list of float32 (H, W, 3) arrays in the bracket's order; the reference
    frame (and frames not in ``indices``, when given) are returned unchanged. Uncovered
    borders repeat the nearest edge pixel. See :func:`estimate_warps`.
    """
    warps = estimate_warps(bracket, method, indices)
    return [warp_frame(f.pixels, warp) for f, warp in zip(bracket.frames, warps)]
