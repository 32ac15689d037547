"""PyTorch runtime: load shipped weights (weights_only=True), fold DO-Conv, run tiled."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch

from hdrcli.align import scale_warp, warp_frame
from hdrcli.errors import HdrError
from hdrcli.merge.response import LUT_LEVELS, canonical_luts, self_calibrate
from hdrcli.models import create_model, fold_do_convs, get_spec, preferred_layout
from hdrcli.models.blocks import GAMMA
from hdrcli.models.registry import MULTI_EXPOSURE
from hdrcli.runtime.tiling import BilinearUpsampled, as_numpy_image, run_tiled

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
# Bracket networks with a merge head: on photos above SYNTHESIS_ABOVE pixels the network's
# costly parts run once on the bracket downscaled to SYNTHESIS_PIXELS: the synthesis (the
# network's own estimate, used only where no frame measured the scene) and the head's learned
# ghost gate (three convolutions; it only decides where the reference is clipped or crushed).
# Both are smooth and are upsampled bilinearly tile by tile. The rest of the head (the frames'
# agreement with the reference, 5x5, and their weights, per pixel) and the merge run at full
# resolution, so the frames keep every detail and ghost edges stay sharp. The network's cost
# then no longer grows with the photo, and no tile can show: tiles whose outer HEAD_MARGIN
# pixels are not blended in equal one whole-image pass. (ONNX exports hold the whole network:
# they run it at full resolution.)
SYNTHESIS_ABOVE = 1_000_000
SYNTHESIS_PIXELS = 200_000
# The reduced bracket's sides are multiples of this: the FFT blocks' transforms of prime
# sides (577 x 433, a 1.5 MP photo's 0.25 MP copy) took 1.7x as long as of 576 x 432.
SYNTHESIS_MULTIPLE = 16
HEAD_TILE, HEAD_OVERLAP, HEAD_MARGIN = 256, 8, 4  # 256: the 5x5 means stay in cache (512: +25%, 1024: 4x)


def reduced_size(height: int, width: int, pixels: int, multiple: int = SYNTHESIS_MULTIPLE) -> tuple[int, int]:
    """(width, height) of about ``pixels`` pixels with the photo's aspect, each side a multiple of ``multiple``."""
    factor = (pixels / (height * width)) ** 0.5
    return tuple(max(multiple, round(side * factor / multiple) * multiple) for side in (width, height))


def available_sizes(name: str) -> list[str]:
    """Sizes of a learned backend with shipped weights, lite first (see the registry)."""
    return get_spec(name).sizes_with_weights()


def load_model(name: str, size: str | None = None, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, str]:
    """The trained model for a backend (first size with weights: lite, then paper), folded, eval mode."""
    sizes = available_sizes(name)
    if size is None:
        if not sizes:
            raise HdrError(f"backend '{name}' has no trained weights in weights/; train them with `hdr train --backend {name}`")
        size = sizes[0]
    elif size not in sizes:
        raise HdrError(f"backend '{name}' has no weights for size '{size}' (available: {', '.join(sizes) or 'none'})")
    model = create_model(name, size, pretrained=True)  # verified against the manifest, weights_only
    return preferred_layout(fold_do_convs(model).eval().to(device), name, device), size


class TiledRunner:
    """Whole-image fusion/expansion over tiles; subclasses provide ``_forward`` for one tile."""

    name: str
    spec: object
    tile: int
    overlap: int
    stack_steps: int | None = None
    whole_image_pixels: int = 0  # single-image backends: run untiled up to this many pixels
    reduced_synthesis: bool = False  # networks with a merge head: synthesis at reduced resolution on large photos
    head_model: torch.nn.Module | None = None  # with reduced_synthesis: the network whose merge head runs per tile
    head_device: torch.device = torch.device("cpu")

    def _forward(self, x: torch.Tensor, reference: int | None = None, maps: bool = False,
                 codes: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _network(self, frames: torch.Tensor, tables: ReencodingTables, times: torch.Tensor, reference: int,
                 maps: bool) -> torch.Tensor:
        """The whole network on a (1, N, 3, h, w) tile of frames as recorded (also the head's ``codes``)."""
        return self._forward(_network_input(frames, tables, times), reference, maps, codes=frames)

    def _head(self, synthesis: torch.Tensor, learned: torch.Tensor, frames: torch.Tensor, tables: ReencodingTables,
              times: torch.Tensor, reference: int, maps: bool) -> torch.Tensor:
        """The merge head on a tile of frames as recorded, of the synthesis and of the gate's maps."""
        x = _network_input(frames, tables, times)
        relative = times / times.min(dim=1, keepdim=True).values  # known here: the head need not recover it per tile
        return self._merge(synthesis, learned, x, reference, maps, codes=frames, t=relative)

    def _check_bracket(self, frames: int, reference: int, maps: bool) -> None:
        """Hook: a runtime that takes fewer bracket shapes than torch refuses here, before any tile."""

    def _reduced(self, x: torch.Tensor, reference: int) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        """(synthesis, the ghost gate's maps) of the network input of a whole reduced bracket."""
        raise NotImplementedError

    @torch.no_grad()
    def _merge(self, synthesis: torch.Tensor, learned: torch.Tensor, x: torch.Tensor, reference: int, maps: bool,
               codes: torch.Tensor | None = None, t: torch.Tensor | None = None) -> torch.Tensor:
        """The merge head (``head_model``'s, on ``head_device``) on one full-resolution tile."""
        to = lambda a: None if a is None else a.to(self.head_device)  # noqa: E731
        return self.head_model.gated_output(to(synthesis), to(learned), to(x), reference, maps, to(codes), to(t))

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
        times = torch.tensor(exposures, dtype=torch.float32)[None]
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
            tables = ReencodingTables(canonical_luts(response))
            small_ldr = torch.from_numpy(small).permute(0, 3, 1, 2)[None]
            # One pass over the whole reduced bracket: no tile can show in the output.
            small_x = _network_input(small_ldr, tables, times)
            synthesis, learned = self._reduced(small_x, reference)
            del small, small_ldr, small_x
            upsampled = (BilinearUpsampled(synthesis.float().cpu(), (height, width)),
                         BilinearUpsampled(learned.float().cpu(), (height, width)))
            merge_tile = lambda tiles: self._head(tiles[0], tiles[1], torch.cat(tiles[2:], 1), tables, times,  # noqa: E731
                                                  reference, maps)
            out = run_tiled(merge_tile, (*upsampled, *views), HEAD_TILE, HEAD_OVERLAP, out_channels=channels,
                            progress=progress, margin=HEAD_MARGIN)
        else:
            if response is None:
                response = self_calibrate([warp_frame(f, w) for f, w in zip(frames, warps)], exposures)
            tables = ReencodingTables(canonical_luts(response))
            tile_input = lambda tiles: self._network(torch.cat(tiles, 1), tables, times, reference, maps)  # noqa: E731
            out = run_tiled(tile_input, views, self.tile, self.overlap, out_channels=channels, progress=progress)
        return as_numpy_image(out)

    def predict(self, image: np.ndarray, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """The network's own HDR (H, W, 3) for a display-referred RGB image in [0, 1] (1 = its clipping level).

        Runs on the whole image when it has at most ``whole_image_pixels`` pixels (no tiles,
        so no seams: the stack model's instance norms and merge see the whole photo), else
        over tiles with wide blends.
        """
        if self.spec.kind == MULTI_EXPOSURE:
            raise HdrError(f"'{self.name}' is a multi-exposure backend")
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        h, w = x.shape[-2:]
        if h * w <= self.whole_image_pixels:
            tile, overlap = max(h, w), 0
        else:  # an explicit tile, or large tiles for photos beyond the whole-image budget
            tile = self.tile if self.whole_image_pixels == 0 else LARGE_PHOTO_TILE
            overlap = max(self.overlap, tile // 4)
        return as_numpy_image(expand_tiled(self._forward, x, tile, overlap, self.stack_steps, progress))

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


class WarpedFrame:
    """A frame (H, W, 3) aligned by a warp, as a lazy (1, 1, 3, H, W) tensor: ``[..., rows, cols]``
    warps just that window (:func:`hdrcli.align.warp_frame`, equal to the same crop of the whole
    aligned frame), so the bracket is held once, unaligned (at 24 MP: 576 MB less for 3 frames)."""

    def __init__(self, pixels: np.ndarray, warp: np.ndarray | None) -> None:
        self.pixels = np.asarray(pixels, np.float32)
        self.warp = warp
        self.shape = (1, 1, 3, *self.pixels.shape[:2])

    def __getitem__(self, crop: tuple) -> torch.Tensor:
        h, w = self.pixels.shape[:2]
        rows, cols = crop[-2].indices(h)[:2], crop[-1].indices(w)[:2]
        window = warp_frame(self.pixels, self.warp, rows, cols)
        return torch.from_numpy(np.ascontiguousarray(window)).permute(2, 0, 1)[None, None]


class ReencodingTables:
    """The (3, LUT_LEVELS) re-encoding tables of a bracket, flat, with their gamma-2.2 linear values.

    Looking both up (one ``take`` each) replaces per-channel gathers and the per-pixel
    ``ldr ** 2.2`` of :func:`hdrcli.models.exposure_input`: the same values, at a third of the
    cost (they were a fifth of the large-photo merge).
    """

    def __init__(self, luts: np.ndarray) -> None:
        self.encoded = torch.from_numpy(np.ascontiguousarray(luts, np.float32)).flatten()
        self.linear = self.encoded.clamp(0.0, 1.0) ** GAMMA
        self.offsets = (torch.arange(3) * LUT_LEVELS)[:, None, None]


def _network_input(frames: torch.Tensor, tables: ReencodingTables, times: torch.Tensor) -> torch.Tensor:
    """(B, N, 3, H, W) frames in [0, 1] as recorded -> the networks' input (B, N, 6, H, W): the frames
    re-encoded to gamma 2.2 and their linear values / t, as :func:`hdrcli.models.exposure_input`."""
    index = torch.round(frames.clamp(0.0, 1.0) * (LUT_LEVELS - 1)).long() + tables.offsets
    t = times / times.min(dim=1, keepdim=True).values
    linear = tables.linear.take(index).div_(t[:, :, None, None, None])
    return torch.cat([tables.encoded.take(index), linear], dim=2)


class TorchRunner(TiledRunner):
    """Runs a learned backend with PyTorch (CPU or CUDA)."""

    def __init__(self, name: str, size: str | None = None, device: str = "cpu", tile: int | None = None,
                 overlap: int = DEFAULT_OVERLAP, reduced_synthesis: bool = True) -> None:
        self.name = name
        self.spec = get_spec(name)
        self.device = torch.device(device)
        self.model, self.size = load_model(name, size, self.device)
        self.tile = tile or DEFAULT_TILE.get(name, 512)
        self.overlap = overlap
        self.stack_steps = getattr(self.model, "steps", None) if hasattr(self.model, "network_forward") else None
        self.whole_image_pixels = 0 if tile else WHOLE_IMAGE_PIXELS  # an explicit --tile always tiles
        # Only a network with a merge head can run its synthesis and its merge apart.
        self.reduced_synthesis = reduced_synthesis and getattr(self.model, "merge_head", None) is not None
        self.head_model, self.head_device = self.model, self.device

    @torch.no_grad()
    def _reduced(self, x: torch.Tensor, reference: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.reduced_maps(x.to(self.device), reference)

    @torch.no_grad()
    def _forward(self, x: torch.Tensor, reference: int | None = None, maps: bool = False,
                 codes: torch.Tensor | None = None) -> torch.Tensor:
        if self.stack_steps is not None:  # stack model: tiles give the stack, merged once
            return self.model.network_forward(x.to(self.device)).flatten(1, 2)
        if self.spec.kind == MULTI_EXPOSURE:
            return self.model(x.to(self.device), reference, return_maps=maps,
                              codes=None if codes is None else codes.to(self.device))
        return self.model(x.to(self.device))


def expand_tiled(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: int,
                 stack_steps: int | None, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Tiled single-image expansion; for the stack model the whole stack is tiled, then merged
    once by the synthesis layer (one camera response for the image, no seams)."""
    if stack_steps is None:
        return run_tiled(forward, x, tile, overlap, progress=progress)
    frames = 2 * stack_steps + 1
    stack = run_tiled(forward, x, tile, overlap, out_channels=3 * frames, progress=progress)
    from hdrcli.models.synthesis import hdr_synthesis

    evs = torch.arange(-stack_steps, stack_steps + 1, dtype=torch.float32)
    return hdr_synthesis(stack.view(1, frames, 3, *stack.shape[-2:]).clamp(0, 1), evs)
