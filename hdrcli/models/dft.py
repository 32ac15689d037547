"""rfft2 / irfft2 as matrix products, for ONNX export with any image size.

Why: torch exports ``torch.fft.rfft2`` to ONNX DFT nodes, which ONNX Runtime runs only with
static shapes and slowly on a CPU (1.65 of 2.0 s of lffnet's synthesis at 512 x 384). Here
each axis of length N = P * Q is transformed in two matrix products (a P-point and a Q-point
DFT with twiddle factors between them, Cooley-Tukey with one split), the matrices built in the
graph from the input's size, so one export takes every size.

The spectrum comes out in a permuted frequency order (the split's index order) and, along
the last axis, with a few redundant frequencies: :class:`hdrcli.models.blocks.FFTConv` only
applies per-frequency 1x1 convolutions to it, and :func:`irfft2` reads the same layout, so
``irfft2(f(rfft2(x)))`` equals ``torch.fft.irfft2(f(torch.fft.rfft2(x)))`` for any
per-frequency ``f`` (to float32 rounding, ~1e-6 relative).
"""

from __future__ import annotations

import math

import torch

__all__ = ["SpectrumLayout", "irfft2", "rfft2"]

_SPLITS = (32, 16, 8, 4, 2)


def _split(n) -> tuple[int, object]:
    """(P, Q) with P * Q = n: P the largest of _SPLITS dividing n, else (n, 1), a direct DFT.

    Under export n is symbolic: P is then chosen from the example's size and required of every
    size (``torch._check``). Exporting with sides of 16 x an odd number (see
    :func:`hdrcli.runtime.export.export_synthesis`) makes that P what every multiple of 16 has,
    at each level of a U-Net too.
    """
    if isinstance(n, int):
        return next(((p, n // p) for p in _SPLITS if p < n and n % p == 0), (n, 1))
    example = int(n.node.hint)
    p = next((p for p in _SPLITS if p < example and example % p == 0), None)
    if p is None:
        return n, 1
    torch._check(n % p == 0)
    return p, n // p


def _phases(rows, cols, n, device: torch.device, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of -+2 pi (i * j mod n) / n for i < rows, j < cols (mod n first: exact phases)."""
    i = torch.arange(rows, device=device)
    j = torch.arange(cols, device=device)
    size = torch.ones((), dtype=torch.long, device=device) * n  # a tensor: exports with a symbolic n
    k = torch.remainder(i[:, None] * j[None, :], size).float()
    angle = k * ((2.0 if inverse else -2.0) * math.pi) / size.float()
    return torch.cos(angle), torch.sin(angle)


def _cmul_left(cr: torch.Tensor, ci: torch.Tensor, xr: torch.Tensor, xi: torch.Tensor | None):
    """(cr + i ci) @ (xr + i xi) (xi None: real x)."""
    if xi is None:
        return cr @ xr, ci @ xr
    return cr @ xr - ci @ xi, ci @ xr + cr @ xi


def _cmul_right(xr: torch.Tensor, xi: torch.Tensor, cr: torch.Tensor, ci: torch.Tensor):
    """(xr + i xi) @ (cr + i ci)."""
    return xr @ cr - xi @ ci, xr @ ci + xi @ cr


class SpectrumLayout:
    """The splits of one (H, W) image: what :func:`irfft2` needs to read :func:`rfft2`'s output."""

    def __init__(self, h, w) -> None:
        self.h, self.w = h, w
        self.ph, self.qh = _split(h)
        self.pw, self.qw = _split(w)
        self.kept = self.pw // 2 + 1  # frequencies kept per Q-row along the last axis


def rfft2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, SpectrumLayout]:
    """Real (..., H, W) -> (real, imaginary) of its 2-D spectrum, (..., H, Qw * (Pw // 2 + 1)), and the layout.

    Unnormalised, as ``torch.fft.rfft2(norm="backward")``, in the permuted order of the module docstring.
    """
    lead = x.shape[:-2]
    layout = SpectrumLayout(*x.shape[-2:])
    h, pw, qw, kept = layout.h, layout.pw, layout.qw, layout.kept
    dev = x.device
    # Last axis, index j = j1 + Pw * j2 laid out (Qw, Pw): contract j2 (left), twiddle, contract j1 (right).
    xs = x.reshape(*lead, h, qw, pw)
    cr, ci = _phases(qw, qw, qw, dev, False)
    yr, yi = _cmul_left(cr, ci, xs, None)
    tr, ti = _phases(qw, pw, layout.w, dev, False)  # [k2, j1]
    yr, yi = yr * tr - yi * ti, yr * ti + yi * tr
    fr, fi = _phases(pw, kept, pw, dev, False)  # only k1 <= Pw / 2
    yr, yi = _cmul_right(yr, yi, fr, fi)
    s = qw * kept
    yr, yi = yr.reshape(*lead, h, s), yi.reshape(*lead, h, s)
    return (*_columns(yr, yi, layout, inverse=False), layout)


def _columns(yr: torch.Tensor, yi: torch.Tensor, layout: SpectrumLayout, inverse: bool):
    """The complex DFT along axis -2 (length H = Ph * Qh, laid out (Qh, Ph)); the frequency
    order of the forward pass is what the inverse reads. The twiddle factors are folded into
    the Ph-point matrices, one per k2 (a batched product: no elementwise pass)."""
    lead, s = yr.shape[:-2], yr.shape[-1]
    ph, qh, dev = layout.ph, layout.qh, yr.device
    fq = _phases(qh, qh, qh, dev, inverse)
    fr, fi = _phases(ph, ph, ph, dev, inverse)  # [k1, j1], symmetric
    tr, ti = (t[:, None, :] for t in _phases(qh, ph, layout.h, dev, inverse))  # [k2, 1, j1]
    if not inverse:  # j2 -> k2 over (Qh, Ph * S); then per k2: j1 -> k1 with F[k1, j1] * tw[k2, j1]
        gr, gi = fr[None] * tr - fi[None] * ti, fr[None] * ti + fi[None] * tr
        yr, yi = _cmul_left(*fq, yr.reshape(*lead, qh, ph * s), yi.reshape(*lead, qh, ph * s))
        yr, yi = _cmul_left(gr, gi, yr.reshape(*lead, qh, ph, s), yi.reshape(*lead, qh, ph, s))
    else:  # per k2: k1 -> j1 with tw[k2, j1] * F[j1, k1]; then k2 -> j2: natural order
        tr, ti = tr.transpose(1, 2), ti.transpose(1, 2)  # [k2, j1, 1]
        gr, gi = fr[None] * tr - fi[None] * ti, fr[None] * ti + fi[None] * tr
        yr, yi = _cmul_left(gr, gi, yr.reshape(*lead, qh, ph, s), yi.reshape(*lead, qh, ph, s))
        yr, yi = _cmul_left(*fq, yr.reshape(*lead, qh, ph * s), yi.reshape(*lead, qh, ph * s))
    return yr.reshape(*lead, layout.h, s), yi.reshape(*lead, layout.h, s)


def _one_sided_weights(layout: SpectrumLayout, device: torch.device) -> torch.Tensor:
    """(Qw, Pw // 2 + 1) weights c_k of the kept frequencies k = Qw * k1 + k2 along the last axis:
    Re(inverse DFT of c * X) is the real signal of a Hermitian X (c: 1 at 0 and N / 2, 2 between,
    0 above N / 2: the redundant ones)."""
    qw, kept, n = layout.qw, layout.kept, layout.w
    k = torch.arange(kept, device=device)[None, :] * qw + torch.arange(qw, device=device)[:, None]
    twice = k * 2
    size = torch.ones((), dtype=torch.long, device=device) * n
    return ((twice < size).float() * 2.0 - (k == 0).float()) + (twice == size).float()


def irfft2(real: torch.Tensor, imag: torch.Tensor, layout: SpectrumLayout) -> torch.Tensor:
    """The inverse of :func:`rfft2` as ``torch.fft.irfft2(..., s=(H, W), norm="backward")``:
    the Hermitian-symmetric extension of the kept half (its redundant frequencies are ignored)."""
    lead = real.shape[:-2]
    h, w, pw, qw, kept = layout.h, layout.w, layout.pw, layout.qw, layout.kept
    dev = real.device
    yr, yi = _columns(real, imag, layout, inverse=True)
    c = _one_sided_weights(layout, dev)
    yr, yi = yr.reshape(*lead, h, qw, kept) * c, yi.reshape(*lead, h, qw, kept) * c
    fr, fi = _phases(kept, pw, pw, dev, True)
    yr, yi = _cmul_right(yr, yi, fr, fi)  # k1 -> j1
    tr, ti = _phases(qw, pw, w, dev, True)
    yr, yi = yr * tr - yi * ti, yr * ti + yi * tr
    cr, ci = _phases(qw, qw, qw, dev, True)
    out = cr @ yr - ci @ yi  # k2 -> j2, the real part only
    return out.reshape(*lead, h, w) / (torch.ones((), device=dev) * (h * w))

