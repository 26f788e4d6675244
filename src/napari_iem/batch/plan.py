"""Planning a run: where it runs, and which images go together into one task.

A task is one :func:`napari_iem.api.segment_batch` call: images of one working shape,
bounded in count and in working pixels, so that one tensor holds them and every worker
gets a share of the work.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence

__all__ = [
    "LOCAL_DASK_MIN_CORES",
    "choose_mode",
    "plan_tasks",
    "task_key",
    "tasks_for",
    "working_pixels",
]

#: Without workers= or scheduler=, a local Dask cluster is used only above this many
#: CPU cores (below, in-process runs were faster: docs/benchmarks.md).
LOCAL_DASK_MIN_CORES = 4


def working_pixels(shape, protocol, max_size) -> float:
    """Pixels the engine will work on, to bound the size of a task."""
    if protocol == "paper":
        return 128 * 128
    h, w = (shape[0], shape[1]) if len(shape) >= 2 else (shape[0], 1)
    scale = min(1.0, max_size / max(h, w)) if max_size else 1.0
    return h * w * scale * scale


def task_key(shape, channel_axis, protocol) -> tuple:
    """The working shape that decides which images can share a task: channels moved
    last, and 128x128 under the paper's protocol."""
    if channel_axis is not None and -len(shape) <= channel_axis < len(shape):
        ax = channel_axis % len(shape)
        shape = shape[:ax] + shape[ax + 1:] + (shape[ax],)
    return ((128, 128) + tuple(shape[2:])) if protocol == "paper" else tuple(shape)


def plan_tasks(keys: Sequence, pixels: Sequence[float], max_images: int,
               max_megapixels: float) -> list[list[int]]:
    """Group item indices into tasks: one shape per task, bounded count and size.

    Parameters
    ----------
    keys : sequence
        A hashable grouping key per item (its working shape).
    pixels : sequence of float
        Working pixels per item.
    max_images : int
        Most items in one task.
    max_megapixels : float
        Most working megapixels in one task (a single larger item gets a task alone).

    Returns
    -------
    list of list of int
        Item indices per task; items of one key keep their input order.
    """
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    budget = max_megapixels * 1e6
    tasks: list[list[int]] = []
    for idx in groups.values():
        cur: list[int] = []
        size = 0.0
        for i in idx:
            if cur and (len(cur) >= max_images or size + pixels[i] > budget):
                tasks.append(cur)
                cur, size = [], 0.0
            cur.append(i)
            size += pixels[i]
        if cur:
            tasks.append(cur)
    return tasks


def choose_mode(scheduler, workers: int | None, keys, pixels, task_images: int,
                task_megapixels: float) -> tuple[str, int | None]:
    """``("dask", None)``, ``("in-process", 0)`` or ``("local", n_workers)``.

    On a few cores torch already uses them all in-process, and a local cluster
    measured 1.3-3x slower on 2 cores (docs/benchmarks.md): without ``workers``, Dask
    runs only on larger machines, and only for jobs of more than one task.
    """
    if scheduler is not None:
        return "dask", None
    if workers == 0:
        return "in-process", 0
    if workers is not None:
        return "local", workers
    n_cpu = os.cpu_count() or 1
    single = len(plan_tasks(keys, pixels, task_images, task_megapixels)) <= 1
    if single or n_cpu <= LOCAL_DASK_MIN_CORES:
        return "in-process", 0
    return "local", n_cpu


def tasks_for(items: list, keys, pixels, slots: int, task_images: int,
              task_megapixels: float) -> list[list]:
    """``items`` (one per pending image) grouped into tasks; with several worker slots,
    smaller tasks so that each slot gets about two."""
    per_task = task_images
    if slots > 1 and items:
        per_task = max(1, min(task_images, math.ceil(len(items) / (2 * slots))))
    return [[items[j] for j in t]
            for t in plan_tasks(keys, pixels, per_task, task_megapixels)]
