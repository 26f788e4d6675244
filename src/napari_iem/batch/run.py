"""Segmenting many files: in-process or with Dask, resumable, with a report.

:func:`run_batch` is the whole job: find the images, skip those already done, read the
headers, group images of one shape into tasks of bounded size, run each task with
:func:`napari_iem.api.segment_batch` (one tensor per shape), write the labels
atomically and record what happened to every file in a report.

Where the work runs
-------------------
* ``workers=0``: sequentially in this process (no Dask).
* ``workers=N`` (N >= 1): a local Dask cluster of N single-threaded worker processes on
  this machine, created for the run and closed afterwards.
* ``scheduler="tcp://host:8786"`` (or a :class:`distributed.Client`): tasks go to an
  existing ``dask.distributed`` cluster.  Workers read the inputs and write the outputs
  themselves, so they must see the same paths (a shared file system).
* Default (``workers=None``, no scheduler): a local Dask cluster with one worker per CPU
  core, except for jobs that fit in a single task, which run in-process (starting
  worker processes costs a few seconds).

Safety
------
Every output is written to a hidden temporary file in the output folder and renamed
into place, so an interrupted run (Ctrl-C, a killed worker) never leaves a half-written
labels file.  A rerun skips files whose labels exist (``overwrite=True`` redoes them).
A file that cannot be read or segmented is recorded as failed and the rest go on.
"""
from __future__ import annotations

import csv
import io as _stdio
import json
import logging
import math
import os
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..files.io import (
    ImageReadError,
    atomic_output,
    existing_labels,
    find_images,
    image_info,
    read_image,
    unique_stems,
    write_labels,
    write_overlay,
)
from ..engine.knobs import check_knobs
from ..engine.presets import DEFAULT_PRESET

__all__ = [
    "BatchError",
    "BatchInterrupted",
    "FileRecord",
    "BatchReport",
    "REPORT_NAME",
    "run_batch",
    "plan_tasks",
]

#: Without workers= or scheduler=, a local Dask cluster is used only above this many
#: CPU cores (below, in-process runs were faster: docs/benchmarks.md).
LOCAL_DASK_MIN_CORES = 4
#: Report file name in the output folder (``.csv`` or ``.json``).
REPORT_NAME = "iem-report"
OVERLAY_DIR = "overlays"
PROTOCOLS = (None, "full", "paper")


class BatchError(ValueError):
    """The job cannot start (bad input, output folder, scheduler); the message says why."""


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_batch`; ``.report`` holds what finished (report written)."""

    def __init__(self, report: "BatchReport"):
        super().__init__("interrupted")
        self.report = report


@dataclass
class FileRecord:
    """What happened to one input file; one row of the report.

    ``status`` is ``done``, ``skipped`` (labels already there), ``failed`` or
    ``cancelled`` (not run because the job was interrupted).  ``seconds`` is the task's
    time divided by the images in it (reading, segmenting and writing).  ``preset`` is
    the one that ran (what ``"default"`` picked for this image).
    """

    file: str
    output: str = ""
    status: str = "pending"
    shape: str = ""
    regions: int | None = None
    preset: str = ""
    iterations: int | None = None
    converged: bool | None = None
    objective: float | None = None
    seconds: float | None = None
    device: str = ""
    error: str = ""


REPORT_FIELDS = [f.name for f in fields(FileRecord)]


@dataclass
class BatchReport:
    """The outcome of :func:`run_batch`.

    Attributes
    ----------
    records : list of FileRecord
        One per input file, in input order.
    out_dir : Path
    report_path : Path or None
        The report file written into ``out_dir``.
    seconds : float
        Wall-clock time of the whole run.
    mode : str
        Where the work ran (``"in-process"``, ``"local Dask, 2 workers"``, ...).
    interrupted : bool
        True when the run was stopped by Ctrl-C.
    """

    records: list[FileRecord]
    out_dir: Path
    report_path: Path | None = None
    seconds: float = 0.0
    mode: str = ""
    interrupted: bool = False
    settings: dict = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def done(self) -> int:
        return self.count("done")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def ok(self) -> bool:
        """True when nothing failed and the run was not interrupted."""
        return not self.failed and not self.interrupted and not self.count("cancelled")

    def summary(self, max_failures: int = 20) -> str:
        """A few lines for a terminal: counts, time, report path, the failures."""
        n = len(self.records)
        parts = [f"{self.done} segmented", f"{self.skipped} skipped (labels exist)",
                 f"{self.failed} failed"]
        if self.count("cancelled"):
            parts.append(f"{self.count('cancelled')} not run (interrupted)")
        rate = ""
        if self.done and self.seconds > 0:
            rate = f", {self.done / self.seconds:.2f} images/s"
        lines = [f"{n} image{'s' * (n != 1)}: {', '.join(parts)} in {self.seconds:.1f} s"
                 f"{rate} ({self.mode})"]
        if self.report_path is not None:
            lines.append(f"report: {self.report_path}")
        failed = [r for r in self.records if r.status == "failed"]
        for r in failed[:max_failures]:
            lines.append(f"failed: {r.error}" if r.error.startswith(r.file)
                         else f"failed: {r.file}: {r.error}")
        if len(failed) > max_failures:
            lines.append(f"... and {len(failed) - max_failures} more failures, see the report")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "summary": {
                "images": len(self.records), "done": self.done, "skipped": self.skipped,
                "failed": self.failed, "cancelled": self.count("cancelled"),
                "seconds": round(self.seconds, 3), "mode": self.mode,
                "interrupted": self.interrupted, "settings": self.settings,
            },
            "files": [asdict(r) for r in self.records],
        }

    def write(self, path: str | os.PathLike) -> Path:
        """Write the report as CSV or JSON (by suffix), atomically."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            text = json.dumps(self.to_json(), indent=2) + "\n"
        else:
            buf = _stdio.StringIO()
            writer = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, lineterminator="\n")
            writer.writeheader()
            for r in self.records:
                writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
            text = buf.getvalue()
        with atomic_output(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return path


# --------------------------------------------------------------------------- tasks

def _shape_str(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def _working_pixels(shape, protocol, max_size) -> float:
    """Pixels the engine will work on, to bound the size of a task."""
    if protocol == "paper":
        return 128 * 128
    spatial = shape[:2] if len(shape) >= 2 else shape
    h, w = spatial[0], spatial[1] if len(spatial) > 1 else 1
    scale = 1.0
    if max_size:
        scale = min(1.0, max_size / max(h, w))
    return h * w * scale * scale


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


def _apply_protocol(image, protocol):
    if protocol == "paper":
        from ..analysis.metrics import paper_protocol

        return paper_protocol(image)
    return image


def _segment_task(items: list[tuple[int, str, str]], cfg: dict) -> list[dict]:
    """Read, segment and write one task's images; runs on a worker or in-process.

    ``items`` are ``(index, input path, output stem)``.  Returns one record dict per
    item (with ``index``); never raises for a single bad file.
    """
    if cfg.get("torch_threads"):
        import torch

        torch.set_num_threads(cfg["torch_threads"])
    from ..api import segment, segment_batch

    start = time.perf_counter()
    out_dir = Path(cfg["out_dir"])
    records: dict[int, dict] = {}
    images, ok = [], []
    for index, path, stem in items:
        rec = {"index": index, "status": "failed"}
        records[index] = rec
        try:
            img = read_image(path, cfg.get("max_pixels"))
            rec["shape"] = _shape_str(img.shape)
            if cfg.get("channel_axis") is not None:
                img = np.moveaxis(img, cfg["channel_axis"], -1)
            img = _apply_protocol(img, cfg.get("protocol"))
        except (ImageReadError, ValueError, OSError, MemoryError) as exc:
            rec["error"] = str(exc)
            continue
        images.append(img)
        ok.append((index, stem))

    kwargs = dict(preset=cfg["preset"], device=cfg["device"], **cfg["overrides"])
    if cfg.get("channel_axis") is not None:
        kwargs["channel_axis"] = -1  # moved last above
    nd = cfg.get("nd_options") or {}
    results: list = []
    if images:
        try:
            if nd:  # stacks, volumes, instances: one image at a time
                results = [segment(img, cfg["regions"], **kwargs, **nd) for img in images]
            else:
                results = segment_batch(images, cfg["regions"], **kwargs)
        except Exception:
            # Find the culprit: run the images one by one, recording each error.
            results = []
            for img, (index, _) in zip(images, ok):
                try:
                    results.append(segment(img, cfg["regions"], **kwargs, **nd))
                except Exception as exc:
                    records[index]["error"] = f"segmentation failed: {exc}"
                    results.append(None)

    for img, (index, stem), res in zip(images, ok, results):
        rec = records[index]
        if res is None:
            continue
        try:
            labels = res.instances if nd.get("instances") else res.labels
            path = write_labels(labels, out_dir, stem)
            if cfg.get("overlay") and res.labels.ndim == 2:
                odir = out_dir / OVERLAY_DIR
                odir.mkdir(exist_ok=True)
                write_overlay(img, res.labels, odir / f"{stem}.png")
        except (OSError, ValueError) as exc:
            rec["error"] = f"cannot write output: {exc}"
            continue
        rec.update(
            status="done", output=path.name, regions=res.regions,
            preset=res.params.get("preset", ""),
            iterations=res.iterations, converged=res.converged,
            objective=float(res.objective[-1]) if res.objective else None,
            device=res.device,
        )
    per_image = (time.perf_counter() - start) / max(1, len(items))
    for rec in records.values():
        rec["seconds"] = round(per_image, 4)
    return list(records.values())


# --------------------------------------------------------------------------- the run

def _check_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(
            f"cannot create output folder {out_dir}: {exc.strerror or exc}"
        ) from None
    if not out_dir.is_dir():
        raise BatchError(f"output path {out_dir} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".iem-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BatchError(
            f"output folder {out_dir} is not writable: {exc.strerror or exc}"
        ) from None


def _old_rows(path: Path) -> dict[str, dict]:
    """Rows of a previous CSV/JSON report by file, to keep details of skipped files."""
    try:
        if path.suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))["files"]
        else:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        return {r["file"]: r for r in rows if r.get("status") in ("done", "skipped")}
    except Exception:  # a missing or foreign report is not an error
        return {}


def _fill_skipped(rec: FileRecord, old: dict | None) -> None:
    if not old:
        return
    conv = {"regions": int, "iterations": int, "objective": float, "seconds": float,
            "converged": lambda v: v if isinstance(v, bool) else str(v) == "True"}
    for key in ("shape", "regions", "preset", "iterations", "converged", "objective",
                "seconds", "device"):
        v = old.get(key)
        if v in (None, ""):
            continue
        try:
            setattr(rec, key, conv[key](v) if key in conv else v)
        except (TypeError, ValueError):
            pass


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


def _connect(scheduler):
    try:
        from distributed import Client
    except ImportError:  # a partial install: dask[distributed] is a dependency
        raise BatchError(f"cannot connect to the Dask scheduler at {scheduler}: the "
                         "'distributed' package is missing; pip install 'dask[distributed]'"
                         ) from None

    if isinstance(scheduler, Client):
        return scheduler, False
    try:
        return Client(scheduler, timeout="10s"), True
    except Exception as exc:
        raise BatchError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None


def run_batch(
    inputs: Iterable[str | os.PathLike] | str | os.PathLike,
    out_dir: str | os.PathLike,
    regions: int = 2,
    preset: str = DEFAULT_PRESET,
    *,
    scheduler=None,
    workers: int | None = None,
    overwrite: bool = False,
    overlay: bool = False,
    device: str = "auto",
    protocol: str | None = None,
    channel_axis: int | None = None,
    nd_options: dict | None = None,
    recursive: bool = False,
    max_pixels: int | None = None,
    task_images: int = 32,
    task_megapixels: float = 8.0,
    report: str = "csv",
    progress: bool = True,
    processes: bool = True,
    **overrides,
) -> BatchReport:
    """Segment many image files into ``out_dir``, resumably.

    Parameters
    ----------
    inputs : path or iterable of paths
        Image files and folders (a folder gives its PNG, JPEG and TIFF files).
    out_dir : path
        Output folder (created).  Labels go to ``<stem>.png`` (``.tif`` for 16-bit or
        n-D), overlays to ``overlays/<stem>.png``, the report to ``iem-report.csv``.
    regions, preset, **overrides
        As for :func:`napari_iem.api.segment` (``max_iter``, ``max_size``, ...).
    scheduler : str or distributed.Client, optional
        Address of an existing Dask scheduler, or a client; see the module docstring.
    workers : int, optional
        0 runs in-process; N >= 1 starts a local Dask cluster with N workers; None
        chooses: in-process for a single task or on a machine of at most
        ``LOCAL_DASK_MIN_CORES`` cores, otherwise one worker per core.
    overwrite : bool
        Redo files whose labels exist (default: skip them).
    overlay : bool
        Also write an overlay PNG per 2-D image.
    device : str
        Torch device for the engine, resolved on each worker.
    protocol : {None, "full", "paper"}
        ``"paper"`` resizes each image with :func:`napari_iem.analysis.metrics.paper_protocol`
        (shorter side 128, nearest, centre crop) before segmenting.
    channel_axis : int, optional
        Axis of the stored arrays that holds channels (e.g. 0 for a (C, Y, X) TIFF), when
        it is not a trailing RGB(A) axis.
    nd_options : dict, optional
        ``mode`` (``"2d"``, ``"slices"``, ``"volume"``), ``instances`` and ``refine``, as
        for :func:`napari_iem.api.segment`; with any of them set, images are
        segmented one at a time, and ``instances=True`` writes the object labels.
    recursive : bool
        Search folders recursively.
    max_pixels : int, optional
        Refuse images larger than this (see :mod:`napari_iem.files.io`).
    task_images, task_megapixels : int, float
        Bounds of one task (one :func:`segment_batch` call on one worker).
    report : {"csv", "json"}
        Format of the report file.
    progress : bool
        Show a progress bar (tqdm, on stderr).
    processes : bool
        Local cluster with worker processes (True) or threads (False).

    Returns
    -------
    BatchReport

    Raises
    ------
    BatchError
        Before any work, when an input is missing, there is no image, the output folder
        cannot be written or the scheduler cannot be reached.
    BatchInterrupted
        On Ctrl-C, after cancelling the work and writing the report; finished outputs
        are kept and a rerun resumes.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    wall_start = time.time()
    if protocol not in PROTOCOLS:
        raise BatchError(f"unknown protocol {protocol!r}; use 'paper' or 'full'")
    if report not in ("csv", "json"):
        raise BatchError(f"report format must be 'csv' or 'json', got {report!r}")
    if workers is not None and workers < 0:
        raise BatchError(f"workers must be 0 or more, got {workers}")
    # Validate the parameters now, not on every worker.
    try:
        check_knobs({"regions": regions, "preset": preset, **(nd_options or {}),
                     **overrides})
    except ValueError as exc:  # TypeError too: an unknown name is both
        raise BatchError(str(exc)) from None
    if device not in (None, "auto") and scheduler is None:
        from ..engine.devices import resolve_device

        try:
            resolve_device(device)
        except ValueError as exc:
            raise BatchError(str(exc)) from None

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    try:
        files = find_images(inputs, recursive=recursive)
    except FileNotFoundError as exc:
        raise BatchError(str(exc)) from None
    if not files:
        raise BatchError("no images found in " + ", ".join(str(i) for i in inputs))
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    # Never take our own outputs as inputs (an output folder inside an input folder).
    out_real = out_dir.resolve()
    files = [f for f in files if out_real not in f.resolve().parents]
    if not files:
        raise BatchError(f"no images found outside the output folder {out_dir}")
    report_path = out_dir / f"{REPORT_NAME}.{report}"
    old = _old_rows(report_path) if not overwrite else {}

    stems = unique_stems(files)
    records = [FileRecord(file=str(f)) for f in files]
    settings = {"preset": preset, "regions": regions, "params": dict(overrides),
                "protocol": protocol or "full"}
    result = BatchReport(records, out_dir, report_path, mode="", settings=settings)

    # Skip finished outputs, read the headers of the rest.
    pending, keys, pixels = [], [], []
    for i, (f, stem) in enumerate(zip(files, stems)):
        rec = records[i]
        done = existing_labels(out_dir, stem)
        if done is not None and not overwrite:
            rec.status, rec.output = "skipped", done.name
            _fill_skipped(rec, old.get(rec.file))
            continue
        try:
            info = image_info(f, max_pixels)
        except ImageReadError as exc:
            rec.status, rec.error = "failed", str(exc)
            continue
        rec.shape = _shape_str(info.shape)
        shape = info.shape
        if channel_axis is not None and -len(shape) <= channel_axis < len(shape):
            ax = channel_axis % len(shape)
            shape = shape[:ax] + shape[ax + 1:] + (shape[ax],)
        key = ((128, 128) + tuple(shape[2:])) if protocol == "paper" else shape
        pending.append(i)
        keys.append(key)
        pixels.append(_working_pixels(shape, protocol, overrides.get("max_size")))

    # Decide where to run, then size the tasks so that every worker gets work.
    n_cpu = os.cpu_count() or 1
    if scheduler is not None:
        mode = "dask"
        n_workers = None
    elif workers == 0:
        mode, n_workers = "in-process", 0
    elif workers is None:
        # On a few cores torch already uses them all in-process, and a local cluster
        # measured 1.3-3x slower on 2 cores (docs/benchmarks.md): Dask only on larger
        # machines, for jobs of more than one task.
        single = len(plan_tasks(keys, pixels, task_images, task_megapixels)) <= 1
        small = single or n_cpu <= LOCAL_DASK_MIN_CORES
        mode, n_workers = ("in-process", 0) if small else ("local", n_cpu)
    else:
        mode, n_workers = "local", workers

    def make_tasks(slots: int) -> list[list[tuple[int, str, str]]]:
        # With several workers, smaller tasks so that each gets about two.
        per_task = task_images
        if slots > 1 and pending:
            per_task = max(1, min(task_images, math.ceil(len(pending) / (2 * slots))))
        plan = plan_tasks(keys, pixels, per_task, task_megapixels)
        return [[(pending[j], str(files[pending[j]].resolve()), stems[pending[j]])
                 for j in t] for t in plan]

    cfg = {
        "out_dir": str(out_dir.resolve()), "regions": regions, "preset": preset,
        "device": device, "overrides": dict(overrides), "protocol": protocol,
        "overlay": overlay, "max_pixels": max_pixels, "torch_threads": None,
        "channel_axis": channel_axis,
        "nd_options": {k: v for k, v in (nd_options or {}).items()
                       if v not in (None, False, "2d")},
    }

    client = cluster = None
    own_client = False
    if mode == "dask" and pending:  # fail early, before the progress bar
        client, own_client = _connect(scheduler)

    bar = tqdm(total=len(files), initial=len(files) - len(pending), unit="img",
               disable=not progress, file=sys.stderr, dynamic_ncols=True,
               desc="napari-iem")

    def absorb(recs: list[dict]) -> None:
        for d in recs:
            rec = records[d.pop("index")]
            for k, v in d.items():
                setattr(rec, k, v)
        bar.update(len(recs))

    futures: list = []
    try:
        if not pending:
            result.mode = "nothing to do"
        elif mode == "in-process":
            result.mode = "in-process"
            for t in make_tasks(1):
                absorb(_segment_task(t, cfg))
        else:
            from distributed import LocalCluster, as_completed

            if mode == "local":
                if processes:
                    cfg["torch_threads"] = max(1, n_cpu // n_workers)
                with _workers_ignore_sigint(processes):
                    cluster = LocalCluster(
                        n_workers=n_workers, threads_per_worker=1, processes=processes,
                        # the HTTP server always runs: keep it local, on a free port
                        dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                    )
                client, own_client = _connect(cluster.scheduler_address)
                result.mode = f"local Dask, {n_workers} worker{'s' * (n_workers != 1)}"
                slots = n_workers
            else:
                info = client.scheduler_info().get("workers", {})
                n = len(info)
                slots = sum(int(w.get("nthreads", 1)) for w in info.values()) or 1
                addr = getattr(client.scheduler, "address", scheduler)
                result.mode = f"Dask at {addr}, {n} worker{'s' * (n != 1)}"
            tasks = make_tasks(slots)
            futures = client.map(_segment_task, tasks, cfg=cfg, pure=False)
            index_of = {f.key: j for j, f in enumerate(futures)}
            for fut in as_completed(futures):
                t = tasks[index_of[fut.key]]
                try:
                    absorb(fut.result())
                except Exception as exc:  # a worker died or the task crashed
                    absorb([{"index": i, "status": "failed",
                             "error": f"task failed on a worker: {exc!r}"} for i, _, _ in t])
    except KeyboardInterrupt:
        result.interrupted = True
        if futures and client is not None:
            try:
                client.cancel(futures)
            except Exception:
                pass
    finally:
        bar.close()
        if client is not None and own_client:  # a caller's client stays open
            try:
                client.close()
            except Exception:
                pass
        if cluster is not None:
            try:
                cluster.close()
            except Exception:
                pass
        for rec, stem in zip(records, stems):
            if rec.status == "pending":
                # A worker may have finished the file after the last result came back.
                made = existing_labels(out_dir, stem)
                if made is not None and made.stat().st_mtime >= wall_start - 1:
                    rec.status, rec.output = "done", made.name
                else:
                    rec.status = "cancelled"
        result.seconds = time.perf_counter() - t_start
        try:
            result.write(report_path)
        except OSError as exc:
            result.report_path = None
            print(f"napari-iem: cannot write the report {report_path}: {exc}",
                  file=sys.stderr)
    if result.interrupted:
        raise BatchInterrupted(result)
    return result
