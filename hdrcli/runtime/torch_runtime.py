"""PyTorch runtime: load shipped weights (weights_only=True), fold DO-Conv, run tiled."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from hdrcli.errors import HdrError
from hdrcli.models import create_model, exposure_input, fold_do_convs, get_spec
from hdrcli.models.registry import MULTI_EXPOSURE
from hdrcli.runtime.tiling import as_numpy_image, run_tiled

# Tile sides per backend: models with FFT or global statistics see a fixed tile at
# inference, as in training (multiples of 16 keep every model's padding exact).
DEFAULT_TILE = {"dfgnet": 512, "lffnet": 512, "tunet": 512, "twostage": 512, "stack": 256}
DEFAULT_OVERLAP = 32


def available_sizes(name: str) -> list[str]:
    spec = get_spec(name)
    return [size for size in ("lite", "paper") if size in spec.configs and spec.weights_path(size).is_file()]


def load_model(name: str, size: str | None = None, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, str]:
    """The trained model for a backend (first size with weights: lite, then paper), folded, eval mode."""
    sizes = available_sizes(name)
    if size is None:
        if not sizes:
            raise HdrError(f"backend '{name}' has no trained weights in weights/; train them with `hdr train --backend {name}`")
        size = sizes[0]
    elif size not in sizes:
        raise HdrError(f"backend '{name}' has no weights for size '{size}' (available: {', '.join(sizes) or 'none'})")
    model = create_model(name, size, pretrained=True)
    return fold_do_convs(model).eval().to(device), size


class TorchRunner:
    """Runs a learned backend on float32 numpy images with tiling."""

    def __init__(self, name: str, size: str | None = None, device: str = "cpu", tile: int | None = None,
                 overlap: int = DEFAULT_OVERLAP) -> None:
        self.name = name
        self.spec = get_spec(name)
        self.device = torch.device(device)
        self.model, self.size = load_model(name, size, self.device)
        self.tile = tile or DEFAULT_TILE.get(name, 512)
        self.overlap = overlap

    @torch.no_grad()
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.device))

    def fuse(self, frames: list[np.ndarray], exposures: list[float],
             progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Three display-referred RGB frames (H, W, 3) in [0, 1] by exposure -> HDR (H, W, 3)."""
        if self.spec.kind != MULTI_EXPOSURE:
            raise HdrError(f"'{self.name}' is a single-image backend")
        if len(frames) != 3:
            raise HdrError(f"learned backends fuse exactly 3 frames (short, reference, long); got {len(frames)}")
        ldr = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)[None].float()
        x = exposure_input(ldr, torch.tensor(exposures, dtype=torch.float32)[None])
        return as_numpy_image(run_tiled(self._forward, x, self.tile, self.overlap, progress=progress))

    def expand(self, image: np.ndarray, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """One display-referred RGB image (H, W, 3) in [0, 1] -> HDR (H, W, 3), 1 = its clipping level."""
        if self.spec.kind == MULTI_EXPOSURE:
            raise HdrError(f"'{self.name}' is a multi-exposure backend")
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        return as_numpy_image(run_tiled(self._forward, x, self.tile, self.overlap, progress=progress))
