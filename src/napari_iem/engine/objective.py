"""The IEM objective for K regions and its gradient in closed form.

For one-hot region masks ``m_k`` (k = 0..K-1) of an image ``x`` scaled to [-1, 1], region
``k`` is inpainted from all the others, ``phi_k = phi(x, 1 - m_k)``, and

    J = sum_k E_k / |m_k|  -  lam * sum_k sum_c sum_p m_kp (x_cp - mu_kc)^2,
    E_k = sum_p m_kp mean_c |x_cp - phi_kcp|.

The optimiser needs, per pixel, how much J gains when the pixel joins region ``k``
instead of region 0: ``gain_k = dJ/dm_k - dJ/dm_0`` on the continuous relaxation.  For
K = 2 this is exactly ``dJ/dM`` of the paper's binary formulation (``M = m_1``).

Why closed form instead of autograd: the backward pass of normalized convolution is
itself a normalized convolution, so every gradient costs the same few filter products as
the forward pass, and by linearity the K-1 gain maps need only K-1 filter batches (the
differences of the adjoints are filtered, not each adjoint).

The forward pass filters each region's visible part ``x (1 - m_k)`` directly rather than
as ``G*x - G*(x m_k)``: linearity would save a quarter of the filtering, but deep inside
a large region ``G*(1 - m_k)`` is a tiny difference of two numbers near 1, float32 loses
three digits there, and measured on random images 1 in 20 masks then drifted from the
reference's after a sign flip of a near-zero gain.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .inpaint import EPS_REL, GaussianFilter, filter_with_eps
from .presets import IEMParams

#: Floor of the inpainter's denominator: only reached when nothing is visible.
TINY = 1e-30
#: Elements (maps x pixels of one image) per strip of the fused K = 2 evaluation, and
#: the fewest rows of a strip (each recomputes a halo of 2h rows); measured with
#: ``benchmarks/bench_kernels.py``: smaller strips stay in cache, larger ones pay less
#: per-operation overhead.  Not the batch: a result must not depend on its batch.
STRIP_ELEMENTS = 2**18
STRIP_ROWS_MIN = 32
#: The most rows of a strip: its filter is a dense ``rows x (rows + 2h)`` block of the
#: axis's operator, ``rows + 2h`` multiply-adds a pixel, so a narrow, tall image
#: (50000x8) must not get strips of thousands of rows (each a 268 MB matrix, 13x
#: slower than the same image transposed).
STRIP_ROWS_MAX = 256
#: Elements (maps x pixels x images) an evaluation handles at once: a large batch of
#: small images is evaluated a few images at a time, so that its temporaries stay in
#: cache (169 crops of 128x128: 1.9 ms per image and evaluation in one piece, 1.2 ms
#: eight at a time; docs/benchmarks.md, "a batch in cache-sized chunks").  Each image's
#: numbers are the same whatever its chunk (tested): nothing is summed across images.
CHUNK_ELEMENTS = 2**20


def strip_rows(shape, channels: int) -> int:
    """Rows of the first spatial axis per strip for images of ``shape`` and
    ``channels`` (the forward pass filters ``2 channels + 2`` maps)."""
    rows = STRIP_ELEMENTS // (math.prod(shape[1:]) * (2 * channels + 2))
    return min(STRIP_ROWS_MAX, max(STRIP_ROWS_MIN, rows))


def one_hot(labels: torch.Tensor, regions: int, dtype=torch.float32) -> torch.Tensor:
    """``(B, *S)`` integer labels to ``(B, K, *S)`` masks."""
    return torch.movedim(F.one_hot(labels, regions), -1, 1).to(dtype)


class IEMObjective:
    """J and its per-pixel gains for a batch of images of one size.

    Parameters
    ----------
    x : Tensor, shape (B, C, *spatial), float
        Images scaled to [-1, 1].
    regions : int
        K, the number of regions.
    params : IEMParams
        The Gaussian (``kernel_size``, ``sigma``, ``reps``) and ``lam``.
    """

    def __init__(self, x: torch.Tensor, regions: int, params: IEMParams):
        self.x = x
        self.regions = regions
        self.params = params
        self.lam = params.lam
        self.nd = x.ndim - 2
        self.filt = GaussianFilter(
            x.shape[2:], params.kernel_size, params.sigma, params.reps,
            device=x.device, dtype=x.dtype, strip=strip_rows(x.shape[2:], x.shape[1]),
        )
        #: use the written-out K = 2 path (False only to test it against the general one)
        self.binary_path = True
        self._gathered = None  # (index, x[index]) of the last call
        #: images evaluated together: on a CPU as many as keep :data:`CHUNK_ELEMENTS`
        #: in cache (the forward pass filters ``K (C + 1)`` maps), on a GPU all (each
        #: chunk costs its own kernel launches)
        self.images_per_chunk = x.shape[0] if x.device.type != "cpu" else max(
            1, CHUNK_ELEMENTS // (math.prod(x.shape[2:]) * regions * (x.shape[1] + 1)))

    def inputs(self, index=None):
        """The images ``x[index]``; the optimiser passes the same ``index`` tensor until
        an image leaves the batch, so its gathered copy is kept until then."""
        if index is None:
            return self.x
        if self._gathered is None or self._gathered[0] is not index:
            self._gathered = (index, self.x[index])
        return self._gathered[1]

    def _predictions(self, m: torch.Tensor, x: torch.Tensor):
        """Numerator, denominator and prediction of every region's inpainting."""
        visible = 1 - m  # (B, K, *S): region k is predicted from everything else
        f = filter_with_eps(
            torch.cat([x[:, None] * visible[:, :, None], visible[:, :, None]], 2), self.filt)
        # a region covering the whole image leaves nothing visible: 0/0, guarded
        num, den = f[:, :, :-1], f[:, :, -1:].clamp_min(TINY)
        return num, den, num / den

    def predict(self, labels: torch.Tensor, index=None):
        """Per-region inpaintings ``(B, K, C, *S)`` and each pixel's own error ``(B, *S)``.

        Strip by strip (:meth:`GaussianFilter.strips`), like the optimiser's evaluation:
        filtering the ``K (C + 1)`` maps of a large image in one piece moves them
        through memory several times (measured at 2048x2048 RGB: 3.1 s, against 0.5 s
        for a whole iteration of the fused evaluation).
        """
        x = self.inputs(index)
        m = one_hot(labels, self.regions, x.dtype)
        visible = 1 - m  # (B, K, *S): region k is predicted from everything else
        spatial = tuple(range(3, x.ndim + 1))
        # the reference's eps: 1e-8 times the sums of the unfiltered maps
        eps = EPS_REL * torch.cat([(x[:, None] * visible[:, :, None]).sum(spatial, keepdim=True),
                                   visible[:, :, None].sum(spatial, keepdim=True)], 2)
        phi = x.new_empty(x.shape[0], self.regions, *x.shape[1:])
        err = x.new_empty(x.shape[0], *x.shape[2:])
        for k, (lo, hi, out) in enumerate(self.filt.strips()):
            xs, vs = x[:, None, :, lo:hi], visible[:, :, None, lo:hi]
            f = self.filt.filter_strip(torch.cat([xs * vs, vs], 2), k).add_(eps)
            o = (slice(None), slice(None), slice(None), out)
            # a region covering the whole image leaves nothing visible: 0/0, guarded
            torch.div(f[:, :, :-1], f[:, :, -1:].clamp_min_(TINY), out=phi[o])
            own = (x[:, None, :, out] - phi[o]).abs_().mean(2)  # (B, K, rows, ...)
            err[:, out] = (own * m[:, :, out]).sum(1)
        return phi, err

    def evaluate(self, labels: torch.Tensor, index=None, keep: int = 0):
        """Objective ``J`` per image ``(B,)`` and gains ``(B, K-1, *S)`` of regions 1..K-1
        over region 0.

        ``labels`` are the current labels ``(B, *S)`` of the images ``x[index]``.  With
        ``keep``, a tile side (K = 2, 2-D only), also the parts a
        :class:`~.band_evaluation.BandEvaluator` starts from: per tile of ``keep``
        pixels the error sums of region 1 and of the whole tile ``(B, nty, ntx, 2)``,
        the eps of the adjoint filter, and the gains' global term (the regions' mean
        errors).
        """
        x = self.inputs(index)
        if keep and not (self.regions == 2 and self.binary_path):
            raise ValueError("the parts of an evaluation are kept for K = 2 only")
        step = self.images_per_chunk
        if x.shape[0] <= step:
            return self._evaluate_chunk(labels, x, keep)
        chunks = [self._evaluate_chunk(labels[s:s + step], x[s:s + step], keep)
                  for s in range(0, x.shape[0], step)]
        return _concatenated(chunks)

    def _evaluate_chunk(self, labels, x, keep):
        if self.regions == 2 and self.binary_path:
            return self._evaluate_binary(labels, x, keep)
        nd, filt, lam = self.nd, self.filt, self.lam
        channels = x.shape[1]
        m = one_hot(labels, self.regions, x.dtype)
        num, den, phi = self._predictions(m, x)
        res = x[:, None] - phi  # (B, K, C, *S)
        err = res.abs().mean(2)  # (B, K, *S)
        spatial = tuple(range(2, 2 + nd))
        area = m.sum(spatial).clamp_min(1.0)  # guards an empty region
        area_s = area.view(*area.shape, *([1] * nd))
        ie = (m * err).sum(spatial) / area
        mu = (x[:, None] * m[:, :, None]).sum(tuple(range(3, 3 + nd))) / area[..., None]
        dev2 = ((x[:, None] - mu.view(*mu.shape, *([1] * nd))) ** 2).sum(2)
        j = (ie - lam * (m * dev2).sum(spatial)).sum(1)

        direct = (err - ie.view_as(area_s)) / area_s - lam * dev2
        adj_phi = -(m[:, :, None] * torch.sign(res)) / (channels * area_s[:, :, None])
        adj_num = adj_phi / den
        adj_den = -(adj_phi * phi).sum(2) / den[:, :, 0]
        # gain_k - gain_0: filter only the differences of the adjoints (linearity)
        d = torch.cat([adj_num, adj_den[:, :, None]], dim=2)
        d = d[:, 1:] - d[:, :1]
        back = filter_with_eps(d, filt)  # the adjoint of the regularised filter
        back_w = (x[:, None] * back[:, :, :-1]).sum(2) + back[:, :, -1]
        return j, direct[:, 1:] - direct[:, :1] - back_w

    def _evaluate_binary(self, labels, x, keep=0):
        """K = 2, written out for speed and fused strip by strip (:meth:`_strip_forward`,
        :meth:`_strip_gains`).  Same values as the general path (tested), and on an
        image of one strip bit for bit those of the element-wise formulas it replaces.

        Two passes over the strips: the first filters the four maps, predicts, and
        leaves per pixel the two errors and the adjoint difference ``d``; the second,
        once the global sums (areas, mean errors, the eps of ``d``) are known, filters
        ``d`` and combines.  Per strip every temporary is a strip, so it stays in cache.
        """
        nd, lam = self.nd, self.lam
        spatial = tuple(range(2, 2 + nd))
        inside = labels.bool()[:, None]  # (B, 1, *S)
        m = inside.to(x.dtype)
        xm = x * m
        area1_raw, area0_raw = m.sum(spatial, keepdim=True), (1 - m).sum(spatial, keepdim=True)
        sum_x1 = xm.sum(spatial, keepdim=True)
        # the reference's eps: 1e-8 times the sums of the unfiltered [x m, m, x (1-m), 1-m]
        eps = EPS_REL * torch.cat(
            [sum_x1, area1_raw, (x - xm).sum(spatial, keepdim=True), area0_raw], 1)
        area1, area0 = area1_raw.clamp_min(1.0), area0_raw.clamp_min(1.0)
        mu1, mu0 = sum_x1 / area1, (x.sum(spatial, keepdim=True) - sum_x1) / area0
        channels = x.shape[1]
        # -1 / (C |region|): adj_k = sign(res_k) * r_k, exactly -sign(res_k) / (C |region|)
        coef = (-1 / (channels * area1), 1 / (channels * area0))
        d = x.new_empty(x.shape[0], channels + 1, *x.shape[2:])
        errs, ie = [], 0
        if keep:
            grid = [-(-n // keep) for n in x.shape[2:]]
            sums = x.new_zeros(x.shape[0], *grid, 2)
        for k, (lo, hi, out) in enumerate(self.filt.strips()):
            rows = (slice(None), slice(None), slice(lo, hi))
            f = self.filt.filter_strip(
                torch.cat([xm[rows], m[rows], x[rows] - xm[rows], 1 - m[rows]], 1), k)
            err1, err0, ie_k = self._strip_forward(f.add_(eps), x, inside, d, out, coef)
            errs.append((err1, err0))
            ie = ie + ie_k
            if keep:
                _add_tile_sums(sums, keep, out, inside[:, :, out], err1, err0)
        ie1, ie0 = ie[:, :1] / area1, ie[:, 1:] / area0
        eps_d = EPS_REL * d.sum(spatial, keepdim=True)
        if keep:
            parts = (sums, eps_d.flatten(1), ie0 / area0 - ie1 / area1)
        gains = torch.empty_like(m)
        dev_sum = 0
        for k, (lo, hi, out) in enumerate(self.filt.strips()):
            back = self.filt.filter_strip(d[:, :, lo:hi], k).add_(eps_d)
            o = (slice(None), slice(None), out)
            xo, err1, err0 = x[o], *errs[k]
            dev1 = (xo - mu1).pow_(2).sum(1, keepdim=True)
            dev0 = (xo - mu0).pow_(2).sum(1, keepdim=True)
            # ((err1 - ie1) / area1 - lam dev1) - ((err0 - ie0) / area0 - lam dev0), in place
            direct = err1.sub_(ie1).div_(area1).sub_(lam * dev1)
            direct.sub_(err0.sub_(ie0).div_(area0).sub_(lam * dev0))
            back_w = back[:, :-1].mul_(xo).sum(1, keepdim=True).add_(back[:, -1:])
            torch.sub(direct, back_w, out=gains[o])
            dev_sum = dev_sum + torch.where(inside[o], dev1, dev0).sum(tuple(range(1, 2 + nd)))
        j = (ie1 + ie0).flatten() - lam * dev_sum
        return (j, gains, parts) if keep else (j, gains)

    @staticmethod
    def _strip_forward(f, x, inside, d, out, coef):
        """One strip of the forward pass: predictions, errors, adjoint difference.

        ``f`` holds the strip's filtered ``[x m, m, x (1-m), 1-m]`` with eps; its maps are
        divided in place.  Writes ``d`` (the adjoint of region 1 minus region 0, which
        have disjoint supports, so one ``where`` picks each pixel's own region) and
        returns both regions' errors and their masked sums ``(B, 2)``.
        """
        c = x.shape[1]
        o = (slice(None), slice(None), out)
        xo, io = x[o], inside[o]
        den0, den1 = f[:, c : c + 1].clamp_min_(TINY), f[:, -1:].clamp_min_(TINY)
        phi0, phi1 = f[:, :c].div_(den0), f[:, c + 1 : -1].div_(den1)
        res1, res0 = xo - phi1, xo - phi0
        # inside: adj1 = sign(res1) r1; outside: -adj0 = sign(res0) (-r0); signs flip
        # exactly, so d_num = adj / den and d_den = -(adj phi) / den per pixel as before
        adj = torch.where(io, res1, res0).sign_().mul_(torch.where(io, *coef))
        err1, err0 = res1.abs_().mean(1, keepdim=True), res0.abs_().mean(1, keepdim=True)
        spatial = tuple(range(1, x.ndim))
        zero = err1.new_zeros(())
        ie = torch.stack([torch.where(io, err1, zero).sum(spatial),
                          torch.where(io, zero, err0).sum(spatial)], 1)
        den = torch.where(io, den1, den0)
        torch.div(adj, den, out=d[:, :c][o])
        torch.div((adj * torch.where(io, phi1, phi0)).sum(1, keepdim=True).neg_(), den,
                  out=d[:, c:][o])
        return err1, err0, ie.view(-1, 2, *([1] * (x.ndim - 2)))


def _concatenated(chunks):
    """The chunks' results ``(j, gains[, parts])`` joined along the batch, as one call
    on the whole batch returns them (``parts`` is itself a tuple of batch-first tensors)."""
    def join(items):
        if isinstance(items[0], tuple):
            return tuple(join(list(group)) for group in zip(*items))
        return torch.cat(items)
    return join(chunks)


def _add_tile_sums(sums, tile, rows, inside, err1, err0) -> None:
    """Add a strip's (``rows`` of the image) error sums of region 1 and of all its
    pixels (each its own region's error) to the per-tile ``sums`` ``(B, nty, ntx, 2)``."""
    own = torch.where(inside, err1, err0)[:, 0]  # (B, rows, W)
    both = torch.stack([own * inside[:, 0], own], -1)
    width = sums.shape[2] * tile
    both = F.pad(both, (0, 0, 0, width - both.shape[2])) if width > both.shape[2] else both
    per_row = both.view(both.shape[0], both.shape[1], sums.shape[2], tile, 2).sum(3)
    index = torch.arange(rows.start, rows.stop, device=sums.device) // tile
    sums.index_add_(1, index, per_row)


def region_maps(x: torch.Tensor, labels: torch.Tensor, regions: int, params: IEMParams):
    """Inpaintings ``(B, K, C, *S)`` and per-pixel error ``(B, *S)`` of a labelling."""
    return IEMObjective(x, regions, params).predict(labels)
