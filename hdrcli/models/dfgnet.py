"""DFGNet: disentangled feature-guided multi-exposure HDR network (seed 001).

Lee, Jang & Cho, "Disentangled Feature-Guided Multi-Exposure High Dynamic Range Imaging"
(ICASSP 2022).

Two networks:

* :class:`DisentangleNet`, pre-trained on its own: an exposure encoder E_ex (4 stride-2
  convs + global average pooling -> a C_e vector), a spatial encoder E_sp (3 stride-2
  convs + 2 residual blocks -> an H/8 x W/8 x C_s map; its intermediate features feed
  DFGNet's stages) and a decoder D (bilinear-upsampling conv blocks with AdaIN driven by
  the exposure vector) that must rebuild an image from (E_sp(X), E_ex(X')). Its losses
  (reconstruction of each LDR and of re-exposed ground truth t_i * Y**(1/2.2)) are in
  :mod:`hdrcli.training.losses` (``disentangle_loss``).
* :class:`DFGNet`: per-frame encoders (not shared) at three stages (C, 2C, 4C channels at
  full, 1/2 and 1/4 resolution, PReLU); at each stage a DFG module merges the three
  frames' features with an exposure attention unit (a dense layer on E_ex(X_i), softmax
  over channels, eq. 9) and a spatial attention unit (sigmoid masks from
  conv(concat(E_sp intermediate of X_i, sum_k F_k)), eq. 8), fused by a 1x1 conv; a U-Net
  decoder with two 4x4 stride-2 transposed convs; output (tanh + 1) / 2 in [0, 1]. With
  ``merge=True`` (the ``lite`` config, an hdrcli addition) that output is the synthesis
  of an :class:`~hdrcli.models.blocks.ExposureMergeHead` (the frames' own merge, the
  synthesis only where no frame shows the scene).

Input: (B, N, 6, H, W), N >= 2 frames ordered by exposure, each concat(LDR, LDR**2.2 / t)
(t = 1 for the shortest), and the reference's index (default the middle); the
disentangle network sees the LDR channels. Any number of frames (an hdrcli addition):
frames shorter than the reference use the first (short) encoder, longer ones the third,
and each side's features, spatial guides and exposure vectors are averaged
(:func:`~hdrcli.models.blocks.side_mean`) before the three-input DFG modules. Output: (B, 3, H, W) linear HDR in the shortest exposure's units. Any H x W:
inputs are padded to a multiple of 8 and the output cropped.

Choices the paper leaves open: the softmax weights of eq. 9 sum to 1 over C channels, so
they are multiplied by C to keep features at unit scale; E_sp's intermediate features
(1/2, 1/4, 1/8 resolution) are upsampled 2x to the stage they guide. The paper states no
parameter count (the authors' code has ~25M); our ``paper`` config uses their C = 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hdrcli.models.blocks import ExposureMergeHead, MultiExposureNet, adain, pad_to_multiple, side_mean
from hdrcli.models.registry import MULTI_EXPOSURE, register_model


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True))


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _AdaINUp(nn.Module):
    """AdaIN (style from the exposure vector) -> conv -> LeakyReLU -> bilinear 2x upsample."""

    def __init__(self, cin: int, cout: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        self.style = nn.Linear(style_dim, 2 * cin)
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.upsample = upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        scale, shift = self.style(style).chunk(2, dim=1)
        x = F.leaky_relu(self.conv(adain(x, 1 + scale, shift)), 0.2)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) if self.upsample else x


class DisentangleNet(nn.Module):
    """Exposure encoder, spatial encoder and AdaIN decoder (DFGNet's Fig. 1)."""

    def __init__(self, width: int = 64, exposure_dim: int = 256, spatial_dim: int = 256) -> None:
        super().__init__()
        w = width
        self.exposure_encoder = nn.Sequential(_down(3, w), _down(w, 2 * w), _down(2 * w, 4 * w), _down(4 * w, exposure_dim))
        self.spatial_stages = nn.ModuleList([_down(3, w), _down(w, 2 * w), _down(2 * w, spatial_dim)])
        self.spatial_res = nn.Sequential(_ResBlock(spatial_dim), _ResBlock(spatial_dim))
        self.decoder = nn.ModuleList([
            _AdaINUp(spatial_dim, 2 * w, exposure_dim),
            _AdaINUp(2 * w, w, exposure_dim),
            _AdaINUp(w, w, exposure_dim),
            _AdaINUp(w, w, exposure_dim, upsample=False),
        ])
        self.to_rgb = nn.Conv2d(w, 3, 3, padding=1)
        self.channels = (w, 2 * w, spatial_dim)

    def encode_exposure(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) LDR -> (B, exposure_dim) global exposure feature."""
        return self.exposure_encoder(x).mean(dim=(2, 3))

    def encode_spatial(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, 3, H, W) -> spatial feature (H/8) and the intermediates at 1/2, 1/4, 1/8."""
        intermediates = []
        for stage in self.spatial_stages:
            x = stage(x)
            intermediates.append(x)
        return self.spatial_res(x), intermediates

    def decode(self, spatial: torch.Tensor, exposure: torch.Tensor) -> torch.Tensor:
        x = spatial
        for block in self.decoder:
            x = block(x, exposure)
        return torch.sigmoid(self.to_rgb(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct an LDR image from its own spatial and exposure features."""
        spatial, _ = self.encode_spatial(x)
        return self.decode(spatial, self.encode_exposure(x))


class DFGModule(nn.Module):
    """Merges three frames' features at one stage: exposure + spatial attention units."""

    def __init__(self, channels: int, guide_channels: int, exposure_dim: int) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(guide_channels + channels, channels, 3, padding=1)
        self.exposure = nn.Linear(exposure_dim, channels)
        self.fuse = nn.Conv2d(2 * channels, channels, 1)
        self.act = nn.PReLU(channels)

    def forward(self, features: list[torch.Tensor], guides: list[torch.Tensor], exposures: list[torch.Tensor]) -> torch.Tensor:
        total = torch.stack(features).sum(0)
        channels = total.shape[1]
        merged_spatial = sum(
            f * torch.sigmoid(self.spatial(torch.cat([g, total], 1))) for f, g in zip(features, guides)
        )
        merged_exposure = sum(
            f * (channels * torch.softmax(self.exposure(e), dim=1))[:, :, None, None] for f, e in zip(features, exposures)
        )
        return self.act(self.fuse(torch.cat([merged_spatial, merged_exposure], 1)))


class _FrameEncoder(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(6, c, 3, padding=1), nn.PReLU(c))
        self.stage2 = nn.Sequential(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.PReLU(2 * c))
        self.stage3 = nn.Sequential(nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1), nn.PReLU(4 * c))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.stage1(x)
        f2 = self.stage2(f1)
        return [f1, f2, self.stage3(f2)]


class DFGNet(MultiExposureNet):
    def __init__(self, channels: int = 64, width: int = 64, exposure_dim: int = 256, spatial_dim: int = 256,
                 merge: bool = False) -> None:
        super().__init__()
        c = channels
        self.disentangle = DisentangleNet(width, exposure_dim, spatial_dim)
        self.encoders = nn.ModuleList(_FrameEncoder(c) for _ in range(3))
        guide = self.disentangle.channels
        self.dfg = nn.ModuleList(DFGModule(c * 2**j, guide[j], exposure_dim) for j in range(3))
        self.up3 = nn.ConvTranspose2d(4 * c, 2 * c, 4, stride=2, padding=1)
        self.dec2 = nn.Sequential(nn.Conv2d(4 * c, 2 * c, 3, padding=1), nn.PReLU(2 * c))
        self.up2 = nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1)
        self.dec1 = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.PReLU(c))
        self.out = nn.Conv2d(c, 3, 3, padding=1)
        self.merge_head = ExposureMergeHead() if merge else None

    def synthesize(self, x: torch.Tensor, reference: int) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, 8)
        n = x.shape[1]
        per_frame = []  # (encoder features, spatial guides, exposure vector) of each frame
        for i in range(n):
            frame = x[:, i]
            encoder = self.encoders[0 if i < reference else 1 if i == reference else 2]
            _, intermediates = self.disentangle.encode_spatial(frame[:, :3])
            guides = [F.interpolate(g, scale_factor=2, mode="bilinear", align_corners=False) for g in intermediates]
            per_frame.append((encoder(frame), guides, self.disentangle.encode_exposure(frame[:, :3])))

        def side(indices: range, part: int, level: int | None) -> torch.Tensor:
            pick = (lambda i: per_frame[i][part]) if level is None else (lambda i: per_frame[i][part][level])  # noqa: E731
            return side_mean([pick(i) for i in indices], pick(reference))

        short, long = range(reference), range(reference + 1, n)
        centre = range(reference, reference + 1)
        exposures = [side(r, 2, None) for r in (short, centre, long)]
        merged = [
            self.dfg[j]([side(r, 0, j) for r in (short, centre, long)], [side(r, 1, j) for r in (short, centre, long)],
                        exposures)
            for j in range(3)
        ]
        y = self.dec2(torch.cat([self.up3(merged[2]), merged[1]], 1))
        y = self.dec1(torch.cat([self.up2(y), merged[0]], 1))
        return ((torch.tanh(self.out(y)) + 1) / 2)[..., :h, :w]


@register_model(
    "dfgnet",
    kind=MULTI_EXPOSURE,
    configs={
        "paper": {"channels": 64, "width": 64, "exposure_dim": 256, "spatial_dim": 256},
        "lite": {"channels": 16, "width": 16, "exposure_dim": 64, "spatial_dim": 64, "merge": True},
    },
    paper="Lee, Jang, Cho: Disentangled Feature-Guided Multi-Exposure High Dynamic Range Imaging (ICASSP 2022)",
    description="disentangled exposure/spatial features guide per-stage attention merging (U-Net)",
)
def dfgnet(**config) -> DFGNet:
    return DFGNet(**config)
