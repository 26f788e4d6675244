"""Incremental evaluation: the gains of a binary partition recomputed only near the
pixels that moved.

At every finer level of coarse to fine (and in a refinement from a user's edit) all but
a thin band of pixels is locked, and after the first iterations only a few hundred of
those move, yet :meth:`IEMObjective.evaluate` filters the whole image every iteration
(at 2048x2048, 0.5 s an iteration on one core).  A pixel's gain depends on the labels
within two filter reaches of it (its prediction within one reach, the adjoint of its
neighbours' predictions within the next) and on a few global numbers: the areas and
colour sums of the regions (exact from the labels, cheap), their mean inpainting
errors, and the eps of the adjoint filter (``1e-8`` times the sum of the adjoint maps,
kept from the full evaluation: it moves a gain by about a millionth).  So the image is
cut into tiles, and each iteration only the tiles within two reaches of a pixel that
changed are evaluated, each on its own crop (the tile and two reaches around it, with
the rows of the whole image's filter, so the crop's edges cannot reach the tile).
Every other tile keeps its gains and its error sums, stale only through the global
numbers; the parts of a gain those move most are kept apart and added fresh each time:
the regions' mean errors (one number per image) and the spread about the region means
(``lam`` times a function linear in the pixel's colour, most of a gain's size).  What
is left stale scales with the areas, which a few hundred moved pixels change by well
under a per cent.

It is an approximation of the evaluation, not of the result: :func:`optimize` uses it
only to approach a fixed point, and a fixed point (or cycle) found with it is confirmed
or continued by exact iterations, so a converged result is a fixed point of the exact
rule.  Used for two regions in 2-D: in 3-D a crop is ``(T + 4h)**3``, many times its
tile.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from .devices import wide_dtype
from .inpaint import EPS_REL, band_diagonals, gaussian_kernel1d, per_axis, window_matrix
from .objective import IEMObjective

#: Tile side (pixels); each crop is ``TILE + 4h`` on a side (h: the filter's reach).
TILE = 64
#: Evaluate on crops only when they cover at most this share of the image.
MAX_SHARE = 0.5
#: Levels smaller than this (pixels per image) are evaluated whole: measured on the
#: development photos at full size (about 0.15 MP), the exact iterations that confirm a
#: fixed point cost more than the crops save; from about a megapixel on they pay.
MIN_PIXELS = 2**19

__all__ = ["BandEvaluator", "band_evaluator", "tiles_near"]


def band_evaluator(objective, locked: torch.Tensor | None):
    """A :class:`BandEvaluator` for ``objective`` where pixels are ``locked``
    ``(B, H, W)``, or None where it does not apply (no locks, K > 2, not 2-D) or does
    not pay (under :data:`MIN_PIXELS`)."""
    if locked is None or objective.regions != 2 or objective.nd != 2 \
            or not objective.binary_path or math.prod(objective.x.shape[2:]) < MIN_PIXELS:
        return None
    return BandEvaluator(objective)


def _grid(shape) -> tuple[int, ...]:
    return tuple(-(-n // TILE) for n in shape)


def _grid_pad(shape, halo: int = 0) -> tuple[int, ...]:
    """``F.pad`` widths of a ``(.., H, W)`` map to the tile grid, plus ``halo`` all round."""
    (ny, nx), (gy, gx) = shape, _grid(shape)
    return (halo, gx * TILE - nx + halo, halo, gy * TILE - ny + halo)


def _crop_operators(n, tiles, params, axis, reach, device, dtype):
    """Per tile of one axis, the rows of the whole image's filter ``T**reps`` its crop
    needs: forward, the tile and a reach around it from the crop (``(g, T + 2h, T +
    4h)``); backward, the tile from those (``(g, T, T + 2h)``).  Taken from the whole
    axis, they are exact at the image border too (two zero-padded passes are not one
    pass over a zero-padded crop), and zero outside the image."""
    sigma = per_axis(params.sigma, 2)[axis]  # the incremental evaluation is 2-D
    fwd, back = _axis_crop_operators(n, tiles, int(params.kernel_size), sigma,
                                     int(params.reps), reach)
    return fwd.to(device, dtype), back.to(device, dtype)


@lru_cache(maxsize=32)
def _axis_crop_operators(n, tiles, kernel_size, sigma, reps, reach):
    """:func:`_crop_operators` in float64 on the CPU, cached: every level of a run and
    every run of a session at that size asks for the same (building them takes
    thousands of small tensor operations)."""
    diag = band_diagonals(n, gaussian_kernel1d(kernel_size, sigma), reps)
    fwd, back = [], []
    for t in range(tiles):
        lo = t * TILE - 2 * reach  # the crop's first pixel
        fwd.append(window_matrix(diag, range(lo + reach, lo + TILE + 3 * reach),
                                 range(lo, lo + TILE + 4 * reach)))
        back.append(window_matrix(diag, range(lo + 2 * reach, lo + 2 * reach + TILE),
                                  range(lo + reach, lo + TILE + 3 * reach)))
    return torch.stack(fwd), torch.stack(back)


def _separable(u: torch.Tensor, ops_y: torch.Tensor, ops_x: torch.Tensor) -> torch.Tensor:
    """``ops_y[n] @ u[n, c] @ ops_x[n].T`` for every crop ``n`` and map ``c``."""
    return ops_y[:, None] @ u @ ops_x.transpose(1, 2)[:, None]


def tiles_near(mask: torch.Tensor, reach: int):
    """The tiles ``(b, ty, tx)`` with a pixel of ``mask`` ``(B, H, W)`` within ``reach``."""
    near = F.pad(mask.to(torch.uint8), _grid_pad(tuple(mask.shape[1:]), reach))
    # each tile with ``reach`` around it: a view of overlapping windows, read once
    near = near.unfold(1, TILE + 2 * reach, TILE).unfold(2, TILE + 2 * reach, TILE)
    return near.amax((3, 4)).nonzero(as_tuple=True)


class BandEvaluator:
    """J and gains of a K = 2 labelling, recomputed near the pixels that moved.

    Parameters
    ----------
    objective : IEMObjective
        The exact objective of the batch (its images, filter parameters and ``lam``).

    :meth:`start` takes a full evaluation; each :meth:`evaluate` then recomputes the
    tiles within two reaches of the pixels changed since the last evaluation, or
    returns None when those would cost more than :data:`MAX_SHARE` of a full one.
    """

    def __init__(self, objective):
        x = objective.x
        self.x, self.lam = x, objective.lam
        self.inputs = objective.inputs  # x[index], gathered once per shrink of the batch
        self.h = reach = objective.filt.reach
        self.shape = tuple(x.shape[2:])
        self.grid = _grid(self.shape)
        self.tile, self.side = TILE, TILE + 4 * reach
        self.forward_ops, self.back_ops = zip(*(
            _crop_operators(n, g, objective.params, axis, reach, x.device, x.dtype)
            for axis, (n, g) in enumerate(zip(self.shape, self.grid))))
        self.x_sum = x.sum((2, 3))
        # for the spread about the means in J (a norm: float32, no float64 copy of x)
        self.wide = wide_dtype(x.device)  # float64, or float32 on MPS
        self.x_sq_sum = torch.linalg.vector_norm(x.flatten(2), dim=2).to(self.wide).pow(2)
        self.sq1 = x.new_zeros(x.shape[:2], dtype=self.wide)  # sum of x**2 in region 1
        full = (x.shape[0], *(g * TILE for g in self.grid))
        #: the gains without their global term (the regions' mean errors), per pixel
        self.partial = x.new_zeros(full[0], 1, *full[1:])
        #: per tile (B, nty, ntx, 2): the error sums of region 1 and of the whole tile
        self.sums = x.new_zeros(x.shape[0], *self.grid, 2)
        self.eps_d = x.new_zeros(x.shape[0], x.shape[1] + 1)
        self.last = torch.zeros((x.shape[0], *self.shape), dtype=torch.uint8, device=x.device)

    def _crop_index(self, t: torch.Tensor, axis: int):
        """Pixel indices ``(N, L)`` of the crops of tiles ``t`` along ``axis``, clamped
        into the image (the filter rows are zero outside it), and the tile's own pixels
        that lie in the image ``(N, T)``."""
        n, reach = self.shape[axis], self.h
        pos = t[:, None] * TILE - 2 * reach + torch.arange(self.side, device=t.device)
        return pos.clamp(0, n - 1), pos[:, 2 * reach: 2 * reach + TILE] < n

    def _tiles(self, padded: torch.Tensor) -> torch.Tensor:
        """``(B, ch, nty, ntx, T, T)``: a tile-grid-padded map as a view of its tiles."""
        b, ch = padded.shape[:2]
        return padded.view(b, ch, self.grid[0], TILE, self.grid[1], TILE).transpose(3, 4)

    def start(self, labels: torch.Tensor, gains: torch.Tensor, parts, index=None) -> None:
        """Take everything from a full evaluation of ``labels`` (the images ``x[index]``):
        its ``gains`` and ``parts`` (:meth:`IEMObjective.evaluate` with ``keep=self.tile``)."""
        sums, eps_d, offset = parts
        rows = slice(None) if index is None else index
        self.sums[rows] = sums
        self.eps_d[rows] = eps_d
        h, w = self.shape
        x = self.x[rows]
        m = labels.bool()[:, None].to(x.dtype)
        *_, mu = self._moments(x, m, rows)
        self.sq1[rows] = ((x * x).flatten(2) @ m.flatten(2).transpose(1, 2))[..., 0] \
            .to(self.wide)
        # in place where it can be: at 4096x4096 a full-size temporary is 67 MB
        partial = self.partial[:, :, :h, :w].copy_(gains) if index is None else gains.clone()
        partial.sub_(offset)
        for lo in range(0, h, TILE):  # by bands of rows: no full-size temporary
            band = slice(lo, min(h, lo + TILE))
            partial[:, :, band].sub_(self._spread_gain(x[:, :, band], *mu))
        if index is not None:
            self.partial[rows, :, :h, :w] = partial
        self.last[rows] = labels.to(torch.uint8)

    def _moments(self, x, m, rows):
        """Exact areas, colour sums and means of both regions of ``m`` ``(B', 1, H, W)``,
        the labels of the images ``x`` (rows ``rows`` of the batch)."""
        flat_m = m.flatten(2).transpose(1, 2)
        area1_raw = m.sum((2, 3))  # (B', 1)
        area0_raw = math.prod(self.shape) - area1_raw
        sum_x1 = (x.flatten(2) @ flat_m)[..., 0]  # (B', C)
        sum_x0 = self.x_sum[rows] - sum_x1
        area1, area0 = area1_raw.clamp_min(1.0), area0_raw.clamp_min(1.0)
        return ((area1_raw, area0_raw), (area1, area0), (sum_x1, sum_x0),
                (sum_x1 / area1, sum_x0 / area0))

    def _spread_gain(self, x, mu1, mu0):
        """``-lam ((x - mu1)**2 - (x - mu0)**2)`` summed over channels, ``(B', 1, H, W)``:
        the gain of the spread term, linear in ``x``, recomputed whole every time (the
        means move with every pixel, and this term is most of a gain's size)."""
        weight = -2 * self.lam * (mu0 - mu1)  # (B', C)
        const = -self.lam * (mu1.pow(2) - mu0.pow(2)).sum(1)
        out = (weight[:, None] @ x.flatten(2)).add_(const[:, None, None])
        return out.view(x.shape[0], 1, *x.shape[2:])

    def evaluate(self, labels: torch.Tensor, index=None):
        """``J (B,)`` and gains ``(B, 1, H, W)`` of the images ``x[index]``, like
        :meth:`IEMObjective.evaluate`, after :meth:`start`; None when so many pixels
        moved that a full evaluation is cheaper."""
        x = self.inputs(index)
        rows = slice(None) if index is None else index  # a view where it can be
        labels8 = labels.to(torch.uint8)
        changed = labels8 != self.last[rows]
        r, ty, tx = tiles_near(changed, 2 * self.h)
        if len(r) * self.side**2 > MAX_SHARE * x.shape[0] * math.prod(self.shape):
            return None
        b = r if index is None else index[r]  # the image of each crop in the whole batch

        channels = x.shape[1]
        m = labels.bool()[:, None].to(x.dtype)
        (area1_raw, area0_raw), (area1, area0), (sum_x1, sum_x0), (mu1, mu0) = \
            self._moments(x, m, rows)
        eps = EPS_REL * torch.cat([sum_x1, area1_raw, sum_x0, area0_raw], 1)
        coef1, coef0 = -1 / (channels * area1), 1 / (channels * area0)

        if len(r):
            self._update(labels8, r, ty, tx, b, eps, (coef1, coef0), (area1, area0))
        total = self.sums[rows].sum((1, 2))  # (B', 2)
        ie1, ie0 = total[:, :1] / area1, (total[:, 1:] - total[:, :1]) / area0
        self.last[rows] = labels8
        h, w = self.shape
        offset = (ie0 / area0 - ie1 / area1).view(-1, 1, 1, 1)
        gains = self._spread_gain(x, mu1, mu0).add_(self.partial[rows, :, :h, :w]).add_(offset)

        # J: the mean errors as above, the spread about the means from moments, the sum
        # of x**2 in region 1 moved by the pixels that changed
        cb, cy, cx = changed.nonzero(as_tuple=True)
        wide = self.wide
        sign = labels8[cb, cy, cx].to(wide).mul_(2).sub_(1)  # +1 joined region 1, -1 left
        sq1 = self.sq1[rows].index_add_(0, cb, x[cb, :, cy, cx].to(wide).pow(2) * sign[:, None])
        self.sq1[rows] = sq1
        spread = (sq1 - sum_x1.to(wide) ** 2 / area1.to(wide)).sum(1) \
            + (self.x_sq_sum[rows] - sq1 - sum_x0.to(wide) ** 2 / area0.to(wide)).sum(1)
        return (ie1 + ie0)[:, 0] - self.lam * spread.to(x.dtype), gains

    def _update(self, labels8, r, ty, tx, b, eps, coef, area):
        """Evaluate the tiles ``(r, ty, tx)`` (``r``: rows of ``labels8``, ``b``: images
        of the batch) on their crops: their error sums and their gains."""
        (iy, vy), (ix, vx) = self._crop_index(ty, 0), self._crop_index(tx, 1)
        cx = self.x[b[:, None, None], :, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)
        cm = labels8[r[:, None, None], iy[:, :, None], ix[:, None, :]][:, None].to(cx.dtype)
        channels, h = cx.shape[1], self.h
        fy, fx = self.forward_ops[0][ty], self.forward_ops[1][tx]
        # forward, on the tile and a reach around it: the same formulas as a full one
        f = _separable(torch.cat([cx * cm, cm, cx * (1 - cm), 1 - cm], 1), fy, fx)
        f.add_(eps[r][..., None, None])
        ring = (slice(None), slice(None), slice(h, -h), slice(h, -h))
        xr, ir = cx[ring], cm[ring].bool()
        d = cx.new_empty(len(r), channels + 1, *xr.shape[2:])
        c1, c0 = (c[r].view(-1, 1, 1, 1) for c in coef)
        err1, err0, _ = IEMObjective._strip_forward(f, xr, ir, d, slice(None), (c1, c0))
        core = (slice(None), slice(None), slice(h, h + TILE), slice(h, h + TILE))
        io, vo = ir[core], (vy[:, :, None] & vx[:, None, :])[:, None]
        e1, e0 = err1[core], err0[core]
        own = torch.where(io, e1, torch.where(vo, e0, e0.new_zeros(())))
        self.sums[b, ty, tx] = torch.stack([(own * io).sum((1, 2, 3)), own.sum((1, 2, 3))], 1)
        eps_d = self.eps_d[b]
        # backward on the tiles: the adjoint filtered, with the direct part
        back = _separable(d, self.back_ops[0][ty], self.back_ops[1][tx])
        back.add_(eps_d[..., None, None])
        xo = xr[core]
        a1, a0 = (t[r].view(-1, 1, 1, 1) for t in area)
        partial = e1 / a1 - e0 / a0  # the spread's part is added whole (_spread_gain)
        partial -= (back[:, :-1] * xo).sum(1, keepdim=True) + back[:, -1:]
        self._tiles(self.partial)[b, :, ty, tx] = partial
