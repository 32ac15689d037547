"""Tiled inference: overlapping tiles blended with smooth weights, bounded memory (numpy, no torch).

A model is run on tiles of ``tile`` x ``tile`` pixels that overlap by ``overlap``
pixels; each tile's output is weighted by a separable ramp that rises from (almost) 0 at
the tile border to 1 over the overlap, and the weighted sum is normalised. Seams are
invisible because neighbouring tiles fade into each other; memory depends on the tile,
not the image. Images smaller than a tile run whole.

Tiles are numpy arrays (or lazy inputs that give numpy crops: :class:`BilinearUpsampled`,
:class:`WarpedFrame`); the model function may return numpy arrays or CPU torch tensors, so
both runtimes (torch, ONNX Runtime) share this code and ONNX Runtime needs no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _ramp(n: int, overlap: int, margin: int, lead: bool, trail: bool) -> np.ndarray:
    """One side's blending weights (see :func:`tile_weights`): a linear ramp over ``overlap`` pixels
    at a leading / trailing border that faces another tile."""
    w = np.ones(n, np.float32)
    if overlap > 0:
        i = np.arange(min(overlap, n // 2), dtype=np.float32)
        with np.errstate(divide="ignore"):  # 2 * margin == overlap: a step from ~0 to 1 at the middle
            r = np.clip((i + 0.5 - margin) / np.float32(overlap - 2 * margin), 1e-6, 1.0).astype(np.float32)
        if lead:
            w[: r.size] = r
        if trail:
            w[n - r.size:] = np.minimum(w[n - r.size:], r[::-1])
    return w


def tile_weights(height: int, width: int, overlap: int, margin: int = 0,
                 inner: tuple[bool, bool, bool, bool] = (True, True, True, True)) -> np.ndarray:
    """float32 (H, W) blending weights: linear ramps over ``overlap`` pixels at the tile's borders.

    ``inner`` (top, bottom, left, right): which borders face another tile; the image's own
    borders keep full weight. ``margin``: the outermost pixels of each ramp get (almost) no
    weight, so that a local operator whose border pixels are wrong (padding) contributes only
    where it is exact: with 2 * margin <= overlap, tiles equal one whole-image pass.
    """
    top, bottom, left, right = inner
    return _ramp(height, overlap, margin, top, bottom)[:, None] * _ramp(width, overlap, margin, left, right)[None, :]


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def _as_array(piece: Any) -> np.ndarray:
    """A model's (1, C, h, w) output as float32 numpy (numpy, or a torch tensor: CPU, no grad)."""
    if not isinstance(piece, np.ndarray):
        piece = piece.detach().float().cpu().numpy()
    return piece.astype(np.float32, copy=False)


def run_tiled(
    fn: Callable, x: Any, tile: int = 512, overlap: int = 32,
    out_channels: int = 3, progress: Callable[[int, int], None] | None = None, margin: int = 0,
) -> np.ndarray:
    """Apply ``fn`` (…, H, W) -> (1, out_channels, h, w) over tiles of ``x`` (batch 1).

    ``x`` may have extra leading dims (e.g. (1, 3, 6, H, W) brackets); tiles are cut on the
    last two. ``x`` may also be a tuple of such arrays (or lazy inputs) of one height and
    width: ``fn`` then gets the tuple of their tiles. Returns float32 (H, W, out_channels).
    """
    h, w = (x[0] if isinstance(x, tuple) else x).shape[-2:]
    if h <= tile and w <= tile:  # whole image (crops, not x itself: inputs may be lazy, see BilinearUpsampled)
        whole = (..., slice(0, h), slice(0, w))
        piece = _as_array(fn(tuple(t[whole] for t in x) if isinstance(x, tuple) else x))
        return np.ascontiguousarray(piece[0].transpose(1, 2, 0))
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    out = np.zeros((h, w, out_channels), np.float32)
    # The tiles' weights are separable (a row ramp times a column ramp) and the tiles form a grid,
    # so their sum is too: the normalisation is two 1-D sums, not a full-size array (pages
    # touched for the first time are costly: 0.5 s for 145 MB here).
    rows_sum, cols_sum = np.zeros(h, np.float32), np.zeros(w, np.float32)
    total, done = len(ys) * len(xs), 0
    for y in ys:
        th = min(tile, h - y)
        rows_sum[y : y + th] += _ramp(th, overlap, margin, y > 0, y + th < h)
    for x0 in xs:
        tw = min(tile, w - x0)
        cols_sum[x0 : x0 + tw] += _ramp(tw, overlap, margin, x0 > 0, x0 + tw < w)
    for y in ys:
        for x0 in xs:
            th, tw = min(tile, h - y), min(tile, w - x0)
            crop = (..., slice(y, y + th), slice(x0, x0 + tw))
            piece = _as_array(fn(tuple(t[crop] for t in x) if isinstance(x, tuple) else x[crop]))
            weighted = piece[0] * tile_weights(th, tw, overlap, margin, (y > 0, y + th < h, x0 > 0, x0 + tw < w))
            out[y : y + th, x0 : x0 + tw] += weighted.transpose(1, 2, 0)
            done += 1
            if progress is not None:
                progress(done, total)
    np.maximum(rows_sum, np.float32(1e-8), out=rows_sum)
    np.maximum(cols_sum, np.float32(1e-8), out=cols_sum)
    out /= rows_sum[:, None, None]  # in place: no second full-size output
    out /= cols_sum[None, :, None]
    return out


class BilinearUpsampled:
    """A (1, C, h, w) array upsampled bilinearly to ``size`` (H, W), computed crop by crop.

    ``up[..., y0:y1, x0:x1]`` equals (to float32 rounding) the same crop of torch's
    ``F.interpolate(small, size, mode="bilinear", align_corners=False)``, so :func:`run_tiled`
    can take it as one of its inputs without the full-size array ever existing (at 24 MP,
    288 MB per 3 channels).
    """

    def __init__(self, small: np.ndarray, size: tuple[int, int]) -> None:
        self.small = np.asarray(small, np.float32)
        self.shape = (*self.small.shape[:-2], *size)
        # Source rows and columns with their weights, once for the whole output.
        self._rows = self._source(size[0], self.small.shape[-2])
        self._cols = self._source(size[1], self.small.shape[-1])

    @staticmethod
    def _source(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # PyTorch's rule (align_corners=False): src = max((dst + 0.5) * in / out - 0.5, 0).
        dst = np.arange(out_size, dtype=np.float64)
        src = np.maximum((dst + 0.5) * (in_size / out_size) - 0.5, 0.0)
        low = np.minimum(np.floor(src).astype(np.intp), in_size - 1)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, (src - low).astype(np.float32)

    def __getitem__(self, crop: tuple) -> np.ndarray:
        rows, cols = crop[-2], crop[-1]
        y0, y1, fy = (t[rows] for t in self._rows)
        x0, x1, fx = (t[cols] for t in self._cols)
        first, last = int(x0[0]), int(x1[-1]) + 1  # only the source columns this crop reads
        source = self.small[..., first:last]
        band = np.take(source, y0, axis=-2) * (1 - fy)[:, None]
        band += np.take(source, y1, axis=-2) * fy[:, None]
        out = np.take(band, x0 - first, axis=-1) * (1 - fx)
        out += np.take(band, x1 - first, axis=-1) * fx
        return out


class WarpedFrame:
    """A frame (H, W, 3) aligned by a warp, as a lazy (1, 1, 3, H, W) array: ``[..., rows, cols]``
    warps just that window (:func:`hdrcli.align.warp_frame`, equal to the same crop of the whole
    aligned frame), so the bracket is held once, unaligned (at 24 MP: 576 MB less for 3 frames)."""

    def __init__(self, pixels: np.ndarray, warp: np.ndarray | None) -> None:
        self.pixels = np.asarray(pixels, np.float32)
        self.warp = warp
        self.shape = (1, 1, 3, *self.pixels.shape[:2])

    def __getitem__(self, crop: tuple) -> np.ndarray:
        from hdrcli.align import warp_frame

        h, w = self.pixels.shape[:2]
        rows, cols = crop[-2].indices(h)[:2], crop[-1].indices(w)[:2]
        window = warp_frame(self.pixels, self.warp, rows, cols)
        return np.ascontiguousarray(window.transpose(2, 0, 1))[None, None]
