"""From the optimiser's labels to what the caller gets: one function for every path.

For each problem, in this order: regions put in order (the ``foreground`` rule, or the
caller's own numbers when it gave ``init``), ``flip``, labels carried up to full size,
the boundary refined at full size (``refine``), small pieces cleaned up
(``min_piece_size``), and last the caller's locked pixels put back: whatever the options,
no locked pixel ever changes.  Then the inpaintings and the error map are computed on
the working grid and brought to full size and the input's units.  :func:`assemble` turns
a request's problems into one :class:`~napari_iem.engine.result.IEMResult` (splitting
the foreground into instances, if asked).

Both are generators: they yield a snapshot after each refinement batch (``"refining"``),
after the maps (``"maps"``), after each finished problem (``"finishing"``) and after each
instance split (``"instances"``), so that progress shows every phase and a caller can
stop between any two (closing the generator).  How many steps each takes is known from
the plan (:func:`finish_steps`, :func:`assemble_steps`), so the pipeline's total is known
before any work.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Generator

import numpy as np
import torch

from ..analysis.cleanup import drop_small_pieces
from ..analysis.instances import split_instances
from .foreground import ordered_labels
from .inpaint import per_axis
from .layout import axis_sigmas
from .multiscale import band_width, iter_refine_boundary, refine_setup
from .objective import region_maps
from .optimize import stopped_at_cap
from .preprocess import resize_labels, resize_maps
from .result import IEMProgress, IEMResult, Meter

__all__ = ["JobOutput", "finish_problem", "finish_steps", "assemble", "assemble_steps"]

Progress = Generator[IEMProgress, None, None]


@dataclasses.dataclass
class JobOutput:
    """The arrays and facts of one request, filled problem by problem."""

    labels: np.ndarray
    inpainted: np.ndarray | None
    error: np.ndarray | None
    facts: dict  # for result.metadata
    histories: dict = dataclasses.field(default_factory=dict)
    iterations: dict = dataclasses.field(default_factory=dict)
    converged: dict = dataclasses.field(default_factory=dict)
    at_cap: dict = dataclasses.field(default_factory=dict)  # ran out of iterations
    refined: list = dataclasses.field(default_factory=list)
    structure: dict = dataclasses.field(default_factory=dict)
    value_range: dict | None = None

    @classmethod
    def empty(cls, request, work, run, need, batch, problems) -> "JobOutput":
        layout, regions = request.layout, request.regions
        shape = layout.output_shape
        labels = np.zeros(shape, dtype=np.uint8 if regions <= 255 else np.uint16)
        inpainted = error = None
        if request.maps:
            tail = (layout.channels,) if layout.has_channels else ()
            inpainted = np.zeros((regions, *shape, *tail), dtype=np.float32)
            error = np.zeros(shape, dtype=np.float32)
        nsp = len(layout.spatial)
        sigma = run.sigma
        facts = {
            "mode": layout.mode,
            "input_shape": list(layout.shape),
            "channel_axis": layout.channel_axis,
            "rgb": layout.rgb,
            "spatial_shape": list(layout.spatial),
            "working_shape": list(work),
            "sigma_working_pixels": list(per_axis(sigma, nsp)),
            "sigma_units": request.sigma_units,
            "scale": None if request.scale is None else list(request.scale),
            "smooth_threshold_used": run.smooth_threshold,
            "start": start_name(request, run),
            "problems": problems,
            "batch": batch,
            "memory_estimate_bytes": need,
        }
        return cls(labels, inpainted, error, facts)


def start_name(request, run) -> str:
    """What the run grew from: ``"labels"`` (the caller's ``init``; ``params["init"]``
    keeps the preset's, so that the parameters can run again), ``"square"``, or
    ``"kmeans"`` (which ``"square"`` is for more than 2 regions: optimize.optimize)."""
    if request.init is not None:
        return "labels"
    return "square" if run.init == "square" and request.regions == 2 else "kmeans"


def refine_steps(job) -> int:
    """Steps of one problem's refinement: the tiles covering it at full size (0 when
    it is not refined).  Known from the shape alone; the tiles without boundary are
    skipped, and counted done, when the refinement ends."""
    spatial = job.request.layout.spatial
    if not job.request.refine or tuple(job.work) == tuple(spatial):
        return 0
    tile, _, _ = refine_setup(job.run, len(spatial), width=1)  # the tile size only
    return math.prod(math.ceil(n / tile) for n in spatial)


def finish_steps(job) -> int:
    """Steps of finishing one problem of ``job``: refinement tiles, maps, the finish."""
    return refine_steps(job) + (job.output.inpainted is not None) + 1


def assemble_steps(job) -> int:
    """Steps of :func:`assemble`: one instance split per problem, if asked for."""
    return len(job.problems) if job.request.instances else 0


def finish_problem(job, index, b, state, x, prepared, prepare, meter: Meter,
                   structure=None) -> Progress:
    """Finish problem ``index`` of ``job``, row ``b`` of the optimiser's ``state``.

    A generator: it yields a snapshot of ``meter`` after each refinement batch, after
    the maps and when the problem is finished (:func:`finish_steps` steps in all), and
    writes into ``job.output`` only once the problem is finished, so that closing it
    early leaves the output as it was.  ``structure`` is ``(found, stats, row)`` when
    the partition was tested against noise (:mod:`.structure`): a partition that is
    not real gives all background.
    """
    request, out = job.request, job.output
    regions, params = request.regions, request.params
    spatial = request.layout.spatial
    start, refining = meter.step, refine_steps(job)
    lab_w = ordered_labels(state.labels[b].cpu().numpy(), regions, params.foreground,
                           request.flip)
    lab = resize_labels(lab_w, spatial)
    if structure is not None and not structure[0]:
        lab = np.zeros_like(lab)  # nothing here: no object, not a split of the noise
    if refining and lab.any():
        lab = yield from _refine(job, index, lab, prepare, meter, refining)
    meter.reach(start + refining)
    lab = drop_small_pieces(lab, params.min_piece_size)
    if request.locked is not None:  # the caller's locks win over everything
        lab = np.where(request.locked[index], request.init[index], lab)
    maps = None
    if out.inpainted is not None:
        lab_t = torch.from_numpy(np.ascontiguousarray(lab_w))[None].to(x.device)
        inp_w, err_w = region_maps(x[b : b + 1], lab_t, regions, job.run)
        maps = (prepared.to_input_units(resize_maps(inp_w[0].cpu().numpy(), spatial)),
                resize_maps(err_w[0].cpu().numpy()[None], spatial)[0])
        meter.reach(start + refining + 1)
        yield meter.snapshot("maps", out.labels)
    _record(job, index, b, state, prepared, lab, maps, structure)
    meter.reach(start + finish_steps(job))
    yield meter.snapshot("finishing", out.labels)


def _record(job, index, b, state, prepared, lab, maps, structure) -> None:
    """Write one finished problem into ``job.output``."""
    out = job.output
    out.labels[index] = lab
    if maps is not None:
        inp, err = maps
        for k in range(job.request.regions):
            out.inpainted[(k, *index)] = inp[k]
        out.error[index] = err
    if structure is not None:
        found, stats, row = structure
        out.structure[index] = {"found": found, "ratio": float(stats["ratio"][row]),
                                "contrast": float(stats["contrast"][row]),
                                "threshold": float(stats["threshold"][row])}
    out.histories[index] = list(state.history[b])
    out.iterations[index] = int(state.iterations[b])
    out.converged[index] = bool(state.converged[b])
    out.at_cap[index] = stopped_at_cap(state, b)
    if out.value_range is None:
        out.value_range = {"low": np.asarray(prepared.low).tolist(),
                           "high": np.asarray(prepared.high).tolist()}


def _refine(job, index, labels, prepare, meter: Meter, share: int):
    """Full-resolution boundary refinement of one problem (:mod:`.multiscale`), a
    snapshot after each batch of tiles; returns the refined labels."""
    request = job.request
    full_params = dataclasses.replace(
        job.run, max_size=None,
        sigma=axis_sigmas(request.params.sigma, request.scale, request.sigma_units, None))
    full = prepare(job, index, full_params)
    width = band_width(request.layout.spatial, job.work)
    start = meter.step
    tiles = iter_refine_boundary(full.data, labels, request.regions, full_params,
                                 width=width, device=request.device)
    try:
        while True:
            try:
                done, total = next(tiles)
            except StopIteration as stop:
                labels, info = stop.value
                break
            meter.within(start, share, done, total)
            yield meter.snapshot("refining", job.output.labels, part=(done, total))
    finally:
        tiles.close()
    job.output.refined.append(info)
    return labels


def _split_all(request, labels: np.ndarray, meter: Meter):
    """Instance labels of every problem, ids unique over the whole output; a snapshot
    after each problem."""
    layout = request.layout
    out = np.zeros(labels.shape, dtype=np.int32)
    offset = 0
    options = dict(request.instance_options)
    if request.scale is not None:
        options.setdefault("spacing", request.scale)
    problems = [()] if not layout.lead else list(np.ndindex(*layout.lead))
    for n, idx in enumerate(problems, start=1):
        inst = split_instances(labels[idx] > 0, **options)
        out[idx] = np.where(inst > 0, inst + offset, 0)
        offset += int(inst.max())
        meter.reach(meter.step + 1)
        yield meter.snapshot("instances", labels, part=(n, len(problems)))
    return out


def versions() -> dict:
    """The versions that made a result: with the parameters, what reproduces it."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"numpy": np.__version__, "torch": torch.__version__}
    try:
        out["napari-iem"] = version("napari-iem")
    except PackageNotFoundError:  # running from a source tree
        out["napari-iem"] = "unknown"
    return out


def assemble(job, start: float, meter: Meter) -> Generator[IEMProgress, None, IEMResult]:
    """The :class:`IEMResult` of a finished request (a generator: it yields after each
    instance split, :func:`assemble_steps` in all)."""
    request, out = job.request, job.output
    problems = job.problems
    meta = dict(out.facts, value_range=out.value_range, versions=versions())
    if len(problems) > 1:
        meta["per_problem"] = [
            {"index": list(idx), "iterations": out.iterations[idx],
             "converged": out.converged[idx], "stopped_at_cap": out.at_cap[idx],
             "objective": out.histories[idx][-1] if out.histories[idx] else None}
            for idx in problems
        ]
    if out.structure:
        meta["structure"] = [{"index": list(idx), **out.structure[idx]} for idx in problems]
    if out.refined:
        meta["refine"] = {
            "width": out.refined[0]["width"],
            **{k: sum(i[k] for i in out.refined)
               for k in ("tiles", "tiles_total", "band_pixels")},
        }
    histories = [out.histories[idx] for idx in problems]
    objective = histories[0] if len(problems) == 1 else [h[-1] for h in histories if h]
    labels = out.labels
    instances = (yield from _split_all(request, labels, meter)) if request.instances else None
    return IEMResult(
        labels=labels,
        masks=np.stack([labels == k for k in range(request.regions)]),
        inpainted=out.inpainted,
        error=out.error,
        objective=objective,
        iterations=max(out.iterations.values()),
        converged=all(out.converged.values()),
        stopped_at_cap=any(out.at_cap.values()),
        params={"preset": request.preset, "regions": request.regions,
                **request.params.to_dict()},
        device=str(request.device),
        seconds=time.perf_counter() - start,
        metadata=meta,
        instances=instances,
        structure_found=not out.structure or any(v["found"] for v in out.structure.values()),
    )
