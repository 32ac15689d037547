"""The runtimes' common part, without torch: bracket fusion and single-image expansion over tiles.

:class:`TiledRunner` holds what does not depend on the runtime: the re-encoding of the frames
to the networks' convention (:class:`ReencodingTables`), the reduced bracket of large photos,
the tiles (:mod:`hdrcli.runtime.tiling`). A runtime (:mod:`~hdrcli.runtime.torch_runtime`,
:mod:`~hdrcli.runtime.onnx_runtime`) implements the hooks that run a network on numpy arrays:
``_forward`` (a tile), ``_reduced`` (the synthesis and ghost gate of a whole reduced bracket)
and ``_merge`` (the merge head on a full-resolution tile). ONNX Runtime so fuses a bracket
without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from hdrcli.align import scale_warp, warp_frame
from hdrcli.backends import MULTI_EXPOSURE, BackendSpec, get_spec
from hdrcli.errors import HdrError
from hdrcli.merge.response import CANONICAL_GAMMA, LUT_LEVELS, canonical_luts, self_calibrate
from hdrcli.runtime.tiling import BilinearUpsampled, WarpedFrame, run_tiled

# Tile sides per backend. FFT blocks (lffnet, tunet) and global pooling (dfgnet's
# exposure encoder) see the whole tile, so their output depends on the tile size: they
# run on the size they are validated on (256; trained on 128). Purely convolutional
# twostage takes larger tiles; the stack model tiles its stack and merges once.
DEFAULT_TILE = {"dfgnet": 256, "lffnet": 256, "tunet": 256, "twostage": 512, "stack": 256}
DEFAULT_OVERLAP = 64  # wide blends: FFT models differ between tiles, narrow ramps would show seams
# Single-image backends run on the whole photo up to this size (torch, CPU): tiles made a
# visible grid with the stack model (its instance norms see one tile). Peak RSS of
# `hdr expand` on 1024x768 (0.8 MP): see README; larger photos use tiles with 1/4 overlap.
WHOLE_IMAGE_PIXELS = 2_000_000
LARGE_PHOTO_TILE = 1024
# Larger photos: the network sees the photo downsized to this many pixels, whole, and its
# prediction is upsampled (it only enters where the photo clipped, as a smooth gain). The
# real-photo benchmark runs at 1024-pixel sides, and 12 MP in 1024-pixel tiles took 85 s.
LARGE_PHOTO_PREDICTION = 1_000_000
# Bracket networks with a merge head: on photos above SYNTHESIS_ABOVE pixels the network's
# costly parts run once on the bracket downscaled to SYNTHESIS_PIXELS: the synthesis (the
# network's own estimate, used only where no frame measured the scene) and the head's learned
# ghost gate (three convolutions; it only decides where the reference is clipped or crushed).
# Both are smooth and are upsampled bilinearly tile by tile. The rest of the head (the frames'
# agreement with the reference, 5x5, and their weights, per pixel) and the merge run at full
# resolution, so the frames keep every detail and ghost edges stay sharp. The network's cost
# then no longer grows with the photo, and no tile can show: tiles whose outer HEAD_MARGIN
# pixels are not blended in equal one whole-image pass (torch and ONNX Runtime alike).
SYNTHESIS_ABOVE = 1_000_000
SYNTHESIS_PIXELS = 200_000
# The reduced bracket's sides are multiples of this: the FFT blocks' transforms of prime
# sides (577 x 433, a 1.5 MP photo's 0.25 MP copy) took 1.7x as long as of 576 x 432.
SYNTHESIS_MULTIPLE = 16
# Single-image networks also export for a whole photo of any size (`hdr export --whole`), which
# ONNX Runtime runs as torch does (whole up to WHOLE_IMAGE_PIXELS, larger photos downsized):
# twostage, and the stack model's network (its exposure stack; the synthesis runs in torch).
WHOLE_EXPORTS = ("twostage", "stack")
# ONNX Runtime holds about twice torch's memory for a whole photo (2 MP: 3.06 GB against 1.84 GB
# for `hdr expand`), so under `--runtime auto` photos from this size up to WHOLE_IMAGE_PIXELS (run
# whole) go to torch; smaller ones and larger ones (downsized to LARGE_PHOTO_PREDICTION) stay.
ONNX_WHOLE_PIXELS = 1_100_000
HEAD_TILE, HEAD_OVERLAP, HEAD_MARGIN = 256, 8, 4  # 256: the 5x5 means stay in cache (512: +25%, 1024: 4x)




def reduced_size(height: int, width: int, pixels: int, multiple: int = SYNTHESIS_MULTIPLE) -> tuple[int, int]:
    """(width, height) of about ``pixels`` pixels with the photo's aspect, each side a multiple of ``multiple``."""
    factor = (pixels / (height * width)) ** 0.5
    return tuple(max(multiple, round(side * factor / multiple) * multiple) for side in (width, height))


def nvidia_device_present() -> bool:
    """Whether this machine has an NVIDIA device node (/dev/nvidia0, ...): without one neither torch
    nor ONNX Runtime is asked for CUDA (importing torch to ask takes 1.0-1.3 s; ONNX Runtime's GPU
    build prints errors when it cannot load its CUDA libraries)."""
    return any(Path("/dev").glob("nvidia[0-9]*"))


def available_sizes(name: str) -> list[str]:
    """Sizes of a learned backend with shipped weights, lite first (see the registry)."""
    return get_spec(name).sizes_with_weights()


class ReencodingTables:
    """A bracket's re-encoding tables: per channel and 16-bit input level, the value re-encoded to
    gamma 2.2 and, per frame, its linear value / t (t relative to the shortest frame).

    Looking both up replaces per-channel gathers, the per-pixel ``ldr ** 2.2`` and the division
    by t of :func:`hdrcli.models.exposure_input`: the same values, at a fraction of the cost.
    """

    def __init__(self, luts: np.ndarray, times: np.ndarray | list[float]) -> None:
        self.encoded = np.ascontiguousarray(luts, np.float32).reshape(-1)
        linear = np.clip(self.encoded, 0.0, 1.0) ** np.float32(CANONICAL_GAMMA)
        t = np.asarray(times, np.float64).reshape(-1)
        self.linear_over_t = [(linear / np.float32(ti / t.min())).astype(np.float32) for ti in t]
        self.offsets = (np.arange(3, dtype=np.intp) * LUT_LEVELS)[:, None, None]

    def network_input(self, frames: np.ndarray) -> np.ndarray:
        """(B, N, 3, H, W) frames in [0, 1] as recorded -> the networks' input (B, N, 6, H, W): the
        frames re-encoded to gamma 2.2 and their linear values / t, as :func:`hdrcli.models.exposure_input`."""
        level = frames * np.float32(LUT_LEVELS - 1)
        level += np.float32(0.5)  # round half up: the cast below truncates
        np.clip(level, 0.0, LUT_LEVELS - 1, out=level)
        index = level.astype(np.intp)
        index += self.offsets
        out = np.empty((*frames.shape[:2], 6, *frames.shape[-2:]), np.float32)
        for i, linear in enumerate(self.linear_over_t):  # mode "clip": no bounds-check buffering
            np.take(self.encoded, index[:, i], out=out[:, i, :3], mode="clip")
            np.take(linear, index[:, i], out=out[:, i, 3:], mode="clip")
        return out


class TiledRunner:
    """Whole-image fusion/expansion over tiles; a runtime provides the hooks on numpy arrays."""

    name: str
    spec: BackendSpec
    tile: int
    overlap: int
    stack_steps: int | None = None
    whole_image_pixels: int = 0  # single-image backends: run untiled up to this many pixels
    reduce_large_photos: bool = True  # above it: on the photo downsized to LARGE_PHOTO_PREDICTION (else large tiles)
    reduced_synthesis: bool = False  # networks with a merge head: synthesis at reduced resolution on large photos

    def _forward(self, x: np.ndarray, reference: int | None = None, maps: bool = False,
                 codes: np.ndarray | None = None):  # pragma: no cover
        """The network on one tile: (1, N, 6, h, w) brackets or (1, 3, h, w) photos -> (1, C, h, w)."""
        raise NotImplementedError

    def _reduced(self, x: np.ndarray, reference: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        """(synthesis (1, 3, h, w), the ghost gate's maps (1, N, h, w)) of the network input of a
        whole reduced bracket."""
        raise NotImplementedError

    def _merge(self, synthesis: np.ndarray, learned: np.ndarray, x: np.ndarray, reference: int, maps: bool,
               codes: np.ndarray, t: np.ndarray):  # pragma: no cover
        """The merge head on one full-resolution tile (:meth:`~hdrcli.models.blocks.MultiExposureNet.gated_output`)."""
        raise NotImplementedError

    def _network(self, frames: np.ndarray, tables: ReencodingTables, reference: int, maps: bool):
        """The whole network on a (1, N, 3, h, w) tile of frames as recorded (also the head's ``codes``)."""
        return self._forward(tables.network_input(frames), reference, maps, codes=frames)

    def _head(self, synthesis: np.ndarray, learned: np.ndarray, frames: np.ndarray, tables: ReencodingTables,
              times: np.ndarray, reference: int, maps: bool):
        """The merge head on a tile of frames as recorded, of the synthesis and of the gate's maps."""
        x = tables.network_input(frames)
        relative = times / times.min(axis=1, keepdims=True)  # known here: the head need not recover it per tile
        return self._merge(synthesis, learned, x, reference, maps, codes=frames, t=relative)

    def _check_bracket(self, frames: int, reference: int, maps: bool) -> None:
        """Hook: a runtime that takes fewer bracket shapes than torch refuses here, before any tile."""

    def prepare(self, height: int, width: int, frames: int | None = None, reference: int | None = None) -> None:
        """Hook: load now what a job of this shape will run on (``frames`` None: a single photo), so
        that the job's timings count loading as loading (ONNX Runtime's torch fallback imports torch)."""

    def fuse(self, frames: list[np.ndarray], exposures: list[float],
             progress: Callable[[int, int], None] | None = None, response: np.ndarray | None = None,
             reference: int | None = None, maps: bool = False,
             warps: list[np.ndarray | None] | None = None) -> np.ndarray:
        """N >= 2 RGB frames (H, W, 3) in [0, 1] by exposure -> HDR (H, W, 3), 1 = the shortest frame's clipping.

        ``reference``: index of the reference frame (default the middle one). With ``maps``
        the result is (H, W, 3 + N + 1): the HDR, each frame's weight in it and the share of
        the network's synthesis (see :class:`hdrcli.models.blocks.ExposureMergeHead`).
        ``warps``: per frame, a warp from :func:`hdrcli.align.estimate_warps` (None: as is),
        applied tile by tile: no aligned full-size copy of the bracket is made.

        Each tile is re-encoded to the networks' gamma-2.2 convention with ``response`` (a
        (256, 3) inverse camera response; :func:`linear_response` for RAW data), or with the
        bracket's self-calibrated response when it is None (see
        :func:`hdrcli.merge.response.self_calibrate`, which reads the frames area-averaged to
        a 64-pixel short side: on large photos it is given the reduced bracket), then the
        network input (LDR, LDR**2.2 / t) is built: memory holds the frames once plus one
        tile's work.
        """
        if self.spec.kind != MULTI_EXPOSURE:
            raise HdrError(f"'{self.name}' is a single-image backend")
        n = len(frames)
        if n < 2:
            raise HdrError(f"a bracket needs at least 2 frames; got {n}")
        reference = n // 2 if reference is None else reference
        self._check_bracket(n, reference, maps)
        warps = [None] * n if warps is None else list(warps)
        # One (1, 1, 3, H, W) view per frame, aligned and stacked tile by tile.
        views = tuple(WarpedFrame(f, w) for f, w in zip(frames, warps))
        times = np.asarray(exposures, np.float32)[None]
        channels = 3 + (n + 1 if maps else 0)
        height, width = frames[0].shape[:2]
        if self.reduced_synthesis and height * width > SYNTHESIS_ABOVE:
            size = reduced_size(height, width, SYNTHESIS_PIXELS)
            factors = (size[0] / width, size[1] / height)
            # Downsized, then aligned at that size (as the classical calibration's copies).
            small = np.stack([warp_frame(cv2.resize(np.asarray(f, np.float32), size, interpolation=cv2.INTER_AREA),
                                         None if w is None else scale_warp(w, factors)) for f, w in zip(frames, warps)])
            if response is None:
                response = self_calibrate(list(small), exposures)
            tables = ReencodingTables(canonical_luts(response), exposures)
            # One pass over the whole reduced bracket: no tile can show in the output.
            small_x = tables.network_input(small.transpose(0, 3, 1, 2)[None])
            synthesis, learned = self._reduced(small_x, reference)
            del small, small_x
            upsampled = (BilinearUpsampled(synthesis, (height, width)), BilinearUpsampled(learned, (height, width)))

            def merge_tile(tiles: tuple[np.ndarray, ...]):
                return self._head(tiles[0], tiles[1], np.concatenate(tiles[2:], 1), tables, times, reference, maps)

            out = run_tiled(merge_tile, (*upsampled, *views), HEAD_TILE, HEAD_OVERLAP, out_channels=channels,
                            progress=progress, margin=HEAD_MARGIN)
        else:
            if response is None:
                response = self_calibrate([warp_frame(f, w) for f, w in zip(frames, warps)], exposures)
            tables = ReencodingTables(canonical_luts(response), exposures)

            def tile_input(tiles: tuple[np.ndarray, ...]):
                return self._network(np.concatenate(tiles, 1), tables, reference, maps)

            out = run_tiled(tile_input, views, self.tile, self.overlap, out_channels=channels, progress=progress)
        return out

    def predict(self, image: np.ndarray, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """The network's own HDR (H, W, 3) for a display-referred RGB image in [0, 1] (1 = its clipping level).

        Runs on the whole image when it has at most ``whole_image_pixels`` pixels (no tiles,
        so no seams: the stack model's instance norms and merge see the whole photo), else
        over tiles with wide blends.
        """
        if self.spec.kind == MULTI_EXPOSURE:
            raise HdrError(f"'{self.name}' is a multi-exposure backend")
        image = np.asarray(image, np.float32)
        h, w = image.shape[:2]
        if self.whole_image_pixels and h * w > self.whole_image_pixels and self.reduce_large_photos:
            small = cv2.resize(image, reduced_size(h, w, LARGE_PHOTO_PREDICTION), interpolation=cv2.INTER_AREA)
            x = np.ascontiguousarray(small.transpose(2, 0, 1))[None]
            prediction = expand_tiled(self._forward, x, max(x.shape[-2:]), 0, self.stack_steps, progress)
            return cv2.resize(prediction, (w, h), interpolation=cv2.INTER_LINEAR)
        x = np.ascontiguousarray(image.transpose(2, 0, 1))[None]
        if h * w <= self.whole_image_pixels:
            tile, overlap = max(h, w), 0
        else:  # an explicit tile, or large tiles for photos beyond the whole-image budget
            tile = self.tile if self.whole_image_pixels == 0 else LARGE_PHOTO_TILE
            overlap = max(self.overlap, tile // 4)
        return expand_tiled(self._forward, x, tile, overlap, self.stack_steps, progress)

    def expand_photo(self, image: np.ndarray, progress: Callable[[int, int], None] | None = None, *,
                     response: np.ndarray | None = None, linear: bool = False):
        """A photo (H, W, 3) in [0, 1] -> :class:`hdrcli.merge.expand.Expansion`: the linearised
        photo where it is well exposed, the network's prediction (scaled to the photo) only in
        clipped highlights, denoised shadows. ``response``: inverse camera response (None: sRGB);
        ``linear``: the pixels are linear (camera RAW), the network sees them sRGB-encoded."""
        from hdrcli.align import linear_to_srgb
        from hdrcli.merge.expand import compose

        image = np.asarray(image, np.float32)
        network_input = linear_to_srgb(image) if linear else image
        return compose(image, self.predict(network_input, progress), response=response, linear=linear)

    def expand(self, image: np.ndarray, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """One display-referred (sRGB-like) RGB image (H, W, 3) in [0, 1] -> HDR (H, W, 3), 1 = its
        clipping level (see :meth:`expand_photo`)."""
        return self.expand_photo(image, progress).hdr


def expand_tiled(forward: Callable, x: np.ndarray, tile: int, overlap: int, stack_steps: int | None,
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Tiled single-image expansion of x (1, 3, H, W) -> (H, W, 3); for the stack model the whole
    stack is tiled, then merged once by the synthesis layer (one camera response for the image,
    no seams; torch)."""
    if stack_steps is None:
        return run_tiled(forward, x, tile, overlap, progress=progress)
    frames = 2 * stack_steps + 1
    stack = run_tiled(forward, x, tile, overlap, out_channels=3 * frames, progress=progress)
    import torch

    from hdrcli.models.synthesis import hdr_synthesis

    h, w = stack.shape[:2]
    evs = torch.arange(-stack_steps, stack_steps + 1, dtype=torch.float32)
    planes = torch.from_numpy(stack).permute(2, 0, 1).reshape(1, frames, 3, h, w)
    return hdr_synthesis(planes.clamp(0, 1), evs)[0].permute(1, 2, 0).contiguous().numpy()
