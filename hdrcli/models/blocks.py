"""Building blocks shared by the learned architectures.

Tensors are NCHW float32. Every block works on any spatial size unless its docstring
says otherwise (FFT blocks use rfft2/irfft2 with the input's own size).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

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
        ldr: (B, N, 3, H, W) display-referred frames in [0, 1], ordered by exposure,
            reference in the middle.
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        spectrum = torch.fft.rfft2(x.float(), norm="backward")
        y = torch.cat([spectrum.real, spectrum.imag], dim=1)
        y = self.conv2(F.relu(self.conv1(y)))
        real, imag = y.chunk(2, dim=1)
        return torch.fft.irfft2(torch.complex(real, imag), s=(h, w), norm="backward").to(x.dtype)


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


# ----------------------------------------------------------------------------- output heads

class BlendHead(nn.Module):
    """Output as a per-pixel convex blend of the linearised frames and the network's own synthesis.

    Why: on static held-out brackets a fixed-weight merge of the (self-calibrated,
    gamma-2.2 re-encoded) frames scores 38.5 dB PSNR-mu, while the direct sigmoid output of
    lffnet-lite scores 30.6: a small network cannot *synthesise* radiance to the precision
    the frames already hold. Kalantari & Ramamoorthi (2017) made the same observation for
    their weight-estimator variant. This head predicts softmax weights over
    ``frames`` + 1 candidates: each frame's linear values (channels 3:6 of the input,
    LDR**2.2 / t, shortest exposure's units) and the network's synthesis (for pixels that
    no frame shows cleanly: ghosts, clipping in every frame). The weights are shared by
    the three colour channels.

    Initialised to favour the synthesis (weight ~0.95), so a model trained without the head
    starts from its old output and fine-tuning only has to learn where the frames are better.
    """

    def __init__(self, channels: int, frames: int = 3, synthesis_bias: float = 4.0) -> None:
        super().__init__()
        self.logits = nn.Conv2d(channels, frames + 1, 3, padding=1)
        nn.init.zeros_(self.logits.weight)
        with torch.no_grad():
            self.logits.bias.zero_()
            self.logits.bias[-1] = synthesis_bias

    def forward(self, features: torch.Tensor, synthesis: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """features (B, C, H, W); synthesis (B, 3, H, W) in [0, 1]; x (B, N, 6, H, W) network input."""
        weights = torch.softmax(self.logits(features), dim=1)
        frames = x[:, :, 3:6].clamp(0.0, 1.0)
        blended = (weights[:, :-1, None] * frames).sum(1)
        return blended + weights[:, -1:] * synthesis
