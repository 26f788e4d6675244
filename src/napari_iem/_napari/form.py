"""The widget's controls: one per knob of :mod:`napari_iem.engine.knobs`, plus the
layer pickers, and what they say together (the options of a run, a settings file).

Every knob the widget shows (``Knob.widget``) gets its control from the knob table:
label from :attr:`Knob.display`, tooltip from its help and what it allows, range from
``low``/``high``, choices from ``choices``.  So the widget offers what the API accepts,
and says where it offers less (Qt's spin boxes stop at 2**31 - 1).  The knobs it does not
show are set by the preset or by a loaded settings file.

The form also shows only what applies to the chosen layer: the mode for n-D data, the
channel controls for data that can hold channels, the inspection maps for a single plane.
"""
from __future__ import annotations

import math
import re

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Select, SpinBox
from napari.layers import Image, Labels

from ..engine.autopreset import explain_choice
from ..engine.devices import available_devices
from ..engine.knobs import KNOBS, Knob
from ..engine.presets import DEFAULT_PRESET, PRESET_ALIASES, PRESETS
from . import layers_nd as _layers_nd
from .layers import IEM_KEY, image_plane, plane_index, source_array
from .publish import is_preview
from .pyramid import level_array, run_level

PRESET_START = "preset's start"
#: The working size a new widget starts with.  The presets leave it at full size; a
#: widget caps it so that the first try on a large image still takes a second or two
#: (labels come back at full size either way, the boundary refined there).  Measured
#: with ``benchmarks/widget_vs_library.py`` and docs/benchmarks.md: at 1024 a 600 px
#: photo runs whole (0.6 s), a 2048 px photo in 2.4 s and a 4096 px micrograph in
#: 1.7 s, against 5.7 s and 14.6 s at full size.  A volume starts at 256: 64x1024x1024
#: voxels take 55 s there, and one 3-D problem at 1024 would be many times that.
START_MAX_SIZE = 1024
VOLUME_START_MAX_SIZE = 256


def start_max_size(mode: str) -> int:
    """The working size the widget starts with in ``mode``."""
    return VOLUME_START_MAX_SIZE if mode == "volume" else START_MAX_SIZE
QT_INT_MAX = 2**31 - 1
#: Display steps of the number controls (the knob table has no opinion on steps).
STEPS = {"sigma": 0.5, "lam": 0.0001, "max_size": 32}
#: What the widget adds to a knob's own help.
NOTES = {
    "min_piece_size": f"The widget goes up to {QT_INT_MAX} (Qt's limit).",
    "preset": "The Advanced fields show the preset's values; choosing a preset resets "
              "them.",
}
#: Knob controls the preset sets (max_size starts at start_max_size whatever the preset).
PRESET_SET = tuple(k.name for k in KNOBS
                   if k.widget and k.kind == "param" and k.name != "max_size")
MAIN = ("regions", "preset", "device", "max_size", "instances")
#: The parameters without a control: a settings file sets them, or the preset.  (The
#: run knobs without a knob control have the widget's own: mode, sigma in layer units,
#: Flip, show why; a settings file holds none of them.)
HIDDEN_KNOBS = ", ".join(k.name for k in KNOBS if not k.widget and k.kind == "param")
ADVANCED_TIP = (f"The knobs not shown here ({HIDDEN_KNOBS}) are set by the preset or by "
                "a loaded settings file.")


def _tooltip(knob: Knob) -> str:
    """The knob table's help and range as the control says them: an optional knob's
    None is its spin box's 0 (the widget has no None to type)."""
    text = " ".join(filter(None, [knob.help, f"Allowed: {knob.allowed()}.",
                                  NOTES.get(knob.name)]))
    if knob.optional:
        text = re.sub(r"\bNone:", "0:", text)
        text = re.sub(r" or none\b", " or 0", text)
    return text


def knob_control(knob: Knob):
    """A magicgui control for ``knob``: its label, tooltip, range or choices."""
    tooltip = _tooltip(knob)
    common = {"name": knob.name, "label": knob.display, "tooltip": tooltip}
    if knob.type is bool:
        return CheckBox(value=knob.default, **common)
    if knob.type is str:
        choices = ["auto", *available_devices()] if knob.name == "device" else [
            c for c in knob.choices if c not in PRESET_ALIASES]
        return ComboBox(choices=choices, value=knob.default, **common)
    low = 0 if knob.optional else knob.low  # 0 stands for None ("as large as the input")
    if knob.type is int:
        return SpinBox(min=int(low), max=int(min(knob.high, QT_INT_MAX)),
                       step=STEPS.get(knob.name, 1),
                       value=START_MAX_SIZE if knob.name == "max_size" else knob.default,
                       **common)
    return FloatSpinBox(min=low, max=knob.high, step=STEPS.get(knob.name, 0.1),
                        value=knob.default, **common)


class IEMForm:
    """Every control of the dock widget, and the options and settings they make.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Whose layers the pickers offer.
    """

    def __init__(self, viewer):
        self.viewer = viewer
        self._pick_kept = (None, None)  # (layer, data, level, plane) -> pick
        self.controls = {k.name: knob_control(k) for k in KNOBS if k.widget}
        c = self.controls
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.mode = ComboBox(
            label="mode", choices=list(_layers_nd.MODES), value="current slice",
            tooltip="current slice: the displayed plane; every slice: each 2-D plane of "
            "the layer on its own; volume: the last three axes as one 3-D problem "
            "(leading axes such as time one after the other).",
        )
        self.init = ComboBox(
            label="initialization", choices=self._init_choices,
            tooltip="Start from the preset's own start (a centred square for photos and "
            "the paper; k-means colour clusters for micrographs and for more than 2 "
            "partitions) or from the labels of a Labels layer (values 0..partitions-1).",
        )
        self.show_why = CheckBox(
            label="show why", value=False,
            tooltip="Also add each region's inpainting and the inpainting-error map "
            "(hidden layers), to see why IEM split the image there.",
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
        self.main = Container(widgets=[
            self.image, self.mode, c["regions"], c["preset"], c["device"], c["max_size"],
            self.init, c["instances"], self.show_why,
        ])
        self.advanced = Container(widgets=[
            c["max_iter"], c["sigma"], self.physical, c["lam"], c["smooth_threshold"],
            c["min_piece_size"], self.channel_axis, self.channel_layers, c["refine"],
        ])
        self._shown_params = None  # the parameters the preset-set controls last showed
        #: knobs without a control, as a loaded settings file set them (until a preset
        #: is chosen again)
        self.hidden_params: dict = {}
        c["preset"].changed.connect(self._on_preset)
        self.image.changed.connect(self._on_image)
        self.mode.changed.connect(self.update_visibility)
        self._mode_shown = self.mode.value
        self.mode.changed.connect(self._on_mode)
        self.show_preset()
        self.update_visibility()

    # ------------------------------------------------------------- choices
    def _image_choices(self, _widget=None):
        return [(lay.name, lay) for lay in self.viewer.layers if isinstance(lay, Image)]

    def _init_choices(self, _widget=None):
        labels = [(lay.name, lay) for lay in self.viewer.layers
                  if isinstance(lay, Labels) and not is_preview(lay)]
        return [(PRESET_START, PRESET_START), *labels]

    def _channel_axis_choices(self, _widget=None):
        layer = self.image.value if hasattr(self, "image") else None
        axes = [] if layer is None or layer.rgb else list(range(max(0, layer.ndim - 2)))
        return [(_layers_nd.NO_CHANNEL_AXIS, None), *((f"axis {a}", a) for a in axes)]

    def _channel_layer_choices(self, _widget=None):
        """Grey Image layers of the chosen (grey) image's shape: its possible channels."""
        source = self.image.value if hasattr(self, "image") else None
        if source is None or source.rgb:
            return []
        shape = source_array(source).shape
        return [
            (lay.name, lay) for lay in self.viewer.layers
            if isinstance(lay, Image) and lay is not source and not lay.rgb
            and IEM_KEY not in lay.metadata and source_array(lay).shape == shape
        ]

    def refresh_choices(self, _event=None) -> None:
        """Follow layers being added, removed and renamed."""
        for box in (self.image, self.init, self.channel_axis, self.channel_layers):
            box.reset_choices()
        self.update_visibility()

    def _on_image(self, _value=None) -> None:
        self.refresh_choices()
        if self.controls["preset"].value == DEFAULT_PRESET:  # the pick may change
            self.show_preset(keep_edits=True)

    # ---------------------------------------------------------- visibility
    def update_visibility(self, _value=None) -> None:
        """Show only the controls that apply to the chosen layer (a hidden control
        goes back to its neutral value, so that it cannot act unseen)."""
        layer = self.image.value
        nd = layer is not None and layer.ndim > 2
        anisotropic = layer is not None and len(set(map(float, layer.scale))) > 1
        rules = {
            self.mode: (nd, "current slice"),
            self.channel_axis: (nd and not layer.rgb, None),
            self.channel_layers: (bool(self.channel_layers.choices), []),
            self.physical: (nd or anisotropic, False),
        }
        for control, (show, neutral) in rules.items():
            if not show and control.value != neutral:
                control.value = neutral
            control.visible = show
        self.show_why.visible = self.mode.value == "current slice"

    def shown(self) -> set[str]:
        """Labels of the controls on show (whether or not the Advanced fold is open)."""
        return {w.label for box in (self.main, self.advanced) for w in box
                if w.native.isVisibleTo(box.native)}

    # --------------------------------------------------------------- preset
    def pick(self, plane=None) -> tuple[str, str]:
        """The preset a run uses and why: the chosen one, or for ``default`` the one
        :func:`~napari_iem.engine.autopreset.explain_choice` picks for the displayed
        plane of the chosen image (the photo preset while there is none).

        The plane is read at the pyramid level a run would read, or given as
        ``plane`` by a run that read it already; the pick is kept for that plane, so
        that the controls, the settings and the run look at a lazy layer once.
        """
        preset = self.controls["preset"].value
        if preset != DEFAULT_PRESET:
            return preset, ""
        layer = self.image.value
        if layer is None:
            return "photo", "no image chosen yet"
        if not isinstance(layer, Image) or layer.ndim < 2:
            return "photo", "no image plane to look at"
        level = run_level(layer, self.value("max_size"), 2)
        point = self.viewer.dims.point
        key = (id(layer), id(level_array(layer, level)), level,
               plane_index(layer, range(layer.ndim - 2), point))
        if plane is None and self._pick_kept[0] == key:
            return self._pick_kept[1]
        if plane is None:
            plane, _ = image_plane(layer, point, level)
        self._pick_kept = (key, explain_choice(plane))
        return self._pick_kept[1]

    def _on_preset(self, _value=None) -> None:
        self.hidden_params = {}
        self.show_preset()

    def show_preset(self, _value=None, keep_edits: bool = False, params=None) -> None:
        """Set the preset-set controls from the preset a run would use (or ``params``);
        with ``keep_edits``, only those still showing the previous preset's value."""
        picked, why = self.pick()
        params = PRESETS[picked] if params is None else params
        shown = self._shown_params
        for name in PRESET_SET:
            box = self.controls[name]
            if keep_edits and shown is not None and not math.isclose(
                    box.value, getattr(shown, name), rel_tol=1e-6, abs_tol=1e-9):
                continue
            box.value = getattr(params, name)
        self._shown_params = PRESETS[picked]
        preset = self.controls["preset"]
        tip = preset.tooltip.split(" Here default picks")[0]
        preset.tooltip = tip + (f" Here default picks '{picked}'" + (
            f": {why}." if why else ".") if preset.value == DEFAULT_PRESET else "")

    def reset_to_preset(self) -> None:
        """Every parameter back to the preset's value (max size to its start)."""
        self._on_preset()
        self.controls["max_size"].value = start_max_size(self.mode.value)

    def _on_mode(self, mode: str) -> None:
        """A working size the user left at its start follows the mode's start (a
        volume starts smaller); one the user set stays."""
        control = self.controls["max_size"]
        if control.value == start_max_size(self._mode_shown):
            control.value = start_max_size(mode)
        self._mode_shown = mode

    # -------------------------------------------------------------- options
    def value(self, name: str):
        """The engine value of the knob control ``name`` (max size 0 is None)."""
        value = self.controls[name].value
        return None if name == "max_size" and value == 0 else value

    def options(self, plane=None, pick=None) -> dict:
        """Keyword arguments of :func:`napari_iem.api.iter_segment`, keyed by knob name
        (``preset`` is the preset that runs: what ``default`` picks, for ``plane``
        when given, or the ``pick`` (:meth:`pick`) a caller made already)."""
        options = {**self.hidden_params,
                   **{name: self.value(name) for name in self.controls}}
        options["preset"] = (pick or self.pick(plane))[0]
        return options

    def settings(self) -> dict:
        """The controls as a settings mapping (:mod:`napari_iem.files.settings`):
        ``default`` stays while no preset-set control differs from its pick."""
        from ..files.settings import settings_from_params

        options = self.options()
        params = {**PRESETS[options["preset"]].to_dict(), **options}
        settings = settings_from_params(params, options["preset"], options["regions"])
        if self.controls["preset"].value == DEFAULT_PRESET and not (
                set(settings["params"]) & set(PRESET_SET)):
            settings["preset"] = DEFAULT_PRESET  # unchanged picks: each image picks again
        return settings

    def apply_settings(self, settings: dict) -> None:
        """Set the controls from a validated settings mapping, all or none.

        Raises
        ------
        ValueError
            When a value lies outside what its control can show; no control changed.
        """
        params = {"regions": settings["regions"], **settings["params"]}
        shown = {k: v for k, v in params.items() if k in self.controls}
        for name, value in shown.items():
            box = self.controls[name]
            value = 0 if value is None and name == "max_size" else value
            if not box.min <= value <= box.max:
                raise ValueError(f"{name} = {value} is outside what the widget offers "
                                 f"({box.min} to {box.max})")
        self.controls["preset"].value = settings["preset"]
        self.controls["regions"].value = settings["regions"]
        picked, _ = self.pick()
        full = PRESETS[picked].replace(**settings["params"])
        self.show_preset(params=full)
        self.controls["max_size"].value = full.max_size or 0
        self.hidden_params = {k: v for k, v in settings["params"].items()
                              if k not in self.controls}
