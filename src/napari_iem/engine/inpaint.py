"""The fixed inpainter of IEM: normalized convolution with a separable Gaussian.

``phi(X, W) = (G * (X W) + eps_X) / (G * W + eps_W)`` per channel, where ``G`` is an
``kernel_size``-tap Gaussian applied ``reps`` times along every spatial axis with zero
padding, and each eps is ``1e-8`` times the global sum of its **unfiltered** map (per
image and channel), added after filtering, as the authors' code does.  Farther than the
filter's reach from any visible pixel both filtered maps are 0 and the prediction is
``sum(X W) / sum(W)``, exactly the mean of the visible region; nothing is ever divided
by zero unless nothing is visible.

Filtering along one axis of length ``n`` with zero padding, ``reps`` times, is a product
with the banded symmetric matrix ``T**reps``: the whole repeated filter becomes one matrix
product per axis, which is what CPUs and GPUs do fastest.  For long axes, where a dense
matrix would be mostly zeros, the same matrix is cut into blocks of ``BLOCK`` rows and
each block multiplies only its own and its two neighbouring input blocks (the band is
narrower than a block): exact, with 3 * BLOCK multiply-adds per pixel whatever the
length.  (torch's conv1d was 5-8x slower than either on CPU, measured.)  Nothing here is 2-D specific: a tensor
``(..., *spatial)`` is filtered along its last ``ndim`` axes, so 3-D volumes use the same
code.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

EPS_REL = 1e-8
#: Axes longer than this are filtered block by block instead of by one dense product.
DENSE_MAX = 512
BLOCK = 64


def gaussian_kernel1d(kernel_size: int, sigma: float, dtype=torch.float32) -> torch.Tensor:
    """The normalized 1-D Gaussian at integer offsets ``-r..r``, ``r = kernel_size // 2``."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma}")
    r = kernel_size // 2
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def band_diagonals(n: int, kernel: torch.Tensor, reps: int) -> torch.Tensor:
    """Diagonals of ``T**reps`` for the zero-padded filter matrix ``T`` of ``kernel``.

    Returns ``D`` of shape ``(n, 2w+1)``, ``w = reps * r``, with
    ``(T**reps)[i, i + o] = D[i, o + w]`` (zero where ``i + o`` falls outside).  Built
    diagonal by diagonal, so a long axis never needs an ``n x n`` matrix.
    """
    k = kernel.to(torch.float64)
    r = k.numel() // 2
    rows = torch.arange(n)
    diag = torch.zeros(n, 1, dtype=torch.float64)
    diag[:, 0] = 1.0
    w = 0
    for _ in range(reps):
        new = torch.zeros(n, 2 * (w + r) + 1, dtype=torch.float64)
        for o1 in range(-w, w + 1):  # (A T)[i, i+o1+o2] += A[i, i+o1] T[i+o1, i+o1+o2]
            mid = rows + o1
            for o2 in range(-r, r + 1):
                ok = (mid >= 0) & (mid < n) & (mid + o2 >= 0) & (mid + o2 < n)
                new[:, o1 + o2 + w + r] += torch.where(ok, diag[:, o1 + w] * k[o2 + r], 0.0)
        diag, w = new, w + r
    return diag


def band_matrix(n: int, kernel: torch.Tensor, reps: int) -> torch.Tensor:
    """The dense ``n x n`` matrix of ``reps`` zero-padded passes of ``kernel``."""
    diag = band_diagonals(n, kernel, reps)
    w = diag.shape[1] // 2
    rows = torch.arange(n)[:, None]
    cols = rows + torch.arange(-w, w + 1)[None, :]
    ok = (cols >= 0) & (cols < n)
    dense = torch.zeros(n, n, dtype=torch.float64)
    dense[rows.expand_as(cols)[ok], cols[ok]] = diag[ok]
    return dense


def band_blocks(n: int, kernel: torch.Tensor, reps: int, block: int) -> torch.Tensor:
    """``(nb, 3*block, block)``: block ``i`` of the filter matrix, acting on input blocks
    ``i-1, i, i+1`` laid side by side (needs the band half-width <= ``block``)."""
    diag = band_diagonals(n, kernel, reps)
    w = diag.shape[1] // 2
    if w > block:
        raise ValueError(f"filter half-width {w} exceeds the block size {block}")
    nb = -(-n // block)
    out = torch.zeros(nb, 3 * block, block, dtype=torch.float64)
    rows = torch.arange(n)[:, None]
    cols = rows + torch.arange(-w, w + 1)[None, :]
    ok = (cols >= 0) & (cols < n)
    rows = rows.expand_as(cols)
    blk = rows // block
    out[blk[ok], (cols - (blk - 1) * block)[ok], (rows % block)[ok]] = diag[ok]
    return out


@lru_cache(maxsize=64)
def axis_operator(n: int, kernel_size: int, sigma: float, reps: int) -> tuple[str, torch.Tensor]:
    """The filter along one axis of length ``n``: ``("dense", n x n matrix)`` or
    ``("blocks", band_blocks(...))``, in float64 on the CPU.

    Cached: building the band costs thousands of tiny tensor operations (milliseconds),
    as much as a whole small image's optimisation on a GPU, and a batch, the maps after
    a run and every run of a session all ask for the same few operators.  Callers copy
    it to their device and precision, never modify it.
    """
    k = gaussian_kernel1d(kernel_size, sigma)
    block = max(BLOCK, reps * (kernel_size // 2))
    if n <= max(DENSE_MAX, block):
        return "dense", band_matrix(n, k, reps)
    return "blocks", band_blocks(n, k, reps, block)


class GaussianFilter:
    """The repeated separable Gaussian ``G`` for one spatial shape, on one device.

    Parameters
    ----------
    shape : tuple of int
        Spatial shape (2-D ``(H, W)`` or 3-D ``(Z, Y, X)``).
    kernel_size, sigma, reps
        The Gaussian.  ``sigma`` may be a sequence, one per axis (anisotropic data).
    device, dtype
        Where and in which precision the filter runs.
    """

    def __init__(self, shape, kernel_size=11, sigma=5.0, reps=2, *, device="cpu",
                 dtype=torch.float32):
        if reps < 1:
            raise ValueError(f"reps must be at least 1, got {reps}")
        self.shape = tuple(int(s) for s in shape)
        sigmas = sigma if isinstance(sigma, (list, tuple)) else [sigma] * len(self.shape)
        if len(sigmas) != len(self.shape):
            raise ValueError(f"{len(sigmas)} sigmas for a {len(self.shape)}-D image")
        self.reps = reps
        self._ops = []
        for n, s in zip(self.shape, sigmas):
            kind, op = axis_operator(n, int(kernel_size), float(s), int(reps))
            self._ops.append((kind, op.to(device, dtype)))
        self.ones = self(torch.ones(self.shape, device=device, dtype=dtype))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Filter ``x`` of shape ``(..., *shape)`` along its spatial axes."""
        nd = len(self.shape)
        for axis, (kind, op) in enumerate(self._ops):
            dim = x.ndim - nd + axis
            if kind == "dense":
                if dim == x.ndim - 1:
                    x = x @ op
                elif dim == x.ndim - 2:
                    x = op @ x
                else:
                    x = torch.movedim(torch.movedim(x, dim, -1) @ op, -1, dim)
            else:
                x = torch.movedim(_blocks_along_last(torch.movedim(x, dim, -1), op), -1, dim)
        return x


def _blocks_along_last(x: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """Apply the block-banded matrix ``blocks`` along the last axis of ``x``."""
    nb, _, b = blocks.shape
    n = x.shape[-1]
    lead = x.shape[:-1]
    xb = F.pad(x.reshape(-1, n), (b, nb * b - n + b)).view(-1, nb + 2, b)
    x3 = torch.cat([xb[:, :-2], xb[:, 1:-1], xb[:, 2:]], dim=-1)  # (M, nb, 3b)
    y = torch.bmm(x3.transpose(0, 1), blocks)  # (nb, M, b)
    return y.transpose(0, 1).reshape(-1, nb * b)[:, :n].reshape(*lead, n)


def spatial_sum(x: torch.Tensor, nd: int) -> torch.Tensor:
    """Sum over the last ``nd`` axes, keeping them as size-1 axes for broadcasting."""
    return x.sum(dim=tuple(range(-nd, 0)), keepdim=True)


def filter_with_eps(u: torch.Tensor, filt: "GaussianFilter") -> torch.Tensor:
    """``G * u + 1e-8 * sum(u)``: the reference's regularised filter of each map of ``u``.

    The sum is taken over the *unfiltered* map (per image and channel), as in the
    authors' code; with zero padding the filtered map sums to less, and using that sum
    instead changes most masks of 128x128 photos.  It is linear in ``u`` and symmetric,
    so it is also its own adjoint: the gradient applies the same operator.
    """
    return filt(u) + EPS_REL * spatial_sum(u, len(filt.shape))


def inpaint(x: torch.Tensor, visible: torch.Tensor, filt: GaussianFilter) -> torch.Tensor:
    """Predict ``x`` everywhere from its ``visible`` pixels.

    Parameters
    ----------
    x : Tensor, shape (B, C, *spatial)
    visible : Tensor, shape (B, 1, *spatial), values in [0, 1]
    filt : GaussianFilter for ``spatial``
    """
    return filter_with_eps(x * visible, filt) / filter_with_eps(visible, filt)
