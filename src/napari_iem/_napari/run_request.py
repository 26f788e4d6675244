"""What the widget turns into engine input: the displayed plane, every slice, a volume,
or a refinement of an output layer, with the options of the form.

:func:`plan_run` and :func:`plan_refine` read the form and the viewer and return a
:class:`RunPlan`: the array and the keyword arguments of
:func:`napari_iem.api.iter_segment` (which checks every knob), and where the result
belongs (the output's shape, axes and plane) for :mod:`napari_iem._napari.publish`.
What cannot be run raises :class:`RequestError` with a message for the user.  No Qt.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from napari.layers import Image, Labels

from ..engine.preprocess import resize_labels
from ..engine.presets import DEFAULT_PRESET
from . import layers_nd as _layers_nd
from .form import PRESET_START, IEMForm
from .layers import IEM_KEY, refine_inputs, source_array, spatial_kwargs
from .pyramid import level_array, level_grid, run_level

#: The preset "run again as the other" switches to, for each pick of default.
OTHER_PICK = {"photo": "microscopy", "microscopy": "photo"}


class RequestError(ValueError):
    """The form and the viewer do not make a run; the message says what to change."""


@dataclass
class RunPlan:
    """One run as the widget planned it.

    ``shape`` and ``axes`` are the output layer's (every non-channel axis of the
    source); ``index`` is the plane of a stack a current-slice run segments (empty
    otherwise); ``out_shape`` is the shape of the labels a run gives (the plane's, or
    ``shape``).  A refinement also has the ``target`` layer, its data at the ``start``
    and the ``locked`` pixels (both of ``shape``).  ``source_data`` is the source's
    level-0 array the run read (another one there by the end: the result is stale).

    A multiscale source is read at pyramid ``level``: ``run_shape``, ``run_index``
    and ``run_spatial`` (scale, translate, units) describe the arrays the engine
    returns there (the preview and the maps are shown at that level), and the labels
    are carried up to level 0 (:mod:`napari_iem._napari.pyramid`).  At level 0 they
    are ``shape``, ``index`` and the source's own calibration.
    """

    source: Image
    data: np.ndarray
    options: dict
    mode: str
    axes: list
    shape: tuple
    index: tuple
    source_shape: tuple
    picked: dict | None
    show_why: bool
    nsp: int = 2
    level: int = 0
    run_shape: tuple = ()
    run_index: tuple = ()
    run_spatial: dict | None = None
    refine: bool = False  # the boundary refined at full size (level 0)
    channel_axis: int | None = None  # of the source layer
    channel_layers: tuple = ()
    target: Labels | None = None
    start: np.ndarray | None = None
    locked: np.ndarray | None = None
    source_data: object = None  # the source's level-0 array as the run read it

    @property
    def out_shape(self) -> tuple:
        return tuple(self.shape[len(self.index):])


def _check_display(viewer, source: Image) -> None:
    ndim = viewer.dims.ndim
    if source.ndim > 2 and sorted(viewer.dims.displayed) != [ndim - 2, ndim - 1]:
        raise RequestError(
            "switch to 2-D display and undo axis rolls: IEM segments the displayed "
            "plane of the last two axes (use Transpose to restore their order)."
        )


def plan_run(form: IEMForm, viewer, use_init: bool = True) -> RunPlan:
    """The run the form describes on the chosen image (an init layer, if chosen and
    ``use_init``, as the start)."""
    source = form.image.value
    if source is None:
        raise RequestError("no image to segment: open or add an Image layer.")
    mode = form.mode.value
    if mode == "current slice":
        _check_display(viewer, source)
    nsp = 3 if mode == "volume" else 2
    level = run_level(source, form.value("max_size"), nsp)
    try:
        got = _layers_nd.gather(
            source, mode, channel_axis=form.channel_axis.value,
            extra=list(form.channel_layers.value), world_point=viewer.dims.point,
            level=level)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    show_why = form.show_why.value and mode == "current slice"
    pick = form.pick(got["plane"])  # once per run: a look at the plane's colours
    options = {**form.options(pick=pick), "mode": got["engine_mode"], "maps": show_why}
    refine = bool(options.get("refine"))
    if level:
        options["refine"] = False  # not at the level read: at level 0, afterwards
    if got["channel_axis"] is not None:
        options["channel_axis"] = got["channel_axis"]
    run_spatial = level_grid(spatial_kwargs(source, got["axes"]), got["shape"],
                             got["run_shape"])
    # at the level read; a negative scale mirrors an axis, its pixels as large
    spatial = np.abs(np.asarray(run_spatial["scale"])[-got["nsp"]:])
    if form.physical.value:
        options.update(sigma_units="physical", scale=tuple(map(float, spatial)))
    elif len(set(map(float, spatial))) > 1:
        options["scale"] = tuple(map(float, spatial))
    plan = RunPlan(
        source=source, data=got["data"], options=options, mode=mode, axes=got["axes"],
        shape=got["shape"], index=got["index"],
        source_shape=tuple(source_array(source).shape), source_data=source_array(source),
        picked=_picked(form, pick), show_why=show_why, nsp=got["nsp"],
        level=level, run_shape=got["run_shape"], run_index=got["run_index"],
        run_spatial=run_spatial, refine=refine, channel_axis=None if form.channel_axis.value is None
        else int(form.channel_axis.value) % source.ndim,
        channel_layers=tuple(lay for lay in form.channel_layers.value if lay is not source),
    )
    if use_init and form.init.value != PRESET_START:
        options["init"] = _init_labels(form.init.value, plan)
        _to_run_level(plan)
    return plan


def _to_run_level(plan: RunPlan) -> None:
    """Start labels and locks of level 0's shape brought to the level the engine
    reads (nearest neighbour); the locked pixels are put back at level 0 after the
    run (:func:`napari_iem._napari.pyramid.carry_up`)."""
    if not plan.level:
        return
    shape = tuple(plan.run_shape[len(plan.run_index):])
    for key in ("init", "locked"):
        if plan.options.get(key) is not None:
            value = np.asarray(plan.options[key])
            plan.options[key] = resize_labels(value.view(np.uint8) if value.dtype == bool
                                              else value, shape).astype(value.dtype)


def _picked(form: IEMForm, pick: tuple[str, str]) -> dict | None:
    """How default picked the preset, ``pick`` (for the status line and the layer
    metadata)."""
    if form.controls["preset"].value != DEFAULT_PRESET:
        return None
    preset, why = pick
    return {"by": DEFAULT_PRESET, "preset": preset, "why": why,
            "other": OTHER_PICK.get(preset)}


def _init_labels(layer: Labels, plan: RunPlan) -> np.ndarray:
    """A copy of ``layer``'s labels for the run (painting goes on meanwhile): the
    output's shape, or on a stack also the plane's (of a multiscale layer, level 0)."""
    init = np.array(level_array(layer, 0))
    plane = plan.shape[len(plan.index):]
    if plan.index and init.shape == plan.shape:
        return init[plan.index]
    if init.shape != plane:
        raise RequestError(
            f"initialization layer '{layer.name}' has shape {init.shape}, the input "
            f"{plane}: choose a Labels layer of that shape, or '{PRESET_START}'."
        )
    return init


def _check_labels(target: Labels, start: np.ndarray, regions: int) -> None:
    """Refuse start labels outside ``0..regions-1`` (a brush's next label, or fewer
    partitions chosen since the run) before a run starts, saying what to change."""
    low, high = int(start.min(initial=0)), int(start.max(initial=0))
    if low < 0 or high >= regions:
        bad = low if low < 0 else high
        fix = "" if low < 0 else f", or set partitions to {high + 1}"
        raise RequestError(
            f"'{target.name}' holds label {bad}, and partitions {regions} means labels "
            f"0..{regions - 1}: paint only those (the eraser paints 0){fix}."
        )


def plan_refine(form: IEMForm, viewer, target: Labels) -> RunPlan:
    """Restart from ``target`` as the user painted it, every changed pixel locked, in
    the mode ``target`` was made in (the mode control is left as it was when the
    refinement cannot run)."""
    shown = form.mode.value
    try:
        return _plan_refine(form, viewer, target)
    except RequestError:
        form.mode.value = shown
        raise


def _plan_refine(form: IEMForm, viewer, target: Labels) -> RunPlan:
    if not isinstance(target.data, np.ndarray):
        raise RequestError(
            f"'{target.name}' holds labels too large for memory (shown lazily, for "
            "viewing): Refine needs labels that fit; segment a crop or a lower "
            "pyramid level of the image."
        )
    form.mode.value = target.metadata[IEM_KEY].get("mode", "current slice")
    plan = plan_run(form, viewer, use_init=False)
    try:
        start, locked = refine_inputs(target)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    if start.shape != plan.shape:
        raise RequestError(f"'{target.name}' has shape {start.shape}, the input "
                           f"{plan.shape}: run IEM again instead")
    _check_labels(target, start, int(plan.options["regions"]))
    planes = target.metadata[IEM_KEY].get("planes", [])
    if plan.index and list(plan.index) not in planes and not (
            start[plan.index].any() or locked[plan.index].any()):
        raise RequestError(
            f"'{target.name}' holds nothing on plane {list(plan.index)} (IEM wrote "
            f"{', '.join(map(str, planes))}): move there to refine it, or press Run "
            "for this plane."
        )
    plan.options.update(init=start[plan.index], locked=locked[plan.index])
    plan.target, plan.start, plan.locked = target, start, locked
    _to_run_level(plan)
    return plan
