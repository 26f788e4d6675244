"""Coarse to fine: solve small, then move only the boundary at each finer level.

The contour of IEM moves at most a pixel or two per iteration, so at full resolution it
needs hundreds of iterations to travel across an object, and 150 are often not enough
(a 400x600 photo stopped at the cap).  Solved on a small level of an image pyramid, the
same partition is found in a few dozen iterations; carried up one level (twice the
size, nearest neighbour), it is right everywhere except within a coarse pixel of the
boundary.  So at each finer level every pixel farther than :func:`band` from the
carried-up boundary is locked, and IEM's own iterations only decide the band, which takes
a handful of iterations.  The objective is IEM's on the whole level, so nothing is
approximated but the start.

The inpainter's ``sigma`` stays in pixels of each level: on the coarse level it sees the
image as the paper's 128-pixel protocol does, on the finer levels it decides edges at
their own resolution.
"""
from __future__ import annotations

import math

import numpy as np

from .multiscale import band_width, boundary_band
from .preprocess import working_shape

__all__ = ["levels", "band_lock"]


def levels(spatial, max_size: int | None, coarse_size: int | None) -> list[int | None]:
    """The ``max_size`` of each pyramid level, coarsest first; the last is the run's
    own working size (``max_size``, None for full size).

    One level when ``coarse_size`` is None or the working size is already that small;
    otherwise each level is half the next, and the coarsest has a longer side of
    ``coarse_size`` to twice that.  Each level's shape is
    ``working_shape(spatial, side)``, exactly what preparing the image at that size
    gives.
    """
    longest = max(working_shape(spatial, max_size))
    if coarse_size is None or longest <= coarse_size:
        return [max_size]
    steps = math.floor(math.log2(longest / coarse_size))  # coarsest >= coarse_size
    return [round(longest / 2**i) for i in range(steps, 0, -1)] + [max_size]


def band_lock(labels: np.ndarray, fine_shape, coarse_shape) -> np.ndarray:
    """Pixels of carried-up ``labels`` (``(B, *fine_shape)``) that may not move: all
    but those within a coarse pixel and one of the boundary."""
    width = band_width(fine_shape, coarse_shape)
    return np.stack([~boundary_band(lab, width) for lab in labels])
