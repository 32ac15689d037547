"""Model helpers over the one backend registry (:mod:`hdrcli.backends`), timm-style.

Each architecture module registers itself with :func:`register_model`; callers use
:func:`create_model` (``create_model("lffnet", "lite")``) and :func:`list_models`. The
registry itself (names, kinds, configs, weights paths) lives in :mod:`hdrcli.backends`,
which also holds the classical backends; this module re-exports its model part and adds
parameter, FLOP and example-input helpers.

Sizes: every model has at least ``paper`` (the paper's widths and depths) and ``lite``
(sized for about an hour of training on a 2-core CPU and fast inference). Weights live
in ``weights/<name>-<size>.pt`` (a state dict) and are listed in weights/manifest.json
(see :mod:`hdrcli.weights`).
"""

from __future__ import annotations

import torch
from torch import nn

from hdrcli.backends import (  # noqa: F401 - the registry, re-exported for the model modules
    MULTI_EXPOSURE,
    SINGLE_IMAGE,
    BackendSpec,
    ModelSpec,
    create_model,
    get_spec,
    list_models,
    parameter_count,
    register_model,
)


# Architectures whose convolutions run faster on a CPU with channels-last weights: oneDNN then skips
# a layout reorder per layer (the activations follow the weights). Measured on a 2-core CPU, outputs
# within float noise: inference twostage 1.58x and stack 1.31x (1024x768 photos, bench/expand_speed.py),
# lffnet 1.2-1.3x and tunet 1.2x (1.5 MP bracket, warm); a training step (batch 4, 128 px) twostage
# 1.55x, stack 1.07x, lffnet 1.13x, tunet 1.2x. dfgnet was 8% slower, so it keeps the default.
CHANNELS_LAST_ON_CPU = frozenset({"lffnet", "tunet", "twostage", "stack"})


def preferred_layout(model: nn.Module, name: str, device: str | torch.device) -> nn.Module:
    """``model`` (of backend ``name``, on ``device``) in its fastest memory layout: channels-last on a
    CPU for :data:`CHANNELS_LAST_ON_CPU`, else as it is (CUDA: not measured)."""
    if name in CHANNELS_LAST_ON_CPU and torch.device(device).type == "cpu":
        return model.to(memory_format=torch.channels_last)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


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
