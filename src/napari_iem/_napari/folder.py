"""Run on a folder: the widget's current settings over every image of a folder.

The work is :func:`napari_iem.batch.run.run_batch`, called as ``napari-iem segment
FOLDER --out OUT --config SETTINGS`` calls it, so the files are the CLI's own (labels,
report, resume).  It runs in a napari ``thread_worker``; progress (files finished, read
from the output folder) shows in napari's activity dock; Cancel stops it the way Ctrl-C
stops the CLI: finished files are kept, the report is written, a rerun resumes.
"""
from __future__ import annotations

import ctypes
import threading
from pathlib import Path

from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QPushButton

from ..files.io import existing_labels, find_images, unique_stems
from .messages import folder_summary, tell, widget_wording

POLL_MS = 300


def batch_kwargs(settings: dict, options: dict) -> dict:
    """``run_batch`` keyword arguments for the widget's ``settings`` and ``options``:
    what ``napari-iem segment --config`` passes for the same settings file."""
    nd = {k: True for k in ("refine", "instances") if options.get(k)}
    return {"regions": settings["regions"], "preset": settings["preset"],
            "device": options.get("device", "auto"), "nd_options": nd,
            **settings["params"]}


def _segment_folder(folder, out_dir, kwargs: dict, state: dict):
    """The worker's job: run_batch in-process, its thread noted for Cancel.  An error
    that stops the run before it begins comes back as its message (a worker thread has
    no one to raise to, and a returned exception the worker raises again, as a
    traceback); a run cancelled before run_batch began returns None, one cancelled
    during it its report."""
    from ..batch.run import BatchError, BatchInterrupted, run_batch  # on use: heavy

    try:
        state["thread"] = threading.get_ident()
        if state.get("cancel"):
            return None
        return run_batch([folder], out_dir, workers=0, progress=False, **kwargs)
    except BatchInterrupted as stop:
        return stop.report
    except KeyboardInterrupt:  # Cancel landed just before or after run_batch
        return None
    except (BatchError, ValueError, OSError) as exc:
        return str(exc)


class FolderRun:
    """One folder run: the worker, its activity-dock progress, its cancel.

    Parameters
    ----------
    folder, out_dir : path
        The images, and where their labels go.
    kwargs : dict
        From :func:`batch_kwargs`.
    on_done : callable
        Called in the GUI thread with the :class:`~napari_iem.batch.run.BatchReport`
        (or the message of the error that stopped the job before it began).
    on_finished : callable
        Called in the GUI thread after ``on_done`` (or after a crash).  Connected
        before the worker starts: a job that fails at once finishes before a later
        connection, which then never fires.
    """

    def __init__(self, folder, out_dir, kwargs: dict, on_done, on_finished):
        self.folder, self.out_dir = Path(folder), Path(out_dir)
        try:
            self.stems = unique_stems(find_images([self.folder]))
        except FileNotFoundError:
            self.stems = []
        self._state: dict = {}
        self.bar = cancelable_progress(total=len(self.stems),
                                       desc=f"IEM: {self.folder.name}/")
        self.worker = create_worker(_segment_folder, self.folder, self.out_dir, kwargs,
                                    self._state, _start_thread=False)
        self.worker.returned.connect(on_done)
        self.worker.finished.connect(self._finished)
        self.worker.finished.connect(on_finished)
        self.timer = QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.timer.start()
        self.worker.start()

    def done(self) -> int:
        """Files whose labels are in the output folder (finished or skipped)."""
        return sum(existing_labels(self.out_dir, stem) is not None for stem in self.stems)

    def poll(self) -> None:
        """Files done onto the bar; its cancel button (activity dock) cancels."""
        if self.bar.is_canceled:
            self.cancel()
        self.bar.n = self.done()
        self.bar.refresh()

    @property
    def cancelled(self) -> bool:
        return bool(self._state.get("cancel"))

    def cancel(self) -> None:
        """Stop the way Ctrl-C stops the CLI: the file being written is finished or
        dropped whole, the report is written, a rerun resumes.  (run_batch has no
        cancel hook: KeyboardInterrupt, raised in its thread, is its documented stop.)"""
        if self.cancelled:
            return
        self._state["cancel"] = True
        thread = self._state.get("thread")
        if thread is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread), ctypes.py_object(KeyboardInterrupt))

    def _finished(self) -> None:
        self.timer.stop()
        self.poll()
        self.bar.close()


class FolderControl:
    """The widget's "Run on a folder…" button: asks for the folders, starts a
    :class:`FolderRun` with the widget's settings, and turns into Cancel meanwhile."""

    LABEL = "Run on a folder…"

    def __init__(self, widget):
        self.widget = widget
        self.run: FolderRun | None = None
        self.button = QPushButton(self.LABEL)
        self.button.setToolTip("Segment every image of a folder with these settings into "
                               "an output folder: the files 'napari-iem segment' writes")
        self.button.clicked.connect(self._on_click)
        self.open_button = QPushButton("Open its labels")
        self.open_button.setToolTip("Add the labels the last folder run wrote (or found "
                                    "done) to the viewer, one Labels layer per image")
        self.open_button.clicked.connect(lambda: self.open_results())
        self.open_button.hide()
        self.outputs: list[Path] = []

    def _on_click(self) -> None:
        if self.run is not None:
            self.run.cancel()
        else:
            self.start()

    def start(self, folder: str | None = None, out_dir: str | None = None) -> None:
        """Segment every image of ``folder`` into ``out_dir`` (asked for with dialogs
        when None) with the widget's current settings."""
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self.widget, "Folder of images")
        if folder and out_dir is None:
            out_dir = QFileDialog.getExistingDirectory(self.widget, "Output folder")
        if not folder or not out_dir:
            return
        try:
            kwargs = batch_kwargs(self.widget.settings(), self.widget.form.options())
        except ValueError as exc:  # a value no settings file may hold
            self._not_started(str(exc))
            return
        self.open_button.hide()
        self.run = FolderRun(folder, out_dir, kwargs, self._done, self._finished)
        self.button.setText("Cancel folder run")
        self.widget.status.setText(f"segmenting the images of {folder}...")

    def _done(self, report) -> None:
        if report is None:
            self.widget.status.setText("folder run cancelled before it began")
            return
        if isinstance(report, str):
            self._not_started(report)
            return
        self.widget.status.setText(folder_summary(report, self.run.cancelled))
        self.outputs = [report.out_dir / rec.output for rec in report.records
                        if rec.output and rec.status in ("done", "skipped")]
        self.open_button.setVisible(bool(self.outputs))
        show_info("IEM: folder run " + ("cancelled" if self.run.cancelled else "finished"))

    def _not_started(self, message: str) -> None:
        """Say why the run did not start, in the widget's words (the batch runner's
        messages name the command line's flags)."""
        tell(show_error, f"IEM: the folder run did not start: {widget_wording(message)}",
             self.widget.status)

    def _finished(self) -> None:
        self.run = None
        self.button.setText(self.LABEL)

    def open_results(self) -> list:
        """Open the labels of the last folder run as Labels layers; returns them."""
        return [layer for path in self.outputs if path.is_file()
                for layer in self.widget.viewer.open(path, layer_type="labels")]
