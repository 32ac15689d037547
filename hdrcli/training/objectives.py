"""Per-backend training objectives: the papers' losses applied to a batch.

Each objective takes (model, batch, state) and returns (loss, logs). ``state`` carries
loss modules with parameters (TUnet's metric) and the training phase (DFGNet).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from hdrcli.models.blocks import exposure_input
from hdrcli.training.losses import (
    GravitatedLatentSpaceLoss,
    color_loss_ciede2000,
    disentangle_loss,
    highlight_log_l1,
    mu_law,
    mu_law_l1,
    ssim,
)


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((x - y) ** 2 + eps**2).mean()


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """Image minus its 5x5 Gaussian blur: the edge (high-pass) image used by edge losses."""
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device, dtype=x.dtype)
    k = (k[:, None] * k[None, :] / 256).expand(x.shape[1], 1, 5, 5)
    return x - F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k, groups=x.shape[1])


def multiscale(x: torch.Tensor, scales: int = 3) -> list[torch.Tensor]:
    return [x] + [F.interpolate(x, scale_factor=0.5**s, mode="bilinear", align_corners=False, antialias=True)
                  for s in range(1, scales)]


def lffnet_loss(pred: torch.Tensor, target: torch.Tensor, edge_weight: float = 0.05, freq_weight: float = 0.01):
    """LFFNet: L1 + multi-scale Charbonnier + a1 multi-scale edge + a2 multi-scale frequency,
    all on mu-law tone-mapped images (a1, a2 as in the RFFT authors' deblurring code)."""
    tp, tt = mu_law(pred), mu_law(target)
    l1 = F.l1_loss(tp, tt)
    msc = msed = msfr = 0.0
    for p, t in zip(multiscale(tp), multiscale(tt)):
        msc = msc + charbonnier(p, t)
        msed = msed + charbonnier(laplacian(p), laplacian(t))
        msfr = msfr + F.l1_loss(torch.view_as_real(torch.fft.rfft2(p)), torch.view_as_real(torch.fft.rfft2(t)))
    loss = l1 + msc + edge_weight * msed + freq_weight * msfr
    return loss, {"l1_mu": float(l1.detach())}


def soft_histogram(x: torch.Tensor, bins: int = 32, bandwidth: float = 0.5) -> torch.Tensor:
    """Differentiable per-image histogram of values in [0, 1]: (B, bins), Gaussian kernels."""
    centres = (torch.arange(bins, device=x.device, dtype=x.dtype) + 0.5) / bins
    flat = x.reshape(x.shape[0], -1, 1)
    weights = torch.exp(-0.5 * ((flat - centres) * bins / bandwidth) ** 2)
    hist = weights.sum(1)
    return hist / hist.sum(1, keepdim=True)


class Objective:
    """Loss computation for one backend; holds loss parameters and the training phase."""

    SYNTHESIS_WEIGHT = 0.5  # auxiliary mu-law L1 on a merge head's synthesis
    HIGHLIGHT_WEIGHT = 0.1  # single-image models: log L1 on the input's clipped pixels (highlight_log_l1)

    def __init__(self, backend: str, model: nn.Module, total_steps: int, pretrained: bool = False) -> None:
        self.backend, self.model, self.total_steps = backend, model, total_steps
        self.gls = GravitatedLatentSpaceLoss() if backend == "tunet" else None
        # DFGNet: the disentangle network is pre-trained first, then frozen (paper 2.1-2.2);
        # a model started from trained weights has that phase behind it.
        self.pretrain_steps = int(0.2 * total_steps) if backend == "dfgnet" and not pretrained else 0

    def parameters(self) -> list[nn.Parameter]:
        return list(self.gls.parameters()) if self.gls is not None else []

    def phase(self, step: int) -> str:
        return "disentangle" if step < self.pretrain_steps else "main"

    def __call__(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        model = self.model.module if hasattr(self.model, "module") else self.model
        if self.backend in ("dfgnet", "lffnet", "tunet"):
            x = exposure_input(batch["ldr"], batch["exposures"])
            if self.backend == "dfgnet" and self.phase(step) == "disentangle":
                loss = disentangle_loss(model.disentangle, batch["ldr"], batch["exposures"], batch["hdr"])
                return loss, {"disentangle": float(loss.detach())}
            if self.backend == "dfgnet":
                model.disentangle.requires_grad_(False)
            reference = int(batch["reference"]) if "reference" in batch else None
            pred, synthesis = self.model(x, reference, return_synthesis=True, codes=batch.get("codes"))
            if self.backend == "lffnet":
                loss, parts = lffnet_loss(pred, batch["hdr"])
            elif self.backend == "tunet":
                loss = self.gls(pred, batch["hdr"])
                parts = {"gls": float(loss.detach()), "l1_mu": float(mu_law_l1(pred.detach(), batch["hdr"]))}
            else:
                loss = mu_law_l1(pred, batch["hdr"])
                parts = {"l1_mu": float(loss.detach())}
            if synthesis is not pred:
                # The merge head uses the synthesis where no frame sees and as the ghost test's
                # target where the reference does not: it must stay a whole-image estimate.
                aux = mu_law_l1(synthesis, batch["hdr"])
                loss = loss + self.SYNTHESIS_WEIGHT * aux
                parts["synthesis_l1_mu"] = float(aux.detach())
            return loss, parts
        if self.backend == "twostage":
            hdr, enhanced = self.model(batch["ldr"], return_stages=True)
            target8 = batch["stack"][:, batch["stack"].shape[1] // 2]  # the noise-free input exposure
            stage1 = F.l1_loss(enhanced, target8) + (1 - ssim(enhanced.clamp(0, 1), target8))
            scale = model.max_radiance
            stage2 = mu_law_l1(hdr / scale, batch["hdr"] / scale)
            colour = color_loss_ciede2000((hdr.clamp(0, 1)) ** (1 / 2.2), batch["hdr"].clamp(0, 1) ** (1 / 2.2))
            highlight = highlight_log_l1(hdr, batch["hdr"], batch["ldr"])
            loss = stage1 + stage2 + 1e-3 * colour + self.HIGHLIGHT_WEIGHT * highlight
            return loss, {"stage1": float(stage1.detach()), "l1_mu": float(stage2.detach()), "ciede": float(colour.detach()),
                          "highlight": float(highlight.detach())}
        if self.backend == "stack":
            return self._stack_loss(model, batch)
        raise ValueError(f"no objective for {self.backend}")

    def _stack_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        stack, evs, extras = model.generate_stack(batch["ldr"])
        target = batch["stack"]
        steps = model.steps
        centre = target.shape[1] // 2
        wanted = target[:, centre - steps : centre + steps + 1]
        l1 = F.l1_loss(stack, wanted)
        tones = torch.stack(extras["tone_down"][::-1] + extras["tone_up"], 1)
        edges = torch.stack(extras["edge_down"][::-1] + extras["edge_up"], 1)
        others = [i for i in range(2 * steps + 1) if i != steps]
        tone_target = wanted[:, others]
        edge_target = batch["edges"][:, centre - steps : centre + steps + 1][:, others]
        l_global = F.l1_loss(tones, tone_target) + F.l1_loss(
            soft_histogram(tones.flatten(0, 1)), soft_histogram(tone_target.flatten(0, 1))) * 10
        l_edge = F.l1_loss(edges, edge_target)
        from hdrcli.models.synthesis import hdr_synthesis

        hdr = hdr_synthesis(stack, evs.to(stack))
        scale = 64.0  # the simulator's max_radiance: HDR loss on radiance / scale
        l_hdr = mu_law_l1(hdr / scale, batch["hdr"] / scale)
        highlight = highlight_log_l1(hdr, batch["hdr"], batch["ldr"])
        loss = l1 + l_global + l_edge + l_hdr + self.HIGHLIGHT_WEIGHT * highlight
        return loss, {"stack_l1": float(l1.detach()), "edge": float(l_edge.detach()), "l1_mu": float(l_hdr.detach()),
                      "highlight": float(highlight.detach())}
