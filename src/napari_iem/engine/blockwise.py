"""What an image larger than memory needs from the engine, one block at a time.

:mod:`napari_iem.batch.blocks` runs these on Dask; nothing here knows of Dask.  The
labels are the whole-image run's (``segment(image, refine=True, ...)``) because every
step is the whole-image path's own function, fed the same numbers:

* **checks and knobs**: :func:`~napari_iem.engine.request.build_request` itself, on a
  stand-in made of the image's intensity sample (:func:`block_sample`), which is
  exactly what the whole-image run's intensity rules look at (a regular subsample of
  the flattened image, every value up to ``SAMPLE_MAX``);
* **intensity range**: :func:`~napari_iem.engine.preprocess.intensity_range` of that
  sample, and :func:`~napari_iem.engine.preprocess.unit_scale` pixel by pixel;
* **working-size image and levels**: :func:`~napari_iem.engine.resample.downsample`
  piece by piece (per-axis weighted sums, identical whole or in pieces);
* **solve**: :func:`solve_working`, the pipeline's level-by-level optimisation,
  structure test, region order and flip for one problem;
* **refinement**: :func:`~napari_iem.engine.multiscale.iter_refine_window`, the whole
  image's own tiles, those of one block.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .coarse_to_fine import levels, solve_levels
from .foreground import ordered_labels
from .layout import axis_sigmas, smooth_threshold_for
from .memory import estimate_bytes
from .multiscale import BATCH_PIXELS, Window, band_width, iter_refine_window, refine_setup
from .optimize import stopped_at_cap
from .preprocess import (SAMPLE_MAX, intensity_range, refuse_values, root_zero,
                         unit_scale, working_shape)
from .request import SegmentRequest, build_request
from .resample import carry_labels, downsample, input_support
from .structure import structure_found

__all__ = ["BlockPlan", "block_bytes", "block_sample", "plan_blocks", "refine_block",
           "sample_step", "solve_working", "working_piece"]

#: Knobs a block run cannot honour: they need the whole image at once.
WHOLE_IMAGE_ONLY = {"min_piece_size": 0, "instances": False, "maps": False}


def sample_step(pixels: int) -> int:
    """Every how many pixels (flattened, C order) the intensity rules look at one."""
    return -(-pixels // SAMPLE_MAX)


def block_sample(block: np.ndarray, offset, shape, step: int):
    """What one block adds to the image-wide checks and intensity sample:
    ``(values at flat indices divisible by step, non-finite count, min, max)``."""
    flat = np.zeros(block.shape, dtype=np.int64)
    stride = 1
    for axis in range(len(shape) - 1, -1, -1):
        pos = np.arange(offset[axis], offset[axis] + block.shape[axis], dtype=np.int64)
        flat += (pos * stride).reshape([-1 if a == axis else 1 for a in range(block.ndim)])
        stride *= shape[axis]
    values = block[flat % step == 0]
    bad = int(np.count_nonzero(~np.isfinite(block))) if block.dtype.kind == "f" else 0
    finite = block[np.isfinite(block)] if bad else block
    if finite.size == 0:
        return values, bad, None, None
    return values, bad, finite.min(), finite.max()


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """A checked block run: the request (settled on the sample), the working grid,
    the intensity mapping and the refinement's band, tiles and halo."""

    request: SegmentRequest
    shape: tuple[int, ...]  # spatial shape of the whole image
    work: tuple[int, ...]
    run: object  # IEMParams on the working grid
    level_shapes: tuple[tuple[int, ...], ...]  # coarsest first, the last is ``work``
    low: np.ndarray
    high: np.ndarray
    zero: float | None
    full_params: object  # IEMParams of the refinement (sigma in full-size pixels)
    width: int  # band half-width
    tile: int
    halo: int  # band plus the inpainter's reach: what a block needs around it

    @property
    def regions(self) -> int:
        return self.request.regions


def _no_working_size(shape: tuple, max_size: int | None) -> ValueError:
    """Why block mode cannot run an image its working size does not shrink, and what to
    do: for an image no larger than ``max_size`` that is to segment it whole (it is
    smaller than the size block mode would solve it at), not to lower ``max_size``."""
    if max_size is None:
        return ValueError(f"block mode solves the whole image at a working size first: "
                          f"set max_size below the image's longer side, {max(shape)} "
                          "pixels")
    return ValueError(
        f"an image of shape {shape} is no larger than the working size max_size="
        f"{max_size}: block mode is for images larger than that; segment it whole "
        "(napari_iem.segment, or napari-iem segment without --blocks)")


def plan_blocks(shape, dtype, samples: list, regions: int = 2, **knobs) -> BlockPlan:
    """Check a block run of an image of ``shape`` and ``dtype`` from its
    :func:`block_sample` results; raise a ValueError that says what is wrong.

    The image is grey (one channel), 2-D or a 3-D volume (``mode="volume"``);
    ``max_size`` must make it smaller (the working size the whole image is solved
    at).  ``min_piece_size``, ``instances`` and ``maps`` need the whole image at once
    and are refused.
    """
    shape = tuple(int(n) for n in shape)
    values = np.concatenate([s[0] for s in samples]).astype(dtype, copy=False)
    refuse_values(sum(s[1] for s in samples), *_extremes(samples))
    for name, off in WHOLE_IMAGE_ONLY.items():
        if knobs.get(name, off) != off:
            raise ValueError(f"{name}={knobs[name]!r} needs the whole image at once; "
                             "block mode cannot honour it")
    mode = knobs.pop("mode", "volume" if len(shape) == 3 else "2d")
    if len(shape) != (3 if mode == "volume" else 2):
        raise ValueError(f"block mode segments a grey 2-D image or a 3-D volume "
                         f"(mode='volume'); got shape {shape} with mode={mode!r}")
    stand_in = values.reshape((1,) * (len(shape) - 1) + (-1,))
    knobs.pop("refine", None)  # block mode is the refined run
    request = build_request(stand_in, regions, mode=mode, refine=True,
                            **{**knobs, **WHOLE_IMAGE_ONLY})
    # the sample has done its work; the plan goes to every task
    request = dataclasses.replace(request, image=np.zeros((1,) * len(shape), values.dtype))
    params = request.params
    work = working_shape(shape, params.max_size)
    if work == shape:
        raise _no_working_size(shape, params.max_size)
    factor = tuple(f / w for f, w in zip(shape, work))
    run = dataclasses.replace(
        params, smooth_threshold=smooth_threshold_for(params.smooth_threshold, len(shape)),
        sigma=axis_sigmas(params.sigma, request.scale, request.sigma_units, factor))
    sides = levels(shape, params.max_size, params.coarse_size)
    low, high = intensity_range(values.reshape(-1, 1), params, has_channels=False)
    full_params = dataclasses.replace(
        run, max_size=None,
        sigma=axis_sigmas(params.sigma, request.scale, request.sigma_units, None))
    width = band_width(shape, work)
    tile, halo, _ = refine_setup(full_params, len(shape), width)
    return BlockPlan(request, shape, work, run,
                     tuple(working_shape(shape, s) for s in sides), low, high,
                     root_zero(params, low), full_params, width, tile, halo)


def _extremes(samples):
    lows = [s[2] for s in samples if s[2] is not None]
    highs = [s[3] for s in samples if s[3] is not None]
    return (min(lows), max(highs)) if lows else (0, 0)


def working_piece(plan: BlockPlan, level: int, box, raw: np.ndarray, offset):
    """Pixels ``box`` of pyramid level ``level`` from the raw input ``raw`` (from
    ``offset``), which covers their :func:`~napari_iem.engine.resample.input_support`:
    exactly the whole-image run's values there."""
    scaled = unit_scale(raw[..., None], plan.low, plan.high, plan.zero)
    return downsample(np.moveaxis(scaled, -1, 0), plan.level_shapes[level],
                      full_shape=plan.shape, box=box, offset=offset)[0]


def level_support(plan: BlockPlan, level: int, box):
    """The input box a :func:`working_piece` of ``box`` needs."""
    return input_support(plan.shape, plan.level_shapes[level], box)


def solve_working(plan: BlockPlan, level_data: list[np.ndarray]) -> tuple[np.ndarray, dict]:
    """The working-size labels of one image from its pyramid levels (coarsest
    first), solved, ordered and flipped as the whole-image run's
    (:func:`.coarse_to_fine.solve_levels`, :func:`.foreground.ordered_labels`); all
    background when the partition is not told from noise.  Returns ``(labels, facts)``."""
    request, run, regions = plan.request, plan.run, plan.regions
    inputs = [torch.from_numpy(np.ascontiguousarray(data[None, None])).to(request.device)
              for data in level_data]
    gen = solve_levels(inputs, regions, run)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            state = stop.value
            break
    found = True
    if run.check_structure:
        found = bool(structure_found(inputs[-1], state.labels, regions, run)[0][0])
    lab = state.labels[0].cpu().numpy()
    lab = ordered_labels(lab, regions, request.params.foreground, request.flip) if found \
        else np.zeros_like(lab)
    return lab, {"iterations": int(state.iterations[0]),
                 "converged": bool(state.converged[0]),
                 "stopped_at_cap": stopped_at_cap(state, 0), "structure_found": found}


def block_window(plan: BlockPlan, core) -> tuple[tuple[slice, ...], Window]:
    """The input box a block needs (its core plus the halo, inside the image) and
    its :class:`~napari_iem.engine.multiscale.Window`."""
    outer = tuple(slice(max(0, c.start - plan.halo), min(n, c.stop + plan.halo))
                  for c, n in zip(core, plan.shape))
    return outer, Window(tuple(s.start for s in outer), plan.shape, tuple(core))


def carried_block(plan: BlockPlan, labels_w: np.ndarray, box) -> np.ndarray:
    """The working labels carried up to full size, only at ``box``."""
    return carry_labels(labels_w, plan.shape, box)


def touches_band(plan: BlockPlan, labels_w: np.ndarray, core) -> bool:
    """Whether a block's core has a pixel within the band (a label change at most
    ``width`` pixels away): only those blocks are optimised."""
    near = tuple(slice(max(0, c.start - plan.width - 1), min(n, c.stop + plan.width + 1))
                 for c, n in zip(core, plan.shape))
    lab = carried_block(plan, labels_w, near)
    return bool(lab.min() != lab.max())


def refine_block(plan: BlockPlan, labels_w: np.ndarray, core, raw: np.ndarray):
    """The refined labels of block ``core`` (slices) from ``raw``, the input over
    :func:`block_window`'s box: ``(labels of the core, info)``."""
    outer, window = block_window(plan, core)
    carried = carried_block(plan, labels_w, outer)
    scaled = np.moveaxis(unit_scale(raw[..., None], plan.low, plan.high, plan.zero), -1, 0)
    gen = iter_refine_window(scaled, carried, plan.regions, plan.full_params, window,
                             width=plan.width, device=plan.request.device)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            labels, info = stop.value
            break
    inner = tuple(slice(c.start - o.start, c.stop - o.start) for c, o in zip(core, outer))
    return labels[inner], info


def block_bytes(plan: BlockPlan, block: int, itemsize: int) -> int:
    """Memory one block's refinement needs at most: the input with its halo, its
    float32 scaling, carried and refined labels, the band, and one tile batch."""
    side = [min(n, block + 2 * plan.halo) for n in plan.shape]
    pixels = math.prod(side)
    host = pixels * (itemsize + 4 + 8 + 8 + 8 + 2)
    tile = [min(n, plan.tile + 2 * plan.halo) for n in plan.shape]
    per_batch = max(1, BATCH_PIXELS // math.prod(tile))
    engine = estimate_bytes(tile, 1, plan.regions, batch=per_batch, maps=False)["engine"]
    return int(host + engine)
