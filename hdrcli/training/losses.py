"""Loss functions of the five papers, in torch (differentiable everywhere they are used).

Conventions: HDR tensors are linear, non-negative, (B, 3, H, W), in the shortest
exposure's units (mostly [0, 1]); mu-law uses mu = 5000.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

MU = 5000.0


def mu_law(hdr: torch.Tensor, mu: float = MU) -> torch.Tensor:
    """T(H) = log(1 + mu H) / log(1 + mu), H clamped to [0, 1]."""
    return torch.log1p(mu * hdr.clamp(0, 1)) / math.log1p(mu)


def mu_law_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between mu-law tone-mapped prediction and target (Kalantari 2017; all seeds)."""
    return F.l1_loss(mu_law(pred), mu_law(target))


# ----------------------------------------------------------------------------- TUnet

class GravitatedLatentSpaceLoss(nn.Module):
    """Gravitated latent space loss (seed 000) with a parameterisation that is a distance.

    The poster writes l = (T(x) T(y)) M (T(x) T(y))^T with a learned 2x2 metric tensor
    M = [[s(g1), s(g2)], [s(g3), s(g4)]], s the sigmoid, T the tone map. Taken literally
    that is not a loss: it is positive at y = x. Requiring q(a, b) = [a b] M [a b]^T >= 0
    for all (a, b) and q(a, a) = 0 for all a forces the symmetric part of M to be
    lambda [[1, -1], [-1, 1]], i.e. q = lambda (a - b)^2: on the pair (T(x), T(y)) the only
    valid metric is a scaled squared error, and learning it learns nothing.

    So the metric acts on a 2-vector of *differences* between prediction and target in
    two latent coordinates, tone-mapped and linear:

        d = (T(x) - T(y), x - y),      l = mean(d^T M d)

    with M symmetric positive definite by construction:

        m11 = s(g1), m22 = s(g4), m12 = m21 = (s(g2) + s(g3) - 1) sqrt(m11 m22),

    (|s(g2) + s(g3) - 1| < 1, so det M > 0), normalised to det M = 1 so that training
    cannot shrink the loss by shrinking M: with det fixed, minimising over M weighs the two
    error coordinates against their spread (for a fixed error covariance S the minimum is
    2 sqrt(det S)). Hence l >= 0, l = 0 iff x = y (every pixel), and the four g_k are
    trained with the network, as in the poster.
    """

    def __init__(self, mu: float = MU) -> None:
        super().__init__()
        self.mu = mu
        self.g = nn.Parameter(torch.zeros(4))

    def metric(self) -> torch.Tensor:
        s = torch.sigmoid(self.g)
        m11, m22 = s[0], s[3]
        m12 = (s[1] + s[2] - 1.0) * torch.sqrt(m11 * m22)
        m = torch.stack([torch.stack([m11, m12]), torch.stack([m12, m22])])
        return m / torch.sqrt(torch.det(m))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d_tone = mu_law(pred, self.mu) - mu_law(target, self.mu)
        d_lin = pred - target
        m = self.metric()
        return (m[0, 0] * d_tone**2 + 2 * m[0, 1] * d_tone * d_lin + m[1, 1] * d_lin**2).mean()


# ----------------------------------------------------------------------------- two-stage

_SRGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                             [0.2126729, 0.7151522, 0.0721750],
                             [0.0193339, 0.1191920, 0.9503041]])
_D65 = torch.tensor([0.95047, 1.0, 1.08883])


def highlight_log_l1(pred: torch.Tensor, target: torch.Tensor, ldr: torch.Tensor, tau: float = 0.95,
                     eps: float = 1e-3) -> torch.Tensor:
    """Mean L1 of log luminance over the pixels an LDR input clipped (HDRCNN's blend weight:
    max channel above ``tau``, ramped to 1 at clipping).

    The mu-law losses see a clipped light as a few pixels of an image and settle for a flat
    value just above the clipping level (1.2-1.3 on real photos); in log terms a light 10x
    too dark costs the same at any brightness, so the networks learn to expand.

    Args:
        pred, target: (B, 3, H, W) linear radiance, 1 = the input's clipping level.
        ldr: (B, 3, H, W) the input in [0, 1].
    """
    alpha = ((ldr.amax(1, keepdim=True) - tau) / (1 - tau)).clamp(0, 1)
    log_pred = torch.log(pred.clamp_min(0).mean(1, keepdim=True) + eps)
    log_target = torch.log(target.mean(1, keepdim=True) + eps)
    return (alpha * (log_pred - log_target).abs()).sum() / alpha.sum().clamp_min(1.0)


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded (B, 3, H, W) in [0, 1] -> CIELAB (D65), differentiable."""
    rgb = rgb.clamp(0, 1)
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055).clamp_min(1e-12) ** 2.4)
    xyz = torch.einsum("ij,bjhw->bihw", _SRGB_TO_XYZ.to(rgb), linear) / _D65.to(rgb)[None, :, None, None]
    eps, kappa = 216 / 24389, 24389 / 27
    f = torch.where(xyz > eps, xyz.clamp_min(1e-12) ** (1 / 3), (kappa * xyz + 16) / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005) of (..., 3, ...) Lab tensors on dim 1.

    Differentiable: square roots and atan2 are guarded so gradients stay finite at
    neutral colours (a = b = 0), where the hue is undefined.
    """
    eps = 1e-10
    l1, a1, b1 = lab1.unbind(1)
    l2, a2, b2 = lab2.unbind(1)
    c1 = torch.sqrt(a1**2 + b1**2 + eps)
    c2 = torch.sqrt(a2**2 + b2**2 + eps)
    c_bar7 = ((c1 + c2) / 2) ** 7
    g = 0.5 * (1 - torch.sqrt(c_bar7 / (c_bar7 + 25.0**7) + eps))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p = torch.sqrt(a1p**2 + b1**2 + eps)
    c2p = torch.sqrt(a2p**2 + b2**2 + eps)
    h1p = torch.remainder(torch.atan2(b1, a1p + eps), 2 * math.pi)
    h2p = torch.remainder(torch.atan2(b2, a2p + eps), 2 * math.pi)
    d_lp = l2 - l1
    d_cp = c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - 2 * math.pi, torch.where(dh < -math.pi, dh + 2 * math.pi, dh))
    d_hp = 2 * torch.sqrt(c1p * c2p) * torch.sin(dh / 2)
    l_bar = (l1 + l2) / 2
    c_bar_p = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = torch.where(torch.abs(h1p - h2p) > math.pi,
                        torch.where(h_sum < 2 * math.pi, (h_sum + 2 * math.pi) / 2, (h_sum - 2 * math.pi) / 2),
                        h_sum / 2)
    t = (1 - 0.17 * torch.cos(h_bar - math.radians(30)) + 0.24 * torch.cos(2 * h_bar)
         + 0.32 * torch.cos(3 * h_bar + math.radians(6)) - 0.20 * torch.cos(4 * h_bar - math.radians(63)))
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_bar) - 275) / 25) ** 2))
    c_bar_p7 = c_bar_p**7
    r_c = 2 * torch.sqrt(c_bar_p7 / (c_bar_p7 + 25.0**7) + eps)
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / torch.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * c_bar_p
    s_h = 1 + 0.015 * c_bar_p * t
    r_t = -torch.sin(2 * d_theta) * r_c
    return torch.sqrt(
        (d_lp / s_l) ** 2 + (d_cp / s_c) ** 2 + (d_hp / s_h) ** 2 + r_t * (d_cp / s_c) * (d_hp / s_h) + eps
    )


def color_loss_ciede2000(pred_srgb: torch.Tensor, target_srgb: torch.Tensor) -> torch.Tensor:
    """Mean CIEDE2000 between two sRGB-encoded images (two-stage stage II colour loss)."""
    return ciede2000(srgb_to_lab(pred_srgb), srgb_to_lab(target_srgb)).mean()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004, Gaussian window, K1 = 0.01, K2 = 0.03), differentiable."""
    coords = torch.arange(window, dtype=x.dtype, device=x.device) - window // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum())
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, window, window)
    blur = lambda t: F.conv2d(t, kernel, groups=x.shape[1])  # noqa: E731  (valid region, as scikit-image)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean()


# ----------------------------------------------------------------------------- DFGNet

def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrix normalised by C*H*W."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


class VGG19Features(nn.Module):
    """VGG-19 convolutional trunk up to relu4_1, for DFGNet's Gram (style) loss.

    No weights ship with hdrcli and none are downloaded: pass a file holding a state dict
    of torchvision's ``vgg19().features`` (keys ``0.weight`` ... or ``features.0.weight``).
    Without it, DFGNet's disentangle loss uses the reconstruction terms only.
    """

    _CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512)
    LAYERS = (1, 6, 11, 20)  # relu1_1, relu2_1, relu3_1, relu4_1 indices in torchvision's trunk

    def __init__(self, weights: str | os.PathLike[str]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in self._CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        self.trunk = nn.Sequential(*layers)
        from hdrcli.weights import load_state

        state = load_state(weights)  # weights_only=True; one error line for a bad or unsafe file
        state = {k.removeprefix("features."): v for k, v in state.items() if k.removeprefix("features.").split(".")[0].isdigit()}
        own = self.trunk.state_dict()
        self.trunk.load_state_dict({k: state[k] for k in own})
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406])[None, :, None, None])
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225])[None, :, None, None])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.trunk):
            x = layer(x)
            if i in self.LAYERS:
                out.append(x)
        return out


def disentangle_loss(
    net: nn.Module, ldrs: torch.Tensor, exposures: torch.Tensor, hdr: torch.Tensor,
    vgg: VGG19Features | None = None, perceptual_weight: float = 0.1, gamma: float = 2.2,
) -> torch.Tensor:
    """DFGNet's disentangle-network loss (eqs. 1-6).

    L = L_recon1 + L_recon2 + lambda (L_per1 + L_per2):
    * L_recon1: each LDR X_i rebuilt from its own spatial and exposure features;
    * L_recon2: re-exposed ground truth Y'_i = t_i * Y**(1/gamma) (clipped to [0, 1]) for
      the non-reference frames, rebuilt from E_sp(X_ref) and E_ex(X_i);
    * L_per: L1 between Gram matrices of VGG-19 features, only when ``vgg`` is given.

    Args:
        net: a DisentangleNet. ldrs: (B, 3, 3, H, W) frames by exposure (reference in the
        middle). exposures: (B, 3) relative times. hdr: (B, 3, H, W) ground truth in the
        shortest exposure's units.
    """
    t = exposures / exposures.min(dim=1, keepdim=True).values
    ref_spatial, _ = net.encode_spatial(ldrs[:, 1])
    loss = ldrs.new_zeros(())
    perceptual = ldrs.new_zeros(())
    for i in range(ldrs.shape[1]):
        x = ldrs[:, i]
        exposure = net.encode_exposure(x)
        rebuilt = net.decode(net.encode_spatial(x)[0], exposure)
        loss = loss + F.l1_loss(rebuilt, x)
        pairs = [(rebuilt, x)]
        if i != 1:
            target = (t[:, i, None, None, None] * hdr.clamp_min(0) ** (1 / gamma)).clamp(0, 1)
            swapped = net.decode(ref_spatial, exposure)
            loss = loss + F.l1_loss(swapped, target)
            pairs.append((swapped, target))
        if vgg is not None:
            for a, b in pairs:
                perceptual = perceptual + sum(F.l1_loss(gram_matrix(fa), gram_matrix(fb)) for fa, fb in zip(vgg(a), vgg(b)))
    return loss + perceptual_weight * perceptual
