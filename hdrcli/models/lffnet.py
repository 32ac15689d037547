"""LFFNet: lightweight attention-guided network with frequency-domain fusion (seed 003).

Park, Lee & Cho, "Lightweight Attention-Guided Network with Frequency Domain
Reconstruction for High Dynamic Range Image Fusion".

Input: (B, N, 6, H, W), N >= 2 frames ordered by exposure, each concat(LDR, LDR**2.2 / t)
with t = 1 for the shortest exposure, and the reference's index (default the middle).
Output: (B, 3, H, W) linear HDR in [0, 1], in the shortest exposure's units. Any H x W.

Any number of frames (an hdrcli addition; the paper fuses three): the shared encoder
runs on every frame, each frame shorter than the reference goes through the "short"
attention branch and each longer one through the "long" branch, and each side is
averaged (:func:`~hdrcli.models.blocks.side_mean`, permutation invariant; an empty side
takes the reference's features). With three frames this is the paper's network.

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

hdrcli addition (``merge=True``, the ``lite`` config): the sigmoid output is the
synthesis S of an :class:`~hdrcli.models.blocks.ExposureMergeHead`: the output is the
frames' own noise-weighted merge, with S only where no frame shows the scene (why: see
that class).
"""

from __future__ import annotations

import torch
from torch import nn

from hdrcli.models.blocks import AttentionMask, ExposureMergeHead, MultiExposureNet, ResidualFFTBlock, side_mean
from hdrcli.models.registry import MULTI_EXPOSURE, register_model


class LFFNet(MultiExposureNet):
    def __init__(self, channels: int = 64, blocks: int = 3, do_conv: bool = True, merge: bool = False) -> None:
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
        self.merge_head = ExposureMergeHead() if merge else None

    def synthesize(self, x: torch.Tensor, reference: int) -> torch.Tensor:
        b, n = x.shape[:2]
        encoded = self.act(self.encode(x.flatten(0, 1))).unflatten(0, (b, n))
        ref = encoded[:, reference]
        short = side_mean([self.act(self.refine_short(encoded[:, i] * self.attention_short(encoded[:, i], ref)))
                           for i in range(reference)], ref)
        long = side_mean([self.act(self.refine_long(encoded[:, i] * self.attention_long(encoded[:, i], ref)))
                          for i in range(reference + 1, n)], ref)
        features = self.merge(torch.cat([short, ref, long], 1))
        outputs = []
        for block in self.blocks:
            features = block(features)
            outputs.append(features)
        fused = self.fuse_3x3(self.fuse_1x1(torch.cat(outputs, 1))) + ref
        features = self.up(fused)
        return torch.sigmoid(self.out(features))


@register_model(
    "lffnet",
    kind=MULTI_EXPOSURE,
    configs={"paper": {"channels": 64, "blocks": 3}, "lite": {"channels": 16, "blocks": 3, "merge": True}},
    paper="Park, Lee, Cho: Lightweight Attention-Guided Network with Frequency Domain Reconstruction for HDR Image Fusion",
    description="AHDRNet attention alignment + Residual FFT blocks with DO-Conv",
    stated_params={"paper": 1_069_315},
)
def lffnet(**config) -> LFFNet:
    return LFFNet(**config)
