"""The one pipeline behind every entry point: plan, solve in batches, finish.

A :class:`~napari_iem.engine.request.SegmentRequest` is planned as *problems*: one 2-D
image, each plane of a stack (``mode="slices"``), or each volume (``mode="volume"``).
Problems of one working shape and one set of parameters, from one request or from many
(:func:`napari_iem.segment_batch`), are optimised together as one batch tensor, as many
at a time as memory allows; every image leaves the batch at its own fixed point, so the
labels are those of running it alone.  Each problem is then finished by
:func:`napari_iem.engine.finish.finish_problem` and each request's outputs assembled by
:func:`napari_iem.engine.finish.assemble`.

Progress is one count for the whole run (:class:`~napari_iem.engine.result.Meter`):
its total, known from the plan before any work, is every batch's iteration budget
(``max_iter`` times its pyramid levels) plus every problem's finishing steps
(refinement tiles, maps, the finish) and instance splits; whatever ends early skips the
rest of its share, so the count ends exactly on the total.

The memory a request needs is estimated from its shape before any copy of the image is
made (:mod:`napari_iem.engine.memory`); on a GPU that runs out anyway the whole run is
repeated on the CPU with a warning.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator, Sequence

import numpy as np
import torch

from .coarse_to_fine import levels, solve_levels
from .finish import JobOutput, assemble, assemble_steps, finish_problem, finish_steps
from .layout import axis_sigmas, channels_last, smooth_threshold_for
from .memory import (available_bytes, check_memory, estimate_bytes, input_words,
                     output_bytes, with_cpu_fallback)
from .preprocess import intensity_range, prepare_image, resize_labels, working_shape
from .resample import downsample
from .request import SegmentRequest
from .result import IEMProgress, IEMResult, Meter
from .structure import structure_found

__all__ = ["run", "run_one"]

#: Problems optimised at once at most: beyond this a batch gains no speed on a CPU
#: and only delays every image's result.
MAX_BATCH = 128


@dataclasses.dataclass
class Job:
    """One request as planned: its working grid and where its problems go."""

    request: SegmentRequest
    work: tuple[int, ...]  # working shape of one problem
    run: object  # IEMParams on the working grid (per-axis sigma, n-D smoothing)
    value_range: tuple | None  # a stack's range, shared by its slices
    problems: list[tuple[int, ...]]  # leading-axes index of every problem
    levels: list  # max_size of each pyramid level, coarsest first (one: no pyramid)
    level_shapes: tuple  # the working shape of each level
    batch: int  # problems per batch at most (other requests' problems may join)
    output: JobOutput
    data: np.ndarray  # the input, channels last (a view)


def _plan(request: SegmentRequest, held: int = 0) -> Job:
    """Working grid, parameters and problems of ``request``, its memory checked with
    the ``held`` bytes of the outputs of the run's earlier requests (each batch
    image's results are kept until the last is done)."""
    layout, params = request.layout, request.params
    nsp = len(layout.spatial)
    work = working_shape(layout.spatial, params.max_size)
    factor = tuple(f / w for f, w in zip(layout.spatial, work))
    sigma = axis_sigmas(params.sigma, request.scale, request.sigma_units, factor)
    run = dataclasses.replace(
        params, sigma=sigma, smooth_threshold=smooth_threshold_for(params.smooth_threshold, nsp))
    problems = [()] if not layout.lead else list(np.ndindex(*layout.lead))
    batch = _batch_size(request, work)  # problems of one batch, from any request
    need = estimate_bytes(layout.spatial, layout.channels, request.regions, work,
                          batch=min(batch, len(problems)), maps=request.maps,
                          problems=len(problems))
    what = input_words(layout)
    if held:
        what += f" after the outputs of the images before it ({held / 2**30:.1f} GB)"
    check_memory({**need, "host": need["host"] + held}, request.device, what=what,
                 asked={"max_size": params.max_size, "mode": layout.mode,
                        "maps": request.maps})
    data = channels_last(request.image, layout)
    # one problem: the preset's own rule; a stack: every slice alike, from the whole
    value_range = None if len(problems) == 1 else intensity_range(data, params)
    output = JobOutput.empty(request, work, run, need, min(batch, len(problems)),
                             len(problems))
    pyramid = levels(layout.spatial, params.max_size, params.coarse_size)
    shapes = tuple(tuple(working_shape(layout.spatial, side)) for side in pyramid)
    output.facts["levels"] = [list(shape) for shape in shapes]
    return Job(request, work, run, value_range, problems, pyramid, shapes, batch, output,
               data)


def _batch_size(request: SegmentRequest, work) -> int:
    """As many problems per batch as fit in a quarter of the free memory (problems of
    other requests of the same shape join them: :func:`napari_iem.segment_batch`)."""
    layout = request.layout
    one = estimate_bytes(layout.spatial, layout.channels, request.regions, work,
                         maps=request.maps)["engine"]
    free = available_bytes(request.device)
    return int(max(1, min(MAX_BATCH, free // 4 // max(one, 1))))


def _prepare(job: Job, index: tuple[int, ...], params=None):
    """One problem's data on IEM's scale (at the working size unless ``params`` says)."""
    layout = job.request.layout
    prepared = prepare_image(job.data[index], params or job.run, channel_axis=-1,
                             spatial_ndim=len(layout.spatial), value_range=job.value_range,
                             checked=True)  # by build_request
    return dataclasses.replace(prepared, has_channels=layout.has_channels)


def _batches(jobs: list[Job]) -> list[list[tuple[Job, tuple]]]:
    """Problems grouped by (working shape, parameters, regions), in batches."""
    groups: dict[tuple, list[tuple[Job, tuple]]] = {}
    for job in jobs:
        key = (job.level_shapes, job.run, job.request.regions, job.request.device)
        groups.setdefault(key, []).extend((job, idx) for idx in job.problems)
    out = []
    for items in groups.values():
        size = min(job.batch for job, _ in items)
        out += [items[i : i + size] for i in range(0, len(items), size)]
    return out


def _to_device(array: np.ndarray, device) -> torch.Tensor:
    """``array`` as a tensor on ``device`` (one place, so tests can fake a device)."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def _stacked(arrays: list[np.ndarray]) -> np.ndarray:
    """``arrays`` as one batch; a batch of one is a view of its array, not a copy
    (a 4096x4096 image's working copy is 64 MB a channel)."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


def _budget(batch: list[tuple[Job, tuple]]) -> int:
    """The iterations a batch may take: the limit on each of its pyramid levels."""
    return batch[0][0].run.max_iter * len(batch[0][0].levels)


def _solve(batch: list[tuple[Job, tuple]], total: int, done: int, live: bool,
           meter: Meter) -> Generator[IEMProgress, None, None]:
    """Optimise one batch, yield progress, then finish each of its problems."""
    first = batch[0][0]
    prepared, pyramids = zip(*(_prepare_levels(job, idx) for job, idx in batch))
    by_channels: dict[int, list[int]] = {}  # a grey RGB image works on one channel
    for i, p in enumerate(prepared):
        by_channels.setdefault(p.data.shape[0], []).append(i)
    budget = _budget(batch)
    device = first.request.device
    for g, members in enumerate(by_channels.values()):
        share = budget * (g + 1) // len(by_channels) - budget * g // len(by_channels)
        start = meter.step
        x = _to_device(_stacked([prepared[i].data for i in members]), device)
        inputs = (x if level == len(first.levels) - 1 else
                  _to_device(_stacked([pyramids[i][level] for i in members]), device)
                  for level in range(len(first.levels)))
        state = yield from _optimize_levels(batch, members, inputs, total, done, live,
                                            (meter, start, share))
        meter.reach(start + share)  # a batch that stopped early: the rest is skipped
        found = _structure(batch, members, x, state)
        for b, i in enumerate(members):
            job, idx = batch[i]
            yield from finish_problem(
                job, idx, b, state, x, prepared[i], _prepare, meter,
                None if found is None else (bool(found[0][b]), found[1], b))


def _prepare_levels(job: Job, index: tuple[int, ...]):
    """One problem prepared once at full size (colour conversion, intensity range,
    scaling), then brought to each pyramid level's shape: exactly the values of
    preparing every level on its own (:func:`.preprocess.prepare_image` downsamples
    the same full-size data), for one conversion instead of one per level.

    Returns the problem at its working size and its levels below it, coarsest first.
    """
    full = _prepare(job, index, dataclasses.replace(job.run, max_size=None))
    smaller = [tuple(shape) != full.data.shape[1:] for shape in job.level_shapes]
    # what downsample sums in, made once for all the levels it makes
    wide = full.data.astype(np.float64) if any(smaller) else None
    data = [downsample(wide, shape) if small else full.data
            for shape, small in zip(job.level_shapes, smaller)]
    return dataclasses.replace(full, data=data[-1]), data[:-1]


def _structure(batch, members, x, state):
    """``(found, stats)`` of :func:`.structure.structure_found` for a batch that asks
    for the test (``check_structure``; never on a caller's own start labels)."""
    job = batch[members[0]][0]
    if not job.run.check_structure or job.request.init is not None:
        return None
    return structure_found(x, state.labels, job.request.regions, job.run)


def _optimize_levels(batch, members, inputs, total, done, live, share):
    """The optimisation of one batch through its pyramid levels (``inputs``, coarsest
    first, the last the working grid): :func:`.coarse_to_fine.solve_levels`, with the
    progress of the run.  ``share`` is ``(meter, start, steps)``: the part of the
    run's count it moves.  Returns the final state, iterations of every level added."""
    first = batch[0][0]
    regions, run = first.request.regions, first.run
    meter, start, steps = share
    gen = solve_levels(inputs, regions, run, _start(batch, members))
    try:
        while True:
            earlier, state = next(gen)
            meter.within(start, steps, earlier + state.iteration, _budget(batch))
            yield _progress(state, batch, members, done + earlier, total, live, meter)
    except StopIteration as stop:
        return stop.value
    finally:
        gen.close()


def _start(batch, members):
    """The caller's start of a batch, for :func:`.coarse_to_fine.solve_levels`: at a
    level's ``shape``, the initial labels and the locked pixels ``(B, *shape)`` (locks
    None when no problem has any), nearest neighbour from the output's shape; None
    when no problem of the batch has a start."""
    jobs = [batch[i] for i in members]
    if all(job.request.init is None for job, _ in jobs):
        return None

    def at(shape):
        init = np.stack([resize_labels(job.request.init[idx], shape) for job, idx in jobs])
        if all(job.request.locked is None for job, _ in jobs):
            return init, None
        return init, np.stack([
            np.zeros(shape, bool) if job.request.locked is None
            else resize_labels(job.request.locked[idx].view(np.uint8), shape) > 0
            for job, idx in jobs])
    return at


def _progress(state, batch, members, done, total, live, meter: Meter) -> IEMProgress:
    """A progress snapshot; a single problem's labels are built only when read."""
    job, _ = batch[members[0]]
    meter.iteration, meter.max_iterations = done + state.iteration, total
    if not live:
        return meter.snapshot("optimising", job.output.labels, float(state.objective.mean()))
    work = state.labels[0].clone()
    shape, dtype = job.request.layout.spatial, job.output.labels.dtype
    return meter.snapshot("optimising",
                          lambda: resize_labels(work.cpu().numpy().astype(dtype), shape),
                          float(state.objective[0]))


def _run_on(requests: Sequence[SegmentRequest], device) -> Generator:
    start = time.perf_counter()
    requests = [dataclasses.replace(r, device=torch.device(device)) for r in requests]
    jobs, held = [], 0
    for r in requests:  # every result is held to the end: their outputs add up
        jobs.append(_plan(r, held))
        held += output_bytes(r.layout.spatial, r.layout.channels, r.regions,
                             maps=r.maps, problems=len(jobs[-1].problems))
    batches = _batches(jobs)
    total = sum(_budget(b) for b in batches)
    meter = Meter(total + sum(len(job.problems) * finish_steps(job) + assemble_steps(job)
                              for job in jobs))
    live = len(jobs) == 1 and len(jobs[0].problems) == 1
    done = 0
    for batch in batches:
        yield from _solve(batch, total, done, live, meter)
        done += _budget(batch)
    results = []
    for job in jobs:
        results.append((yield from assemble(job, start, meter)))
    return results


def run(requests: Sequence[SegmentRequest]) -> Generator[IEMProgress, None, list[IEMResult]]:
    """Segment every request; yields progress, returns one result per request.

    All requests must name one device.  On a GPU that runs out of memory the whole
    run is repeated on the CPU (``result.metadata["device_fallback"]``).
    """
    devices = {r.device for r in requests}
    if len(devices) != 1:
        raise ValueError(f"one run, one device; got {sorted(map(str, devices))}")
    return (yield from with_cpu_fallback(lambda on: _run_on(requests, on), devices.pop()))


def run_one(request: SegmentRequest) -> Generator[IEMProgress, None, IEMResult]:
    """:func:`run` for a single request."""
    return (yield from run([request]))[0]
