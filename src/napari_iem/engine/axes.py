"""n-D images: channels, stacks, time series and volumes, in physical units.

:func:`napari_iem.api` hands any call that uses these options here.  An input array
is read as ``(*leading, *spatial)`` plus one channel axis:

* ``mode="2d"`` (default): one 2-D image ``(Y, X)``; no leading axes allowed.
* ``mode="slices"``: the last two non-channel axes are a 2-D image; every leading axis
  (Z, T, ...) is iterated and each plane segmented on its own.
* ``mode="volume"``: the last three non-channel axes ``(Z, Y, X)`` are one 3-D problem
  (3-D separable Gaussian, 6-neighbour boundary band, 3x3x3 smoothing); leading axes
  (T) are iterated.

Channels: ``channel_axis`` names the axis holding channels (any position); without it a
trailing axis of length 3 or 4 beyond the spatial ones is RGB(A) (alpha dropped).  The
labels have the input's shape minus the channel axis.

Intensities are scaled once for the whole array (every slice and time point alike, per
channel; see :mod:`napari_iem.engine.preprocess` for the rule), so an empty slice stays dark
instead of being stretched into noise.

Anisotropy: ``scale`` gives the pixel spacing of the spatial axes (a napari layer's
``scale``).  With ``sigma_units="pixels"`` (default) ``sigma`` is in pixels of the finest
spatial axis and the coarser axes get proportionally smaller sigmas (a z step 5x the xy
step: ``sigma_z = sigma / 5``); with ``sigma_units="physical"`` it is in the scale's
units on every axis.  Either way it is measured on the working grid (after
``max_size``), like the 2-D engine's sigma.

3-D smoothing: the 2-D rule counts the label among 9 pixels; in 3-D the 27 voxels of the
3x3x3 neighbourhood are counted and the threshold keeps the same fraction,
``3 * smooth_threshold`` (4 of 9 -> 12 of 27, the default 5 of 9 -> 15 of 27).

Slices or volumes of one size are optimised together in batches (as
:func:`napari_iem.segment_batch` does), as many at a time as memory allows.
"""
from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..analysis.cleanup import drop_small_pieces
from ..analysis.instances import split_instances
from .memory import check_memory, estimate_bytes
from .multiscale import band_width, refine_boundary
from .objective import region_maps
from .optimize import optimize
from .preprocess import (
    check_image, check_init, intensity_range, prepare_image, resize_labels,
    resize_maps,
    working_shape,
)
from .presets import IEMParams

__all__ = ["MODES", "Layout", "plan_layout", "axis_sigmas", "smooth_threshold_for"]

MODES = ("2d", "slices", "volume")
SIGMA_UNITS = ("pixels", "physical")
#: Problems optimised at once at most (slices of a stack).
MAX_BATCH = 16


@dataclass(frozen=True)
class Layout:
    """How an input array's axes are read."""

    shape: tuple[int, ...]  # the input's shape
    mode: str
    channel_axis: int | None  # non-negative, or None
    rgb: bool  # a trailing RGB(A) axis was detected
    lead: tuple[int, ...]  # iterated axes
    spatial: tuple[int, ...]  # 2 or 3 spatial axes
    channels: int  # C (1 for grey)

    @property
    def has_channels(self) -> bool:
        return self.channel_axis is not None or self.rgb

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.lead + self.spatial

    @property
    def problems(self) -> int:
        return math.prod(self.lead)


def plan_layout(shape, mode: str = "2d", channel_axis: int | None = None) -> Layout:
    """Read ``shape`` as leading, spatial and channel axes (see the module docstring)."""
    shape = tuple(int(n) for n in shape)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    nsp = 3 if mode == "volume" else 2
    rgb = False
    if channel_axis is not None:
        if isinstance(channel_axis, bool) or not -len(shape) <= channel_axis < len(shape):
            raise ValueError(
                f"channel_axis={channel_axis!r} is not an axis of an array of shape {shape}"
            )
        channel_axis = channel_axis % len(shape)
        rest = shape[:channel_axis] + shape[channel_axis + 1:]
        channels = shape[channel_axis]
    elif len(shape) > nsp and shape[-1] in (3, 4):
        rgb, rest, channels = True, shape[:-1], 3
    else:
        rest, channels = shape, 1
    if len(rest) < nsp:
        raise ValueError(
            f"mode={mode!r} needs {nsp} spatial axes; shape {shape} has {len(rest)} "
            "besides channels"
        )
    lead, spatial = rest[: len(rest) - nsp], rest[len(rest) - nsp:]
    if mode == "2d" and lead:
        raise ValueError(
            f"shape {shape} has more axes than a 2-D image: use mode='slices' to segment "
            "every 2-D plane, mode='volume' for a 3-D stack, or channel_axis= for the "
            "axis holding channels"
        )
    return Layout(shape, mode, channel_axis, rgb, lead, spatial, channels)


def channels_last(image: np.ndarray, layout: Layout) -> np.ndarray:
    """A view ``(*lead, *spatial, C)`` of ``image``."""
    if layout.channel_axis is not None:
        return np.moveaxis(image, layout.channel_axis, -1)
    if layout.rgb:
        return image[..., :3]
    return image[..., None]


def axis_sigmas(sigma: float, scale=None, units: str = "pixels", work_factor=None
                ) -> tuple[float, ...] | float:
    """Per-axis sigma in working pixels (see the module docstring).

    ``scale``: spacing per spatial axis (None: isotropic); ``work_factor``: full size
    over working size per axis (the working pixel is that many input pixels).
    """
    if units not in SIGMA_UNITS:
        raise ValueError(f"sigma_units must be one of {SIGMA_UNITS}, got {units!r}")
    if scale is None:
        if units == "physical":
            raise ValueError("sigma_units='physical' needs the pixel spacing: pass scale=")
        return sigma
    scale = np.asarray(scale, dtype=np.float64)
    if scale.ndim != 1 or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"scale must be positive numbers, one per spatial axis, got {scale}")
    factor = np.ones_like(scale) if work_factor is None else np.asarray(work_factor, float)
    spacing = scale * factor  # physical size of one working pixel
    if units == "physical":
        out = sigma / spacing
    else:
        out = sigma * spacing.min() / spacing
    return tuple(float(s) for s in out)


def smooth_threshold_for(threshold: int, nd: int) -> int:
    """The smoothing threshold among ``3**nd`` pixels that keeps the 2-D fraction."""
    return int(threshold) * 3 ** (nd - 2)


def _spatial_scale(scale, layout: Layout):
    if scale is None:
        return None
    scale = tuple(float(s) for s in scale)
    nsp = len(layout.spatial)
    no_channel = len(layout.shape) - (1 if layout.has_channels else 0)
    if len(scale) == no_channel:  # a layer's scale: every non-channel axis
        return scale[-nsp:]
    if len(scale) == nsp:
        return scale
    raise ValueError(
        f"scale has {len(scale)} values; give one per spatial axis ({nsp}) or one per "
        f"non-channel axis ({no_channel})"
    )


def _auto_batch(layout, work, regions, maps, dev) -> int:
    """As many problems per batch as fit in a quarter of the free memory."""
    from .memory import available_bytes

    one = estimate_bytes(layout.spatial, layout.channels, regions, work,
                         maps=maps)["engine"]
    free = available_bytes(dev)
    return int(max(1, min(MAX_BATCH, layout.problems, free // 4 // max(one, 1))))


def iter_segment_nd(image, regions: int, params: IEMParams, preset: str, dev: torch.device,
                    *, mode="2d", channel_axis=None, scale=None, sigma_units="pixels",
                    instances=False, instance_options=None, refine=False, maps=True,
                    init=None, locked=None, flip=False, batch_size=None
                    ) -> Generator:
    """The n-D engine behind :func:`napari_iem.api`; yields IEMProgress, returns
    IEMResult.  Arguments as documented there."""
    from ..api import IEMProgress, IEMResult, _to_device
    from .foreground import region_order

    start = time.perf_counter()
    image = check_image(image)
    layout = plan_layout(image.shape, mode, channel_axis)
    nsp = len(layout.spatial)
    spatial_scale = _spatial_scale(scale, layout)
    work = working_shape(layout.spatial, params.max_size)
    factor = tuple(f / w for f, w in zip(layout.spatial, work))
    sig = axis_sigmas(params.sigma, spatial_scale, sigma_units, factor)
    run = params.replace(
        sigma=sig, smooth_threshold=smooth_threshold_for(params.smooth_threshold, nsp)
    )
    data = channels_last(image, layout)
    low, high = intensity_range(data, params)  # L*a*b* units for colour="lab" RGB
    problems = [()] if not layout.lead else list(np.ndindex(*layout.lead))
    # one problem: scaled exactly as the 2-D path does (the preset's own rule);
    # a stack: every slice alike, from the whole array's range
    value_range = None if len(problems) == 1 else (low, high)
    batch = batch_size or _auto_batch(layout, work, regions, maps, dev)
    need = estimate_bytes(layout.spatial, layout.channels, regions, work, batch=batch,
                          maps=maps, problems=len(problems))
    what = f"an input of shape {layout.shape} (mode={mode!r})"
    check_memory(need, dev, what=what)
    init_a, locked_a = check_init(init, locked, layout.output_shape, regions)

    out_shape = layout.output_shape
    dtype = np.uint8 if regions <= 255 else np.uint16
    labels_out = np.zeros(out_shape, dtype=dtype)
    inpainted = error = None
    if maps:
        tail = (layout.channels,) if layout.has_channels else ()
        inpainted = np.zeros((regions, *out_shape, *tail), dtype=np.float32)
        error = np.zeros(out_shape, dtype=np.float32)
    histories, iterations, converged, refine_info = [], [], [], []
    n_batches = -(-len(problems) // batch)
    total_iters = n_batches * params.max_iter
    done_iters = 0
    live = len(problems) == 1
    full_params = run.replace(max_size=None)
    for first in range(0, len(problems), batch):
        chunk = problems[first : first + batch]
        prepared = [
            replace(prepare_image(data[idx], run, channel_axis=-1, spatial_ndim=nsp,
                                  value_range=value_range),
                    has_channels=layout.has_channels)
            for idx in chunk
        ]
        x = _to_device(np.stack([p.data for p in prepared]), dev)
        init_t = locked_t = None
        if init_a is not None:
            init_t = torch.from_numpy(np.stack(
                [resize_labels(init_a[idx].astype(np.int64), work) for idx in chunk]
            )).to(dev)
            if locked_a is not None:
                locked_t = torch.from_numpy(np.stack(
                    [resize_labels(locked_a[idx].astype(np.uint8), work) > 0 for idx in chunk]
                )).to(dev)
        gen = optimize(x, regions, run, init=init_t, locked=locked_t)
        try:
            while True:
                state = next(gen)
                it = done_iters + state.iteration
                shown = labels_out
                if live:
                    shown = resize_labels(state.labels[0].cpu().numpy(), out_shape).astype(dtype)
                yield IEMProgress(it, total_iters, float(state.objective.mean()), shown)
        except StopIteration as stop:
            state = stop.value
        finally:
            gen.close()
        done_iters += params.max_iter
        for b, idx in enumerate(chunk):
            lab_w = state.labels[b].cpu().numpy()
            order = region_order(lab_w, regions, params.foreground)
            if flip and regions == 2:
                order = order[::-1]
            relabel = np.empty(regions, dtype=np.int64)
            relabel[order] = np.arange(regions)
            lab_w = relabel[lab_w]
            lab = resize_labels(lab_w, layout.spatial)
            if refine and tuple(work) != tuple(layout.spatial):
                full = prepare_image(data[idx], full_params, channel_axis=-1,
                                     spatial_ndim=nsp, value_range=value_range)
                width = band_width(layout.spatial, work)
                full_run = full_params.replace(sigma=axis_sigmas(
                    params.sigma, spatial_scale, sigma_units, None))
                lab, info = refine_boundary(full.data, lab, regions, full_run,
                                            width=width, device=dev)
                refine_info.append(info)
                del full
            lab = drop_small_pieces(lab, params.min_piece_size)
            if locked_a is not None:  # the user's locks win over the clean-up
                lab = np.where(locked_a[idx], init_a[idx], lab)
            labels_out[idx] = lab
            if maps:
                lab_t = torch.from_numpy(np.ascontiguousarray(lab_w))[None].to(dev)
                inp_w, err_w = region_maps(x[b : b + 1], lab_t, regions, run)
                inp = prepared[b].to_input_units(
                    resize_maps(inp_w[0].cpu().numpy(), layout.spatial))
                for k in range(regions):
                    inpainted[(k, *idx)] = inp[k]
                error[idx] = resize_maps(err_w[0].cpu().numpy()[None], layout.spatial)[0]
            histories.append(list(state.history[b]))
            iterations.append(int(state.iterations[b]))
            converged.append(bool(state.converged[b]))
        if value_range is None:
            low, high = prepared[0].low, prepared[0].high
        del x, prepared

    inst = None
    if instances:
        inst = _split_all(labels_out, layout, spatial_scale, instance_options or {})
    meta = {
        "mode": mode,
        "input_shape": list(layout.shape),
        "channel_axis": layout.channel_axis,
        "rgb": layout.rgb,
        "spatial_shape": list(layout.spatial),
        "working_shape": list(work),
        "sigma_working_pixels": list(sig) if isinstance(sig, tuple) else [sig] * nsp,
        "sigma_units": sigma_units,
        "scale": None if spatial_scale is None else list(spatial_scale),
        "smooth_threshold_used": run.smooth_threshold,
        "value_range": {"low": low.tolist(), "high": high.tolist()},
        "problems": len(problems),
        "batch": batch,
        "memory_estimate_bytes": need,
    }
    if len(problems) > 1:
        meta["per_problem"] = [
            {"index": list(idx), "iterations": n, "converged": c,
             "objective": h[-1] if h else None}
            for idx, n, c, h in zip(problems, iterations, converged, histories)
        ]
    if refine_info:
        meta["refine"] = {
            "width": refine_info[0]["width"],
            "tiles": sum(i["tiles"] for i in refine_info),
            "tiles_total": sum(i["tiles_total"] for i in refine_info),
            "band_pixels": sum(i["band_pixels"] for i in refine_info),
        }
    objective = histories[0] if len(problems) == 1 else [h[-1] for h in histories if h]
    result = IEMResult(
        labels=labels_out,
        masks=np.stack([labels_out == k for k in range(regions)]),
        inpainted=inpainted,
        error=error,
        objective=objective,
        iterations=max(iterations),
        converged=all(converged),
        params={"preset": preset, "regions": regions, **params.to_dict()},
        device=str(dev),
        seconds=time.perf_counter() - start,
        metadata=meta,
        instances=inst,
    )
    return result


def _split_all(labels: np.ndarray, layout: Layout, spatial_scale, options: dict):
    """Instance labels of every problem; ids unique over the whole output."""
    out = np.zeros(labels.shape, dtype=np.int32)
    offset = 0
    problems = [()] if not layout.lead else np.ndindex(*layout.lead)
    opts = dict(options)
    if spatial_scale is not None:
        opts.setdefault("spacing", spatial_scale)
    for idx in problems:
        inst = split_instances(labels[idx] > 0, **opts)
        out[idx] = np.where(inst > 0, inst + offset, 0)
        offset += int(inst.max())
    return out
