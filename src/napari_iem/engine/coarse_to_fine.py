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

The texture channel (:mod:`.texture`), where the preset asks for it, is used on the
coarsest level only, where the regions are found; the finer levels refine the edge by
colour.

The inpainter's ``sigma`` stays in pixels of each level: on the coarse level it sees the
image as the paper's 128-pixel protocol does, on the finer levels it decides edges at
their own resolution.
"""
from __future__ import annotations

import math
from collections.abc import Generator, Iterable

import numpy as np
import torch

from .multiscale import band_width, boundary_band
from .optimize import OptimState, optimize
from .preprocess import resize_labels, working_shape
from .texture import for_the_edge

__all__ = ["levels", "band_lock", "solve_levels"]


def levels(spatial, max_size: int | None, coarse_size: int | None) -> list[int | None]:
    """The ``max_size`` of each pyramid level, coarsest first; the last is the run's
    own working size (``max_size``, None for full size).

    One level when ``coarse_size`` is None or the working size is within a factor
    of sqrt(2) of it; otherwise each level is half the next, and the coarsest is the
    one whose longer side is nearest ``coarse_size`` on a log scale (within a factor
    of sqrt(2)), so the regions are found at about that scale whatever the image's
    size: a 250-pixel photo with the photo preset is solved at 125 pixels first and
    refined at 250 (at 250 directly, 7% of the horse photos at full size stopped at
    the iteration cap, and the fixed IoU was 1.6 lower: docs/evaluation.md).  Each
    level's shape is ``working_shape(spatial, side)``, exactly what preparing the
    image at that size gives.
    """
    longest = max(working_shape(spatial, max_size))
    if coarse_size is None or longest <= coarse_size:
        return [max_size]
    steps = round(math.log2(longest / coarse_size))  # the coarsest nearest coarse_size
    return [round(longest / 2**i) for i in range(steps, 0, -1)] + [max_size]


def band_lock(labels: np.ndarray, fine_shape, coarse_shape) -> np.ndarray:
    """Pixels of carried-up ``labels`` (``(B, *fine_shape)``) that may not move: all
    but those within a coarse pixel and one of the boundary."""
    width = band_width(fine_shape, coarse_shape)
    return np.stack([~boundary_band(lab, width) for lab in labels])


def solve_levels(inputs: Iterable[torch.Tensor], regions: int, params, start=None,
                 ) -> Generator[tuple[int, OptimState], None, OptimState]:
    """Optimise a batch through its pyramid levels, coarsest first: the one
    level-by-level solve of every path (whole images, blocks of a large one).

    ``inputs`` gives each level's batch ``(B, C, *S)`` in turn (it may build them
    lazily, so only one level is on the device at a time).  ``start``, when given, is
    the caller's start: ``start(shape)`` returns its labels and its locked pixels (or
    None) at a level's spatial ``shape``, as ``(B, *shape)`` arrays.  The first level
    starts from it; from the second level on, the labels are carried up and only the
    band around their boundary may move (:func:`band_lock`), and the caller's locked
    pixels keep the caller's labels on every level.  So a refinement from a user's
    edit converges as a run does, instead of travelling at full size a pixel an
    iteration (a 400x600 photo edited and refined: 150 iterations, not converged,
    5.3 s before).  Yields ``(iterations done on the earlier levels, state)`` after
    every iteration; returns the last level's final state with the iterations and the
    objective histories of every level added up.
    """
    labels, done, counted, history = None, 0, None, None
    for x in inputs:
        shape = tuple(x.shape[2:])
        init, locked = start(shape) if start is not None else (None, None)
        if locked is None:  # the finer levels need the caller's start only for its locks
            start = None
        if labels is not None:  # carried up; only the band around the boundary may move
            # bytes (regions <= 64), carried from the smaller level: the optimiser
            # makes its one int64 copy
            carried = np.stack([resize_labels(lab.astype(np.uint8), shape) for lab in labels])
            if locked is not None:  # the caller's pixels, whatever the level above did
                carried = np.where(locked, init, carried).astype(np.uint8)
            band = band_lock(carried, shape, labels.shape[1:])
            init, locked = carried, band if locked is None else band | locked
            params = for_the_edge(params)  # by colour within the band
        init = None if init is None else torch.from_numpy(np.ascontiguousarray(init)).to(x.device)
        locked = None if locked is None else torch.from_numpy(
            np.ascontiguousarray(locked)).to(x.device)
        gen = optimize(x, regions, params, init=init, locked=locked)
        try:
            while True:
                state = next(gen)
                yield done, state
        except StopIteration as stop:
            state = stop.value
        finally:
            gen.close()
        done += state.iteration
        counted = state.iterations.clone() if counted is None else counted + state.iterations
        history = state.history if history is None else \
            [h + more for h, more in zip(history, state.history)]
        labels = state.labels.cpu().numpy()
    state.iterations, state.history = counted, history
    return state
