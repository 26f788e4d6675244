"""A plain autograd transcription of method.md: the naive reference for the engine.

Written to be read next to the specification, not to be fast: every filter pass is a
zero-padded conv2d, the complement is filtered on its own, the gradient comes from
autograd, and all iterations run (no fixed-point stop).  The engine must give the same
masks (``benchmarks/bench_engine.py`` and ``tests/test_reference.py`` check it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_1d(size=11, sigma=5.0):
    x = torch.arange(size, dtype=torch.float32) - size // 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def blur(x, k, reps=2):
    """Vertical 11x1 then horizontal 1x11 pass, zero padded, ``reps`` times; per channel."""
    c = x.shape[1]
    kv = k.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    kh = k.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    r = k.numel() // 2
    for _ in range(reps):
        x = F.conv2d(x, kv, padding=(r, 0), groups=c)
        x = F.conv2d(x, kh, padding=(0, r), groups=c)
    return x


def inpaint(x, w, k):
    """eps from the sums of the unfiltered inputs, added after filtering (method.md)."""
    num = blur(x * w, k) + 1e-8 * (x * w).sum(dim=(2, 3), keepdim=True)
    den = blur(w, k) + 1e-8 * w.sum(dim=(2, 3), keepdim=True)
    return num / den


def objective(x, m, k, lam=1e-3):
    """J per image for images ``x`` (B, C, H, W) in [-1, 1] and masks ``m`` (B, 1, H, W)."""
    phi_a = inpaint(x, 1 - m, k)
    phi_b = inpaint(x, m, k)
    err_a = (m * (x - phi_a).abs().mean(1, keepdim=True)).sum(dim=(1, 2, 3))
    err_b = ((1 - m) * (x - phi_b).abs().mean(1, keepdim=True)).sum(dim=(1, 2, 3))
    area_a = m.sum(dim=(1, 2, 3))
    area_b = (1 - m).sum(dim=(1, 2, 3))
    mu_a = (x * m).sum(dim=(2, 3), keepdim=True) / area_a.view(-1, 1, 1, 1)
    mu_b = (x * (1 - m)).sum(dim=(2, 3), keepdim=True) / area_b.view(-1, 1, 1, 1)
    d = (m * (x - mu_a) ** 2 + (1 - m) * (x - mu_b) ** 2).sum(dim=(1, 2, 3))
    return err_a / area_a + err_b / area_b - lam * d


def naive_iem(x, iters=150, size=11, sigma=5.0, lam=1e-3, threshold=4):
    """The paper's algorithm on a batch ``x`` (B, C, H, W) scaled to [-1, 1]; masks (B, H, W)."""
    k = gaussian_1d(size, sigma).to(x)
    b, _, h, w = x.shape
    m = torch.zeros(b, 1, h, w, dtype=x.dtype, device=x.device)
    m[:, :, h // 5 : h - h // 5, w // 5 : w - w // 5] = 1
    box = torch.ones(1, 1, 3, 3, dtype=x.dtype, device=x.device)
    cross = torch.tensor([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=x.dtype, device=x.device)
    cross = cross.view(1, 1, 3, 3)
    for _ in range(iters):
        m = m.detach().requires_grad_(True)
        g = torch.autograd.grad(objective(x, m, k, lam).sum(), m)[0]
        with torch.no_grad():
            # band: a 4-neighbour differs; outside the image is 0 for both M and 1-M
            fg_nb = F.conv2d(m, cross, padding=1) > 0
            bg_nb = F.conv2d(1 - m, cross, padding=1) > 0
            border = F.conv2d(torch.ones_like(m), cross, padding=1) < 4
            band = border | ((m > 0) & bg_nb) | ((m == 0) & fg_nb)
            m = torch.where(band, (g > 0).to(m), m)
            m = (F.conv2d(m, box, padding=1) >= threshold).to(m)
    return m[:, 0].detach().bool()
