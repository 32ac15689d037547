"""Model registry: backend name -> builder, kind, config sizes and weights (timm-style).

Each architecture module registers itself with :func:`register_model`; callers use
:func:`create_model` (``create_model("lffnet", "lite")``) and :func:`list_models`.

Sizes: every model has at least ``paper`` (the paper's widths and depths) and ``lite``
(sized for about an hour of training on a 2-core CPU and fast inference). Weights live
in ``weights/<name>-<size>.pt`` (a state dict) and are listed in weights/manifest.json.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hdrcli.errors import HdrError

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
MULTI_EXPOSURE = "multi-exposure"
SINGLE_IMAGE = "single-image"
_ARCHITECTURES = ("dfgnet", "lffnet", "tunet", "twostage", "stack")


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one architecture."""

    name: str
    kind: str
    builder: Callable[..., nn.Module]
    configs: dict[str, dict[str, Any]]
    paper: str
    description: str
    stated_params: dict[str, int] = field(default_factory=dict)  # counts printed in the paper

    def weights_path(self, size: str) -> Path:
        return WEIGHTS_DIR / f"{self.name}-{size}.pt"


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, *, kind: str, configs: dict[str, dict[str, Any]], paper: str, description: str,
    stated_params: dict[str, int] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a builder ``f(**config) -> nn.Module`` under ``name``."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = ModelSpec(name, kind, builder, configs, paper, description, stated_params or {})
        return builder

    return wrap


def _load_all() -> None:
    for module in _ARCHITECTURES:
        if importlib.util.find_spec(f"hdrcli.models.{module}") is not None:
            importlib.import_module(f"hdrcli.models.{module}")


def list_models() -> list[ModelSpec]:
    """All registered architectures, in a fixed order."""
    _load_all()
    return [_REGISTRY[n] for n in _ARCHITECTURES if n in _REGISTRY]


def get_spec(name: str) -> ModelSpec:
    _load_all()
    if name not in _REGISTRY:
        raise HdrError(f"unknown model '{name}' (available: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def create_model(name: str, size: str = "lite", *, pretrained: bool = False, **overrides: Any) -> nn.Module:
    """Build a model by name and size; ``pretrained`` loads weights/<name>-<size>.pt."""
    spec = get_spec(name)
    if size not in spec.configs:
        raise HdrError(f"model '{name}' has no size '{size}' (sizes: {', '.join(spec.configs)})")
    model = spec.builder(**{**spec.configs[size], **overrides})
    if pretrained:
        path = spec.weights_path(size)
        if not path.is_file():
            raise HdrError(f"no weights for {name} ({size}); train them with `hdr train --backend {name} --size {size}`", path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_count(name: str, size: str) -> int:
    """Trainable parameters of a configuration, counted without allocating (meta device)."""
    spec = get_spec(name)
    with torch.device("meta"):
        model = spec.builder(**spec.configs[size])
    return count_parameters(model)


def example_input(spec: ModelSpec, height: int, width: int, batch: int = 1,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """A random input of the right shape: (B, 3, 6, H, W) brackets or (B, 3, H, W) images."""
    if spec.kind == MULTI_EXPOSURE:
        return torch.rand(batch, 3, 6, height, width, device=device)
    return torch.rand(batch, 3, height, width, device=device)


def gflops_per_megapixel(name: str, size: str, side: int = 128) -> float:
    """Forward GFLOPs per megapixel, counted by torch's FlopCounterMode on a side x side input.

    Counts matrix multiplications and convolutions (2 FLOPs per multiply-add); FFTs and
    element-wise ops are not counted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    spec = get_spec(name)
    with torch.device("meta"):
        model = spec.builder(**spec.configs[size]).eval()
        inputs = example_input(spec, side, side, device="meta")
    # Models whose forward has a non-network step (the stack model's least-squares
    # response solve) expose the network part as ``network_forward``.
    forward = getattr(model, "network_forward", model)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        forward(inputs)
    return counter.get_total_flops() / 1e9 / (side * side / 1e6)
