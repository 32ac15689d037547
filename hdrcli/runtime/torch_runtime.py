"""PyTorch runtime: load shipped weights (weights_only=True), fold DO-Conv, run the hooks of
:class:`hdrcli.runtime.runner.TiledRunner` (tiles, reduced synthesis, merge head) on CPU or CUDA."""

from __future__ import annotations

import numpy as np
import torch

from hdrcli.errors import HdrError
from hdrcli.models import create_model, fold_do_convs, get_spec, preferred_layout
from hdrcli.models.registry import MULTI_EXPOSURE
from hdrcli.runtime.runner import DEFAULT_OVERLAP, DEFAULT_TILE, WHOLE_IMAGE_PIXELS, TiledRunner, available_sizes


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


def _tensor(a: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(device)


@torch.no_grad()
def merge_head(model: torch.nn.Module, device: torch.device, synthesis: np.ndarray, learned: np.ndarray, x: np.ndarray,
               reference: int, maps: bool, codes: np.ndarray, t: np.ndarray) -> torch.Tensor:
    """A bracket network's merge head on one full-resolution tile (numpy inputs, see
    :meth:`hdrcli.runtime.runner.TiledRunner._merge`)."""
    inputs = (_tensor(a, device) for a in (synthesis, learned, x))
    return model.gated_output(*inputs, reference, maps, _tensor(codes, device), _tensor(t, device))


class TorchRunner(TiledRunner):
    """Runs a learned backend with PyTorch (CPU or CUDA)."""

    def __init__(self, name: str, size: str | None = None, device: str = "cpu", tile: int | None = None,
                 overlap: int = DEFAULT_OVERLAP, reduced_synthesis: bool = True) -> None:
        from hdrcli.threads import configure_torch

        configure_torch()  # torch's pools sized by hdrcli.threads (--threads), not every core
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

    @torch.no_grad()
    def _reduced(self, x: np.ndarray, reference: int) -> tuple[np.ndarray, np.ndarray]:
        synthesis, gate = self.model.reduced_maps(_tensor(x, self.device), reference)
        return synthesis.float().cpu().numpy(), gate.float().cpu().numpy()

    def _merge(self, synthesis: np.ndarray, learned: np.ndarray, x: np.ndarray, reference: int, maps: bool,
               codes: np.ndarray, t: np.ndarray) -> torch.Tensor:
        return merge_head(self.model, self.device, synthesis, learned, x, reference, maps, codes, t)

    @torch.no_grad()
    def _forward(self, x: np.ndarray, reference: int | None = None, maps: bool = False,
                 codes: np.ndarray | None = None) -> torch.Tensor:
        x = _tensor(x, self.device)
        if self.stack_steps is not None:  # stack model: tiles give the stack, merged once
            return self.model.network_forward(x).flatten(1, 2)
        if self.spec.kind == MULTI_EXPOSURE:
            return self.model(x, reference, return_maps=maps, codes=_tensor(codes, self.device))
        return self.model(x)
