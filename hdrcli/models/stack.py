"""Recursive exposure-stack synthesis for single-image HDR (seed 002).

"End-to-End Differentiable Learning to HDR Image Synthesis for Multi-exposure Images"
(Kim, Lee, Kang; AAAI 2021). From one LDR image, a stop-up and a stop-down network
generate brighter and darker exposures one EV step at a time, recursively; the stack is
merged by the differentiable HDR synthesis layer (:mod:`hdrcli.models.synthesis`).

Each stop network (:class:`StopNet`, one for up, one for down) has three U-Nets with two
convs per level and Swish activations, conditional instance norm (scale/shift chosen by
the recursion step, i.e. the target EV) on every decoder conv:

* global network (5 levels, Conv-GRU at the bottleneck carrying state across steps):
  the global tone of the next exposure;
* local network (4 levels, Conv-GRU bottleneck): the next exposure's edge map (trained
  against Canny edges), from the current image and its gradient magnitude;
* refinement network (same shape as the global one, no Conv-GRU): combines the current
  image, the global image and the edge map into the next exposure.

Input: (B, 3, H, W) display-referred LDR in [0, 1]; any H x W (padded to a multiple of
16, cropped back). Output: (B, 3, H, W) linear HDR, 1.0 = the input's clipping level.
``forward(x, return_stack=True)`` also returns the stack (B, 2T+1, 3, H, W) and its EVs.
The authors' code (~232M parameters) resizes to 256 x 256; here the ``paper`` config
uses their widths (64 ... 1024) and 3 steps each way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hdrcli.models.blocks import ConditionalInstanceNorm2d, ConvGRUCell, Swish, pad_to_multiple
from hdrcli.models.registry import SINGLE_IMAGE, register_model
from hdrcli.models.synthesis import hdr_synthesis


def gradient_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the luminance, (B, 1, H, W), differentiable."""
    luma = (image * image.new_tensor([0.2126, 0.7152, 0.0722])[None, :, None, None]).sum(1, keepdim=True)
    kx = image.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])[None, None] / 4
    padded = F.pad(luma, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(padded, kx), F.conv2d(padded, kx.transpose(-1, -2))
    return torch.sqrt(gx * gx + gy * gy + 1e-8)


class _DecoderLevel(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, conditions: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv1 = nn.Conv2d(cout + cskip, cout, 3, padding=1)
        self.norm1 = ConditionalInstanceNorm2d(cout, conditions)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm2 = ConditionalInstanceNorm2d(cout, conditions)
        self.act = Swish()

    def forward(self, x: torch.Tensor, skip: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        x = self.act(self.reduce(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)))
        x = self.act(self.norm1(self.conv1(torch.cat([x, skip], 1)), condition))
        return self.act(self.norm2(self.conv2(x), condition))


class ConditionalUNet(nn.Module):
    """U-Net, 2 convs per level, Swish, conditional instance norm in the decoder,
    optional Conv-GRU at the bottleneck."""

    def __init__(self, cin: int, cout: int, widths: tuple[int, ...], conditions: int, recurrent: bool) -> None:
        super().__init__()
        act = Swish
        self.encoder = nn.ModuleList()
        prev = cin
        for w in widths:
            self.encoder.append(nn.Sequential(nn.Conv2d(prev, w, 3, padding=1), act(), nn.Conv2d(w, w, 3, padding=1), act()))
            prev = w
        self.gru = ConvGRUCell(widths[-1], widths[-1]) if recurrent else None
        self.decoder = nn.ModuleList(
            _DecoderLevel(widths[i + 1], widths[i], widths[i], conditions) for i in reversed(range(len(widths) - 1))
        )
        self.out = nn.Conv2d(widths[0], cout, 3, padding=1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor, hidden: torch.Tensor | None = None):
        skips = []
        for i, level in enumerate(self.encoder):
            if i:
                x = F.max_pool2d(x, 2)
            x = level(x)
            skips.append(x)
        if self.gru is not None:
            hidden = self.gru(x, hidden)
            x = hidden
        for level, skip in zip(self.decoder, reversed(skips[:-1])):
            x = level(x, skip, condition)
        return self.out(x), hidden


class StopNet(nn.Module):
    """One exposure step (up or down) with global, local and refinement sub-networks."""

    def __init__(self, global_widths: tuple[int, ...], local_widths: tuple[int, ...], steps: int) -> None:
        super().__init__()
        self.global_net = ConditionalUNet(3, 3, global_widths, steps, recurrent=True)
        self.local_net = ConditionalUNet(4, 1, local_widths, steps, recurrent=True)
        self.refine_net = ConditionalUNet(7, 3, global_widths, steps, recurrent=False)

    def forward(self, image: torch.Tensor, step: int, state: tuple | None = None):
        condition = torch.full((image.shape[0],), step, dtype=torch.long, device=image.device)
        h_global, h_local = state if state is not None else (None, None)
        tone, h_global = self.global_net(image, condition, h_global)
        tone = torch.sigmoid(tone)
        edges, h_local = self.local_net(torch.cat([image, gradient_magnitude(image)], 1), condition, h_local)
        edges = torch.sigmoid(edges)
        refined, _ = self.refine_net(torch.cat([image, tone, edges], 1), condition)
        return torch.sigmoid(refined), tone, edges, (h_global, h_local)


class RecursiveStackHDR(nn.Module):
    def __init__(self, global_widths: tuple[int, ...] = (64, 128, 256, 512, 1024),
                 local_widths: tuple[int, ...] = (64, 128, 256, 512), steps: int = 3, ev_step: float = 1.0) -> None:
        super().__init__()
        self.steps, self.ev_step = steps, ev_step
        self.multiple = 2 ** (len(global_widths) - 1)
        self.stop_up = StopNet(global_widths, local_widths, steps)
        self.stop_down = StopNet(global_widths, local_widths, steps)

    def generate_stack(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, list[torch.Tensor]]]:
        """(B, 2T+1, 3, H, W) stack ordered dark to bright, EVs (2T+1,), and the sub-network outputs."""
        ups, downs, extras = [], [], {"tone_up": [], "edge_up": [], "tone_down": [], "edge_down": []}
        for net, out, tag in ((self.stop_up, ups, "up"), (self.stop_down, downs, "down")):
            image, state = x, None
            for step in range(self.steps):
                image, tone, edges, state = net(image, step, state)
                out.append(image)
                extras[f"tone_{tag}"].append(tone)
                extras[f"edge_{tag}"].append(edges)
        # One scene: a longer exposure is never darker, pixel by pixel. Unconstrained, the
        # stop-up frames came out below the input inside clipped lights (0.87-0.96 where the
        # input is 1), and the merge read every light as dim: the output never rose above it.
        for frames, bound in ((ups, torch.maximum), (downs, torch.minimum)):
            previous = x
            for k, frame in enumerate(frames):
                frames[k] = previous = bound(frame, previous)
        stack = torch.stack(downs[::-1] + [x] + ups, dim=1)
        evs = torch.arange(-self.steps, self.steps + 1, dtype=x.dtype, device=x.device) * self.ev_step
        return stack, evs, extras

    def network_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The generated stack alone, (B, 2T+1, 3, H, W) (for tiling, FLOP counting and export)."""
        padded, (h, w) = pad_to_multiple(x, self.multiple)
        return self.generate_stack(padded)[0][..., :h, :w]

    def forward(self, x: torch.Tensor, return_stack: bool = False):
        x, (h, w) = pad_to_multiple(x, self.multiple)
        stack, evs, _ = self.generate_stack(x)
        hdr = hdr_synthesis(stack, evs)[..., :h, :w]
        if return_stack:
            return hdr, stack[..., :h, :w], evs
        return hdr


@register_model(
    "stack",
    kind=SINGLE_IMAGE,
    configs={
        "paper": {"global_widths": (64, 128, 256, 512, 1024), "local_widths": (64, 128, 256, 512), "steps": 3},
        "lite": {"global_widths": (8, 16, 24, 32, 48), "local_widths": (8, 12, 16, 24), "steps": 2},
    },
    paper="Kim, Lee, Kang: End-to-End Differentiable Learning to HDR Image Synthesis for Multi-exposure Images (AAAI 2021)",
    description="recursive stop-up/stop-down stack generation (Conv-GRU, CIN) + differentiable Debevec merge",
)
def stack(**config) -> RecursiveStackHDR:
    return RecursiveStackHDR(**config)
