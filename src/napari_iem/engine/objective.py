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

import torch
import torch.nn.functional as F

from .inpaint import GaussianFilter, filter_with_eps
from .presets import IEMParams

#: Floor of the inpainter's denominator: only reached when nothing is visible.
TINY = 1e-30


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
        self.lam = params.lam
        self.nd = x.ndim - 2
        self.filt = GaussianFilter(
            x.shape[2:], params.kernel_size, params.sigma, params.reps,
            device=x.device, dtype=x.dtype,
        )
        #: use the written-out K = 2 path (False only to test it against the general one)
        self.binary_path = True

    def _inputs(self, index):
        return self.x if index is None else self.x[index]

    def _predictions(self, m: torch.Tensor, x: torch.Tensor):
        """Numerator, denominator and prediction of every region's inpainting."""
        visible = 1 - m  # (B, K, *S): region k is predicted from everything else
        f = filter_with_eps(
            torch.cat([x[:, None] * visible[:, :, None], visible[:, :, None]], 2), self.filt)
        # a region covering the whole image leaves nothing visible: 0/0, guarded
        num, den = f[:, :, :-1], f[:, :, -1:].clamp_min(TINY)
        return num, den, num / den

    def predict(self, labels: torch.Tensor, index=None):
        """Per-region inpaintings ``(B, K, C, *S)`` and each pixel's own error ``(B, *S)``."""
        x = self._inputs(index)
        m = one_hot(labels, self.regions, x.dtype)
        *_, phi = self._predictions(m, x)
        err = (x[:, None] - phi).abs().mean(2)
        return phi, (err * m).sum(1)

    def evaluate(self, labels: torch.Tensor, index=None):
        """Objective ``J`` per image ``(B,)`` and gains ``(B, K-1, *S)`` of regions 1..K-1
        over region 0.

        ``labels`` are the current labels ``(B, *S)`` of the images ``x[index]``.
        """
        x = self._inputs(index)
        if self.regions == 2 and self.binary_path:
            return self._evaluate_binary(labels, x)
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

    def _evaluate_binary(self, labels, x):
        """K = 2, written out for speed: the two regions have disjoint supports, so the
        adjoint difference is a ``where`` instead of two full maps.  Same values as the
        general path (tested), about twice as fast."""
        nd, filt, lam = self.nd, self.filt, self.lam
        channels = x.shape[1]
        spatial = tuple(range(1, 1 + nd + 1))  # over channel-1 axis and space
        inside = labels.bool()[:, None]  # (B, 1, *S)
        m = inside.to(x.dtype)
        f = filter_with_eps(torch.cat([x * m, m, x * (1 - m), 1 - m], dim=1), filt)
        c = channels
        num0, den0 = f[:, :c], f[:, c : c + 1].clamp_min(TINY)
        num1, den1 = f[:, c + 1 : -1], f[:, -1:].clamp_min(TINY)
        phi1, phi0 = num1 / den1, num0 / den0
        res1, res0 = x - phi1, x - phi0
        err1, err0 = res1.abs().mean(1, keepdim=True), res0.abs().mean(1, keepdim=True)
        shape = (-1,) + (1,) * (nd + 1)
        area1 = m.sum(spatial).clamp_min(1.0).view(shape)
        area0 = (1 - m).sum(spatial).clamp_min(1.0).view(shape)
        ie1 = (m * err1).sum(spatial).view(shape) / area1
        ie0 = ((1 - m) * err0).sum(spatial).view(shape) / area0
        sum_x = x.sum(tuple(range(2, 2 + nd)), keepdim=True)
        sum_x1 = (x * m).sum(tuple(range(2, 2 + nd)), keepdim=True)
        dev1 = ((x - sum_x1 / area1) ** 2).sum(1, keepdim=True)
        dev0 = ((x - (sum_x - sum_x1) / area0) ** 2).sum(1, keepdim=True)
        j = (ie1 + ie0).flatten() - lam * torch.where(inside, dev1, dev0).sum(spatial)
        direct = ((err1 - ie1) / area1 - lam * dev1) - ((err0 - ie0) / area0 - lam * dev0)
        adj1 = -torch.sign(res1) / (channels * area1)  # valid inside region 1
        adj0 = -torch.sign(res0) / (channels * area0)  # valid inside region 0
        d_num = torch.where(inside, adj1 / den1, -adj0 / den0)
        d_den = torch.where(
            inside, -(adj1 * phi1).sum(1, keepdim=True) / den1,
            (adj0 * phi0).sum(1, keepdim=True) / den0,
        )
        d = torch.cat([d_num, d_den], dim=1)
        back = filter_with_eps(d, filt)  # the adjoint of the regularised filter
        back_w = (x * back[:, :-1]).sum(1, keepdim=True) + back[:, -1:]
        return j, direct - back_w


def region_maps(x: torch.Tensor, labels: torch.Tensor, regions: int, params: IEMParams):
    """Inpaintings ``(B, K, C, *S)`` and per-pixel error ``(B, *S)`` of a labelling."""
    return IEMObjective(x, regions, params).predict(labels)
