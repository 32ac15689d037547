"""Two-stage single-shot LDR -> HDR network (seed 004).

"A Two-stage Deep Network for High Dynamic Range Image Reconstruction" (Sharif, Naqvi,
Biswas, Kim). Stage I enhances the 8-bit image (exposure, noise, contrast); stage II
expands the enhanced image to HDR.

* Each stage: conv 3 -> 64, n RDABs, conv 64 -> 3, plus a residual connection from the
  stage input. Stage I has n = 2 RDABs, stage II n = 1.
* RDAB (residual dense attention block): X' = R(X) + S(X), R a residual dense block
  (6 dense 3x3 layers, growth 32, 1x1 fusion, residual), S spatial attention
  (X * sigmoid(conv(ReLU(conv(X))))).

Input: (B, 3, H, W) display-referred LDR in [0, 1]; any H x W. Output: (B, 3, H, W)
linear HDR in units where the input's clipping level is 1. Stage II ends in a sigmoid
that encodes HDR by the mu-law over [0, ``max_radiance``] (mu = 5000), so the network
works in the perceptual domain it is trained in and can express up to 64x the clipping
level. ``forward(..., return_stages=True)`` also returns stage I's enhanced image.

Parameters: the paper states 834,476 (555,655 + 278,821); the ``paper`` config has
831,593 (553,221 + 278,372), 0.35% fewer: the paper does not give the attention block's
layer sizes, and ours uses 64 -> 16 -> 1 convolutions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hdrcli.models.blocks import RDAB
from hdrcli.models.registry import SINGLE_IMAGE, register_model

MU = 5000.0


class Stage(nn.Module):
    def __init__(self, channels: int, blocks: int, layers: int, growth: int) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*[RDAB(channels, layers, growth) for _ in range(blocks)])
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.tail(self.body(torch.relu(self.head(x))))


class TwoStageHDR(nn.Module):
    def __init__(self, channels: int = 64, blocks: tuple[int, int] = (2, 1), layers: int = 6, growth: int = 32,
                 max_radiance: float = 64.0) -> None:
        super().__init__()
        self.stage1 = Stage(channels, blocks[0], layers, growth)
        self.stage2 = Stage(channels, blocks[1], layers, growth)
        self.max_radiance = max_radiance

    def decode(self, encoded: torch.Tensor) -> torch.Tensor:
        """mu-law code in [0, 1] -> linear radiance in [0, max_radiance]."""
        return self.max_radiance * (torch.exp(encoded * math.log1p(MU)) - 1.0) / MU

    def forward(self, x: torch.Tensor, return_stages: bool = False):
        enhanced = self.stage1(x)
        hdr = self.decode(torch.sigmoid(self.stage2(enhanced)))
        return (hdr, enhanced) if return_stages else hdr


@register_model(
    "twostage",
    kind=SINGLE_IMAGE,
    configs={
        "paper": {"channels": 64, "blocks": (2, 1), "layers": 6, "growth": 32},
        "lite": {"channels": 24, "blocks": (2, 1), "layers": 4, "growth": 12},
    },
    paper="Sharif, Naqvi, Biswas, Kim: A Two-stage Deep Network for High Dynamic Range Image Reconstruction (CVPRW 2021)",
    description="stage I enhancement + stage II expansion, residual dense attention blocks",
    stated_params={"paper": 834_476},
)
def twostage(**config) -> TwoStageHDR:
    return TwoStageHDR(**config)
