"""The IEM dock widget: pick an image, Run (or Cancel), watch, Refine, Flip.

The widget is thin: the engine (:mod:`napari_iem.api`) runs in a napari
``thread_worker`` and everything about layers is in :mod:`napari_iem._napari.layers`.
"""
from __future__ import annotations

import math

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Select, SpinBox
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from . import layers as _layers, layers_nd as _layers_nd
from ..engine.autopreset import explain_choice
from ..engine.devices import available_devices
from ..engine.presets import DEFAULT_PRESET, PRESETS
from ..files.settings import (
    SettingsError, load_settings, save_settings, settings_from_params,
)
from ..api import iter_segment

PRESET_START = "preset's start"
PREVIEW_EVERY = 5  # iterations between two live previews
DEFAULT_MAX_SIDE = 256
#: the parameters the widget shows, set from the preset when one is picked
TIED_TO_PRESET = ("max_iter", "sigma", "lam", "smooth_threshold")
PRESET_TIP = ("default: 'photo' for a photo, 'microscopy' for a micrograph, picked from "
              "the chosen image (the parameters below show the pick); paper: the "
              "authors' algorithm exactly.")


class _Failed:
    """An exception raised in the worker thread, carried back as a return value."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def _engine_job(image, regions: int, options: dict):
    """Run :func:`iter_segment` in the worker, returning errors instead of raising.

    superqt drops a RuntimeError raised in a generator worker (it takes it for a
    deleted worker), and out-of-memory errors are RuntimeErrors: so every error is
    returned, wrapped in :class:`_Failed`, and reported by the widget.
    """
    try:
        return (yield from iter_segment(image, regions, **options))
    except Exception as exc:  # reported in the GUI thread, see IEMWidget._report
        return _Failed(exc)


def _explain(exc: BaseException, device: str) -> str:
    """A notification text for an engine error that says what to do."""
    from ..engine.memory import NotEnoughMemoryError

    if isinstance(exc, NotEnoughMemoryError):
        return f"IEM: {exc}"
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return (
            f"IEM ran out of memory on {device}: lower the working resolution "
            "(max side) or choose another device."
        )
    if isinstance(exc, ValueError):
        return f"IEM could not run: {exc}"
    return f"IEM failed ({type(exc).__name__}: {exc}); see the console for details."


class IEMWidget(QWidget):
    """Dock widget that segments an Image layer by Inpainting Error Maximization.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose layers are read and written.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self._job: dict = {}
        self._build_form()
        self._build_buttons()
        self._connect_layers()
        self._on_preset(self.preset.value)

    # ---------------------------------------------------------------- layout
    def _build_form(self) -> None:
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.regions = SpinBox(label="partitions", value=2, min=2, max=8)
        self.preset = ComboBox(
            label="preset", choices=sorted(PRESETS), value=DEFAULT_PRESET,
            tooltip=PRESET_TIP,
        )
        self.device = ComboBox(label="device", choices=["auto", *available_devices()])
        self.max_side = SpinBox(
            label="max side (px)", value=DEFAULT_MAX_SIDE, min=0, max=16384, step=32,
            tooltip="Working resolution: the longer side is downscaled to this many "
            "pixels for the optimisation; labels come back at full size. 0 = full size.",
        )
        self.init = ComboBox(
            label="initialization", choices=self._init_choices,
            tooltip="Start from the preset's own start (a centred square for photos and "
            "the paper; k-means colour clusters for micrographs and for more than 2 "
            "partitions) or from the labels of an existing Labels layer (values "
            "0..partitions-1).",
        )
        self.max_iter = SpinBox(label="iterations", min=1, max=5000)
        self.sigma = FloatSpinBox(label="sigma (px)", min=0.5, max=100.0, step=0.5)
        self.lam = FloatSpinBox(label="lambda", min=0.0, max=1.0, step=0.0001)
        self.smooth = SpinBox(label="smoothing threshold", min=1, max=9)
        self.min_piece = SpinBox(
            label="min piece size (px)", value=0, min=0, max=10**7,
            tooltip="Clean-up: pieces of any region smaller than this many pixels join "
            "their surroundings (specks dropped, small holes filled). 0 = off.",
        )
        self._build_nd_form()
        self.preset.changed.connect(self._on_preset)
        self.image.changed.connect(self._on_image_changed)
        form = Container(widgets=[
            self.image, self.mode, self.regions, self.preset, self.device, self.max_side,
            self.init, self.instances,
        ])
        advanced = Container(widgets=[
            self.max_iter, self.sigma, self.physical, self.lam, self.smooth,
            self.min_piece,
            self.channel_axis, self.channel_layers, self.refine_edges,
        ])
        self.advanced = QCollapsible("Advanced")
        self.advanced.addWidget(advanced.native)
        self._containers = (form, advanced)
        layout = QVBoxLayout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.advanced)

    def _build_nd_form(self) -> None:
        """Controls for stacks, channels, physical units and instances."""
        self.mode = ComboBox(
            label="mode", choices=list(_layers_nd.MODES), value="current slice",
            tooltip="current slice: the displayed plane; every slice: each 2-D plane of "
            "the layer on its own; volume: the last three axes as one 3-D problem "
            "(leading axes such as time one after the other).",
        )
        self.channel_axis = ComboBox(
            label="channel axis", choices=self._channel_axis_choices,
            tooltip="An axis of the image layer that holds channels (not RGB).",
        )
        self.channel_layers = Select(
            label="more channels", choices=self._channel_layer_choices,
            tooltip="Other Image layers of the same shape used as further channels "
            "(as napari makes them with channel_axis=).",
        )
        self.physical = CheckBox(
            label="sigma in layer units", value=False,
            tooltip="Read sigma in the layer's scale units (e.g. micrometres) on every "
            "axis. Off: sigma is in pixels of the finest axis, and coarser axes (a z "
            "step larger than the xy step) get proportionally smaller sigmas.",
        )
        self.instances = CheckBox(
            label="split objects", value=False,
            tooltip="Also split the foreground into objects (one label per nucleus): "
            "distance-transform watershed, in an extra Labels layer.",
        )
        self.refine_edges = CheckBox(
            label="refine edges at full size", value=False,
            tooltip="When max side downscales the image, refine the boundary at full "
            "resolution (slower, sharper edges).",
        )

    def _on_image_changed(self, _value=None) -> None:
        self.channel_axis.reset_choices()
        self.channel_layers.reset_choices()
        if self.preset.value == DEFAULT_PRESET:  # the pick may change; edits stay
            picked, why = self._pick()
            self._show_params(PRESETS[picked], picked, why, keep_edits=True)

    def _channel_axis_choices(self, _widget=None):
        layer = self.image.value if hasattr(self, "image") else None
        axes = [] if layer is None or layer.rgb else list(range(max(0, layer.ndim - 2)))
        return [(_layers_nd.NO_CHANNEL_AXIS, None), *((f"axis {a}", a) for a in axes)]

    def _channel_layer_choices(self, _widget=None):
        source = self.image.value if hasattr(self, "image") else None
        return [
            (lay.name, lay) for lay in self.viewer.layers
            if isinstance(lay, Image) and lay is not source and not lay.rgb
            and _layers.IEM_KEY not in lay.metadata
        ]

    def _build_buttons(self) -> None:
        self.run_button = QPushButton("Run")
        self.refine_button = QPushButton("Refine")
        self.flip_button = QPushButton("Flip")
        self.run_button.setToolTip("Segment the image (turns into Cancel while running)")
        self.refine_button.setToolTip(
            "Restart IEM from the output layer as you painted it, keeping your changes"
        )
        self.flip_button.setToolTip("Swap foreground and background (2 partitions)")
        self.run_button.clicked.connect(self._on_run_clicked)
        self.refine_button.clicked.connect(self.refine)
        self.flip_button.clicked.connect(self.flip)
        row = QHBoxLayout()
        for button in (self.run_button, self.refine_button, self.flip_button):
            row.addWidget(button)
        self.save_button = QPushButton("Save settings…")
        self.load_button = QPushButton("Load settings…")
        self.save_button.setToolTip(
            "Write these settings to a TOML or JSON file, for "
            "'napari-iem segment --config FILE' over a whole folder"
        )
        self.load_button.setToolTip("Set the controls from a settings file")
        self.save_button.clicked.connect(lambda: self.save_settings())
        self.load_button.clicked.connect(lambda: self.load_settings())
        settings_row = QHBoxLayout()
        settings_row.addWidget(self.save_button)
        settings_row.addWidget(self.load_button)
        self.progress = QProgressBar()
        self.progress.setFormat("iteration %v / %m")
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = self.layout()
        layout.addLayout(row)
        layout.addLayout(settings_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()

    # ----------------------------------------------------------- layer lists
    def _image_choices(self, _widget=None):
        return [(lay.name, lay) for lay in self.viewer.layers if isinstance(lay, Image)]

    def _init_choices(self, _widget=None):
        labels = [
            (lay.name, lay) for lay in self.viewer.layers
            if isinstance(lay, Labels) and not self._is_preview(lay)
        ]
        return [(PRESET_START, PRESET_START), *labels]

    def _connect_layers(self) -> None:
        events = self.viewer.layers.events
        events.inserted.connect(self._on_inserted)
        events.removed.connect(self._refresh_choices)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_choices)

    def _on_inserted(self, event) -> None:
        event.value.events.name.connect(self._refresh_choices)
        self._refresh_choices()

    def _refresh_choices(self, _event=None) -> None:
        for box in (self.image, self.init, self.channel_axis, self.channel_layers):
            box.reset_choices()

    def _on_preset(self, name: str) -> None:
        picked, why = self._pick()
        self._show_params(PRESETS[picked], picked, why)

    def _show_params(self, params, picked: str, why: str = "",
                     keep_edits: bool = False) -> None:
        """Set the parameter controls from ``params`` (preset ``picked``, named in the
        tooltip under default with the reason ``why``); with ``keep_edits``, only the
        controls still showing the previous preset's value (the user's edits stay)."""
        shown = getattr(self, "_shown", None)
        controls = (self.max_iter, self.sigma, self.lam, self.smooth)
        for name, box in zip(TIED_TO_PRESET, controls):
            if keep_edits and shown is not None and not math.isclose(
                    box.value, getattr(shown, name), rel_tol=1e-6, abs_tol=1e-9):
                continue
            box.value = getattr(params, name)
        self._shown = params
        self.preset.tooltip = PRESET_TIP + (
            f" Here default picks '{picked}'" + (f": {why}." if why else ".")
            if self.preset.value == DEFAULT_PRESET else "")

    def _picked_preset(self) -> str:
        """The preset a run uses (see :meth:`_pick`)."""
        return self._pick()[0]

    def _pick(self) -> tuple[str, str]:
        """The preset a run uses and why: the chosen one, or for ``default`` the one
        :func:`~napari_iem.engine.autopreset.explain_choice` picks for the displayed plane of
        the chosen image (the photo preset while there is none)."""
        if self.preset.value != DEFAULT_PRESET:
            return self.preset.value, ""
        layer = self.image.value if hasattr(self, "image") else None
        if layer is None:
            return "photo", "no image chosen yet"
        try:
            plane, _ = _layers.image_plane(layer, self.viewer.dims.point)
        except ValueError:
            return "photo", "no image plane to look at"
        return explain_choice(plane)

    # -------------------------------------------------------------- settings
    def settings(self) -> dict:
        """The controls as a settings dict (:mod:`napari_iem.files.settings`): the preset,
        the number of partitions and the parameters that differ from the preset."""
        options = self.options()
        params = {**PRESETS[options["preset"]].to_dict(), **options}
        settings = settings_from_params(params, options["preset"], self.regions.value)
        if self.preset.value == DEFAULT_PRESET and not (
                set(settings["params"]) & set(TIED_TO_PRESET)):
            settings["preset"] = DEFAULT_PRESET  # unchanged picks: each image picks again
        return settings

    def save_settings(self, path: str | None = None):
        """Write :meth:`settings` to ``path`` (asked for with a file dialog if None)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save IEM settings", "iem-settings.toml",
                "Settings (*.toml *.json)")
            if not path:
                return None
        try:
            saved = save_settings(path, self.settings())
        except (OSError, SettingsError) as exc:
            show_error(f"Could not save the settings: {exc}")
            return None
        self.status.setText(f"Settings saved to {saved}; use them with "
                            f"'napari-iem segment --config {saved} ...'")
        return saved

    def load_settings(self, path: str | None = None) -> None:
        """Set the controls from a settings file (asked for if ``path`` is None)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Load IEM settings", "", "Settings (*.toml *.json)")
            if not path:
                return
        try:
            loaded = load_settings(path)
        except (OSError, SettingsError) as exc:
            show_error(f"Could not load the settings: {exc}")
            return
        self.preset.value = loaded["preset"]
        self.regions.value = loaded["regions"]
        picked = self._picked_preset()
        params = PRESETS[picked].replace(**loaded["params"])
        self._show_params(params, picked)
        self.min_piece.value = params.min_piece_size
        self.max_side.value = params.max_size or 0
        self.status.setText(f"Settings loaded from {path}")

    # ------------------------------------------------------------------- run
    @property
    def running(self) -> bool:
        """True while a Run or Refine is in progress."""
        return self.worker is not None

    def _on_run_clicked(self) -> None:
        if self.running:
            self.cancel()
        else:
            self.run()

    def options(self) -> dict:
        """The engine keyword arguments chosen in the widget (no init/locked)."""
        return {
            "preset": self._picked_preset(),
            "device": self.device.value,
            "max_size": self.max_side.value or None,
            "max_iter": self.max_iter.value,
            "sigma": self.sigma.value,
            "lam": self.lam.value,
            "smooth_threshold": self.smooth.value,
            "min_piece_size": self.min_piece.value,
        }

    def _source_plane(self):
        """The chosen Image layer and its displayed plane, or None after a notice."""
        layer = self.image.value
        if layer is None:
            show_error("IEM: there is no image to segment. Open or add an Image layer.")
            return None
        ndim = self.viewer.dims.ndim
        if layer.ndim > 2 and sorted(self.viewer.dims.displayed) != [ndim - 2, ndim - 1]:
            show_warning(
                "IEM segments the displayed plane of the last two axes: switch the "
                "viewer to 2-D display and restore the axis order (Transpose)."
            )
            return None
        try:
            plane, index = _layers.image_plane(layer, self.viewer.dims.point)
        except ValueError as exc:
            show_error(f"IEM: {exc}")
            return None
        return layer, plane, index

    def _nd_request(self):
        """Engine input and options for the n-D settings, or None after a notice.

        Returns ``(source, data, options, job)``; ``job["nd"]`` is set for whole-layer
        runs (every slice, volume).
        """
        source = self.image.value
        if source is None:
            show_error("IEM: there is no image to segment. Open or add an Image layer.")
            return None
        mode = self.mode.value
        if mode == "current slice":
            picked = self._source_plane()  # checks the displayed axes
            if picked is None:
                return None
        try:
            got = _layers_nd.gather(
                source, mode, channel_axis=self.channel_axis.value,
                extra=list(self.channel_layers.value), world_point=self.viewer.dims.point,
            )
        except ValueError as exc:
            show_error(f"IEM: {exc}")
            return None
        options = self.options()
        if got["channel_axis"] is not None:
            options["channel_axis"] = got["channel_axis"]
        scale = _layers_nd.spatial_scale(source, got["axes"], got["nsp"])
        if self.physical.value:
            options["sigma_units"] = "physical"
            scale = tuple(float(s) for s in
                          np.asarray(source.scale)[list(got["axes"])][-got["nsp"]:])
        if scale is not None:
            options["scale"] = scale
        if self.instances.value:
            options["instances"] = True
        if self.refine_edges.value:
            options["refine"] = True
        job = {"index": got["index"], "axes": got["axes"]}
        if got["engine_mode"] is not None:
            options["mode"] = got["engine_mode"]
            options["maps"] = False  # stacks: labels only, memory stays small
            job["nd"] = mode
        job["spatial"] = _layers_nd.spatial_kwargs_for(source, got["axes"])
        return source, got["data"], options, job

    def _uses_nd(self) -> bool:
        return (self.mode.value != "current slice" or self.channel_axis.value is not None
                or bool(self.channel_layers.value) or self.physical.value
                or self.instances.value or self.refine_edges.value)

    def run(self) -> None:
        """Segment the chosen image with the chosen settings."""
        if self._uses_nd():
            request = self._nd_request()
            if request is None:
                return
            source, data, options, job = request
            if self.init.value != PRESET_START:
                init = np.array(self.init.value.data)
                expected = data.shape if options.get("channel_axis") is None else \
                    tuple(n for a, n in enumerate(data.shape)
                          if a != options["channel_axis"] % data.ndim)
                if source.rgb:
                    expected = data.shape[:-1]
                if init.shape != expected:
                    show_error(
                        f"IEM: initialization layer '{self.init.value.name}' has shape "
                        f"{init.shape}, the input {expected}: choose a Labels layer of "
                        f"that shape, or '{PRESET_START}'."
                    )
                    return
                options["init"] = init
            self._start(source, data, options, job)
            return
        picked = self._source_plane()
        if picked is None:
            return
        source, plane, index = picked
        options = self.options()
        if self.init.value != PRESET_START:
            init = np.array(self.init.value.data)  # a copy: painting goes on meanwhile
            if init.shape != plane.shape[:2]:
                show_error(
                    f"IEM: initialization layer '{self.init.value.name}' has shape "
                    f"{init.shape}, the image plane {plane.shape[:2]}: choose a Labels "
                    f"layer of the image's size, or '{PRESET_START}'."
                )
                return
            options["init"] = init
        self._start(source, plane, options, {"index": index})

    def refine(self) -> None:
        """Restart IEM from the output layer as edited, keeping the edited pixels."""
        if self.running:
            return
        picked = self._source_plane()
        if picked is None:
            return
        source, plane, index = picked
        active = self.viewer.layers.selection.active
        target = _layers.refine_target(self.viewer.layers, source, active)
        nd_mode = None if target is None else target.metadata[_layers.IEM_KEY].get("mode")
        if nd_mode is not None or (target is not None and self._uses_nd()):
            self._refine_nd(source, target, nd_mode)
            return
        if target is None:
            show_warning(
                f"IEM: nothing to refine for '{source.name}'. Press Run first, then "
                "paint corrections into its output Labels layer."
            )
            return
        try:
            init, locked = _layers.refine_inputs(target)
        except ValueError as exc:
            show_error(f"IEM: {exc}")
            return
        options = {**self.options(), "init": init, "locked": locked}
        self._start(source, plane, options, {
            "index": index, "target": target, "init": init, "locked": locked,
        })

    def _refine_nd(self, source, target, nd_mode) -> None:
        """Refine a whole-layer (or n-D option) output from its edited labels."""
        if nd_mode is not None:
            self.mode.value = nd_mode
        request = self._nd_request()
        if request is None:
            return
        source, data, options, job = request
        try:
            init, locked = _layers.refine_inputs(target)
        except ValueError as exc:
            show_error(f"IEM: {exc}")
            return
        options.update(init=init, locked=locked)
        job.update(target=target, init=init, locked=locked)
        self._start(source, data, options, job)

    def _start(self, source, plane, options: dict, job: dict) -> None:
        """Launch the worker over :func:`iter_segment` and switch to Cancel."""
        self._job = {"source": source, "device": options["device"], **job}
        self.progress.setMaximum(options["max_iter"])
        self.progress.setValue(0)
        self.status.setText(f"segmenting '{source.name}'...")
        worker = create_worker(
            _engine_job, plane, self.regions.value, options,
            _start_thread=False, _ignore_errors=True,
        )
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._report)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._set_running(True)
        worker.start()

    def cancel(self) -> None:
        """Stop the running worker; no output layer is changed."""
        if self.worker is not None:
            self.status.setText("cancelling...")
            self.worker.quit()

    def _set_running(self, running: bool) -> None:
        self.run_button.setText("Cancel" if running else "Run")
        self.refine_button.setEnabled(not running)
        self.flip_button.setEnabled(not running)

    # --------------------------------------------------------- worker events
    def _on_progress(self, progress) -> None:
        self.progress.setMaximum(progress.max_iterations)
        self.progress.setValue(progress.iteration)
        self.status.setText(
            f"iteration {progress.iteration}: objective {progress.objective:.5g}"
        )
        if progress.iteration == 1 or progress.iteration % PREVIEW_EVERY == 0:
            self._show_preview(progress.labels)

    def _preview_name(self) -> str:
        return self._job["source"].name + " IEM preview"

    @staticmethod
    def _is_preview(layer) -> bool:
        return layer.metadata.get(_layers.IEM_KEY, {}).get("role") == "preview"

    def _show_preview(self, labels) -> None:
        preview = self._job.get("preview")
        if preview is not None and preview in self.viewer.layers:
            preview.data = labels
            return
        spatial = self._job.get("spatial") or _layers.spatial_kwargs(self._job["source"])
        preview = Labels(
            labels, name=self._preview_name(), opacity=0.5,
            metadata={_layers.IEM_KEY: {"role": "preview"}},
            colormap=_layers.label_colormap(), **spatial,
        )
        self._job["preview"] = preview
        selection = set(self.viewer.layers.selection)
        self.viewer.layers.append(preview)
        self.viewer.layers.selection = selection  # adding it selected it

    def _on_returned(self, value) -> None:
        if isinstance(value, _Failed):
            self._report(value.exc)
            return
        job = self._job
        target = job.get("target")
        if job.get("nd") and target is not None and target in self.viewer.layers:
            labels = value.labels.copy()
            labels[job["locked"]] = job["init"][job["locked"]]
            if np.array_equal(np.asarray(target.data), job["init"]):
                meta = _layers.run_metadata(value, job["source"], ())
                meta["mode"] = job["nd"]
                _layers.write_labels(target, labels, job["locked"], meta)
            else:  # painted meanwhile: the user's layer stays as it is
                target = _layers_nd.publish_nd(
                    self.viewer.layers, job["source"], value, job["axes"], job["nd"])
        elif job.get("nd"):
            target = _layers_nd.publish_nd(
                self.viewer.layers, job["source"], value, job["axes"], job["nd"])
        elif target is None:
            target = _layers.publish_result(
                self.viewer.layers, job["source"], value, job["index"]
            )
        elif target in self.viewer.layers:
            target = _layers.publish_refinement(
                self.viewer.layers, job["source"], target, value,
                job["init"], job["locked"],
            )
        else:
            show_warning("IEM: the layer being refined was deleted; nothing written.")
            return
        if value.instances is not None and target in self.viewer.layers:
            _layers_nd.publish_instances(self.viewer.layers, target, value.instances)
        fallback = value.metadata.get("device_fallback")
        if fallback:
            show_warning(f"IEM: {fallback['message']}")
        self.viewer.layers.selection.active = target  # ready to paint corrections
        self.status.setText(
            f"'{target.name}': {value.iterations} iterations in "
            f"{value.seconds:.1f} s on {value.device}"
            + (" (converged)" if value.converged else "")
        )

    def _report(self, exc: BaseException) -> None:
        self.status.setText("failed: nothing was changed")
        show_error(_explain(exc, self._job.get("device", "auto")))

    def _on_finished(self) -> None:
        preview = self._job.get("preview")
        if preview is not None and preview in self.viewer.layers:
            self.viewer.layers.remove(preview)
        if self.worker is not None and self.worker.abort_requested:
            self.status.setText("cancelled: nothing was changed")
        self.worker = None
        self._job = {}
        self._set_running(False)

    # ------------------------------------------------------------------ flip
    def flip(self) -> None:
        """Swap foreground and background of the chosen image's output layer."""
        source = self.image.value
        if self.running:
            return
        if source is None:
            show_error("IEM: there is no image layer; nothing to flip.")
            return
        active = self.viewer.layers.selection.active
        target = _layers.refine_target(self.viewer.layers, source, active)
        if target is None:
            show_warning(f"IEM: nothing to flip for '{source.name}'. Press Run first.")
            return
        try:
            _layers.flip_output(self.viewer.layers, target)
        except ValueError as exc:
            show_error(f"IEM: {exc}")
            return
        show_info(f"IEM: flipped foreground and background of '{target.name}'")


def launch_demo(sample: str = "coffee") -> None:
    """Open napari with a sample image and the IEM widget docked, and run it.

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
