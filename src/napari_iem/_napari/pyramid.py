"""Multiscale Image layers: run on the pyramid level nearest the working size, then
bring the labels to level 0, refining the boundary band there tile by tile.

A multiscale layer is a pyramid because level 0 is too large to read whole.  IEM works
at ``max_size`` anyway, so the run reads the level whose largest spatial side is the
smallest one still at least ``max_size`` (:func:`run_level`): the same working image
for a fraction of the reading.  The labels are then carried up to level 0's shape
(nearest neighbour) and, with ``refine``, decided again at full resolution only in the
band around the boundary, each refinement tile read from level 0 and put on IEM's
scale with the run's own intensity range (:class:`LevelTiles`), so that the rest of
level 0 is never read.  Labels that would not fit in memory at level 0 are given as a
lazy dask array instead, filled block by block when napari shows them (and not
refined).  No Qt here.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator

import numpy as np
from napari.utils.transforms import CompositeAffine

from ..engine.layout import axis_sigmas, smooth_threshold_for
from ..engine.memory import available_bytes
from ..engine.multiscale import TILE_2D, TILE_3D, band_width, iter_refine_boundary
from ..engine.preprocess import prepare_image, resize_labels
from ..engine.presets import IEMParams, get_preset
from ..engine.result import IEMProgress

#: Level-0 labels are made in memory only while they take at most this share of the
#: free memory; larger ones are lazy.
IN_MEMORY_SHARE = 0.25


def level_array(layer, level: int):
    """Level ``level`` of ``layer``'s data, unread (level 0 of a plain layer)."""
    return layer.data[level] if layer.multiscale else layer.data


def run_level(layer, max_size: int | None, nsp: int) -> int:
    """The level a run reads: the smallest whose largest spatial side (of the last
    ``nsp`` axes) is at least ``max_size``; level 0 when none is, for a full-size run
    (``max_size`` None) and for a plain layer."""
    if not layer.multiscale or max_size is None:
        return 0
    sides = [max(shape[-nsp:]) for shape in np.asarray(layer.level_shapes)]
    large = [i for i, side in enumerate(sides) if side >= max_size]
    return min(large, key=lambda i: sides[i]) if large else 0


def level_index(index, axes, layer, level: int) -> tuple[int, ...]:
    """A level-0 ``index`` on ``axes`` of ``layer`` as the index on level ``level``."""
    shapes = np.asarray(layer.level_shapes) if layer.multiscale else None
    if not level:
        return tuple(index)
    return tuple(int(i * shapes[level][a] // shapes[0][a]) for i, a in zip(index, axes))


def level_grid(spatial: dict, shape0, shape) -> dict:
    """Scale and translate of an array of ``shape`` covering what ``shape0`` pixels of
    ``spatial`` (:func:`~napari_iem._napari.layers.spatial_kwargs`) cover: a level-L
    pixel spans ``f`` level-0 pixels and its centre lies ``(f - 1) / 2`` of them in,
    along the layer's axes: the shift turns with its rotation and shear, which napari
    applies after the scale and before the translate."""
    factor = np.asarray(shape0, float) / np.asarray(shape, float)
    scale = np.asarray(spatial["scale"], float)
    turn = CompositeAffine(rotate=spatial["rotate"], shear=spatial["shear"],
                           ndim=len(scale)).linear_matrix
    shift = turn @ ((factor - 1) / 2 * scale)
    return {**spatial, "scale": tuple(scale * factor),
            "translate": tuple(np.asarray(spatial["translate"]) + shift)}


def fits_in_memory(shape, dtype) -> bool:
    """True when labels of ``shape`` take at most :data:`IN_MEMORY_SHARE` of the free
    memory."""
    need = math.prod(shape) * np.dtype(dtype).itemsize
    return need <= IN_MEMORY_SHARE * available_bytes("cpu")


def lazy_carry_up(labels: np.ndarray, shape, index=()):
    """``labels`` carried up to the output ``shape`` as a dask array, each block
    computed from ``labels`` alone when napari reads it.  With a plane ``index`` on the
    leading axes, ``labels`` is that plane and every other plane is 0."""
    import dask.array as da

    nlead = len(index)
    plane = shape[nlead:]

    def block(block_info=None):
        where = block_info[None]["array-location"]
        out_shape = tuple(b - a for a, b in where)
        if nlead and any(a != i for (a, _), i in zip(where[:nlead], index)):
            return np.zeros(out_shape, labels.dtype)
        src = tuple(
            np.minimum((np.arange(a, b) + 0.5) * n / size, n - 1).astype(np.intp)
            for (a, b), n, size in zip(where[nlead:], labels.shape, plane))
        return labels[np.ix_(*src)].reshape(out_shape)

    chunks = tuple(1 if i < len(shape) - 2 else min(n, 2048) for i, n in enumerate(shape))
    return da.map_blocks(block, dtype=labels.dtype,
                         chunks=da.core.normalize_chunks(chunks, shape))


class LevelTiles:
    """One problem of level 0 as refinement tiles on IEM's [-1, 1] scale, read only
    where a tile is asked for (``tiles[(slice(None), *box)]``, as
    :func:`~napari_iem.engine.multiscale.iter_refine_boundary` asks).

    Parameters
    ----------
    view : array
        The problem's level-0 data, channels last when it has channels (lazy: a dask
        array, or a numpy view).
    params : IEMParams
        The run's parameters at full size (``max_size`` None).
    value_range : dict
        The run's ``result.metadata["value_range"]``: the intensities mapped to -1
        and +1, so that a tile gets exactly the values the run gave those pixels.
    nsp : int
        Spatial axes (2 or 3).
    """

    def __init__(self, view, params: IEMParams, value_range: dict, nsp: int):
        self.view, self.params, self.nsp = view, params, nsp
        self.low = np.asarray(value_range["low"], float)
        self.high = np.asarray(value_range["high"], float)
        self.channels = view.ndim > nsp

    def __getitem__(self, key) -> np.ndarray:
        box = tuple(key[1:])
        tile = np.asarray(self.view[box])
        if self.channels and tile.shape[-1] != self.low.size:
            tile = tile[..., : self.low.size]  # a grey picture stored as RGB: one channel
        prepared = prepare_image(tile, self.params, -1 if self.channels else None,
                                 spatial_ndim=self.nsp, value_range=(self.low, self.high),
                                 checked=True)
        return prepared.data


def problem_view(plan, idx: tuple[int, ...]):
    """Problem ``idx`` (its index on the output's leading axes; ``()`` for a plane
    run, which takes the plan's plane) of level 0, channels last, as a dask array:
    nothing is read until a tile of it is."""
    import dask.array as da

    lead = tuple(plan.index) or tuple(idx)
    arrays = []
    for layer in (plan.source, *plan.channel_layers):
        array = level_array(layer, 0)
        array = array if isinstance(array, da.Array) else da.from_array(array)
        take = [slice(None)] * array.ndim
        for a, i in zip(plan.axes, lead):
            take[a] = i
        view = array[tuple(take)]
        if plan.channel_axis is not None:
            view = da.moveaxis(view, plan.channel_axis - sum(
                a < plan.channel_axis for a in plan.axes[: len(lead)]), -1)
        arrays.append(view)
    return da.stack(arrays, axis=-1) if len(arrays) > 1 else arrays[0]


def refine_tiles(plan) -> int:
    """Level-0 refinement tiles of a run on a coarser level (0 when there is none):
    the steps it adds to the engine's, known before the run."""
    if not plan.level or not plan.refine:
        return 0
    if not fits_in_memory(plan.shape, np.uint16):
        return 0
    shape = tuple(plan.out_shape)
    tile = TILE_2D if plan.nsp == 2 else TILE_3D  # iter_refine_boundary's default tile
    return math.prod(shape[: len(shape) - plan.nsp]) * math.prod(
        math.ceil(n / tile) for n in shape[-plan.nsp:])


def carry_up(result, plan, params: IEMParams, views, steps: int, extra: int
             ) -> Generator[IEMProgress, None, dict]:
    """The run's labels (and instances) at level 0, refined in the boundary band when
    the run asked for ``refine``.

    A generator: after each batch of tiles it yields a ``"refining"`` snapshot whose
    step continues the engine's ``steps`` within the ``extra`` ones
    (:func:`refine_tiles`) that were added to its total.  ``views(idx)`` gives problem
    ``idx``'s level-0 data (see :class:`LevelTiles`).  Returns ``{"labels",
    "instances", "lazy"}``: numpy arrays, or dask arrays (``lazy``) when the output
    would not fit in memory.
    """
    shape, nsp = tuple(plan.out_shape), plan.nsp
    labels = result.labels
    if not fits_in_memory(plan.shape, np.uint16):
        def lazy(array):
            return None if array is None else lazy_carry_up(array, plan.shape, plan.index)
        return {"labels": lazy(labels), "instances": lazy(result.instances), "lazy": True}
    out = resize_labels(labels, shape)
    if extra and out.any():
        lead = shape[: len(shape) - nsp]
        work = result.metadata.get("working_shape") or labels.shape[-nsp:]
        width = band_width(shape[-nsp:], work)  # a working pixel of level 0, plus one
        problems = list(np.ndindex(*lead)) if lead else [()]
        for n, idx in enumerate(problems):
            tiles = iter_refine_boundary(
                LevelTiles(views(idx), params, result.metadata["value_range"], nsp),
                out[idx], result.regions, params, width=width, device=result.device)
            start = steps + extra * n // len(problems)
            share = extra * (n + 1) // len(problems) - extra * n // len(problems)
            out[idx] = yield from _tiles(tiles, start, share, steps + extra)
    if plan.locked is not None:  # the user's locked pixels, exactly as painted
        out = np.where(plan.locked[plan.index], plan.start[plan.index], out).astype(out.dtype)
    instances = None if result.instances is None else resize_labels(result.instances, shape)
    return {"labels": out, "instances": instances, "lazy": False}


def _tiles(tiles, start: int, share: int, total: int):
    """Drain one problem's refinement, a ``"refining"`` snapshot after each batch."""
    try:
        while True:
            try:
                done, of = next(tiles)
            except StopIteration as stop:
                return stop.value[0]
            yield IEMProgress(0, 0, float("nan"), None, "refining",
                              step=start + share * done // max(of, 1), steps=total,
                              part=(done, of))
    finally:
        tiles.close()


def with_steps(run, extra: int):
    """The engine's snapshots with ``extra`` steps (level 0's refinement) added to
    their total; returns ``(result, engine steps)``."""
    steps = 0
    while True:
        try:
            snapshot = next(run)
        except StopIteration as stop:
            return stop.value, steps
        steps = snapshot.steps
        snapshot.steps += extra
        yield snapshot


def full_size_params(result, plan) -> IEMParams:
    """The run's parameters for level 0: full size, sigma in level-0 pixels (physical
    units stay physical), the smoothing threshold of ``plan.nsp`` axes."""
    given = {k: v for k, v in result.params.items() if k not in ("preset", "regions")}
    params = get_preset(result.params["preset"]).replace(**given)
    scale = result.metadata.get("scale")
    if scale is not None:  # the spacing the run was given was the level's: level 0's
        scale = list(np.asarray(scale) * np.asarray(plan.out_shape[-plan.nsp:])
                     / np.asarray(result.labels.shape[-plan.nsp:]))
    sigma = axis_sigmas(params.sigma, scale, result.metadata.get("sigma_units", "pixels"))
    # per-axis sigma is the engine's own form, which IEMParams.replace (checking what a
    # user may give: one number) refuses; the engine's refinement replaces it so too
    return dataclasses.replace(params, max_size=None, sigma=sigma,
                               smooth_threshold=smooth_threshold_for(params.smooth_threshold,
                                                                     plan.nsp))


def to_level0(result, plan, steps: int, extra: int) -> Generator[IEMProgress, None, object]:
    """``result`` (of a run on ``plan.level``) with its labels and instances at level
    0 (:func:`carry_up`), ending its count on ``steps + extra``."""
    params = full_size_params(result, plan)
    up = yield from carry_up(result, plan, params, lambda idx: problem_view(plan, idx),
                             steps, extra)
    yield IEMProgress(0, 0, float("nan"), up["labels"], "finishing", step=steps + extra,
                      steps=steps + extra)
    meta = dict(result.metadata, level=plan.level, level_shape=list(result.labels.shape),
                lazy=up["lazy"])
    return dataclasses.replace(result, labels=up["labels"], instances=up["instances"],
                               metadata=meta)
