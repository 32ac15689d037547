"""LFFNet: lightweight attention-guided network with frequency-domain fusion (seed 003).

Park, Lee & Cho, "Lightweight Attention-Guided Network with Frequency Domain
Reconstruction for High Dynamic Range Image Fusion".

Input: (B, 3, 6, H, W), three frames ordered by exposure (reference in the middle), each
concat(LDR, LDR**2.2 / t) with t = 1 for the shortest exposure. Output: (B, 3, H, W)
linear HDR in [0, 1] (sigmoid), in the shortest exposure's units. Any H x W.

Structure (the AHDRNet skeleton, Yan et al. 2019):

* alignment network: a shared conv 6 -> C per frame; for each non-reference frame an
  attention mask sigmoid(conv(LeakyReLU(conv(concat(F_i, F_ref))))) multiplies its
  features, followed by a 3x3 conv per non-reference branch (AHDRNet's ``attConv``
  layers, which its code defines and the paper's parameter counts include);
* merging network: conv 3C -> C, three Residual FFT blocks whose spatial convs are
  DO-Conv, global feature fusion (1x1 over the three block outputs, then 3x3), a global
  residual from the reference features, conv, conv -> 3, sigmoid.

Parameter counts (paper Table 2: 1,069,315 with DO-Conv): the ``paper`` config gives
exactly 1,069,315 while training and 1,038,211 once DO-Conv is folded for inference,
the paper's "baseline w/ RFFT" count. The three RFFT blocks replace AHDRNet's three
dilated residual dense blocks.

hdrcli addition (``blend=True``, the ``lite`` config): the sigmoid output becomes one
candidate of a :class:`~hdrcli.models.blocks.BlendHead`, which returns a per-pixel convex
blend of it and the three linearised frames (why: see that class).
"""

from __future__ import annotations

import torch
from torch import nn

from hdrcli.models.blocks import AttentionMask, BlendHead, ResidualFFTBlock
from hdrcli.models.registry import MULTI_EXPOSURE, register_model


class LFFNet(nn.Module):
    def __init__(self, channels: int = 64, blocks: int = 3, do_conv: bool = True, blend: bool = False) -> None:
        super().__init__()
        c = channels
        self.encode = nn.Conv2d(6, c, 3, padding=1)
        self.attention_short = AttentionMask(c)
        self.attention_long = AttentionMask(c)
        self.refine_short = nn.Conv2d(c, c, 3, padding=1)
        self.refine_long = nn.Conv2d(c, c, 3, padding=1)
        self.merge = nn.Conv2d(3 * c, c, 3, padding=1)
        self.blocks = nn.ModuleList(ResidualFFTBlock(c, do_conv) for _ in range(blocks))
        self.fuse_1x1 = nn.Conv2d(blocks * c, c, 1)
        self.fuse_3x3 = nn.Conv2d(c, c, 3, padding=1)
        self.up = nn.Conv2d(c, c, 3, padding=1)
        self.out = nn.Conv2d(c, 3, 3, padding=1)
        self.act = nn.LeakyReLU()
        self.blend = BlendHead(c) if blend else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short, ref, long = (self.act(self.encode(x[:, i])) for i in range(3))
        short = self.act(self.refine_short(short * self.attention_short(short, ref)))
        long = self.act(self.refine_long(long * self.attention_long(long, ref)))
        features = self.merge(torch.cat([short, ref, long], 1))
        outputs = []
        for block in self.blocks:
            features = block(features)
            outputs.append(features)
        fused = self.fuse_3x3(self.fuse_1x1(torch.cat(outputs, 1))) + ref
        features = self.up(fused)
        synthesis = torch.sigmoid(self.out(features))
        return synthesis if self.blend is None else self.blend(features, synthesis, x)


@register_model(
    "lffnet",
    kind=MULTI_EXPOSURE,
    configs={"paper": {"channels": 64, "blocks": 3}, "lite": {"channels": 16, "blocks": 3, "blend": True}},
    paper="Park, Lee, Cho: Lightweight Attention-Guided Network with Frequency Domain Reconstruction for HDR Image Fusion",
    description="AHDRNet attention alignment + Residual FFT blocks with DO-Conv",
    stated_params={"paper": 1_069_315},
)
def lffnet(**config) -> LFFNet:
    return LFFNet(**config)
