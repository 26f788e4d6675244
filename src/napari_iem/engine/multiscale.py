"""Coarse-to-fine: solve at a working resolution, refine the edges at full resolution.

A 4096x4096 image or a 64x1024x1024 stack is too large to optimise whole on a small CPU
(each iteration filters several float32 copies of it).  The engine therefore solves at a
working resolution (``max_size``), and :func:`refine_boundary` recovers full-resolution
edges: the labels are carried up (nearest neighbour), and IEM iterations run again at
full resolution, tile by tile, with every pixel farther than ``width`` pixels from the
carried-up boundary locked (the engine's ``locked`` input).  Only tiles that contain
boundary pixels are computed, each with a halo as wide as the band plus the inpainter's
reach so that the pixels it may move see their whole context, and tiles run in small
batches: memory is bounded by the tile size, not by the image.

The tiles are fixed by the image's shape alone, and a block of the image handed in with
a halo (a :class:`Window`) runs exactly the tiles that a whole-image refinement runs
there (:func:`iter_refine_window`): a larger-than-memory image refined block by block
(:mod:`napari_iem.batch.blocks`) gets the labels of the whole-image run.

Within a tile the objective is IEM's own (region areas counted in the tile); since the
carried-up labels are already right away from the boundary, only the local decision,
which side of the edge each band pixel belongs to, is left, and that depends on the
pixels within the inpainter's reach.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Generator, Iterator

import numpy as np
import torch
from scipy import ndimage as ndi

from .optimize import optimize
from .presets import IEMParams
from .texture import for_the_edge

__all__ = ["Window", "band_width", "boundary_band", "iter_refine_boundary",
           "iter_refine_window", "refine_boundary", "refine_setup", "tile_boxes"]

#: Core size of a refinement tile per axis (2-D, 3-D); tiles are this plus the halo.
TILE_2D = 256
TILE_3D = 96
#: Tile pixels optimised at once (bounds the engine's memory).
BATCH_PIXELS = 2**21


def band_width(full_shape, work_shape) -> int:
    """Pixels either side of the carried-up boundary that may still move: the
    upsampling factor (the size of one working pixel) plus one."""
    factor = max(f / w for f, w in zip(full_shape, work_shape))
    return int(math.ceil(factor)) + 1


def boundary_band(labels: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` (chessboard distance) of a change of label."""
    edge = np.zeros(labels.shape, dtype=bool)
    for d in range(labels.ndim):
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[d], hi[d] = slice(0, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        diff = labels[hi] != labels[lo]  # no difference array of the labels' dtype
        edge[lo] |= diff
        edge[hi] |= diff
    if width <= 0:
        return edge
    return ndi.maximum_filter(edge.view(np.uint8), size=2 * width + 1).view(bool)


Boxes = tuple[tuple[slice, ...], tuple[slice, ...]]


def tile_boxes(shape, tile: int, halo: int) -> Iterator[Boxes]:
    """``(outer, core)`` slices of the tiles covering ``shape``; ``core`` is relative
    to ``outer``."""
    starts = [range(0, n, tile) for n in shape]
    for corner in itertools.product(*starts):
        outer, core = [], []
        for s, n in zip(corner, shape):
            e = min(s + tile, n)
            a, b = max(0, s - halo), min(n, e + halo)
            outer.append(slice(a, b))
            core.append(slice(s - a, e - a))
        yield tuple(outer), tuple(core)


@dataclasses.dataclass(frozen=True)
class Window:
    """Where an array handed to :func:`iter_refine_window` lies in the whole image.

    The tiles of the whole image are fixed by the image's shape alone
    (:func:`tile_boxes` on ``full_shape``), so a block refined through a window runs
    exactly the tiles, with exactly the data, that a whole-image refinement runs
    there: the labels are the same whichever way the image is cut.

    Attributes
    ----------
    offset : tuple of int
        Global position of the array's first pixel.
    full_shape : tuple of int
        Spatial shape of the whole image.
    core : tuple of slice
        The global box whose tiles are refined (tiles whose core starts in it); each
        such tile, halo included, must lie inside the array.
    """

    offset: tuple[int, ...]
    full_shape: tuple[int, ...]
    core: tuple[slice, ...]

    @classmethod
    def whole(cls, shape) -> "Window":
        """The window of a whole image."""
        return cls((0,) * len(shape), tuple(shape), tuple(slice(0, n) for n in shape))


def refine_setup(params: IEMParams, ndim: int, width: int, tile: int | None = None,
                 max_iter: int | None = None) -> tuple[int, int, IEMParams]:
    """``(tile, halo, run)`` of a refinement: the tile core size, the halo a tile
    needs (band plus the inpainter's reach: every pixel that may move sees all it
    depends on), and the parameters each tile is optimised with."""
    tile = tile or (TILE_2D if ndim == 2 else TILE_3D)
    reach = params.reps * (params.kernel_size // 2)
    run = for_the_edge(params).replace(max_iter=max_iter or width + 2)
    return tile, width + reach, run


def window_tiles(window: Window, tile: int, halo: int) -> Iterator[Boxes]:
    """The whole image's tiles whose core starts inside ``window.core``, as
    ``(outer, core)`` boxes relative to the window's array."""
    starts = [range(s.start + (-s.start) % tile, s.stop, tile) for s in window.core]
    for corner in itertools.product(*starts):
        outer, core = [], []
        for s, n, o in zip(corner, window.full_shape, window.offset):
            e = min(s + tile, n)
            a, b = max(0, s - halo), min(n, e + halo)
            outer.append(slice(a - o, b - o))
            core.append(slice(s - a, e - a))
        yield tuple(outer), tuple(core)


def iter_refine_window(data: np.ndarray, labels: np.ndarray, regions: int,
                       params: IEMParams, window: Window, *, width: int, device="cpu",
                       tile: int | None = None, max_iter: int | None = None
                       ) -> Generator[tuple[int, int], None, tuple[np.ndarray, dict]]:
    """Refine the band pixels of the tiles of ``window``: one block of a large image
    (``data`` and ``labels`` cut out with a halo) or the whole image.

    Yields ``(tiles_done, tiles_total)`` after each batch of tiles (tiles without
    band pixels count as done at once); returns ``(labels, info)`` as
    :func:`refine_boundary` does, ``labels`` the array's, changed only in the cores of
    the window's tiles.  The arguments are those of :func:`refine_boundary`.
    """
    tile, halo, run = refine_setup(params, labels.ndim, width, tile, max_iter)
    band = boundary_band(labels, width)
    out = labels.copy()
    groups: dict[tuple, list] = {}
    total = 0
    for outer, core in window_tiles(window, tile, halo):
        total += 1
        free = np.zeros(band[outer].shape, dtype=bool)
        free[core] = band[outer][core]
        if free.any():
            groups.setdefault(free.shape, []).append((outer, core, free))
    computed = sum(len(items) for items in groups.values())
    done = total - computed
    for shape, items in groups.items():
        per_batch = max(1, BATCH_PIXELS // math.prod(shape))
        for i in range(0, len(items), per_batch):
            chunk = items[i : i + per_batch]
            new = _optimise_tiles(data, labels, chunk, regions, run, device)
            for b, (outer, core, _) in enumerate(chunk):
                out[outer][core] = new[b][core]
            done += len(chunk)
            yield done, total
    if not computed:
        yield total, total
    core_band = band[tuple(slice(c.start - o, c.stop - o)
                           for c, o in zip(window.core, window.offset))]
    info = {"tiles": computed, "tiles_total": total, "band_pixels": int(core_band.sum()),
            "width": int(width)}
    return out, info


def _optimise_tiles(data, labels, chunk, regions, run, device) -> np.ndarray:
    """IEM on a batch of tiles, every pixel but each tile's free ones locked."""
    x = torch.from_numpy(np.stack([data[(slice(None), *o)] for o, _, _ in chunk]))
    init = torch.from_numpy(np.stack([labels[o] for o, _, _ in chunk]).astype(np.int64))
    locked = torch.from_numpy(~np.stack([f for _, _, f in chunk]))
    gen = optimize(x.to(device), regions, run, init=init.to(device),
                   locked=locked.to(device))
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value.labels.cpu().numpy()
    finally:
        gen.close()


def iter_refine_boundary(data: np.ndarray, labels: np.ndarray, regions: int,
                         params: IEMParams, *, width: int, device="cpu",
                         tile: int | None = None, max_iter: int | None = None
                         ) -> Generator[tuple[int, int], None, tuple[np.ndarray, dict]]:
    """:func:`refine_boundary`, yielding ``(tiles_done, tiles_total)`` after each batch
    of tiles (for progress; closing the generator stops between two batches)."""
    return (yield from iter_refine_window(
        data, labels, regions, params, Window.whole(labels.shape), width=width,
        device=device, tile=tile, max_iter=max_iter))


def refine_boundary(data: np.ndarray, labels: np.ndarray, regions: int,
                    params: IEMParams, *, width: int, device="cpu",
                    tile: int | None = None, max_iter: int | None = None
                    ) -> tuple[np.ndarray, dict]:
    """Refine carried-up ``labels`` at full resolution in a band of ``width`` pixels.

    Parameters
    ----------
    data : ndarray (C, *S) float32
        The image at full resolution on IEM's [-1, 1] scale.
    labels : ndarray (*S) of int
        Labels carried up from the working resolution.
    regions : int
    params : IEMParams
        The inpainter and smoothing used at full resolution (``sigma`` in full-size
        pixels).
    width : int
        Band half-width (:func:`band_width`).
    tile : int, optional
        Tile core size per axis (default 256 in 2-D, 96 in 3-D).
    max_iter : int, optional
        Iterations per tile (default ``width + 2``: a contour moves at most one pixel
        per iteration, and the carried-up one is within a working pixel of where it
        belongs; tiles stop earlier at a fixed point).

    Returns
    -------
    labels : ndarray (*S), the refined labels (same dtype)
    info : dict
        ``tiles`` computed, ``tiles_total``, ``band_pixels``, ``width``.
    """
    gen = iter_refine_boundary(data, labels, regions, params, width=width, device=device,
                               tile=tile, max_iter=max_iter)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
