"""The fixed inpainter of IEM: normalized convolution with a separable Gaussian.

``phi(X, W) = (G * (X W) + eps_X) / (G * W + eps_W)`` per channel, where ``G`` is an
``kernel_size``-tap Gaussian applied ``reps`` times along every spatial axis with zero
padding, and each eps is ``1e-8`` times the global sum of its **unfiltered** map (per
image and channel), added after filtering, as the authors' code does.  Farther than the
filter's reach from any visible pixel both filtered maps are 0 and the prediction is
``sum(X W) / sum(W)``, exactly the mean of the visible region; nothing is ever divided
by zero unless nothing is visible.

Filtering along one axis of length ``n`` with zero padding, ``reps`` times, is a product
with the banded symmetric matrix ``T**reps`` (half-width ``h = reps * r``); near the
border its rows are not the combined ``2h+1``-tap kernel (two zero-padded passes are not
one), and using ``T**reps`` itself keeps that exact.  Matrix products are what CPUs and
GPUs do fastest, so every axis is filtered by them, in one of two ways chosen by length:

* short axes (``n <= DENSE_MAX``): one product with the dense ``n x n`` matrix;
* long axes: the axis is cut into blocks of ``BLOCK`` outputs, each the product of a
  ``BLOCK x (BLOCK + 2h)`` matrix with its overlapping window of input (one copy of a
  strided view of the padded axis); all interior blocks share one Toeplitz matrix, the
  few blocks touching the border are recomputed with their own rows of ``T**reps``.
  ``BLOCK + 2h`` multiply-adds per pixel, whatever the length.

Measured on a 2-core AMD EPYC (``benchmarks/bench_kernels.py --filters``): the dense
product is the fastest up to about 160 pixels, blocks of 32 beyond (at 2048 px about 4x
faster than the dense product, which costs ``n`` multiply-adds a pixel); a direct sum of
21 shifted slices was slower than the dense product on short axes and no faster than the
blocks on long ones (one pass over memory per tap), and ``conv1d`` slower than both.

:meth:`GaussianFilter.strips` also filters an image strip by strip along its first
spatial axis (each strip from its input rows plus a halo of ``h``), so that a caller
fusing element-wise work into the same loop keeps its temporaries in cache.  Nothing
here is 2-D specific: a tensor ``(..., *spatial)`` is filtered along its last ``ndim``
axes, so 3-D volumes use the same code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import torch
import torch.nn.functional as F

EPS_REL = 1e-8
#: Axes up to this length are filtered by one dense product (measured crossover).
DENSE_MAX = 160
#: Outputs per block on longer axes (measured; needs ``BLOCK >= h``).
BLOCK = 32


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


def window_matrix(diag: torch.Tensor, rows: range, cols: range) -> torch.Tensor:
    """Rows ``rows`` and columns ``cols`` of ``T**reps`` from its diagonals ``diag``.

    Rows outside the axis (padding of the last block, or of a crop that overhangs the
    border) and columns outside it (zero padding) come out as zeros.
    """
    n, width = diag.shape
    w = width // 2
    i = torch.arange(rows.start, rows.stop)[:, None]
    off = torch.arange(cols.start, cols.stop)[None, :] - i + w
    ok = (off >= 0) & (off < width) & (i >= 0) & (i < n)
    return torch.where(ok, diag[i.clamp(0, n - 1), off.clamp(0, width - 1)], 0.0)


def band_matrix(n: int, kernel: torch.Tensor, reps: int) -> torch.Tensor:
    """The dense ``n x n`` matrix of ``reps`` zero-padded passes of ``kernel``."""
    return window_matrix(band_diagonals(n, kernel, reps), range(n), range(n))


@dataclass(frozen=True)
class AxisOperator:
    """``T**reps`` along one axis as blocks: output block ``j`` (``block`` rows from
    ``j * block``) is ``matrix_j @ input[j * block - halo : (j + 1) * block + halo]``.

    ``halo == 0`` and one block is the dense case.  ``interior`` serves every block but
    those in ``special``, ``((j, matrix_j), ...)``, the blocks touching the border.
    """

    n: int
    block: int
    halo: int
    interior: torch.Tensor
    special: tuple[tuple[int, torch.Tensor], ...]

    def to(self, device, dtype) -> "AxisOperator":
        return AxisOperator(self.n, self.block, self.halo,
                            self.interior.to(device, dtype),
                            tuple((j, m.to(device, dtype)) for j, m in self.special))


@lru_cache(maxsize=64)
def axis_operator(n: int, kernel_size: int, sigma: float, reps: int,
                  dense_max: int = DENSE_MAX, block: int = BLOCK) -> AxisOperator:
    """The filter along one axis of length ``n``, in float64 on the CPU.

    Cached: building the band costs thousands of tiny tensor operations (milliseconds),
    as much as a whole small image's optimisation on a GPU, and a batch, the maps after
    a run and every run of a session all ask for the same few operators.  Callers copy
    it to their device and precision, never modify it.
    """
    diag = band_diagonals(n, gaussian_kernel1d(kernel_size, sigma), reps)
    h = diag.shape[1] // 2
    if n <= max(dense_max, block + 2 * h):
        return AxisOperator(n, n, 0, window_matrix(diag, range(n), range(n)), ())
    block = max(block, h)
    nb = -(-n // block)
    mats = [window_matrix(diag, range(j * block, (j + 1) * block),
                          range(j * block - h, (j + 1) * block + h)) for j in range(nb)]
    inner = nb // 2
    special = tuple((j, m) for j, m in enumerate(mats) if not torch.equal(m, mats[inner]))
    return AxisOperator(n, block, h, mats[inner], special)


def apply_axis(x: torch.Tensor, op: AxisOperator) -> torch.Tensor:
    """Filter ``x`` of shape ``(R, n, S)`` along its middle axis (``S = 1``: the last).

    The last axis multiplies from the right (``x @ A.T``, rows contiguous), any other
    from the left (``A @ x``), so no axis is ever transposed in memory.  The dense
    matrix is used as built (it is symmetric), as it always was, so short axes give
    bit-identical results to earlier versions.
    """
    rows, n, s = x.shape
    if op.halo == 0:  # the dense matrix is symmetric: no transpose needed
        return (x[:, :, 0] @ op.interior)[..., None] if s == 1 else op.interior @ x
    b, h = op.block, op.halo
    nb = -(-n // b)
    xp = F.pad(x, (0, 0, h, nb * b - n + h))
    length = xp.shape[1]
    if s == 1:
        # a product with the overlapping view itself takes a slow path (10x, measured)
        win = xp.as_strided((rows, nb, b + 2 * h), (length, b, 1)).contiguous()
        y = win @ op.interior.T
        for j, m in op.special:
            y[:, j] = win[:, j] @ m.T
        return y.view(rows, nb * b)[:, :n, None]
    win = xp.as_strided((rows, nb, b + 2 * h, s), (length * s, b * s, s, 1)).contiguous()
    y = op.interior @ win
    for j, m in op.special:
        y[:, j] = m @ win[:, j]
    return y.reshape(rows, nb * b, s)[:, :n]


def per_axis(sigma, nd: int) -> tuple[float, ...]:
    """``sigma`` as one value per spatial axis: a scalar (isotropic) repeated ``nd``
    times, a sequence (anisotropic, :func:`napari_iem.engine.layout.axis_sigmas`) as
    given."""
    if isinstance(sigma, (list, tuple)):
        if len(sigma) != nd:
            raise ValueError(f"{len(sigma)} sigmas for a {nd}-D image")
        return tuple(float(v) for v in sigma)
    return (float(sigma),) * nd


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
    strip : int, optional
        Rows of the first spatial axis per strip of :meth:`strips` (default: the whole
        axis, one strip).
    """

    def __init__(self, shape, kernel_size=11, sigma=5.0, reps=2, *, device="cpu",
                 dtype=torch.float32, strip: int | None = None):
        if reps < 1:
            raise ValueError(f"reps must be at least 1, got {reps}")
        self.shape = tuple(int(s) for s in shape)
        sigmas = per_axis(sigma, len(self.shape))
        self.reps = reps
        #: pixels one filtering reaches along an axis (``reps`` passes of ``r`` taps each side)
        self.reach = reps * (int(kernel_size) // 2)
        self._ops = [axis_operator(n, int(kernel_size), float(s), int(reps)).to(device, dtype)
                     for n, s in zip(self.shape, sigmas)]
        self._strips = _strip_plan(self.shape[0], int(kernel_size), float(sigmas[0]),
                                   int(reps), strip or self.shape[0], device, dtype)
        self._device, self._dtype = device, dtype

    @cached_property
    def ones(self) -> torch.Tensor:
        """``G * 1``: the filter's weight at each pixel (less near the border), made
        when first asked for (the k-means start): a 4096x4096 filter is built in a few
        milliseconds, and this product alone takes 0.2 s."""
        return self(torch.ones(self.shape, device=self._device, dtype=self._dtype))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Filter ``x`` of shape ``(..., *shape)`` along its spatial axes."""
        return self._rest(self._along(x, 0, self._ops[0]), 1)

    def strips(self):
        """The strips ``(lo, hi, out)``: rows ``out`` (a slice of the first spatial axis)
        of the filtered image come from input rows ``lo:hi`` (:meth:`filter_strip`)."""
        return [(lo, hi, slice(s, e)) for s, e, lo, hi, _ in self._strips]

    def filter_strip(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Filter strip ``index`` of :meth:`strips`: ``x`` holds its input rows
        ``(..., hi - lo, *shape[1:])``; returns its output rows."""
        if len(self._strips) == 1:
            return self(x)
        matrix = self._strips[index][4]
        nd = len(self.shape)
        lead, rest = x.shape[: x.ndim - nd], x.shape[x.ndim - nd + 1:]
        y = matrix @ x.reshape(-1, x.shape[-nd], math.prod(rest))
        return self._rest(y.view(*lead, matrix.shape[0], *rest), 1)

    def _rest(self, x: torch.Tensor, first: int) -> torch.Tensor:
        for axis in range(first, len(self.shape)):
            x = self._along(x, axis, self._ops[axis])
        return x

    def _along(self, x: torch.Tensor, axis: int, op: AxisOperator) -> torch.Tensor:
        dim = x.ndim - len(self.shape) + axis
        shape = x.shape
        y = apply_axis(x.reshape(math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:])),
                       op)
        return y.reshape(shape)


def _strip_plan(n, kernel_size, sigma, reps, rows, device, dtype):
    """``[(start, stop, lo, hi, matrix)]``: strips of ``rows`` rows of an axis of length
    ``n``, each with its input range (a halo of ``h``, clipped) and its rows of
    ``T**reps`` (none for a single strip: the whole-axis operator serves it)."""
    if rows >= n:
        return [(0, n, 0, n, None)]
    diag = band_diagonals(n, gaussian_kernel1d(kernel_size, sigma), reps)
    h = diag.shape[1] // 2
    plan = []
    for s in range(0, n, rows):
        e = min(n, s + rows)
        lo, hi = max(0, s - h), min(n, e + h)
        matrix = window_matrix(diag, range(s, e), range(lo, hi)).to(device, dtype)
        plan.append((s, e, lo, hi, matrix))
    return plan


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
