"""Building blocks shared by the learned architectures.

Tensors are NCHW float32. Every block works on any spatial size unless its docstring
says otherwise (FFT blocks use rfft2/irfft2 with the input's own size).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from hdrcli.models.dft import irfft2, rfft2

GAMMA = 2.2


# ----------------------------------------------------------------------------- helpers

def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the last two dims up to a multiple; returns the padded tensor and (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        flat = x.reshape(-1, *x.shape[-3:]) if x.dim() > 4 else x
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        flat = F.pad(flat, (0, pw, 0, ph), mode=mode)
        x = flat.reshape(*x.shape[:-2], h + ph, w + pw)
    return x, (h, w)


def exposure_input(ldr: torch.Tensor, exposures: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """The field's network input: per frame concat(LDR, LDR**gamma / t).

    Args:
        ldr: (B, N, 3, H, W) display-referred frames in [0, 1], ordered by exposure.
        exposures: (B, N) or (N,) relative exposure times (any unit; divided by the
            shortest so the shortest has t = 1).

    Returns:
        (B, N, 6, H, W): the LDR and its linearised, exposure-normalised version.
    """
    t = exposures if exposures.dim() == 2 else exposures.unsqueeze(0).expand(ldr.shape[0], -1)
    t = t / t.min(dim=1, keepdim=True).values
    linear = ldr.clamp(0, 1) ** gamma / t[:, :, None, None, None]
    return torch.cat([ldr, linear], dim=2)


class Swish(nn.Module):
    """x * sigmoid(x) (Ramachandran et al. 2017), used by the stack networks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)  # = x * sigmoid(x) in one fused kernel (no temporary: ~15% of the stack model's time)


# ----------------------------------------------------------------------------- DO-Conv

class DOConv2d(nn.Module):
    """Depthwise over-parameterised convolution (Cao et al. 2020), for LFFNet.

    The kernel is the composition of a depthwise kernel D (in, k*k, d_mul) and a
    conventional kernel W (out, in, d_mul): W_eff[o, i, s] = sum_d D[i, s, d] W[o, i, d],
    with D initialised to the identity (stored as a learned offset from it). Training
    sees the extra parameters; :meth:`fold` collapses them into one ordinary conv with
    the same output, for inference and export.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, padding: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.k, self.padding = in_ch, out_ch, kernel_size, padding
        mn = kernel_size * kernel_size
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, mn))
        nn.init.kaiming_uniform_(self.weight.view(out_ch, in_ch, kernel_size, kernel_size), a=math.sqrt(5))
        self.depthwise = nn.Parameter(torch.zeros(in_ch, mn, mn))
        self.register_buffer("identity", torch.eye(mn).expand(in_ch, mn, mn).clone(), persistent=False)
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        if bias:
            bound = 1 / math.sqrt(in_ch * mn)
            nn.init.uniform_(self.bias, -bound, bound)

    def effective_weight(self) -> torch.Tensor:
        d = self.depthwise + self.identity
        w = torch.einsum("isd,oid->ois", d, self.weight)
        return w.reshape(self.out_ch, self.in_ch, self.k, self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, padding=self.padding)

    def fold(self) -> nn.Conv2d:
        """An nn.Conv2d computing the same function (no extra parameters)."""
        conv = nn.Conv2d(self.in_ch, self.out_ch, self.k, padding=self.padding, bias=self.bias is not None,
                         device=self.weight.device)
        if self.weight.device.type != "meta":  # meta models (parameter counting) hold no values
            with torch.no_grad():
                conv.weight.copy_(self.effective_weight())
                if self.bias is not None:
                    conv.bias.copy_(self.bias)
        return conv


def fold_do_convs(module: nn.Module) -> nn.Module:
    """Replace every DOConv2d inside ``module`` by its folded nn.Conv2d (in place)."""
    for name, child in list(module.named_children()):
        if isinstance(child, DOConv2d):
            setattr(module, name, child.fold())
        else:
            fold_do_convs(child)
    return module


# ----------------------------------------------------------------------------- frequency blocks

class FFTConv(nn.Module):
    """Global convolution in the frequency domain (Mao et al. 2021's FFT branch).

    rfft2 -> 1x1 conv on stacked real/imaginary parts -> ReLU -> 1x1 conv -> irfft2.
    A 1x1 conv per frequency is a spatially global filter, at 2 * (2C)^2 parameters.
    """

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2 * channels, 2 * channels, 1, bias=bias)
        self.conv2 = nn.Conv2d(2 * channels, 2 * channels, 1, bias=bias)

    # Set by :func:`matrix_dfts` (ONNX export): matrix products instead of torch.fft, the same
    # output, exportable for any size (see hdrcli.models.dft).
    matrix_dft = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.matrix_dft:
            real, imag, layout = rfft2(x.float())
            y = self.conv2(F.relu(self.conv1(torch.cat([real, imag], dim=1))))
            real, imag = y.chunk(2, dim=1)
            return irfft2(real, imag, layout).to(x.dtype)
        h, w = x.shape[-2:]
        spectrum = torch.fft.rfft2(x.float(), norm="backward")
        y = torch.cat([spectrum.real, spectrum.imag], dim=1)
        y = self.conv2(F.relu(self.conv1(y)))
        real, imag = y.chunk(2, dim=1)
        return torch.fft.irfft2(torch.complex(real, imag), s=(h, w), norm="backward").to(x.dtype)


@contextlib.contextmanager
def matrix_dfts(model: nn.Module) -> Iterator[None]:
    """Within the block, ``model``'s :class:`FFTConv` layers use :mod:`hdrcli.models.dft`'s
    transforms instead of torch.fft (for ONNX export with dynamic sizes)."""
    layers = [m for m in model.modules() if isinstance(m, FFTConv)]
    for layer in layers:
        layer.matrix_dft = True
    try:
        yield
    finally:
        for layer in layers:
            del layer.matrix_dft


class ResidualFFTBlock(nn.Module):
    """Residual FFT block: x + spatial(x) + FFTConv(x) (LFFNet's merging unit).

    The spatial path is conv3x3 -> ReLU -> conv3x3 (DO-Conv when ``do_conv``), no bias.
    """

    def __init__(self, channels: int, do_conv: bool = True) -> None:
        super().__init__()
        conv = (lambda: DOConv2d(channels, channels, 3, 1, bias=False)) if do_conv else (
            lambda: nn.Conv2d(channels, channels, 3, padding=1, bias=False))
        self.spatial = nn.Sequential(conv(), nn.ReLU(inplace=True), conv())
        self.frequency = FFTConv(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.spatial(x) + self.frequency(x)


# ----------------------------------------------------------------------------- dense / attention blocks

class ResidualDenseBlock(nn.Module):
    """Residual dense block (Zhang et al. 2018): densely connected 3x3 convs, 1x1 fusion, residual.

    ``dilation`` > 1 gives AHDRNet's dilated variant.
    """

    def __init__(self, channels: int, layers: int = 6, growth: int = 32, dilation: int = 1,
                 act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Conv2d(channels + i * growth, growth, 3, padding=dilation, dilation=dilation) for i in range(layers)
        )
        self.act = act()
        self.fuse = nn.Conv2d(channels + layers * growth, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in self.layers:
            features.append(self.act(conv(torch.cat(features, dim=1))))
        return x + self.fuse(torch.cat(features, dim=1))


class SpatialAttention(nn.Module):
    """Spatial attention: x * sigmoid(conv(ReLU(conv(x)))), one mask channel for all features."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mask = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.mask(x))


class RDAB(nn.Module):
    """Residual dense attention block (two-stage network): X' = R(X) + S(X).

    R is a residual dense block, S a spatial attention block, both applied to X.
    """

    def __init__(self, channels: int = 64, layers: int = 6, growth: int = 32) -> None:
        super().__init__()
        self.dense = ResidualDenseBlock(channels, layers, growth)
        self.attention = SpatialAttention(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x) + self.attention(x)


# ----------------------------------------------------------------------------- recurrent / normalisation

class ConvGRUCell(nn.Module):
    """Convolutional GRU (Ballas et al. 2016): GRU gates computed by 3x3 convolutions."""

    def __init__(self, in_ch: int, hidden_ch: int) -> None:
        super().__init__()
        self.hidden_ch = hidden_ch
        self.gates = nn.Conv2d(in_ch + hidden_ch, 2 * hidden_ch, 3, padding=1)
        self.candidate = nn.Conv2d(in_ch + hidden_ch, hidden_ch, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_ch, *x.shape[-2:])
        update, reset = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], 1)))
        return (1 - update) * h + update * candidate


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with scale/shift chosen by a condition index (here: the EV step).

    Y = gamma_e * (X - mean) / std + beta_e, statistics over the spatial axes.
    """

    def __init__(self, channels: int, n_conditions: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(n_conditions, channels)
        self.beta = nn.Embedding(n_conditions, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        g = self.gamma(condition)[:, :, None, None]
        b = self.beta(condition)[:, :, None, None]
        return g * self.norm(x) + b


def adain(content: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie 2017) with given (B, C) scale/shift."""
    mean = content.mean(dim=(2, 3), keepdim=True)
    std = content.var(dim=(2, 3), keepdim=True, unbiased=False).add(eps).sqrt()
    return (content - mean) / std * scale[:, :, None, None] + shift[:, :, None, None]


# ----------------------------------------------------------------------------- transformer

class LayerNorm2d(nn.Module):
    """LayerNorm over channels of an NCHW tensor."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ChannelSelfAttention(nn.Module):
    """Multi-head 'transposed' self-attention across channels (Zamir et al. 2022, Restormer).

    Attention maps are C/heads x C/heads per head, so cost grows linearly with pixel
    count and any image size works. Q, K, V come from a 1x1 then a depthwise 3x3 conv.
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        self.qkv_dw = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=False)
        self.project = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attention = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project((attention @ v).reshape(b, c, h, w))


class GatedFeedForward(nn.Module):
    """Gated depthwise-conv feed-forward network (Restormer's GDFN)."""

    def __init__(self, channels: int, expansion: float = 2.0) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.expand = nn.Conv2d(channels, 2 * hidden, 1, bias=False)
        self.dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=False)
        self.project = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dw(self.expand(x)).chunk(2, dim=1)
        return self.project(F.gelu(a) * b)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + FFN(norm(x))."""

    def __init__(self, channels: int, heads: int, expansion: float = 2.0) -> None:
        super().__init__()
        self.norm1, self.norm2 = LayerNorm2d(channels), LayerNorm2d(channels)
        self.attention = ChannelSelfAttention(channels, heads)
        self.ffn = GatedFeedForward(channels, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class AttentionMask(nn.Module):
    """AHDRNet-style alignment attention: sigmoid(conv(act(conv(concat(F_i, F_ref)))))."""

    def __init__(self, channels: int, act: type[nn.Module] = nn.LeakyReLU) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1)
        self.conv2 = nn.Conv2d(2 * channels, channels, 3, padding=1)
        self.act = act()

    def forward(self, features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv2(self.act(self.conv1(torch.cat([features, reference], 1)))))


# ----------------------------------------------------------------------------- any number of frames

def relative_times(x: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """(B, N) relative exposure times (shortest = 1) recovered from an :func:`exposure_input` tensor.

    The input holds LDR and LDR**gamma / t, so sum(LDR**gamma) / sum(linear) is t exactly;
    an all-black frame (no information) gets t = 1, where its merge weight is 0 anyway.
    """
    ldr, linear = x[:, :, :3].clamp(0.0, 1.0), x[:, :, 3:6]
    eps = 1e-12
    return ((ldr**gamma).sum(dim=(2, 3, 4)) + eps) / (linear.sum(dim=(2, 3, 4)) + eps)


def reference_index(frames: int, reference: int | None) -> int:
    """The reference frame's index: ``reference``, or the middle exposure (frames // 2)."""
    index = frames // 2 if reference is None else int(reference)
    if not 0 <= index < frames:
        raise ValueError(f"reference index {index} outside a bracket of {frames} frames")
    return index


def side_mean(items: list[torch.Tensor], fallback: torch.Tensor) -> torch.Tensor:
    """Permutation-invariant aggregate of the frames on one side of the reference: their mean.

    With one frame per side this is that frame, so a three-frame network keeps its
    weights; an empty side (two frames, or the reference at an end of the bracket) gives
    ``fallback`` (the reference's own features: "nothing more was seen on this side").
    """
    if not items:
        return fallback
    return items[0] if len(items) == 1 else torch.stack(items).mean(0)


def box_sum(x: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Sum of x (B, C, H, W) over the (2 radius + 1)^2 window around each pixel, zeros outside.

    As shifted slices of a padded copy: on a CPU 7x faster than ``avg_pool2d`` (whose 5x5
    kernel reads 25 values per pixel; 3 of them were a third of the merge head's time).
    """
    h, w, k = x.shape[-2], x.shape[-1], 2 * radius + 1
    padded = F.pad(x, (radius, radius, radius, radius))
    rows = padded[..., 0:h, :]
    for i in range(1, k):
        rows = rows + padded[..., i : i + h, :]
    out = rows[..., 0:w]
    for i in range(1, k):
        out = out + rows[..., i : i + w]
    return out


def _triangle(z: torch.Tensor) -> torch.Tensor:
    """Debevec's hat on [0, 1], peak 1 at mid-grey, 0 at black and at clipping (codes 0 and 255)."""
    code = z * 255.0
    return torch.where(code < 128.0, code, 255.0 - code) / 128.0


class ExposureMergeHead(nn.Module):
    """The network's output as a merge of the frames themselves, with its synthesis only where no frame saw.

    Why: a small network cannot reproduce radiance to the precision the frames hold, and
    on real brackets a synthesis invents content (fog, smears) where every frame recorded
    the scene. So, per pixel (all in the shortest exposure's units):

    * each frame i has the weight of hdrcli's Debevec merge (guarded hat on its pixel
      values, x (t_i / t_max) ** EXPOSURE_WEIGHT_POWER: the longest unclipped frame
      dominates the shadows) times a ghost confidence c_i; the reference has c = 1;
    * where the reference measured the pixel, c_i compares frame i with it:
      sigmoid(k (tau - d_i)) / sigmoid(k tau), d_i the 5x5 mean (over pixels both frames
      measured) of the |log| ratio of their linear values with a noise offset of 3% of
      frame i's clipping level (k, tau learned; an agreeing frame keeps its full weight);
      where the reference is clipped or crushed, a small learned gate on (frame i, the
      reference, the synthesis S rendered at frame i's exposure) decides, initialised to
      trust every frame (a region that only one frame shows is that frame);
    * the frame merge M = sum w_i L_i / sum w_i (L_i = the frame's linear values);
    * the synthesis share alpha = 1 - min(1, sum_i u_i c_i), u_i in [0, 1] the frame's
      usability: 0 where its brightest channel is clipped (code >= CLIPPED) or crushed
      (code <= CRUSHED), 1 a few codes inside those ends. So
      alpha is 0 wherever one consistent frame measured the pixel, and 1 where every frame
      is clipped, crushed or ghosted. The brightest channel, not the darkest, decides:
      night shots have a channel below code 32 in half their pixels, and those are
      measurements (noisy ones, weighted down by the merge), not missing data;
    * output = (1 - alpha) M + alpha S.

    In static, well-exposed regions the output is therefore the frames' noise-weighted
    merge whatever the network does; the network decides only ghosts where the reference
    cannot (the gate) and the pixels no frame shows (S).
    """

    # 8-bit codes of a frame's brightest channel: usability ramps from 0 at CLIPPED up to 1
    # HIGH_RAMP codes below it, and from 0 at CRUSHED up to 1 LOW_RAMP codes above it (a dark
    # night sky at code 6 in the longest frame is a measurement, not missing data).
    CLIPPED, HIGH_RAMP, CRUSHED, LOW_RAMP = 250.0, 12.0, 1.0, 4.0

    def __init__(self, ghost_scale: float = 12.0, ghost_threshold: float = 0.35, gate_channels: int = 16) -> None:
        super().__init__()
        self.log_ghost_scale = nn.Parameter(torch.tensor(math.log(ghost_scale)))
        self.ghost_threshold = nn.Parameter(torch.tensor(float(ghost_threshold)))
        c = gate_channels
        self.gate = nn.Sequential(nn.Conv2d(11, c, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(c, c, 3, padding=1),
                                  nn.LeakyReLU(0.2), nn.Conv2d(c, 1, 3, padding=1))
        nn.init.normal_(self.gate[-1].weight, std=1e-3)  # near zero, but gradients reach every layer
        nn.init.constant_(self.gate[-1].bias, 6.0)  # sigmoid(6) = 0.998: trust every frame at first

    def maps(self, synthesis: torch.Tensor, x: torch.Tensor, reference: int, codes: torch.Tensor | None = None,
             learned: torch.Tensor | None = None, t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights (B, N, H, W) of the frames in the output, synthesis share alpha (B, 1, H, W)).

        The frame weights and alpha sum to 1 at every pixel. ``codes`` (B, N, 3, H, W): the
        frames' pixel values as the camera recorded them, before the re-encoding to gamma 2.2
        (default: the network input's). The hat weights and the shadow power read them: a
        pixel's noise depends on the camera's own code. Usability (clipped / crushed) stays on
        the re-encoded codes, as the gate was trained (clipping is the same in both; reading it
        from the recorded codes too cost ~1 dB of simulated motion). Why: the iPhone's curve puts mid-grey 5.4 stops below white (gamma 2.2: 2.2), so
        its mid-tones re-encoded look dark, and weights on the re-encoded codes handed them to
        the long frame: the same Debevec merge scored 26.81 dB re-exposure on its reference
        frame with weights on re-encoded codes, 28.99 on the camera's.
        ``learned``: the gate's maps, when computed apart (:meth:`gate_confidence`); ``t``:
        :func:`relative_times` of x, if known.
        """
        t = relative_times(x) if t is None else t
        return self.merge_maps(x, self.confidence(synthesis, x, reference, learned, t), codes, t)

    def _usability(self, ldr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(usable, unclipped, uncrushed) (B, N, H, W) from the re-encoded frames' brightest channel."""
        code = ldr.amax(dim=2) * 255.0  # usability as trained: on the re-encoded frames (clipping is the same)
        unclipped = ((self.CLIPPED - code) / self.HIGH_RAMP).clamp(0.0, 1.0)
        uncrushed = ((code - self.CRUSHED) / self.LOW_RAMP).clamp(0.0, 1.0)
        return torch.minimum(unclipped, uncrushed), unclipped, uncrushed

    def merge_maps(self, x: torch.Tensor, confidence: torch.Tensor, codes: torch.Tensor | None = None,
                   t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights, alpha) as :meth:`maps`, from a ghost ``confidence`` (B, N, H, W) in [0, 1].

        Everything here is per pixel (the spatial parts are in :meth:`confidence`).
        ``t``: :func:`relative_times` of x, if known.
        """
        from hdrcli.merge.classical import EXPOSURE_WEIGHT_POWER, SHADOW_WEIGHT_POWER

        ldr = x[:, :, :3].clamp(0.0, 1.0)
        n = x.shape[1]
        t = relative_times(x) if t is None else t
        recorded = ldr if codes is None else codes.clamp(0.0, 1.0)
        z_max, z_min = recorded.amax(dim=2), recorded.amin(dim=2)  # (B, N, H, W)
        high, low = _triangle(z_max), _triangle(z_min)
        usable, unclipped, uncrushed = self._usability(ldr)
        # The shortest frame's clipped pixels and the longest frame's crushed ones are still
        # the best measurement of the scene there (a lower / upper bound at the bracket's
        # limits, where the ground truth itself is clipped): they keep the synthesis out.
        end_bound = torch.cat([uncrushed[:, :1], torch.zeros_like(usable[:, 1:-1]), unclipped[:, -1:]], 1) if n > 1 else usable
        bounded = torch.maximum(usable, end_bound)
        # Guarded weights: the shortest frame keeps its weight in highlights and the longest
        # in shadows, so pixels clipped (crushed) everywhere still come from the best frame.
        guard_high = torch.zeros(n, device=x.device)
        guard_high[0] = 1.0
        guard_low = torch.zeros(n, device=x.device)
        guard_low[-1] = 1.0
        high_g = torch.maximum(torch.where(z_max < 0.5, torch.ones_like(high), high), guard_high[None, :, None, None])
        low_g = torch.maximum(torch.where(z_min > 0.5, torch.ones_like(low), low), guard_low[None, :, None, None])
        # A frame's dark pixels (brightest channel below mid-grey) count with (t / t_max) ** 1, the
        # shot-noise optimum: a long bracket's short frames sit on the black pedestal there, and
        # even small weights on 8+ of them outvoted the long frames (Memorial, 16 frames: R/G
        # 0.30 of memorial.hdr's in its darkest quarter). Brighter pixels keep the classical power.
        relative = (t / t.amax(dim=1, keepdim=True))[:, :, None, None]
        shadow = ((0.5 - z_max) / 0.25).clamp(0.0, 1.0)
        power = EXPOSURE_WEIGHT_POWER + (SHADOW_WEIGHT_POWER - EXPOSURE_WEIGHT_POWER) * shadow
        # relative ** power as exp(power log relative): pow with a per-pixel exponent is 3x slower.
        weight = torch.minimum(high_g, low_g).clamp(min=1e-4) * torch.exp(power * relative.log()) * confidence
        weight = weight / weight.sum(dim=1, keepdim=True)
        alpha = 1.0 - (bounded * confidence).sum(dim=1, keepdim=True).clamp(max=1.0)
        return weight * (1.0 - alpha), alpha

    def _evidence(self, x: torch.Tensor, reference: int, t: torch.Tensor | None = None):
        """(ldr, linear, relative times, usability, trust): what the ghost tests read. ``trust``
        (B, 1, H, W) is the 5x5 share of the reference's usable pixels around each one."""
        ldr, linear = x[:, :, :3].clamp(0.0, 1.0), x[:, :, 3:6]
        usable = self._usability(ldr)[0]
        ref_usable = usable[:, reference : reference + 1]
        trust = box_sum(ref_usable) / box_sum(torch.ones_like(ref_usable))  # mean over the pixels inside the image
        return ldr, linear, relative_times(x) if t is None else t, usable, trust

    def confidence(self, synthesis: torch.Tensor, x: torch.Tensor, reference: int,
                   learned: torch.Tensor | None = None, t: torch.Tensor | None = None) -> torch.Tensor:
        """Each frame's ghost confidence c_i (B, N, H, W) in [0, 1]; the reference's is 1.

        Where the reference measured the pixel: agreement with it (the classical test; k and
        tau learned). Elsewhere nothing but the network can tell a ghost: a small learned
        gate on (frame, reference, synthesis rendered at the frame's exposure), initialised
        to trust every frame (so a scene only one frame shows is that frame, not the synthesis).
        ``learned``: the gate's maps, when computed apart (:meth:`gate_confidence`); ``t``:
        :func:`relative_times` of x, if known.
        """
        ldr, linear, t, usable, trust = self._evidence(x, reference, t)
        n = x.shape[1]
        ref_usable = usable[:, reference : reference + 1]
        offset = (0.03 / t)[:, :, None, None, None]
        ref_linear = linear[:, reference : reference + 1]
        distance = (torch.log(linear + offset) - torch.log(ref_linear + offset)).abs().mean(dim=2)
        # Mean over 5x5 of the pixels both frames measured (clipped or black pixels say
        # nothing about motion).
        evidence = usable * ref_usable + 1e-3
        distance = box_sum(distance * evidence) / box_sum(evidence)
        k = self.log_ghost_scale.exp()
        # Normalised so that a frame in exact agreement has confidence 1 (its plain merge weight).
        tested = (torch.sigmoid(k * (self.ghost_threshold - distance)) / torch.sigmoid(k * self.ghost_threshold)).clamp(max=1.0)
        if learned is None:
            learned = self._gate_maps(synthesis, ldr, usable, t, trust, reference)
        confidence = trust * tested + (1.0 - trust) * learned
        is_ref = torch.zeros(n, device=x.device)
        is_ref[reference] = 1.0
        return torch.maximum(confidence, is_ref[None, :, None, None])

    def gate_confidence(self, synthesis: torch.Tensor, x: torch.Tensor, reference: int) -> torch.Tensor:
        """The learned gate's maps (B, N, H, W) alone, 1 where it does not run: for the runtime,
        which runs the gate at reduced resolution and upsamples it (1, the gate's prior, is the
        neutral value where full-resolution pixels need it and the reduced ones did not)."""
        ldr, _, t, usable, trust = self._evidence(x, reference)
        return self._gate_maps(synthesis, ldr, usable, t, trust, reference, outside=1.0)

    GATE_REACH = 3  # pixels the gate sees around each one (three 3x3 convolutions)

    def _gate_maps(self, synthesis: torch.Tensor, ldr: torch.Tensor, usable: torch.Tensor, t: torch.Tensor,
                   trust: torch.Tensor, reference: int, outside: float = 0.0) -> torch.Tensor:
        """The learned gate's confidence (B, N, H, W) in each frame, wherever it counts (``outside`` elsewhere).

        The gate only counts where ``trust`` < 1 (the reference is clipped or crushed within
        2 pixels), and never for the reference (its confidence is 1). So it runs on the other
        frames, over the bounding box of those pixels widened by its reach, and is ``outside``
        elsewhere: the same output as everywhere, at a fraction of the head's cost (on a
        hand-held phone bracket, 1 of 3 frames' convolutions over part of the image). Traced
        or compiled graphs (ONNX export) cannot depend on the data: they run the gate on the
        whole image.
        """
        b, n, h, w = usable.shape
        y0, y1, x0, x1 = 0, h, 0, w
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()):
            needed = (trust < 1.0).any(dim=0)[0]
            if not bool(needed.any()) or n == 1:
                return torch.full_like(usable, outside)
            rows, cols = needed.any(dim=1).nonzero()[:, 0], needed.any(dim=0).nonzero()[:, 0]
            r = self.GATE_REACH
            y0, y1 = max(0, int(rows[0]) - r), min(h, int(rows[-1]) + 1 + r)
            x0, x1 = max(0, int(cols[0]) - r), min(w, int(cols[-1]) + 1 + r)
        others = [i for i in range(n) if i != reference]
        box = (..., slice(y0, y1), slice(x0, x1))
        pick = torch.tensor(others, device=ldr.device)
        m = len(others)
        frames = ldr[box].index_select(1, pick)
        rendered = ((synthesis.detach()[box][:, None] * t.index_select(1, pick)[:, :, None, None, None])
                    .clamp(0.0, 1.0) ** (1.0 / GAMMA))
        ref_ldr = ldr[box][:, reference : reference + 1].expand(-1, m, -1, -1, -1)
        ref_usable = usable[box][:, reference : reference + 1, None].expand(-1, m, -1, -1, -1)
        gate_input = torch.cat([frames, ref_ldr, rendered, usable[box].index_select(1, pick)[:, :, None], ref_usable],
                               dim=2)
        learned = torch.sigmoid(self.gate(gate_input.flatten(0, 1))).view(b, m, y1 - y0, x1 - x0)
        learned = F.pad(learned, (x0, w - x1, y0, h - y1), value=outside)
        # The reference's slot: any value (its confidence is raised to 1).
        parts = [learned[:, :reference], torch.ones_like(learned[:, :1]), learned[:, reference:]]
        return torch.cat(parts, dim=1)

    @staticmethod
    def compose(weights: torch.Tensor, alpha: torch.Tensor, synthesis: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The output from :meth:`maps`: frames' linear values and the synthesis, weighted."""
        return (weights[:, :, None] * x[:, :, 3:6].clamp(0.0, 1.0)).sum(1) + alpha * synthesis

    def forward(self, synthesis: torch.Tensor, x: torch.Tensor, reference: int,
                codes: torch.Tensor | None = None) -> torch.Tensor:
        """synthesis (B, 3, H, W) in [0, 1]; x (B, N, 6, H, W) network input -> (B, 3, H, W);
        ``codes``: see :meth:`maps`."""
        return self.compose(*self.maps(synthesis, x, reference, codes), synthesis, x)


class MultiExposureNet(nn.Module):
    """Base of the bracket networks: any number of frames, optional :class:`ExposureMergeHead`.

    Subclasses implement ``synthesize(x, reference) -> (B, 3, H, W)`` in [0, 1]; ``self.merge_head``
    is the head (``lite`` configs) or None (``paper`` configs: the paper's direct output).
    """

    # Set by subclasses in __init__ (no class-level default: nn.Module registers submodules
    # in _modules, and a class attribute would shadow them).
    merge_head: ExposureMergeHead | None

    def synthesize(self, x: torch.Tensor, reference: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, reference: int | None = None, return_maps: bool = False,
                return_synthesis: bool = False, codes: torch.Tensor | None = None):
        """x (B, N, 6, H, W), frames by exposure (:func:`exposure_input`); ``reference``: its index
        (default the middle frame). Returns (B, 3, H, W) linear HDR in the shortest frame's
        units, or with ``return_maps`` (B, 3 + N + 1, H, W): the HDR, each frame's weight in
        it and the synthesis share (zeros and ones without a merge head). ``return_synthesis``
        (training): (output, synthesis). ``codes``: the frames as recorded, before the
        re-encoding to gamma 2.2, for the merge head's weights (:meth:`ExposureMergeHead.maps`)."""
        r = reference_index(x.shape[1], reference)
        synthesis = self.synthesize(x, r)
        if return_synthesis:
            output = synthesis if self.merge_head is None else self.merge_head(synthesis, x, r, codes)
            return output, synthesis
        return self.head_output(synthesis, x, r, return_maps, codes)

    def reduced_maps(self, x: torch.Tensor, reference: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(synthesis, the merge head's ghost-gate maps) of x: the part the runtime runs once on the
        reduced bracket of a large photo (torch, or the ONNX synthesis export of it)."""
        synthesis = self.synthesize(x, reference)
        return synthesis, self.merge_head.gate_confidence(synthesis, x, reference)

    def head_output(self, synthesis: torch.Tensor, x: torch.Tensor, reference: int, return_maps: bool = False,
                    codes: torch.Tensor | None = None) -> torch.Tensor:
        """The output from a synthesis (B, 3, H, W) and the frames x (see :meth:`forward`).

        The runtime calls this on its own for large photos, with a synthesis computed at
        reduced resolution and upsampled (the merge head itself is local: a few pixels)."""
        if self.merge_head is None:
            if not return_maps:
                return synthesis
            b, n, _, h, w = x.shape
            return torch.cat([synthesis, synthesis.new_zeros(b, n, h, w), synthesis.new_ones(b, 1, h, w)], 1)
        return self.gated_output(synthesis, None, x, reference, return_maps, codes)

    def gated_output(self, synthesis: torch.Tensor, learned: torch.Tensor | None, x: torch.Tensor, reference: int,
                     return_maps: bool = False, codes: torch.Tensor | None = None,
                     t: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`head_output` with the learned gate's maps given (see
        :meth:`ExposureMergeHead.gate_confidence`; None: computed here). The rest of the head
        is per pixel or 5x5: the runtime feeds it a synthesis and gate maps computed at
        reduced resolution and upsampled, tile by tile, and it stays exact over tiles.
        ``t``: the frames' relative exposures (B, N), shortest 1, when the caller knows them
        (else recovered from x, :func:`relative_times`: a pass over every tile)."""
        weights, alpha = self.merge_head.maps(synthesis, x, reference, codes, learned, t)
        output = self.merge_head.compose(weights, alpha, synthesis, x)
        return torch.cat([output, weights, alpha], 1) if return_maps else output
