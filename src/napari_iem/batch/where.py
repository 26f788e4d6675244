"""Where the work runs: in this process, on a local Dask cluster, or on a running one.

Each task is one :func:`napari_iem.batch.task.segment_task` call; its records go back to
the run (:meth:`napari_iem.batch.run._Job.absorb`) as they come.  Clusters and clients
made here are closed through the caller's :class:`contextlib.ExitStack`, before the run
settles its manifest, so that no worker writes after that.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import ExitStack, contextmanager

from .guard import BatchError
from .plan import tasks_for
from .task import segment_task

__all__ = ["connect", "quietly", "run_tasks"]


@contextmanager
def _workers_ignore_sigint(processes: bool):
    """Start local worker processes with Ctrl-C ignored in them.

    Only this process should handle Ctrl-C (cancel the work, stop the workers, write the
    report); workers that got it too would die printing tracebacks.  An ignored SIGINT
    is inherited by spawned processes, so it is ignored here while the cluster starts
    (a few seconds, during which Ctrl-C has no effect) and restored afterwards.
    (Blocking SIGINT instead is not inherited by Dask's worker processes.)
    """
    if not processes or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def connect(scheduler):
    """A client of ``scheduler`` (an address or a client) and whether it is ours to
    close; a :class:`BatchError` that says why when it cannot be reached."""
    try:
        from distributed import Client
    except ImportError:  # a partial install: dask[distributed] is a dependency
        raise BatchError(f"cannot connect to the Dask scheduler at {scheduler}: the "
                         "'distributed' package is missing; pip install 'dask[distributed]'"
                         ) from None

    if isinstance(scheduler, Client):
        return scheduler, False
    try:  # used by name only: the process's own Dask default (the user's) stays as it was
        return Client(scheduler, timeout="10s", set_as_default=False), True
    except Exception as exc:  # noqa: BLE001 - distributed raises many kinds
        raise BatchError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None


def quietly(close) -> None:
    """Call ``close``; a failure to close must not hide what happened in the run."""
    try:
        close()
    except Exception:  # noqa: BLE001, S110 - see the docstring
        pass


def run_tasks(job, mode: str, n_workers, client, processes: bool,
               task_images: int, task_megapixels: float, result, bar,
               stack: ExitStack) -> None:
    """Run the pending images where ``mode`` says (``client``: a connected Dask
    client for ``mode="dask"``); clean-ups go onto ``stack``."""
    def absorb(recs):
        job.absorb(recs)
        bar.update(len(recs))

    if mode == "in-process":
        result.mode = "in-process"
        for t in tasks_for(job.pending, job.keys, job.pixels, 1, task_images,
                           task_megapixels):
            absorb(segment_task(t, job.cfg))
        return
    from distributed import LocalCluster, as_completed

    if mode == "local":
        if processes:
            job.cfg["torch_threads"] = max(1, (os.cpu_count() or 1) // n_workers)
        with _workers_ignore_sigint(processes):
            cluster = LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=processes,
                # the HTTP server always runs: keep it local, on a free port
                dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
            )
        stack.callback(quietly, cluster.close)
        client, _ = connect(cluster.scheduler_address)
        stack.callback(quietly, client.close)
        result.mode = f"local Dask, {n_workers} worker{'s' * (n_workers != 1)}"
        slots = n_workers
    else:
        info = client.scheduler_info().get("workers", {})
        slots = sum(int(w.get("nthreads", 1)) for w in info.values()) or 1
        addr = getattr(client.scheduler, "address", "")
        result.mode = f"Dask at {addr}, {len(info)} worker{'s' * (len(info) != 1)}"
    tasks = tasks_for(job.pending, job.keys, job.pixels, slots, task_images,
                      task_megapixels)
    futures = client.map(segment_task, tasks, cfg=job.cfg, pure=False)
    stack.callback(quietly, lambda: client.cancel(futures))
    index_of = {f.key: j for j, f in enumerate(futures)}
    for fut in as_completed(futures, loop=client.loop):  # not a default client
        try:
            absorb(fut.result())
        except Exception as exc:  # noqa: BLE001 - a worker died or the task crashed
            absorb([{"index": item[0], "status": "failed",
                     "error": f"task failed on a worker: {exc!r}"}
                    for item in tasks[index_of[fut.key]]])
