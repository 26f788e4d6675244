"""Segmenting many files: in-process or with Dask, resumable, with a report.

:func:`run_batch` is the whole job: find the images, judge each against the output
folder's manifest (:mod:`napari_iem.batch.resume`), read the headers of those to do,
group images of one shape into tasks (:mod:`napari_iem.batch.plan`), run each task
(:func:`napari_iem.batch.task.segment_task`), and record what happened to every file in
the manifest and the report (:mod:`napari_iem.batch.report`).

Where the work runs
-------------------
* ``workers=0``: sequentially in this process (no Dask).
* ``workers=N`` (N >= 1): a local Dask cluster of N single-threaded worker processes on
  this machine, created for the run and closed afterwards.
* ``scheduler="tcp://host:8786"`` (or a :class:`distributed.Client`): tasks go to an
  existing ``dask.distributed`` cluster.  Workers read the inputs and write the outputs
  themselves, so they must see the same paths (a shared file system).
* Default (``workers=None``, no scheduler): see :func:`napari_iem.batch.plan.choose_mode`.

No cluster is started or connected to when nothing is left to do.

Safety
------
One run at a time holds the output folder (a lock file).  Every output is written
atomically, only over files the manifest says this tool wrote, never over an input.
Ctrl-C cancels the rest, keeps what finished and writes the manifest and the report.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

from ..engine.knobs import check_knobs
from ..engine.presets import DEFAULT_PRESET
from ..files.manifest import Inputs, Manifest, ManifestError, Source, settings_hash
from ..files.names import unique_stems
from ..files.read import (
    FileReadError,
    ImageReadError,
    find_images,
    image_info,
    pixel_limit,
)
from .flags import cli_wording
from .guard import BatchError, check_inputs_outside, check_out_dir, no_images, out_dir_lock
from .plan import choose_mode, task_key, working_pixels
from .report import (
    REPORT_NAME,
    BatchReport,
    FileRecord,
    ReportError,
    read_rows,
    record_from_row,
)
from .resume import claim, decide, output_names, settle
from .task import check_spacing
from .where import connect, quietly, run_tasks

__all__ = ["BatchError", "BatchInterrupted", "run_batch"]

PROTOCOLS = (None, "full", "paper")
#: Formats of the labels (``auto``: see :func:`napari_iem.batch.task._format`).
FORMATS = ("auto", "png", "tiff", "ome-tiff", "ome-zarr")
#: Seconds between saves of the manifest during a run (and one at its end).
MANIFEST_EVERY = 2.0


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_batch`; ``.report`` holds what finished (report written)."""

    def __init__(self, report: BatchReport):
        super().__init__("interrupted")
        self.report = report


def _check_arguments(protocol, report, workers, regions, preset, nd_options, overrides,
                     device, scheduler, max_pixels, format="auto") -> int:
    """Every argument checked before anything is touched; returns the pixel limit."""
    if format not in FORMATS:
        raise BatchError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if protocol not in PROTOCOLS:
        raise BatchError(f"unknown protocol {protocol!r}; use 'paper' or 'full'")
    if report not in ("csv", "json"):
        raise BatchError(f"report format must be 'csv' or 'json', got {report!r}")
    if workers is not None and workers < 0:
        raise BatchError(f"workers must be 0 or more, got {workers}")
    try:  # the knobs once here, not on every worker
        check_knobs({"regions": regions, "preset": preset, **(nd_options or {}),
                     **overrides})
        limit = pixel_limit(max_pixels)
    except ValueError as exc:  # TypeError too: an unknown name is both
        raise BatchError(str(exc)) from None
    if device not in (None, "auto") and scheduler is None:
        from ..engine.devices import resolve_device

        try:
            resolve_device(device)
        except ValueError as exc:
            raise BatchError(str(exc)) from None
    return limit


class _Job:
    """The state of one run: records, claims in the manifest, what to run."""

    def __init__(self, files: list[Path], out_dir: Path, settings: dict, cfg: dict,
                 report_path: Path, overwrite: bool):
        self.files, self.out_dir, self.cfg = files, out_dir, cfg
        self.stems = unique_stems(files)
        self.records = [FileRecord(file=str(f)) for f in files]
        self.hash = settings_hash({**settings, **{k: cfg[k] for k in
                                                  ("channel_axis", "nd_options",
                                                   "scale")}})
        self.overwrite = overwrite
        try:
            self.manifest = Manifest.load(out_dir)
            self.old = {r["file"]: r for r in read_rows(report_path)}
        except (ManifestError, ReportError) as exc:
            raise BatchError(str(exc)) from None
        self.claims: dict[int, dict[str, tuple | None]] = {}
        self.pending: list[tuple] = []
        self.keys: list = []
        self.pixels: list[float] = []
        self.last_save = 0.0

    def survey(self) -> None:
        """Judge every input and read its header; refuse a spacing all those to run
        would refuse (:func:`~napari_iem.batch.task.check_spacing`); claim their
        outputs."""
        todo = self._judge()
        check_spacing([info for *_, info in todo], self.cfg)
        overlay = self.cfg["overlay"]
        for i, f, stem, source, may_replace, info in todo:
            names = [n for n in output_names(stem, overlay) if n in may_replace
                     or not (self.out_dir / n).exists()]
            self.claims[i] = claim(self.manifest, names, source, self.hash)
            self.pending.append((i, str(f.resolve()), stem, may_replace))
            self.keys.append(task_key(info.shape, self.cfg["channel_axis"],
                                      self.cfg["protocol"]))
            self.pixels.append(working_pixels(self.keys[-1], self.cfg["protocol"],
                                              self.cfg["overrides"].get("max_size")))
        if self.claims:
            self.manifest.save()

    def _judge(self) -> list[tuple]:
        """Every input judged against the manifest: the records of those skipped,
        refused or unreadable filled in; ``(index, file, stem, source, names it may
        replace, header)`` of those to run."""
        inputs, todo = Inputs(self.files), []
        overlay = self.cfg["overlay"]
        for i, (f, stem) in enumerate(zip(self.files, self.stems)):
            rec = self.records[i]
            try:
                source = Source.of(f)
                info = image_info(f, self.cfg["max_pixels"])
            except (FileReadError, ImageReadError) as exc:
                rec.status, rec.error = "failed", str(exc)
                continue
            rec.shape = "x".join(map(str, info.shape))
            action, detail, may_replace = decide(self.manifest, stem, source, self.hash,
                                                 self.overwrite, inputs, overlay)
            if action == "skip":
                self._skip(rec, detail)
                continue
            if action == "refuse":
                self._keep_details(rec)
                rec.status, rec.error = "refused", detail
                continue
            todo.append((i, f, stem, source, may_replace, info))
        return todo

    def _keep_details(self, rec: FileRecord) -> None:
        """An input whose output stays as it is keeps the details of the run that made
        it, from the old report."""
        old = self.old.get(rec.file)
        if old and old.get("status") in ("done", "skipped", "refused"):
            before = record_from_row(old)
            rec.output = before.output
            for key in ("regions", "preset", "iterations", "converged", "stopped_at_cap",
                        "no_structure", "objective", "seconds", "device",
                        "napari_iem_version", "torch_version"):
                setattr(rec, key, getattr(before, key))

    def _skip(self, rec: FileRecord, output: str) -> None:
        self._keep_details(rec)
        rec.status, rec.output, rec.error = "skipped", output, ""

    def absorb(self, results: list[dict]) -> None:
        """A task's records into the run's (their errors, the engine's, in the command
        line's flags), its outputs into the manifest."""
        for d in results:
            index = d.pop("index")
            settle(self.manifest, self.claims[index], d.pop("written", {}), None)
            if d.get("error"):
                d["error"] = cli_wording(d["error"])
            for k, v in d.items():
                setattr(self.records[index], k, v)
        if time.monotonic() - self.last_save > MANIFEST_EVERY:
            self.manifest.save()
            self.last_save = time.monotonic()

    def close(self, since_ns: int) -> None:
        """After the run (finished or not): inputs whose outputs a worker wrote after the
        last answer count as done; the rest of the pending ones as cancelled."""
        for index, claimed in self.claims.items():
            rec = self.records[index]
            if rec.status == "pending":
                made = settle(self.manifest, claimed, {}, since_ns)
                rec.status, rec.output = ("done", made[0]) if made else ("cancelled", "")
        self.manifest.save()

    def earlier(self) -> list[FileRecord]:
        """Rows of the old report for inputs not in this run: kept, never dropped."""
        now = {r.file for r in self.records}
        return [record_from_row(r) for f, r in self.old.items() if f not in now]


def _write_report(result: BatchReport, job: _Job, t_start: float) -> None:
    """The merged report, written atomically; a failure to write it is said, not raised
    (the outputs and the manifest are what matters)."""
    result.earlier = job.earlier()
    result.seconds = time.perf_counter() - t_start
    try:
        result.write(result.report_path)
    except OSError as exc:
        print(f"napari-iem: cannot write the report {result.report_path}: {exc}",
              file=sys.stderr)
        result.report_path = None


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
    scale: Iterable[float] | None = None,
    nd_options: dict | None = None,
    recursive: bool = False,
    max_pixels: int | None = None,
    task_images: int = 32,
    task_megapixels: float = 8.0,
    report: str = "csv",
    progress: bool = True,
    processes: bool = True,
    format: str = "auto",
    **overrides,
) -> BatchReport:
    """Segment many image files into ``out_dir``, resumably.

    Parameters
    ----------
    inputs : path or iterable of paths
        Image files, OME-Zarr folders and folders (a folder gives its PNG, JPEG and
        TIFF files and OME-Zarr folders, except those inside ``out_dir``).
    out_dir : path
        Output folder (created).  Labels go to ``<stem>.png`` (``.tif`` for 16-bit or
        n-D), overlays to ``overlays/<stem>.png``, the report to ``iem-report.csv``,
        the record of what was made from what to ``iem-manifest.json``.
    regions, preset, **overrides
        As for :func:`napari_iem.api.segment` (``max_iter``, ``max_size``, ...).
    scheduler : str or distributed.Client, optional
        Address of an existing Dask scheduler, or a client; see the module docstring.
    workers : int, optional
        0 runs in-process; N >= 1 starts a local Dask cluster with N workers; None
        chooses (:func:`napari_iem.batch.plan.choose_mode`).
    overwrite : bool
        Redo inputs whose outputs are finished, and replace outputs this tool made
        from another source or with other settings (without it those are refused).
        Files this tool did not write are never replaced, with or without it.
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
    scale : sequence of float, optional
        Pixel spacing of the spatial axes of every image (one value per spatial axis),
        in place of an OME-TIFF's physical sizes.
    nd_options : dict, optional
        ``mode`` (``"2d"``, ``"slices"``, ``"volume"``), ``instances`` and ``refine``, as
        for :func:`napari_iem.api.segment`; with any of them set, images are
        segmented one at a time, and ``instances=True`` writes the object labels.
    recursive : bool
        Search folders recursively.
    max_pixels : int, optional
        Refuse images larger than this (see :func:`napari_iem.files.read.pixel_limit`).
    task_images, task_megapixels : int, float
        Bounds of one task (one :func:`segment_batch` call on one worker).
    report : {"csv", "json"}
        Format of the report file (merged with an earlier one of that name).
    progress : bool
        Show a progress bar (tqdm, on stderr).
    processes : bool
        Local cluster with worker processes (True) or threads (False).
    format : {"auto", "png", "tiff", "ome-tiff", "ome-zarr"}
        Format of the labels; ``"auto"``: PNG for 2-D labels of 8 bits, TIFF otherwise,
        OME-TIFF for an OME-TIFF input or n-D labels, OME-Zarr (``<stem>.ome.zarr``)
        for an OME-Zarr input.  Another format than ``auto`` is part of the settings
        that make an output finished.

    Returns
    -------
    BatchReport

    Raises
    ------
    BatchError
        Before any work, when an input is missing, there is no image, the output folder
        cannot be written or is in use by another run, its manifest or report is not
        napari-iem's, a setting is out of range, or the scheduler cannot be reached.
    BatchInterrupted
        On Ctrl-C, after cancelling the work and writing the manifest and the report;
        finished outputs are kept and a rerun resumes.
    ManifestError
        When the manifest cannot be written (a full disk): the outputs it does not
        list as finished are made again by a rerun.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    since_ns = time.time_ns() - 10**9
    limit = _check_arguments(protocol, report, workers, regions, preset, nd_options,
                             overrides, device, scheduler, max_pixels, format)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out_dir = Path(out_dir)
    try:
        files = find_images(inputs, recursive=recursive, exclude=out_dir)
    except FileNotFoundError as exc:
        raise BatchError(str(exc)) from None
    if not files:
        raise no_images(inputs, out_dir)
    check_inputs_outside(files, out_dir)
    check_out_dir(out_dir, overlay)
    settings = {"preset": preset, "regions": regions, "params": dict(overrides),
                "protocol": protocol or "full",
                **({} if format == "auto" else {"format": format})}
    cfg = {
        "out_dir": str(out_dir.resolve()), "regions": regions, "preset": preset,
        "device": device, "overrides": dict(overrides), "protocol": protocol,
        "overlay": overlay, "max_pixels": limit, "torch_threads": None,
        "channel_axis": channel_axis, "format": format,
        "scale": None if scale is None else tuple(float(v) for v in scale),
        "nd_options": {k: v for k, v in (nd_options or {}).items()
                       if v not in (None, False, "2d")},
    }
    report_path = out_dir / f"{REPORT_NAME}.{report}"
    with out_dir_lock(out_dir), ExitStack() as dask:
        job = _Job(files, out_dir, settings, cfg, report_path, overwrite)
        job.survey()
        result = BatchReport(job.records, out_dir, report_path, settings=settings)
        mode, n_workers = choose_mode(scheduler, workers, job.keys, job.pixels,
                                      task_images, task_megapixels)
        bar, started = None, False
        try:
            client = None
            if mode == "dask" and job.pending:  # fail early, before the progress bar
                client, own = connect(scheduler)
                if own:  # a caller's client stays open
                    dask.callback(quietly, client.close)
            bar = tqdm(total=len(files), initial=len(files) - len(job.pending),
                       unit="img", disable=not progress, file=sys.stderr,
                       dynamic_ncols=True, desc="napari-iem")
            started = True
            if job.pending:
                run_tasks(job, mode, n_workers, client, processes, task_images,
                           task_megapixels, result, bar, dask)
            else:
                result.mode = "nothing to do"
        except KeyboardInterrupt:
            result.interrupted = started = True
        finally:
            if bar is not None:
                bar.close()
            dask.close()  # no worker writes after this: then the manifest is settled
            job.close(since_ns)
            if started:
                _write_report(result, job, t_start)
    if result.interrupted:
        raise BatchInterrupted(result)
    return result
