"""The IEM dock widget: pick an image, Run (or Cancel), watch, Refine, Flip.

The widget is the buttons and the worker; the controls are
:mod:`napari_iem._napari.form` (derived from the knob table), what a run is made of is
:mod:`napari_iem._napari.run_request`, and putting results into layers is
:mod:`napari_iem._napari.publish`, and the progress bar (in napari's activity dock) is
:mod:`napari_iem._napari.progress`.
The engine (:func:`napari_iem.api.iter_segment`) runs in a napari ``thread_worker``.
"""
from __future__ import annotations

import time

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from ..api import iter_segment
from ..files.settings import SettingsError, load_settings, save_settings
from . import layers as _layers
from . import pyramid as _pyramid
from . import remembered
from .folder import FolderControl
from .form import ADVANCED_TIP, START_MAX_SIZE, VOLUME_START_MAX_SIZE, IEMForm
from .messages import explain, run_summary, tell
from .progress import RunProgress
from .publish import Preview, publish, stale_reason
from .run_request import RequestError, plan_refine, plan_run

#: Seconds between two live previews: a preview carries the labels up to full size
#: and redraws a layer, so a run shows its contour every two seconds, from the
#: moment it gets a bar (a run that ends sooner draws no preview).
PREVIEW_SECONDS = 2.0
NO_IMAGE = "IEM: no image to segment: open or add an Image layer."


class _Failed:
    """An exception raised in the worker thread, carried back as a return value."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def _engine_job(plan):
    """Run :func:`iter_segment` on ``plan`` in the worker (and, for a multiscale
    source, bring its labels to level 0: :func:`.pyramid.to_level0`), returning errors
    instead of raising.

    superqt drops a RuntimeError raised in a generator worker (it takes it for a
    deleted worker), and out-of-memory errors are RuntimeErrors: so every error is
    returned, wrapped in :class:`_Failed`, and reported by the widget.
    """
    try:
        extra = _pyramid.refine_tiles(plan)
        result, steps = yield from _pyramid.with_steps(
            iter_segment(plan.data, **plan.options), extra)
        if plan.level:
            result = yield from _pyramid.to_level0(result, plan, steps, extra)
        return result
    except Exception as exc:  # reported in the GUI thread, see IEMWidget._report
        return _Failed(exc)


class IEMWidget(QWidget):
    """Dock widget that segments an Image layer by Inpainting Error Maximization.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose layers are read and written.

    Attributes
    ----------
    controls : dict of str to magicgui ValueWidget
        The control of every knob the widget shows, keyed by knob name.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self._plan = None
        self.form = IEMForm(napari_viewer)
        self.controls = self.form.controls
        form = self.form
        self.image, self.mode, self.init = form.image, form.mode, form.init
        self.show_why, self.physical = form.show_why, form.physical
        self.channel_axis, self.channel_layers = form.channel_axis, form.channel_layers
        self._build_layout()
        self._connect_layers()
        self._recall()

    # ---------------------------------------------------------------- layout
    def _button(self, text: str, tip: str, slot) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(lambda: slot())
        return button

    def _build_layout(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.main.native)
        self.advanced = QCollapsible("Advanced")
        self.advanced.setToolTip(ADVANCED_TIP)
        self.advanced.addWidget(self.form.advanced.native)
        self.reset_button = self._button(
            "Reset to preset", "Set every parameter back to the preset's value (max size "
            f"to {START_MAX_SIZE}, {VOLUME_START_MAX_SIZE} for a volume) and forget knobs a "
            "settings file set", self.form.reset_to_preset)
        self.advanced.addWidget(self.reset_button)
        layout.addWidget(self.advanced)
        self.run_button = self._button(
            "Run", "Segment the image (turns into Cancel while running)", self._on_run)
        self.refine_button = self._button(
            "Refine", "Restart IEM from the output layer as you painted it, keeping your "
            "changes", self.refine)
        self.flip_button = self._button(
            "Flip", "Swap foreground and background (2 partitions)", self.flip)
        self.other_button = self._button(
            "Run again as ...", "Run again with the preset default did not pick",
            self.run_as_other)
        self.other_button.hide()
        self.save_button = self._button(
            "Save settings…", "Write these settings to a TOML or JSON file, for "
            "'napari-iem segment --config FILE' over a whole folder", self.save_settings)
        self.load_button = self._button(
            "Load settings…", "Set the controls from a settings file", self.load_settings)
        self.folder = FolderControl(self)
        self.folder_button = self.folder.button
        for row in ((self.run_button, self.refine_button, self.flip_button),
                    (self.other_button,),
                    (self.save_button, self.load_button),
                    (self.folder_button, self.folder.open_button)):
            box = QHBoxLayout()
            for button in row:
                box.addWidget(button)
            layout.addLayout(box)
        self.status = QLabel("")  # the bar is in napari's activity dock
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch()

    def _connect_layers(self) -> None:
        events = self.viewer.layers.events
        events.inserted.connect(self._on_inserted)
        events.removed.connect(self.form.refresh_choices)
        for layer in self.viewer.layers:
            layer.events.name.connect(self.form.refresh_choices)
        self.image.changed.connect(self._on_image_changed)

    def _on_image_changed(self) -> None:
        """"Run again as ..." repeats the last run with the other pick: on another
        image it would run that one instead, so it goes."""
        self.other_button.hide()

    def _on_inserted(self, event) -> None:
        event.value.events.name.connect(self.form.refresh_choices)
        self.form.refresh_choices()

    # -------------------------------------------------------------- settings
    def settings(self) -> dict:
        """The controls as a settings dict (see :meth:`IEMForm.settings`)."""
        return self.form.settings()

    def _recall(self) -> None:
        """Start from the settings of the last session, when they still fit."""
        settings = remembered.recall()
        if settings is not None:
            try:
                self.form.apply_settings(settings)
            except ValueError:
                pass  # the defaults, then: a widget that opens beats a stale memory

    def save_settings(self, path: str | None = None):
        """Write :meth:`settings` to ``path`` (asked for with a file dialog if None)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save IEM settings", "iem-settings.toml", "Settings (*.toml *.json)")
            if not path:
                return None
        try:
            saved = save_settings(path, self.settings())
        except (OSError, SettingsError) as exc:
            self._tell(show_error, f"Could not save the settings: {exc}")
            return None
        self.status.setText(f"Settings saved to {saved}")
        return saved

    def load_settings(self, path: str | None = None) -> None:
        """Set the controls from a settings file; the whole file is checked first,
        and a file that does not fit changes no control."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Load IEM settings", "", "Settings (*.toml *.json)")
            if not path:
                return
        try:
            self.form.apply_settings(load_settings(path))
        except (OSError, ValueError) as exc:  # SettingsError is a ValueError
            self._tell(show_error, f"Could not load the settings: {exc}")
            return
        self.status.setText(f"Settings loaded from {path}")

    def _tell(self, show, text: str) -> None:
        tell(show, text, self.status)

    def event(self, event) -> bool:
        """A dock closed with its close button takes its widget out of the window
        (napari sets its parent to None): a run then stops, since its result would
        appear from a panel no one sees, with no status line to say what it was."""
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.cancel()
        return super().event(event)

    # ------------------------------------------------------------------- run
    @property
    def running(self) -> bool:
        """True while a Run or Refine is in progress."""
        return self.worker is not None

    def _on_run(self) -> None:
        if self.running:
            self.cancel()
        else:
            self.run()

    def run(self) -> None:
        """Segment the chosen image with the chosen settings."""
        try:
            plan = plan_run(self.form, self.viewer)
        except RequestError as exc:
            self._tell(show_error, f"IEM: {exc}")
            return
        self._start(plan)

    def run_as_other(self) -> None:
        """Run again with the preset the default did not pick (photo <-> microscopy)."""
        other = self.other_button.property("preset")
        if other and not self.running:
            self.controls["preset"].value = other
            self.run()

    def refine(self) -> None:
        """Restart IEM from the output layer as edited, keeping the edited pixels."""
        if self.running:
            return
        source = self.image.value
        if source is None:
            self._tell(show_error, NO_IMAGE)
            return
        active = self.viewer.layers.selection.active
        target = _layers.refine_target(self.viewer.layers, source, active)
        if target is None:
            self._tell(show_warning, f"IEM: nothing to refine for '{source.name}': press "
                       "Run first, then paint corrections into its output Labels layer.")
            return
        try:
            plan = plan_refine(self.form, self.viewer, target)
        except RequestError as exc:
            self._tell(show_error, f"IEM: {exc}")
            return
        self._start(plan)

    def _start(self, plan) -> None:
        """Launch the worker over :func:`iter_segment` and switch to Cancel."""
        try:
            remembered.remember(self.settings())
        except SettingsError:
            pass  # a value the engine refuses: its message follows from the worker
        self._plan = plan
        self._preview = Preview(self.viewer.layers, plan)
        self._previewed = -float("inf")  # the first snapshot draws a preview
        self._progress = RunProgress(plan.source.name)  # with the dock's own Cancel
        self.other_button.hide()
        self.status.setText(f"segmenting '{plan.source.name}' ({plan.mode})...")
        worker = create_worker(_engine_job, plan, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._report)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._set_running(True)
        worker.start()

    def cancel(self) -> None:
        """Stop the running worker; no output layer is changed, whatever the phase
        (the engine stops at its next snapshot: an iteration, a batch of refinement
        tiles, the maps, a plane, an instance split)."""
        if self.worker is not None:
            self.status.setText("cancelling...")
            self.worker.quit()

    def _cancelled(self) -> bool:
        """Cancel pressed, here or on the run's bar in the activity dock."""
        return self._progress.canceled or (self.worker is not None
                                           and self.worker.abort_requested)

    def _set_running(self, running: bool) -> None:
        self.run_button.setText("Cancel" if running else "Run")
        self.refine_button.setEnabled(not running)
        self.flip_button.setEnabled(not running)

    # --------------------------------------------------------- worker events
    def _on_progress(self, snapshot) -> None:
        """One step of the engine ran (an iteration, a batch of refinement tiles, the
        maps, a finished plane, an instance split): the bar moves, a cancel is passed
        on, and every two seconds the preview is redrawn (every redraw is throttled
        by time: a fast run must not wait for its own display)."""
        if self._cancelled():
            self.cancel()
            return
        progress = self._progress
        text = progress.show(snapshot)  # napari's bar may process pending events here,
        if progress.ended or text is None:  # the run's end among them: its summary
            return  # and clean-up stand; or drawn too recently
        self.status.setText(text)
        now = time.monotonic()
        if snapshot.phase == "optimising" and now - self._previewed >= PREVIEW_SECONDS:
            self._previewed = now
            self._preview.show(snapshot.labels)

    def _on_returned(self, value) -> None:
        self._progress.ended = True
        if isinstance(value, _Failed):
            self._report(value.exc)
            return
        if self._cancelled():
            return  # cancelled while finishing: nothing changes
        plan = self._plan
        reason = stale_reason(self.viewer.layers, plan)
        if reason is None and plan.target is not None and plan.target not in self.viewer.layers:
            reason = f"the layer being refined, '{plan.target.name}', was deleted"
        if reason is not None:
            self._tell(show_warning, f"IEM: nothing was written: {reason}")
            return
        target = publish(self.viewer.layers, plan, value)
        fallback = value.metadata.get("device_fallback")
        if fallback:
            self._tell(show_warning, f"IEM: {fallback['message']}")
        self.viewer.layers.selection.active = target  # ready to paint corrections
        self.status.setText(run_summary(plan, target, value, self._progress.iterations))
        other = (plan.picked or {}).get("other")
        if other and self.image.value is plan.source:  # else it would run another image
            self.other_button.setText(f"Run again as {other}")
            self.other_button.setProperty("preset", other)
            self.other_button.show()

    def _report(self, exc: BaseException) -> None:
        device = (self._plan.options if self._plan else {}).get("device", "auto")
        self._tell(show_error, explain(exc, str(device)))

    def _on_finished(self) -> None:
        self._preview.remove()
        self._progress.close()
        if self._cancelled():
            self.status.setText("cancelled: nothing was changed")
        self.worker = None
        self._set_running(False)

    # ------------------------------------------------------------------ flip
    def flip(self) -> None:
        """Swap foreground and background of the chosen image's output layer."""
        source = self.image.value
        if self.running:
            return
        if source is None:
            self._tell(show_error, "IEM: no image layer: nothing to flip.")
            return
        target = _layers.refine_target(self.viewer.layers, source,
                                       self.viewer.layers.selection.active)
        if target is None:
            self._tell(show_warning, f"IEM: nothing to flip for '{source.name}': press Run.")
            return
        try:
            _layers.flip_output(self.viewer.layers, target)
        except ValueError as exc:
            self._tell(show_error, f"IEM: {exc}")
            return
        self._tell(show_info, f"IEM: flipped '{target.name}'")


def launch_demo(sample: str = "coffee") -> None:
    """Open napari with a sample image and the IEM widget docked.

    Parameters
    ----------
    sample : str
        A sample id of this plugin (``coffee``, ``tissue``, ``cell``, ``disc``).
    """
    import napari

    viewer = napari.Viewer(title="napari-iem demo")
    viewer.open_sample("napari-iem", sample)
    viewer.window.add_plugin_dock_widget("napari-iem", "Segment an image")
    napari.run()
