"""Differentiable HDR synthesis layer (seed 002, section 3.1): merge any exposure stack in torch.

1. The inverse camera response g (log irradiance per pixel code, 256 entries per
   channel) is solved from the stack itself by Debevec & Malik's least squares
   (:func:`solve_debevec_response`, on sampled pixels, without gradient: a discrete fit).
2. g is piecewise-linearised: for a code Z = 255 * v, g_hat(Z) = g(k) + (Z - k) (g(k+1) -
   g(k)) with k = ceil(Z) - 1, so g_hat equals g on integer codes and dg_hat/dZ = g(Z) -
   g(Z - 1) (the paper's eq. 3): gradients reach every pixel of every frame.
3. The log-domain merge ln E = sum_j w(Z_j) (g_hat(Z_j) - ln t_j) / sum_j w(Z_j), with
   OpenCV's triangle weights averaged over channels, so that on 8-bit stacks and the same
   response it reproduces OpenCV's MergeDebevec, except where no frame has any weight
   (clipped or black in every frame): the shortest (clipped) or longest (black) frame
   decides there, not the average of all frames.

The response is normalised so that g(255) = 0 when solved here: a pixel at the clipping
level of the EV-0 frame merges to radiance 1.
"""

from __future__ import annotations

import torch

_EPS = 1e-6


def triangle_weights(codes: torch.Tensor) -> torch.Tensor:
    """OpenCV's Debevec weights for codes in [0, 255]: code below 128, 255 - code above."""
    return torch.where(codes < 128, codes, 255.0 - codes)


def sample_codes(stack: torch.Tensor, samples: int = 400) -> torch.Tensor:
    """Integer codes (samples, P, 3) of a regular grid of pixels of a (P, 3, H, W) stack."""
    p, _, h, w = stack.shape
    side_y = max(1, int(round((samples * h / w) ** 0.5)))
    side_x = max(1, samples // side_y)
    ys = torch.linspace(0, h - 1, side_y).round().long()
    xs = torch.linspace(0, w - 1, side_x).round().long()
    grid = stack[:, :, ys][:, :, :, xs]  # (P, 3, sy, sx)
    return (grid.detach().clamp(0, 1) * 255).round().long().permute(2, 3, 0, 1).reshape(-1, p, 3)


def solve_debevec_response(codes: torch.Tensor, log_times: torch.Tensor, smoothness: float = 10.0) -> torch.Tensor:
    """Debevec & Malik's inverse response g for one channel.

    Args:
        codes: (N, P) integer pixel codes 0..255 of N sample pixels in P exposures.
        log_times: (P,) natural log of each exposure's relative time.
        smoothness: lambda, weight of the second-derivative penalty.

    Returns:
        (256,) float64 g with g(255) = 0 (the least-squares gauge), monotone
        non-decreasing (enforced after solving).
    """
    n, p = codes.shape
    codes = codes.to(torch.long).cpu()
    w = triangle_weights(torch.arange(256, dtype=torch.float64)) + 1.0
    rows = n * p + 1 + 254
    a = torch.zeros(rows, 256 + n, dtype=torch.float64)
    b = torch.zeros(rows, dtype=torch.float64)
    idx = torch.arange(n * p)
    z = codes.reshape(-1)
    wij = w[z]
    a[idx, z] = wij
    a[idx, 256 + torch.arange(n).repeat_interleave(p)] = -wij
    b[: n * p] = wij * log_times.to(torch.float64).cpu().repeat(n)
    a[n * p, 255] = 1.0  # gauge: g(255) = 0
    k = torch.arange(1, 255)
    r = n * p + 1 + torch.arange(254)
    a[r, k - 1] = smoothness * w[k]
    a[r, k] = -2 * smoothness * w[k]
    a[r, k + 1] = smoothness * w[k]
    solution = torch.linalg.lstsq(a, b.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    g = solution[:256]
    return torch.cummax(g, dim=0).values


def solve_stack_response(stack: torch.Tensor, evs: torch.Tensor, samples: int = 400, smoothness: float = 10.0) -> torch.Tensor:
    """(3, 256) log inverse response of a (P, 3, H, W) stack with exposures ``evs`` (stops)."""
    codes = sample_codes(stack, samples)
    log_times = evs.detach().to(torch.float64).cpu() * torch.log(torch.tensor(2.0, dtype=torch.float64))
    return torch.stack([solve_debevec_response(codes[:, :, c], log_times, smoothness) for c in range(3)]).float()


def hdr_synthesis(
    stack: torch.Tensor, evs: torch.Tensor, log_response: torch.Tensor | None = None,
    samples: int = 400, smoothness: float = 10.0,
) -> torch.Tensor:
    """Merge an exposure stack into linear radiance, differentiably.

    Args:
        stack: (B, P, 3, H, W) or (P, 3, H, W) display-referred frames in [0, 1].
        evs: (P,) or (B, P) exposure of each frame in stops (t = 2**ev).
        log_response: (3, 256) or (B, 3, 256) natural-log inverse response g; solved from
            the (detached) stack per item when None.

    Returns:
        (B, 3, H, W) (or (3, H, W)) radiance E = exp(ln E), in units of t = 1.
    """
    single = stack.dim() == 4
    if single:
        stack = stack.unsqueeze(0)
    b, p = stack.shape[:2]
    evs = evs.to(stack.device, stack.dtype)
    evs = evs.unsqueeze(0).expand(b, p) if evs.dim() == 1 else evs
    if log_response is None:
        log_response = torch.stack([solve_stack_response(stack[i], evs[i], samples, smoothness) for i in range(b)])
    elif log_response.dim() == 2:
        log_response = log_response.unsqueeze(0).expand(b, -1, -1)
    g = log_response.to(stack.device, stack.dtype)  # (B, 3, 256)

    codes = stack.clamp(0, 1) * 255.0
    lower = (torch.ceil(codes.detach()) - 1).clamp(0, 254)
    frac = codes - lower  # carries the gradient; in [0, 1]
    lo_idx = lower.long()
    table = g[:, None, :, None, :].expand(b, p, 3, 1, 256)
    flat = lambda idx: idx.flatten(3).unsqueeze(3)  # noqa: E731  (B, P, 3, 1, HW)
    g_lo = torch.gather(table, 4, flat(lo_idx)).view_as(codes)
    g_hi = torch.gather(table, 4, flat(lo_idx + 1)).view_as(codes)
    g_hat = g_lo + frac * (g_hi - g_lo)

    # A pixel clipped (or black) in every frame has no weight anywhere. OpenCV then averages
    # the frames, which put every clipped light at the middle frame's clipping level; here
    # the shortest frame decides a clipped pixel (its radiance is at least that frame's
    # clipping level) and the longest a black one, as in hdrcli's classical merge.
    shortest = (evs == evs.min(dim=1, keepdim=True).values).to(stack.dtype)[:, :, None, None, None]
    longest = (evs == evs.max(dim=1, keepdim=True).values).to(stack.dtype)[:, :, None, None, None]
    bright = (codes.detach().mean(dim=2, keepdim=True).amax(dim=1, keepdim=True) >= 128).to(stack.dtype)
    fallback = bright * shortest + (1 - bright) * longest  # (B, P, 1, H, W)
    weights = triangle_weights(codes).mean(dim=2, keepdim=True) + _EPS * fallback
    log_t = (evs * torch.log(torch.tensor(2.0, device=stack.device, dtype=stack.dtype)))[:, :, None, None, None]
    log_e = (weights * (g_hat - log_t)).sum(1) / weights.sum(1)
    radiance = torch.exp(log_e)
    return radiance[0] if single else radiance
