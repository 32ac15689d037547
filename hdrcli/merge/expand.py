"""Single-image expansion: keep what the photo recorded, use a prediction only where it lost it.

A learned single-image network (or any other predictor) is good at *guessing* what a
photo could not record (clipped highlights) and poor at reproducing what it did record
(its output drifts in colour and tone, and lifts dark regions into haze). So the HDR
result is composed from the photo itself, in the manner of HDRCNN (Eilertsen et al.
2017, "HDR image reconstruction from a single exposure using deep CNNs"):

1. **Linearise** the photo through its camera response: the sRGB curve by default, a
   measured inverse response (``hdr fuse --save-crf``, 256 x RGB) when given, or nothing
   when the pixels are linear already (camera RAW). 1.0 = the photo's clipping level.
2. **Partly clipped channels** take the colour of their unclipped bright neighbours,
   scaled to the channels the pixel did record (at most 3x; :func:`reconstruct_clipped`);
   fully clipped regions start from the reconstructed ring around them.
3. **Highlights**: a blend weight from the brightest channel near clipping,
   ``alpha = max(0, max_c(x) - tau) / (1 - tau)`` with tau = 0.95 (HDRCNN), widened by a
   small Gaussian so the transition has no hard outline. The prediction's contrast is
   first mapped onto the photo's (:func:`contrast_slope`: the log-log slope between the
   two on bright unclipped pixels, since a network renders tones through its own curve),
   and its luminance scaled to agree with the photo's on the bright, unclipped pixels around each
   clipped region (a smooth log-ratio field, filled in from those borders coarse to
   fine), so the blend joins the two without a step (no halo rings or outlines). It
   enters as a luminance gain on the linearised photo: brightness from the prediction,
   colour from the photo, so a network's colour cast cannot reach the output (a grey
   photo stays grey). A clipped value is a lower bound of the truth, so the expanded
   value never falls below the linearised photo (no dark rings around lights).
4. **Shadows** (crushed: brightest channel below ~6/255): edge-preserving denoising
   (guided filter, He et al. 2010) of the linear values, which keeps their local mean,
   instead of any learned content (which would lift them into haze).
5. Everywhere else the output *is* the linearised photo, bit for bit.

``highlight_extrapolation`` is the classical baseline without learning: inside clipped
regions the log radiance grows smoothly from the border (by at most ``max_stops``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from hdrcli.align import srgb_to_linear
from hdrcli.merge.classical import LEVELS, levels

CLIP_TAU = 0.95  # HDRCNN's threshold on max_c(x) (display-referred) where the blend starts
ALPHA_SIGMA = 1.5  # px: widening of the highlight blend, so it has no hard outline
SHADOW_LOW, SHADOW_HIGH = 0.012, 0.025  # display-referred max_c(x): full / no shadow denoising
GUIDED_RADIUS, GUIDED_EPS = 3, 0.01**2  # guided filter window (px) and edge threshold (display units^2)
GAIN_SLOPE = 0.25  # stops per pixel from a clip border: how steeply the expansion may rise
BAND_LOW = 0.55  # display-referred max_c(x) from which unclipped pixels anchor the prediction's scale
RECONSTRUCT_MAX_GAIN = 3.0  # most a partly clipped channel is raised by its neighbours' colour (1.6 stops)
SLOPE_LIMITS = (0.25, 1.5)  # range of the log-log slope that maps a prediction's contrast onto the photo's
HIGHLIGHT_MARGIN = 256  # px around clipped regions that their expansion reads (4 sigma of the widest fill)
CROP_CELL = 32  # px: grid of the crops around clipped regions
CROP_SHARE = 0.5  # crops are used while they cover at most this share of the photo
_EPS = 1e-6
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709 luminance weights


@dataclass
class Expansion:
    """An expanded photo and what was done to it.

    Attributes:
        hdr: (H, W, 3) float32 linear radiance, 1.0 = the photo's clipping level.
        linear: (H, W, 3) the linearised photo (before any expansion or denoising).
        alpha: (H, W) highlight blend weight in [0, 1] (1 = prediction).
        shadow: (H, W) shadow denoising weight in [0, 1].
        clipped_fraction: share of pixels with a channel at the clipping level (>= 254.5/255).
        response: 'srgb', 'crf' or 'linear': how the photo was linearised.
    """

    hdr: np.ndarray
    linear: np.ndarray
    alpha: np.ndarray
    shadow: np.ndarray
    clipped_fraction: float
    response: str

    @property
    def well_exposed(self) -> np.ndarray:
        """(H, W) bool: pixels returned exactly as the linearised photo."""
        return (self.alpha <= 0) & (self.shadow <= 0)


_SRGB_TABLE: np.ndarray | None = None


def srgb_decode(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear (IEC 61966-2-1), float32.

    Looked up at the nearest 16-bit level (exact for 8- and 16-bit codes, which land on
    levels; 10x faster than the power law on a 12 MP photo)."""
    global _SRGB_TABLE
    if _SRGB_TABLE is None:
        _SRGB_TABLE = srgb_to_linear(np.linspace(0.0, 1.0, LEVELS, dtype=np.float32))
    return _SRGB_TABLE.take(levels(np.asarray(v, np.float32)))


def channel_max(image: np.ndarray) -> np.ndarray:
    """(H, W) brightest channel of (H, W, C): pairwise for 3 channels, 7x faster than ``max(-1)``."""
    if image.shape[-1] != 3:
        return image.max(-1)
    return np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])


def channel_mean(image: np.ndarray) -> np.ndarray:
    """(H, W) mean of the channels of (H, W, 3) (see :func:`channel_max`)."""
    return (image[..., 0] + image[..., 1] + image[..., 2]) / np.float32(3.0)


def channel_min(image: np.ndarray) -> np.ndarray:
    """(H, W) darkest channel of (H, W, C) (see :func:`channel_max`)."""
    if image.shape[-1] != 3:
        return image.min(-1)
    return np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2])


def linearise(image: np.ndarray, response: np.ndarray | None = None, linear: bool = False) -> np.ndarray:
    """Display-referred (H, W, 3) image in [0, 1] -> linear, 1.0 = its clipping level.

    Args:
        image: RGB values in [0, 1] (8- or 16-bit sources alike).
        response: (256, 3) inverse camera response normalised so the mean of row 255 is 1
            (interpolated between codes, so 16-bit inputs keep their precision); None: sRGB.
        linear: the pixels are linear already (camera RAW): returned as they are.
    """
    image = np.asarray(image, np.float32)
    if linear:
        return np.clip(image, 0.0, None).astype(np.float32)
    if response is None:
        return srgb_decode(image)
    codes = np.clip(image, 0.0, 1.0) * 255.0
    grid = np.arange(256, dtype=np.float32)
    out = np.empty_like(image)
    for c in range(3):
        out[..., c] = np.interp(codes[..., c], grid, np.asarray(response, np.float32)[:, c])
    return out


def highlight_alpha(image: np.ndarray, tau: float = CLIP_TAU, sigma: float = ALPHA_SIGMA) -> np.ndarray:
    """HDRCNN's blend weight (H, W) in [0, 1] from the brightest channel of ``image`` (H, W, C)
    (or from ``image`` itself when it is (H, W)), widened by a Gaussian (never lowered: a
    clipped pixel keeps weight 1)."""
    image = np.asarray(image, np.float32)
    top = image if image.ndim == 2 else channel_max(image)
    alpha = np.clip((top - tau) / (1.0 - tau), 0.0, 1.0).astype(np.float32)
    if sigma > 0 and alpha.any():
        alpha = np.maximum(alpha, cv2.GaussianBlur(alpha, (0, 0), sigma))
        alpha[alpha < 1e-3] = 0.0  # the Gaussian's far tail: those pixels stay the photo exactly
    return alpha


def shadow_weight(image: np.ndarray, low: float = SHADOW_LOW, high: float = SHADOW_HIGH) -> np.ndarray:
    """(H, W) in [0, 1]: 1 where the brightest channel of ``image`` (H, W, C; or ``image`` itself
    when (H, W)) is at or below ``low`` (display-referred), 0 from ``high`` up, smooth in between."""
    image = np.asarray(image, np.float32)
    top = image if image.ndim == 2 else channel_max(image)
    t = np.clip((high - top) / (high - low), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int = GUIDED_RADIUS, eps: float = GUIDED_EPS) -> np.ndarray:
    """He et al.'s guided filter: ``source`` (H, W[, C]) smoothed where ``guide`` (H, W) is flat,
    edges of ``guide`` kept. Local means are preserved (no lift of dark regions)."""
    box = lambda a: cv2.boxFilter(a, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)  # noqa: E731
    guide = guide.astype(np.float32)
    mean_i = box(guide)
    var_i = box(guide * guide) - mean_i * mean_i
    channels = source[..., None] if source.ndim == 2 else source
    out = np.empty_like(channels, dtype=np.float32)
    for c in range(channels.shape[-1]):
        p = channels[..., c].astype(np.float32)
        mean_p = box(p)
        a = (box(guide * p) - mean_i * mean_p) / (var_i + eps)
        b = mean_p - a * mean_i
        out[..., c] = box(a) * guide + box(b)
    return out[..., 0] if source.ndim == 2 else out


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; large sigmas on a downscaled copy (same result to a few per cent, far faster)."""
    h, w = a.shape[:2]
    factor = int(max(1, sigma // 4))
    if factor == 1:
        return cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT).reshape(a.shape)
    small = cv2.resize(a, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(a.shape)


def _linear_taps(index: np.ndarray, source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two source indices and the weight of the second for ``index`` along one axis of
    ``cv2.resize(..., INTER_LINEAR)`` from ``source`` to ``target`` samples (its edge rule)."""
    position = (index + 0.5) * (source / target) - 0.5
    first = np.floor(position)
    weight = (position - first).astype(np.float32)
    first = first.astype(np.intp)
    outside = (first < 0) | (first >= source - 1)
    weight[outside] = 0.0
    first = np.clip(first, 0, source - 1)
    return first, np.minimum(first + 1, source - 1), weight


def _blur_at(a: np.ndarray, sigma: float, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``_blur(a, sigma)[rows, cols]`` for an (H, W) plane, without the full-size result: large
    sigmas are read from the blurred small copy (its bilinear upsampling at those pixels only),
    small ones are blurred in the bounding box of the pixels (with the kernel's reach around it)."""
    h, w = a.shape
    factor = int(max(1, sigma // 4))
    if factor == 1:
        reach = int(np.ceil(4 * sigma)) + 1  # OpenCV's float kernel spans 4 sigma each side
        y0, y1 = max(0, int(rows.min()) - reach), min(h, int(rows.max()) + 1 + reach)
        x0, x1 = max(0, int(cols.min()) - reach), min(w, int(cols.max()) + 1 + reach)
        if (y0, y1, x0, x1) == (0, h, 0, w):
            return cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)[rows, cols]
        # Inside the image the crop's own border rule is never reached; at the image's edge it is the same.
        crop = a[y0:y1, x0:x1]
        return cv2.GaussianBlur(crop, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)[rows - y0, cols - x0]
    sw, sh = max(1, w // factor), max(1, h // factor)
    small = cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT)
    r0, r1, ry = _linear_taps(rows, sh, h)
    c0, c1, cx = _linear_taps(cols, sw, w)
    top = small[r0, c0] + cx * (small[r0, c1] - small[r0, c0])
    bottom = small[r1, c0] + cx * (small[r1, c1] - small[r1, c0])
    return top + ry * (bottom - top)


def fill_from_anchors(values: np.ndarray, anchors: np.ndarray, sigmas: tuple[float, ...] = (64.0, 16.0, 4.0),
                      at: np.ndarray | None = None, baseline: np.ndarray | None = None) -> np.ndarray:
    """``values`` known on the ``anchors`` pixels (H, W), filled into the whole image.

    Normalised Gaussian convolution, coarse to fine: each finer scale replaces the coarser
    one where it has enough anchors nearby; the anchors' median underlies all. Anchor pixels
    themselves get a smooth local mean, not their own value.

    Args:
        values: (H, W, C) (only the anchors' values are read), or (M, C): the values of the
            M anchor pixels in raster order.
        anchors: (H, W) bool.
        sigmas: the scales, coarse to fine (px).
        at: an (H, W) bool mask: only those K pixels' values are returned, (K, C), and no
            full-size 3-channel array is made (the blurs run one channel at a time; the
            coarse ones are read from their small copies at those pixels only).
        baseline: the (C,) value under all scales (default: the anchors' median; given when
            the anchors are a crop of a larger image whose anchors decide it).

    Returns:
        (H, W, C), or (K, C) with ``at``.
    """
    anchor_values = np.asarray(values[anchors] if values.ndim == 3 else values, np.float32)
    channels = anchor_values.shape[-1]
    if baseline is None:
        baseline = np.median(anchor_values, axis=0)
    weight = anchors.astype(np.float32)
    if at is None:
        weighted = np.zeros((*anchors.shape, channels), np.float32)
        weighted[anchors] = anchor_values
        field = np.broadcast_to(np.asarray(baseline, np.float32), weighted.shape).astype(np.float32)
        for sigma in sigmas:
            den = _blur(weight, sigma)
            num = _blur(weighted, sigma)
            confidence = (den / (den + 0.05))[..., None]  # 0.05: a few anchors within ~sigma are enough
            field = confidence * (num / np.maximum(den, _EPS)[..., None]) + (1 - confidence) * field
        return field
    rows, cols = np.nonzero(at)
    planes = []
    for c in range(channels):
        plane = np.zeros(anchors.shape, np.float32)
        plane[anchors] = anchor_values[:, c]
        planes.append(plane)
    field = np.broadcast_to(np.asarray(baseline, np.float32), (rows.size, channels)).astype(np.float32)
    if rows.size == 0:
        return field
    for sigma in sigmas:
        den = _blur_at(weight, sigma, rows, cols)
        num = np.stack([_blur_at(plane, sigma, rows, cols) for plane in planes], axis=-1)
        confidence = (den / (den + 0.05))[..., None]
        field = confidence * (num / np.maximum(den, _EPS)[..., None]) + (1 - confidence) * field
    return field


def border_scale(linear: np.ndarray, prediction: np.ndarray, anchors: np.ndarray,
                 sigmas: tuple[float, ...] = (64.0, 16.0, 4.0), baseline: np.ndarray | None = None,
                 at: np.ndarray | None = None) -> np.ndarray:
    """Smooth per-channel factor that makes ``prediction`` agree with ``linear`` on ``anchors``
    (their log ratio filled into the whole image, :func:`fill_from_anchors`; ``baseline``: the
    log ratio far from any anchor, by default their median). 1 with fewer than 16 anchors.

    ``linear`` and ``prediction``: (H, W, C), or (M, C) their values on the M anchors. Returns
    (H, W, C), or (K, C) at the pixels of the mask ``at``."""
    shape = (*anchors.shape, linear.shape[-1]) if at is None else (int(at.sum()), linear.shape[-1])
    if baseline is None and anchors.sum() < 16:
        return np.ones(shape, np.float32)
    if linear.ndim == 3:
        linear, prediction = linear[anchors], prediction[anchors]
    log_ratio = np.log(np.maximum(linear, _EPS)) - np.log(np.maximum(prediction, _EPS))
    return np.exp(fill_from_anchors(log_ratio, anchors, sigmas, at=at, baseline=baseline)).astype(np.float32)


def reconstruct_clipped(linear: np.ndarray, display: np.ndarray, tau: float = CLIP_TAU,
                        max_gain: float = RECONSTRUCT_MAX_GAIN, colour_baseline: np.ndarray | None = None) -> np.ndarray:
    """The linearised photo with its clipped channels estimated from its unclipped ones.

    Where some channels of a pixel clip (sunlit yellow wood: red and green), they are lower
    bounds: the pixel's colour is taken from the nearby unclipped bright pixels (their log
    chromaticity, :func:`fill_from_anchors`) and scaled to the channels it did record, as raw
    converters' highlight reconstruction does. Where every channel clips, the reconstructed
    surround is filled inwards. A channel never falls below the photo and moves only as far
    as it is clipped (ramp from ``tau`` to 1, display-referred), and by at most ``max_gain``:
    everywhere else the result is ``linear`` exactly. Without a reconstruction, partly clipped
    pixels stayed at the clipping level while the fully clipped ones inside them were
    expanded: white blotches (img_004's sunlit wood).

    Why the limit: a neighbour's colour is a guess (glow around a candle flame is whiter than
    the wax it is measured on, a film scan's curve is not sRGB's), and unlimited it put
    magenta rims around lights and cost Memorial 2.6 dB on clipped pixels; 3x keeps most of
    the gain on the phone photos (see README, single-image quality).

    ``colour_baseline``: the (3,) log chromaticity far from any bright unclipped pixel (default:
    their median; :func:`image_statistics` gives it when this runs on a crop).
    """
    display = np.asarray(display, np.float32)
    near = channel_max(display) > tau  # the only pixels that change
    estimate = _reconstructed_near(linear, display, near, tau, max_gain, colour_baseline) if near.any() else None
    if estimate is None:
        return linear
    out = linear.copy()
    out[near] = estimate
    return out


def _reconstructed_near(linear: np.ndarray, display: np.ndarray, near: np.ndarray, tau: float = CLIP_TAU,
                        max_gain: float = RECONSTRUCT_MAX_GAIN,
                        colour_baseline: np.ndarray | None = None) -> np.ndarray | None:
    """:func:`reconstruct_clipped`'s values (K, 3) of the K ``near`` pixels (a channel above
    ``tau``), in raster order; None when there is no colour to borrow. Only 1-channel planes
    are made at full size."""
    anchors = _bright(linear, channel_max(display)) & ~near
    if colour_baseline is None and anchors.sum() < 16:  # no colour to borrow
        return None
    lin_near = linear[near]
    clip_near = np.clip((display[near] - tau) / (1.0 - tau), 0.0, 1.0)
    log_anchors = np.log(np.maximum(linear[anchors], _EPS))
    colour = fill_from_anchors(_log_chromaticity(log_anchors), anchors, at=near, baseline=colour_baseline)
    log_near = np.log(np.maximum(lin_near, _EPS))
    recorded = 1.0 - clip_near  # how much each channel is a measurement
    total = recorded.sum(-1, keepdims=True)
    level = (recorded * (log_near - colour)).sum(-1, keepdims=True) / np.maximum(total, _EPS)
    estimate = _limit_raise(np.exp(level + colour), lin_near, max_gain)
    full_near = total[:, 0] <= 0  # nothing recorded: the reconstructed surround, filled inwards
    if full_near.any():
        full = np.zeros(near.shape, bool)
        full[near] = full_near
        # From the ring just outside (the brightest recorded pixels around it), not the wider
        # surround: a region filled from darker surroundings showed as a grey core in a bright rim.
        ring = cv2.dilate(full.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~full
        if ring.any():
            ring_values = np.log(np.maximum(linear[ring], _EPS))
            ring_near = _index_in(near)[ring]  # the ring's pixels near clipping take their estimate
            inside = ring_near >= 0
            partial = np.where(clip_near > 0, estimate, lin_near)[ring_near[inside]]
            ring_values[inside] = np.log(np.maximum(partial, _EPS))
            filled = fill_from_anchors(ring_values, ring, (16.0, 4.0, 1.5), at=full)
            estimate[full_near] = _limit_raise(np.exp(filled), lin_near[full_near], max_gain)
    return (lin_near + clip_near * (estimate - lin_near)).astype(np.float32, copy=False)


def _index_in(mask: np.ndarray) -> np.ndarray:
    """(H, W) int32: each pixel's index among the pixels of ``mask`` in raster order, -1 elsewhere."""
    index = np.full(mask.shape, -1, np.int32)
    index[mask] = np.arange(int(mask.sum()), dtype=np.int32)
    return index


def _bright(linear: np.ndarray, top: np.ndarray) -> np.ndarray:
    """(H, W) bool: bright (brightest display-referred channel ``top`` from BAND_LOW) and not black in
    any channel: the pixels whose colour the clipped ones borrow and on which a prediction is scaled
    (those not near clipping)."""
    return (top >= BAND_LOW) & (channel_min(linear) > 1e-4)


def _luminance(rgb: np.ndarray, slope: float = 1.0) -> np.ndarray:
    """(...,) Rec. 709 luminance of (..., 3) values (negatives as 0), at least _EPS, to the power ``slope``."""
    y = np.maximum(np.maximum(rgb, 0.0) @ _LUMA, _EPS)
    return y if slope == 1.0 else np.exp(slope * np.log(y))


def _log_chromaticity(log_linear: np.ndarray) -> np.ndarray:
    """(..., 3) log radiance minus its channel mean: colour without brightness."""
    return log_linear - channel_mean(log_linear)[..., None]


def _limit_raise(estimate: np.ndarray, linear: np.ndarray, max_gain: float) -> np.ndarray:
    """``estimate`` raised to at least ``linear``, its largest per-channel raise compressed to
    ``max_gain``: the log raises of a pixel are scaled together (a power), so their order and
    the hue survive (capping each channel alone turned the orange glow of a candle's wax
    yellow-green: red hit the cap, green did not)."""
    floor = np.maximum(linear, _EPS)
    raise_log = np.log(np.maximum(estimate, floor) / floor)
    top = raise_log.max(-1, keepdims=True)
    scale = np.minimum(1.0, np.log(max_gain) / np.maximum(top, _EPS))
    return (linear * np.exp(raise_log * scale)).astype(np.float32)


def contrast_slope(y_lin: np.ndarray, y_pred: np.ndarray, anchors: np.ndarray,
                   limits: tuple[float, float] = SLOPE_LIMITS) -> float:
    """Slope of log(photo) against log(prediction) over the bright unclipped ``anchors``.

    A network renders the photo's bright tones through its own idea of the camera curve
    (the stack model through the response it solves from its generated exposures): where
    the sRGB-linearised photo rises by one stop, its prediction may rise by three. The
    prediction's brightness in a clipped light, relative to the light's surround, is
    converted to the photo's scale with this slope, so the expansion does not inherit
    the network's curve. 1 (no change) with fewer than 64 anchors or too narrow a range.
    """
    if anchors.sum() < 64:
        return 1.0
    x = np.log(np.maximum(y_pred[anchors], _EPS)).astype(np.float64)
    y = np.log(np.maximum(y_lin[anchors], _EPS)).astype(np.float64)
    x0, y0 = x - x.mean(), y - y.mean()
    spread = float((x0 * x0).mean())
    if spread < 0.05**2:
        return 1.0
    return float(np.clip((x0 * y0).mean() / spread, *limits))


def fill_holes(values: np.ndarray, domain: np.ndarray, max_iterations: int = 2000) -> np.ndarray:
    """Grey-level hole filling (morphological reconstruction by erosion) of ``values`` inside ``domain``.

    Every pixel of ``domain`` is raised to the lowest "pass" over which it connects to the
    outside (where ``values`` is kept): a ring of high values around a lower centre becomes
    a plateau, a dome stays a dome. Used on the log gain of clipped regions, where a ring
    would show as an outline around a light.
    """
    values = values.astype(np.float32)
    if not domain.any():
        return values
    # Only the domain changes, and the pixels around it stay fixed (an erosion never rises above
    # a pixel's own value): the domain's bounding box with a 1-pixel frame gives the same result
    # (12 MP photo with 0.2% clipped: 1.1 s -> a few ms).
    box = _bounding_box(domain, 1)
    out = values.copy()
    out[box] = _reconstruct_by_erosion(values[box], domain[box], max_iterations)
    return out


FILL_EXACT_PIXELS = 2_000_000  # boxes up to this size are filled exactly; larger ones on a copy of ~1 MP
FILL_COARSE_PIXELS = 1_000_000


def _reconstruct_by_erosion(values: np.ndarray, domain: np.ndarray, max_iterations: int) -> np.ndarray:
    """:func:`fill_holes` in a box (the image's edge is no way out).

    Each geodesic erosion moves a pass's level one pixel further, so a region needs about as
    many iterations as it is wide: a clipped sky 800 px across on a 12 MP photo took 816
    iterations, 20 s. Boxes above FILL_EXACT_PIXELS are filled on a copy area-averaged to
    ~FILL_COARSE_PIXELS (its domain: cells at least half inside), whose filling, upsampled
    bilinearly, raises the full-resolution values where it is higher: holes become the
    pass's level as seen at that scale (within the values' variation over a few pixels; the
    gain is then blurred over 3 px), and a pixel is never lowered.
    """
    h, w = values.shape
    if h * w > FILL_EXACT_PIXELS:
        factor = (h * w / FILL_COARSE_PIXELS) ** 0.5
        size = (max(8, round(w / factor)), max(8, round(h / factor)))
        small_values = cv2.resize(values, size, interpolation=cv2.INTER_AREA)
        small_domain = cv2.resize(domain.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
        filled = cv2.resize(_reconstruct_by_erosion(small_values, small_domain, max_iterations), (w, h),
                            interpolation=cv2.INTER_LINEAR)
        return np.where(domain, np.maximum(values, filled), values)
    marker = np.where(domain, np.float32(values.max()), values)
    kernel = np.ones((3, 3), np.uint8)
    for i in range(max_iterations):
        nxt = np.maximum(cv2.erode(marker, kernel, borderType=cv2.BORDER_REPLICATE), values)
        if i % 8 == 7 and np.array_equal(nxt, marker):
            break
        marker = nxt
    return marker


def smooth_gain(log_gain: np.ndarray, domain: np.ndarray, sigma: float = 3.0,
                stops_per_pixel: float = GAIN_SLOPE) -> np.ndarray:
    """The log gain of clipped regions made plausible for light, so it grows smoothly from the
    regions' borders: at most ``stops_per_pixel`` stops per pixel of distance from the border
    (a thin bright ridge along a clip border, which shows as an outline, cannot rise), interior
    minima filled (:func:`fill_holes`: no dark centres or rings), then a Gaussian (``sigma``
    px) so it starts from 0 without a kink."""
    if not domain.any():
        return log_gain
    distance = cv2.distanceTransform(domain.astype(np.uint8), cv2.DIST_L2, 5)
    capped = np.minimum(log_gain, np.log(2.0) * stops_per_pixel * distance).astype(np.float32)
    filled = fill_holes(capped, domain)
    return np.maximum(cv2.GaussianBlur(filled, (0, 0), sigma), 0.0) * domain


def highlight_extrapolation(linear: np.ndarray, alpha: np.ndarray, max_stops: float = 3.0,
                            reach: float = 12.0) -> np.ndarray:
    """The classical baseline's prediction: linear radiance grown smoothly inside clipped regions.

    log2 gain = max_stops * (1 - exp(-d / reach)), d the distance (px) to the nearest pixel
    below the blend (alpha < 1), smoothed; 0 at the border, so it joins the photo without a step.
    Constants chosen a priori (3 stops, 12 px), not fitted to any benchmark.
    """
    stops = extrapolation_stops(alpha, max_stops, reach)
    if stops is None:
        return linear.copy()
    return (np.maximum(linear, _EPS) * np.exp2(stops)[..., None]).astype(np.float32)


def extrapolation_stops(alpha: np.ndarray, max_stops: float = 3.0, reach: float = 12.0) -> np.ndarray | None:
    """(H, W) log2 gain of :func:`highlight_extrapolation` (None where no pixel has ``alpha`` 1)."""
    inside = (alpha >= 1.0).astype(np.uint8)
    if not inside.any():
        return None
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    stops = max_stops * (1.0 - np.exp(-distance / reach))
    return cv2.GaussianBlur(stops.astype(np.float32), (0, 0), 2.0) * inside


@dataclass(frozen=True)
class ImageStatistics:
    """What the expansion of a clipped region needs from the whole photo, so that it can run in a
    crop around the region and give what it gives on the whole photo.

    Attributes:
        colour: (3,) median log chromaticity of the bright unclipped pixels (the colour a clipped
            pixel far from any of them takes), None when there are fewer than 16: no channel
            reconstruction.
        slope: :func:`contrast_slope` of the prediction against the photo.
        log_ratio: (1,) median log(photo / prediction) luminance on the bright unclipped pixels
            (after ``slope``), None when there are fewer than 16: the prediction is not scaled.
    """

    colour: np.ndarray | None
    slope: float
    log_ratio: np.ndarray | None


def image_statistics(lin: np.ndarray, top: np.ndarray, alpha: np.ndarray,
                     prediction: np.ndarray | None) -> ImageStatistics:
    """:class:`ImageStatistics` of a photo: ``lin`` linearised (H, W, 3), ``top`` the brightest
    display-referred channel (H, W), ``alpha`` the highlight blend weight (:func:`highlight_alpha`),
    ``prediction`` (H, W, 3) or None. Reads only the anchor pixels."""
    bright = _bright(lin, top)
    colour_anchors = bright & (top <= CLIP_TAU)  # as the channel reconstruction's: not near clipping
    colour = None
    if colour_anchors.sum() >= 16:
        colour = np.median(_log_chromaticity(np.log(np.maximum(lin[colour_anchors], _EPS))), axis=0)
    slope, log_ratio = 1.0, None
    anchors = bright & (alpha <= 0)
    if prediction is not None and anchors.any():
        # On these pixels the channel reconstruction changes nothing (they are not near clipping).
        y_lin, y_pred = _luminance(lin[anchors]), _luminance(prediction[anchors])
        slope = contrast_slope(y_lin, y_pred, np.ones(y_lin.shape, bool))
        if y_lin.size >= 16:  # as border_scale computes it
            log_ratio = np.median(np.log(y_lin) - np.log(np.maximum(np.exp(slope * np.log(y_pred)), _EPS)),
                                  keepdims=True)
    return ImageStatistics(colour, slope, log_ratio)


def region_boxes(mask: np.ndarray, margin: int = HIGHLIGHT_MARGIN, cell: int = CROP_CELL,
                 share: float = CROP_SHARE) -> list[tuple[slice, slice]]:
    """Disjoint boxes (row and column slices) that hold every pixel of ``mask`` (H, W) with at
    least ``margin`` px around it, on a grid of ``cell`` px; one box, the whole image, when
    they would cover more than ``share`` of it. No box when the mask is empty."""
    h, w = mask.shape
    if not mask.any():
        return []
    rows, cols = -(-h // cell), -(-w // cell)
    padded = np.zeros((rows * cell, cols * cell), bool)
    padded[:h, :w] = mask
    cells = padded.reshape(rows, cell, cols, cell).any(axis=(1, 3)).astype(np.uint8)
    reach = 2 * (-(-margin // cell)) + 1
    grid = cv2.dilate(cells, np.ones((reach, reach), np.uint8))
    while True:  # each component grown to its bounding box until the boxes stop touching
        count, _, stats, _ = cv2.connectedComponentsWithStats(grid, connectivity=8)
        boxes = [stats[i, :4] for i in range(1, count)]
        filled = np.zeros_like(grid)
        for x, y, bw, bh in boxes:
            filled[y:y + bh, x:x + bw] = 1
        if np.array_equal(filled, grid):
            break
        grid = filled
    if sum(int(bw) * int(bh) for _, _, bw, bh in boxes) > share * rows * cols:
        return [(slice(0, h), slice(0, w))]
    return [(slice(y * cell, min(h, (y + bh) * cell)), slice(x * cell, min(w, (x + bw) * cell)))
            for x, y, bw, bh in boxes]


def _expand_region(out: np.ndarray, lin: np.ndarray, display: np.ndarray, top: np.ndarray,
                   prediction: np.ndarray | None, alpha: np.ndarray, full: np.ndarray, stats: ImageStatistics,
                   reconstruct: bool) -> None:
    """The highlight steps of :func:`compose` (2 and 3 of the module docstring) on one crop: ``out``
    (a view into the result) is changed in place where a channel is near clipping. Per-pixel work
    runs on those pixels only; full-size arrays are single planes (masks, blurs, the gain)."""
    near = top > CLIP_TAU
    base_near = None
    if reconstruct and stats.colour is not None and near.any():
        base_near = _reconstructed_near(lin, display, near, colour_baseline=stats.colour)
        out[near] += base_near - lin[near]
    at = full > 0
    if not at.any():
        return
    base = lin[at]
    if base_near is not None:  # the reconstructed values where the blend meets them
        index = _index_in(near)[at]
        inside = index >= 0
        base[inside] = base_near[index[inside]]
    if prediction is None:
        stops = extrapolation_stops(full)
        expanded = base if stops is None else np.maximum(base, _EPS) * np.exp2(stops[at])[:, None]
    else:
        # Brightness from the prediction, colour from the photo: a luminance gain, so a
        # network's colour errors (casts, tinted outlines) cannot reach the output.
        y_lin = _luminance(base)
        y_pred = _luminance(prediction[at], stats.slope)
        if stats.log_ratio is not None:
            anchors = _bright(lin, top) & (alpha <= 0)  # not near clipping: base == lin there
            anchor_lin = _luminance(lin[anchors])[:, None]
            anchor_pred = _luminance(prediction[anchors], stats.slope)[:, None]
            y_pred = y_pred * border_scale(anchor_lin, anchor_pred, anchors, baseline=stats.log_ratio, at=at)[:, 0]
        log_gain = np.zeros(at.shape, np.float32)
        log_gain[at] = np.log(np.maximum(y_pred / y_lin, 1.0))
        gain = np.exp(smooth_gain(log_gain, at)[at])[:, None]
        expanded = base * gain
        # The brighter the prediction makes a clipped region, the whiter: its colour comes
        # from its surround (reconstruct_clipped), right for a bright patch of the same
        # surface, wrong for a light source's core (a flame is whiter than its glow).
        surround_share = 1.0 / (1.0 + np.log2(gain))
        expanded = surround_share * expanded + (1.0 - surround_share) * (expanded @ _LUMA)[:, None]
    expanded = np.maximum(expanded, base)  # a clipped value is a lower bound of the truth
    current = out[at]
    out[at] = current + full[at][:, None] * (expanded - current)


def compose(image: np.ndarray, prediction: np.ndarray | None, *, response: np.ndarray | None = None,
            linear: bool = False, denoise_shadows: bool = True, reconstruct: bool = True) -> Expansion:
    """The expanded HDR of one photo (see the module docstring).

    Args:
        image: (H, W, 3) RGB in [0, 1] as read (display-referred, or linear when ``linear``).
        prediction: (H, W, 3) linear HDR from a predictor (1.0 = clipping level, any scale:
            it is re-scaled to the photo), or None for the classical highlight extrapolation.
        response: (256, 3) inverse camera response, None for sRGB (ignored when ``linear``).
        linear: ``image`` holds linear sensor values (camera RAW).
        denoise_shadows: guided-filter the crushed shadows.
        reconstruct: estimate partly clipped channels from the recorded ones
            (:func:`reconstruct_clipped`) before the expansion.

    Returns:
        :class:`Expansion`; where the photo is neither near clipping nor crushed, ``hdr``
        equals the linearised photo exactly.

    The highlight steps compute per pixel only near clipping (full-size arrays are single
    planes: masks, blurs, the gain), in crops around the clipped regions when those cover at
    most CROP_SHARE of the photo (:func:`region_boxes`, with the whole photo's statistics,
    :func:`image_statistics`); the shadow denoising runs in the crushed pixels' bounding box.
    Up to 2 MP the result is the same as one whole-image pass (to float rounding); above, a
    clipped region's hole filling runs on a ~1 MP copy (:func:`fill_holes`).
    """
    image = np.asarray(image, np.float32)
    prediction = None if prediction is None else np.asarray(prediction, np.float32)
    lin = linearise(image, response, linear)
    # Blend weights are decided on display-referred values (a linear image is encoded for it).
    display = np.clip(image, 0, 1) ** (1 / 2.2) if linear else np.clip(image, 0, 1)
    top = channel_max(display)
    alpha = highlight_alpha(top)
    shadow = shadow_weight(top) if denoise_shadows else np.zeros(alpha.shape, np.float32)
    shadow[alpha > 0] = 0.0
    out = lin.copy()
    if shadow.any():
        rows, cols = _bounding_box(shadow > 0, 2 * GUIDED_RADIUS + 1)
        grey = channel_mean(display[rows, cols])
        smooth = np.maximum(guided_filter(grey, lin[rows, cols]), 0.0)
        out[rows, cols] += shadow[rows, cols, None] * (smooth - lin[rows, cols])
    # The gain goes where the luminance is lost: every channel near clipping (the smallest
    # one above tau). Where only some channels clip (a saturated sunset glow), the photo's
    # unclipped channels carry most of the luminance, and a gain there made blobs and arcs.
    full = highlight_alpha(channel_min(display))
    boxes = region_boxes(top > CLIP_TAU, share=CROP_SHARE)
    if boxes:
        stats = image_statistics(lin, top, alpha, prediction)
        for rows, cols in boxes:
            _expand_region(out[rows, cols], lin[rows, cols], display[rows, cols], top[rows, cols],
                           None if prediction is None else prediction[rows, cols],
                           alpha[rows, cols], full[rows, cols], stats, reconstruct)
    if linear:
        clipped = float((channel_max(image) >= 0.999).mean())
    else:
        clipped = float((top >= 254.5 / 255).mean())
    kind = "linear" if linear else ("crf" if response is not None else "srgb")
    return Expansion(out, lin, alpha, shadow, clipped, kind)


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """Row and column slices of ``mask``'s bounding box widened by ``margin`` px (within the image)."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return (slice(max(0, rows[0] - margin), min(mask.shape[0], rows[-1] + 1 + margin)),
            slice(max(0, cols[0] - margin), min(mask.shape[1], cols[-1] + 1 + margin)))
