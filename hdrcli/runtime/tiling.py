"""Tiled inference: overlapping tiles blended with smooth weights, bounded memory.

A model is run on tiles of ``tile`` x ``tile`` pixels that overlap by ``overlap``
pixels; each tile's output is weighted by a separable ramp that rises from (almost) 0 at
the tile border to 1 over the overlap, and the weighted sum is normalised. Seams are
invisible because neighbouring tiles fade into each other; memory depends on the tile,
not the image. Images smaller than a tile run whole.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def tile_weights(height: int, width: int, overlap: int, margin: int = 0,
                 inner: tuple[bool, bool, bool, bool] = (True, True, True, True)) -> torch.Tensor:
    """(H, W) blending weights: linear ramps over ``overlap`` pixels at the tile's borders.

    ``inner`` (top, bottom, left, right): which borders face another tile; the image's own
    borders keep full weight. ``margin``: the outermost pixels of each ramp get (almost) no
    weight, so that a local operator whose border pixels are wrong (padding) contributes only
    where it is exact: with 2 * margin <= overlap, tiles equal one whole-image pass.
    """
    def ramp(n: int, lead: bool, trail: bool) -> torch.Tensor:
        w = torch.ones(n)
        if overlap > 0:
            i = torch.arange(min(overlap, n // 2))
            r = ((i + 0.5 - margin) / (overlap - 2 * margin)).clamp(1e-6, 1.0)
            if lead:
                w[: r.numel()] = r
            if trail:
                w[n - r.numel():] = torch.minimum(w[n - r.numel():], r.flip(0))
        return w

    top, bottom, left, right = inner
    return ramp(height, top, bottom)[:, None] * ramp(width, left, right)[None, :]


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted(set(starts))


def run_tiled(
    fn: Callable, x: torch.Tensor | tuple[torch.Tensor, ...], tile: int = 512, overlap: int = 32,
    out_channels: int = 3, progress: Callable[[int, int], None] | None = None, margin: int = 0,
) -> torch.Tensor:
    """Apply ``fn`` (…, H, W) -> (1, out_channels, H, W) over tiles of ``x`` (batch 1).

    ``x`` may have extra leading dims (e.g. (1, 3, 6, H, W) brackets); tiles are cut on the
    last two. ``x`` may also be a tuple of such tensors of one height and width: ``fn`` then
    gets the tuple of their tiles. Returns a float32 CPU tensor (1, out_channels, H, W).
    """
    h, w = (x[0] if isinstance(x, tuple) else x).shape[-2:]
    if h <= tile and w <= tile:  # whole image (crops, not x itself: inputs may be lazy, see BilinearUpsampled)
        whole = (..., slice(0, h), slice(0, w))
        return fn(tuple(t[whole] for t in x) if isinstance(x, tuple) else x).float().cpu()
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    # Channels last in memory: as_numpy_image then returns it without a full-size copy.
    out = torch.zeros(h, w, out_channels).permute(2, 0, 1)[None]
    norm = torch.zeros(1, 1, h, w)
    total, done = len(ys) * len(xs), 0
    for y in ys:
        for x0 in xs:
            th, tw = min(tile, h - y), min(tile, w - x0)
            crop = (..., slice(y, y + th), slice(x0, x0 + tw))
            piece = fn(tuple(t[crop] for t in x) if isinstance(x, tuple) else x[crop]).float().cpu()
            weight = tile_weights(th, tw, overlap, margin, (y > 0, y + th < h, x0 > 0, x0 + tw < w))
            out[..., y : y + th, x0 : x0 + tw] += piece * weight
            norm[..., y : y + th, x0 : x0 + tw] += weight
            done += 1
            if progress is not None:
                progress(done, total)
    out /= norm.clamp_min_(1e-8)  # in place: no second full-size output
    return out


class BilinearUpsampled:
    """A (1, C, H, W) tensor upsampled bilinearly to ``size`` (H, W), computed crop by crop.

    ``up[..., y0:y1, x0:x1]`` equals (to float32 rounding) the same crop of ``F.interpolate(small, size,
    mode="bilinear", align_corners=False)``, so :func:`run_tiled` can take it as one of its
    inputs without the full-size tensor ever existing (at 24 MP, 288 MB per 3 channels).
    """

    def __init__(self, small: torch.Tensor, size: tuple[int, int]) -> None:
        self.small = small
        self.shape = (*small.shape[:-2], *size)
        # Source rows and columns with their weights, once for the whole output.
        self._rows = self._source(size[0], small.shape[-2])
        self._cols = self._source(size[1], small.shape[-1])

    @staticmethod
    def _source(out_size: int, in_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # PyTorch's rule (align_corners=False): src = max((dst + 0.5) * in / out - 0.5, 0).
        dst = torch.arange(out_size, dtype=torch.float64)
        src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp(min=0.0)
        low = src.floor().long().clamp(max=in_size - 1)
        high = (low + 1).clamp(max=in_size - 1)
        return low, high, (src - low).float()

    def __getitem__(self, crop: tuple) -> torch.Tensor:
        rows, cols = crop[-2], crop[-1]
        y0, y1, fy = (t[rows] for t in self._rows)
        x0, x1, fx = (t[cols] for t in self._cols)
        first, last = int(x0[0]), int(x1[-1]) + 1  # only the source columns this crop reads
        source = self.small[..., first:last]
        band = source[..., y0, :] * (1 - fy)[:, None] + source[..., y1, :] * fy[:, None]
        return band[..., x0 - first] * (1 - fx) + band[..., x1 - first] * fx


def as_numpy_image(t: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) float32 array."""
    return t[0].permute(1, 2, 0).contiguous().numpy().astype(np.float32, copy=False)
