"""One image larger than memory, block by block: :func:`segment_blocks`.

Coarse to fine, as the whole-image run with ``refine=True`` does, but never holding
the image: (1) one pass over the blocks checks the values (NaN, constant) and takes the
intensity sample; (2) the pyramid levels of the working size are computed piece by
piece from the full-resolution blocks; (3) the whole image is solved at the working
size in this process; (4) every block of the full-resolution grid gets its labels:
the carried-up ones, or, for a block that touches the boundary band, the band
refined from the block and a halo around it (band width plus the inpainter's reach,
so that every pixel that may move sees all it depends on); each block's labels are
written to the output as it finishes.  Every step is the engine's own function
(:mod:`napari_iem.engine.blockwise`), so the labels are those of ``segment(image,
refine=True, ...)`` on an image small enough for both.

Steps (1), (2) and (4) are Dask tasks: in this process, on a local cluster
(``workers``) or on a running scheduler (``scheduler``, whose workers must see the
input and output paths).  Output goes to ``OUT.partial`` and is renamed to ``OUT``
only when every block is written: an interrupted run leaves no output that claims to
be finished.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from pathlib import Path

import numpy as np

from ..engine import blockwise as bw
from .block_output import check_output, finish_output, output_array
from .guard import BatchError, output_lock

__all__ = ["BlockRun", "segment_blocks", "DEFAULT_BLOCK"]

#: Block side (pixels per axis) when none is given: 2048 in 2-D (a 16-bit block with
#: its halo and float copies is about 150 MB), 192 in 3-D.
DEFAULT_BLOCK = {2: 2048, 3: 192}


@dataclasses.dataclass
class BlockRun:
    """What a block run made: the labels (a zarr array), and how it went."""

    labels: object  # zarr.Array, full size
    working_labels: np.ndarray
    blocks: int
    blocks_refined: int
    block_size: int
    block_bytes: int  # estimated memory of one block's refinement
    peak_rss: dict  # worker (or "this process") -> peak resident memory in bytes
    seconds: float
    facts: dict


def _source(source):
    """``(dask array, facts)`` of an OME-Zarr path, a zarr array or a dask array;
    singleton axes (OME-Zarr's t and c of a grey image) dropped."""
    import dask.array as da

    facts: dict = {}
    if isinstance(source, (str, os.PathLike)):
        facts["path"] = str(source)
        arr = _open_path(Path(source), facts)
    elif isinstance(source, da.Array):
        arr = source
    elif hasattr(source, "store") and hasattr(source, "chunks"):  # a zarr array
        arr = da.from_zarr(source)
    else:
        arr = da.from_array(np.asarray(source))
    keep = [i for i, n in enumerate(arr.shape) if n != 1] or [0, 1]
    if len(keep) != arr.ndim:
        for key in ("axes", "scale"):
            if facts.get(key) is not None and len(facts[key]) == arr.ndim:
                facts[key] = [facts[key][i] for i in keep]
        arr = arr[tuple(slice(None) if i in keep else 0 for i in range(arr.ndim))]
    ome = facts.pop("ome", None)
    if ome is not None:  # the engine's spacing, as the file runs take it
        facts["engine_scale"] = ome.scale_for(0, arr.ndim)
    return arr, facts


def _open_path(path: Path, facts: dict):
    """Level 0 of an OME-Zarr (its axes, spacing and units into ``facts``), or the
    array of a plain zarr (a group: its array ``0``), both read through the bounded
    store of :mod:`napari_iem.files.ome_zarr`, their metadata checked."""
    from ..files.ome_zarr import is_ome_zarr, open_ome_zarr
    from ..files.zarr_array import is_zarr, open_zarr_array

    if is_ome_zarr(path):  # its shape has no limit (block mode is for what is too
        image = open_ome_zarr(path, whole=False)  # large), its chunks do
        facts.update(axes=list(image.axes), scale=list(image.scale[0]),
                     units=dict(image.units), ome=image)
        return image.levels[0]
    if not path.exists():
        raise BatchError(f"{path} does not exist")
    if not is_zarr(path):
        raise BatchError(f"{path} is not an OME-Zarr or zarr, which --blocks reads; "
                         "segment it without --blocks")
    return open_zarr_array(path)


def _boxes(shape, block: int):
    """Core boxes of the blocks of ``shape``, in C order."""
    starts = [range(0, n, block) for n in shape]
    for corner in itertools.product(*starts):
        yield tuple(slice(s, min(s + block, n)) for s, n in zip(corner, shape))


class _Runner:
    """Runs delayed tasks here or on a Dask cluster, results as they finish."""

    def __init__(self, scheduler, workers, stack: ExitStack):
        self.client = None
        self.workers = 1
        if scheduler is None and not workers:
            return
        from .where import _workers_ignore_sigint, connect, quietly

        if scheduler is None:
            from distributed import LocalCluster

            with _workers_ignore_sigint(True):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, dashboard_address="127.0.0.1:0",
                                       silence_logs=40)
            stack.callback(quietly, cluster.close)
            scheduler = cluster.scheduler_address
        self.client, ours = connect(scheduler)
        if ours:
            stack.callback(quietly, self.client.close)
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))

    def run(self, tasks):
        """Yield each task's result as it finishes (any order)."""
        if self.client is None:
            import dask

            for t in tasks:
                yield dask.compute(t, scheduler="synchronous")[0]
            return
        from distributed import as_completed

        futures = self.client.compute(tasks)
        try:
            for fut in as_completed(futures, loop=self.client.loop):
                yield fut.result()
        finally:
            self.client.cancel(futures)

    def share(self, value):
        """``value`` sent once to every worker (the working labels)."""
        if self.client is None:
            return value
        return self.client.scatter(value, broadcast=True)


def _measured(work):
    """``(work(), (process id, peak resident bytes during it))``: RSS sampled every
    50 ms in a thread (``ru_maxrss`` would report what a spawned worker inherited)."""
    import threading

    import psutil

    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = work()
    finally:
        stop.set()
        thread.join()
    return result, (str(os.getpid()), max(peak[0], proc.memory_info().rss))


def _sample_task(block, offset, shape, step):
    return bw.block_sample(block, offset, shape, step)


def _piece_task(plan, level, box, raw, offset):
    return box, bw.working_piece(plan, level, box, raw, offset)


def _block_task(plan, labels_w, core, raw, out):
    """One block's labels written to ``out``: refined when ``raw`` is given."""
    def work():
        if raw is None:
            labels, info = bw.carried_block(plan, labels_w, core), None
        else:
            labels, info = bw.refine_block(plan, labels_w, core, raw)
        out[core] = labels.astype(out.dtype)
        return info

    return _measured(work)


def _working_levels(plan, arr, block: int, runner: _Runner) -> list[np.ndarray]:
    """Every pyramid level of the working size, piece by piece from level 0."""
    import dask

    data = []
    for level, lshape in enumerate(plan.level_shapes):
        factor = max(n / m for n, m in zip(plan.shape, lshape))
        piece = max(8, int(block // math.ceil(factor)))
        tasks = []
        for box in _boxes(lshape, piece):
            support = bw.level_support(plan, level, box)
            tasks.append(dask.delayed(_piece_task)(
                plan, level, box, arr[support], tuple(s.start for s in support)))
        out = np.empty(lshape, np.float32)
        for box, values in runner.run(tasks):
            out[box] = values
        data.append(out)
    return data


def segment_blocks(source, out=None, regions: int = 2, *, block_size: int | None = None,
                   scheduler=None, workers: int | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   **knobs) -> BlockRun:
    """Segment one image larger than memory, coarse to fine, block by block.

    Parameters
    ----------
    source : str, Path, zarr array or dask array
        An OME-Zarr (or plain zarr) path, or the array itself: grey, 2-D or a 3-D
        volume (singleton axes are dropped).
    out : str or Path, optional
        Where the labels go (a zarr array; written as OUT.partial, renamed when
        finished).  Without it they are kept in memory (small images, tests).
    regions : int
    block_size : int, optional
        Block side in pixels; a multiple of the refinement tile (256 in 2-D, 96 in
        3-D), at least the halo.  Default :data:`DEFAULT_BLOCK`.
    scheduler : str or distributed.Client, optional
        A running Dask scheduler; its workers must see ``source`` and ``out``.
    workers : int, optional
        Local Dask worker processes (None or 0: this process).
    progress : callable, optional
        Called ``progress(blocks_done, blocks_total)`` after each block.
    **knobs
        The knobs of :func:`napari_iem.segment`; ``max_size`` (the working size) is
        required, ``min_piece_size``, ``instances`` and ``maps`` are refused.

    Returns
    -------
    BlockRun
    """
    start = time.perf_counter()
    partial_seen: list = []
    try:
        with nullcontext() if out is None else output_lock(out):  # one run at a time
            run = _segment(source, out, regions, block_size, scheduler, workers,
                           progress, knobs, start, partial_seen.append)
    except BaseException:  # Ctrl-C or a failure: nothing half written stays
        for partial in partial_seen:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    return run


def _segment(source, out, regions, block_size, scheduler, workers, progress, knobs,
             start, seen) -> BlockRun:
    """:func:`segment_blocks`; ``seen`` is told the partial output once it exists."""
    import dask

    if out is not None:
        check_output(source, out)  # before any work; again when it is created
    arr, facts = _source(source)
    if facts.get("engine_scale") is not None:
        knobs.setdefault("scale", facts["engine_scale"])
    shape = tuple(int(n) for n in arr.shape)
    block = int(block_size or DEFAULT_BLOCK.get(len(shape), 2048))
    step = bw.sample_step(math.prod(shape))
    with ExitStack() as stack:
        runner = _Runner(scheduler, workers, stack)
        samples = list(runner.run([
            dask.delayed(_sample_task)(arr[box], tuple(s.start for s in box), shape, step)
            for box in _boxes(shape, block)]))
        plan = bw.plan_blocks(shape, arr.dtype, samples, regions, **knobs)
        _check_block(plan, block, arr.dtype.itemsize, runner.workers)
        labels_w, solved = bw.solve_working(plan, _working_levels(plan, arr, block, runner))
        dtype = np.uint8 if regions <= 255 else np.uint16
        target, partial = output_array(out, shape, dtype, block)
        if partial is not None:
            seen(partial)
        shared = runner.share(labels_w)
        tasks, refined = [], 0
        for core in _boxes(shape, block):
            raw = None
            if bw.touches_band(plan, labels_w, core):
                raw = arr[bw.block_window(plan, core)[0]]
                refined += 1
            tasks.append(dask.delayed(_block_task)(plan, shared, core, raw, target))
        peaks: dict = {}
        infos = []
        for done, (info, (who, rss)) in enumerate(runner.run(tasks), 1):
            peaks[who] = max(peaks.get(who, 0), rss)
            if info is not None:
                infos.append(info)
            if progress is not None:
                progress(done, len(tasks))
    facts.update(solved, working_shape=list(plan.work),
                 levels=[list(s) for s in plan.level_shapes], width=plan.width,
                 halo=plan.halo, preset=plan.request.preset,
                 tiles=sum(i["tiles"] for i in infos),
                 band_pixels=sum(i["band_pixels"] for i in infos))
    provenance = _provenance(plan, facts, block)
    target.attrs["napari_iem"] = provenance
    if partial is not None:  # every block written: only now is it OUT
        target = finish_output(target, partial, Path(out), facts, provenance, block)
    return BlockRun(target, labels_w, len(tasks), refined, block,
                    bw.block_bytes(plan, block, arr.dtype.itemsize), peaks,
                    time.perf_counter() - start, facts)


def _provenance(plan, facts: dict, block: int) -> dict:
    """What made these labels (JSON): preset, parameters, versions, the run's facts."""
    from ..engine.finish import versions

    params = {k: (list(v) if isinstance(v, tuple) else v)
              for k, v in plan.request.params.to_dict().items()}
    return {"mode": "blocks", "preset": plan.request.preset, "regions": plan.regions,
            "params": params, "block_size": block, "versions": versions(),
            **{k: v for k, v in facts.items() if k != "path"}}


def _check_block(plan, block: int, itemsize: int, workers: int) -> None:
    """Refuse a block size the tiles or the halo do not allow, or whose blocks do not
    fit in memory with ``workers`` of them at once."""
    from ..engine.memory import USABLE_FRACTION, available_bytes

    if block < plan.halo:
        raise BatchError(f"block size {block} is below the halo of {plan.halo} pixels "
                         f"(band {plan.width} + the inpainter's reach); use at least "
                         f"{plan.tile}")
    if block % plan.tile:
        raise BatchError(f"block size {block} must be a multiple of the refinement tile "
                         f"({plan.tile}), e.g. {max(1, round(block / plan.tile)) * plan.tile}")
    need = bw.block_bytes(plan, block, itemsize) * workers
    free = available_bytes("cpu")
    if need > USABLE_FRACTION * free:
        raise BatchError(f"{workers} block(s) of {block} pixels need about "
                         f"{need / 2**30:.1f} GB but {free / 2**30:.1f} GB is free: "
                         f"lower --block-size (a multiple of {plan.tile}) or --workers")
