"""A texture channel for the inpainter: local contrast beside colour.

IEM's inpainter predicts a region's colours from the others; two regions of one mean
colour but different texture (foliage against sky of the same green-grey, a patterned
shirt against a plain one) are then equally well predicted and hard to split.  Giving
the inpainter one more channel, the local standard deviation of the lightness, makes
such a difference a difference of values, which the Gaussian inpainter cannot bridge.

The box scales with the image: ``window`` pixels per 128 pixels of the longer side, so
that the paper's 128-pixel protocol and an image solved at another size see the same
texture.  It serves to find the regions: coarse to fine uses it on its coarsest level
only, and the finer levels and the full-size refinement decide the edge by colour (the
box is wider than their band, and would blur it).  The channel is stretched per
image, its 1st to 99th percentile to -1..1 (clipped), like the colour channels.
Measured on the development photos with ``benchmarks/texture_channel.py`` first and
then in the engine: docs/evaluation.md.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from .devices import wide_dtype

__all__ = ["with_texture", "box_mean", "for_the_edge"]

#: Values per image the stretch's percentiles are taken from (a strided sample above).
SAMPLE_MAX = 2**16


def box_mean(x: torch.Tensor, width: int, nd: int) -> torch.Tensor:
    """Mean of ``x`` over a box of ``width`` pixels on each of its last ``nd`` axes,
    the image's border excluded (each output divides by the pixels it covers).

    Running sums over the zero-padded axis in float64 (float32 on MPS, which has no
    float64), one axis at a time: the cost does not grow with ``width``, and a
    difference of two large running sums keeps its digits.
    """
    half = width // 2
    out = x.to(wide_dtype(x.device))
    for d in range(out.ndim - nd, out.ndim):
        n = out.shape[d]
        pad = [0, 0] * (out.ndim - 1 - d) + [half + 1, half]  # a zero before the first
        run = F.pad(out, pad).cumsum(d)  # run[i + width] - run[i]: the box of output i
        sums = run.narrow(d, width, n) - run.narrow(d, 0, n)
        i = torch.arange(n, device=x.device)
        count = (i + half + 1).clamp_max(n) - (i - half).clamp_min(0)
        shape = [1] * out.ndim
        shape[d] = n
        out = sums.div_(count.to(out.dtype).view(shape))
    return out


def for_the_edge(params):
    """``params`` without the texture channel: the finer levels of coarse to fine and
    the full-size refinement decide the edge within a band, by colour, because the
    channel's box (``texture`` pixels per 128 of the side) is wider than the band and
    blurs the edge, and it costs a quarter more filtering."""
    return replace(params, texture=0)


def with_texture(x: torch.Tensor, window: int) -> torch.Tensor:
    """``x`` ``(B, C, *S)`` with a texture channel appended (``(B, C + 1, *S)``), or
    ``x`` itself for ``window`` 0: the local standard deviation of channel 0 over a box
    of ``window`` pixels per 128 of the longer side (odd, at least 3), stretched per
    image from its 1st..99th percentile to -1..1."""
    if not window:
        return x
    nd = x.ndim - 2
    width = max(3, round(window * max(x.shape[2:]) / 128) | 1)
    lum = x[:, :1]
    mean = box_mean(lum, width, nd)
    std = (box_mean(lum * lum, width, nd) - mean * mean).clamp_min_(0).sqrt_().to(x.dtype)
    flat = std.flatten(1)
    sample = flat[:, :: max(1, -(-flat.shape[1] // SAMPLE_MAX))]
    q = torch.quantile(sample, torch.tensor([0.01, 0.99], device=x.device, dtype=x.dtype),
                       dim=1)  # (2, B)
    view = (-1,) + (1,) * (x.ndim - 1)
    centre, span = ((q[0] + q[1]) / 2).view(view), ((q[1] - q[0]) / 2).clamp_min(1e-6).view(view)
    return torch.cat([x, ((std - centre) / span).clamp_(-1, 1)], 1)
