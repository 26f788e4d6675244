"""Putting a finished run into napari layers, and the live preview while it runs.

One rule for every mode: a run updates the newest output of its source that the user
has neither edited nor renamed, of the same mode and shape, and otherwise adds a new,
uniquely named Labels layer; a refinement writes back into the layer it started from
unless the user painted in it meanwhile.  A result on one plane of a stack lands in an n-D layer on
that plane only (the other planes stay 0, or keep what earlier runs wrote there), so
scrolling shows it where it belongs.  The inspection maps (each region's inpainting and
the error) are added only when asked for.  No Qt here.

The engine keeps every locked pixel itself (:mod:`napari_iem.engine.finish`), so
nothing here restores locks: it only records them, for the next Refine.

A run on a level of a multiscale source returns its labels at level 0 (the output
lines up with the source in world coordinates through the source's own scale and
translate), while its preview and maps stay at the level read, drawn with that
level's scale (:func:`run_grid`).  Labels too large for memory come as a lazy dask
array and always go into a new layer.
"""
from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap

from .layers import (
    IEM_KEY,
    LOCKED_KEY,
    NAME_KEY,
    OUTPUT_SUFFIX,
    is_edited,
    is_renamed,
    label_colormap,
    mark_written,
    outputs_of,
    owned_by,
    run_metadata,
    source_array,
    spatial_kwargs,
    unique_name,
    write_labels,
)

#: The preview is drawn as outlines of one colour, so that it cannot be taken for the
#: result it replaces (filled regions of the region colours) while a rerun goes on.
PREVIEW_LOOK = {"opacity": 0.9, "blending": "translucent_no_depth"}
PREVIEW_CONTOUR = 2
PREVIEW_COLOR = "#ff2d2d"


def on_plane(base: np.ndarray | None, plane: np.ndarray, index: tuple, shape) -> np.ndarray:
    """``plane`` written at ``index`` of a copy of ``base`` (zeros of ``shape`` plus
    ``plane``'s trailing axes when None); ``plane`` itself when there is no index."""
    if not index:
        return plane
    full = (np.zeros((*shape, *plane.shape[len(shape) - len(index):]), plane.dtype)
            if base is None else np.array(base, dtype=plane.dtype, copy=True))
    full[index] = plane
    return full


def run_grid(plan) -> dict:
    """Scale, translate and units of the arrays the engine returns for ``plan`` (the
    preview, the maps): the source's, or those of the pyramid level it read."""
    return plan.run_spatial or spatial_kwargs(plan.source, plan.axes)


def stale_reason(layers, plan) -> str | None:
    """Why a finished run must not be published (its source is gone, changed shape or
    was given new data), or None when it can be."""
    if plan.source not in layers:
        return f"'{plan.source.name}' was removed during the run"
    if tuple(source_array(plan.source).shape) != plan.source_shape:
        return f"'{plan.source.name}' changed shape during the run"
    if plan.source_data is not None and source_array(plan.source) is not plan.source_data:
        return f"'{plan.source.name}' got new data during the run"
    return None


def _reusable(layers, plan) -> Labels | None:
    """The newest output of ``plan``'s source, mode and shape that the user has
    neither edited nor renamed."""
    return next(
        (out for out in reversed(outputs_of(layers, plan.source))
         if not is_edited(out) and not is_renamed(out) and out.data.shape == plan.shape
         and out.metadata[IEM_KEY].get("mode") == plan.mode),
        None,
    )


def publish(layers, plan, result) -> Labels:
    """Show a finished run or refinement; returns the Labels layer written.

    Parameters
    ----------
    layers : napari.components.LayerList
    plan : napari_iem._napari.run_request.RunPlan
        What was run: the source, mode, output shape and plane, and for a refinement
        the layer it started from with its data and locks at the start.
    result : napari_iem.api.IEMResult
    """
    meta = run_metadata(result, plan.source, plan.index, plan.mode, plan.picked, plan.axes)
    if not isinstance(result.labels, np.ndarray):  # lazy: too large to hold or compare
        return _publish_lazy(layers, plan, result, meta)
    target, base, locked = plan.target, None, None
    if target is not None and target in layers and np.array_equal(
            np.asarray(target.data), plan.start):
        base, locked = plan.start, plan.locked  # the refinement goes back in place
    else:  # a run, or a refinement whose layer was painted meanwhile
        target = _reusable(layers, plan)
        if target is not None and plan.index:  # keep what other planes hold
            base = np.asarray(target.data)
            previous = target.metadata.get(LOCKED_KEY)
            if previous is not None:
                locked = previous.copy()
                locked[plan.index] = False
    labels = on_plane(base, result.labels, plan.index, plan.shape)
    if plan.index:
        planes = {tuple(p) for p in (target.metadata[IEM_KEY].get("planes", [])
                                     if base is not None else [])}
        meta["planes"] = sorted(list(p) for p in planes | {plan.index})
    if target is None:
        target = Labels(labels, name=unique_name(plan.source.name + OUTPUT_SUFFIX, layers),
                        metadata={IEM_KEY: meta}, colormap=label_colormap(),
                        **spatial_kwargs(plan.source, plan.axes))
        mark_written(target, labels, None)
        layers.append(target)
    else:
        _follow_source_name(layers, target, plan.source)
        write_labels(target, labels, locked, meta)
    if plan.show_why and result.inpainted is not None:
        publish_inspection(layers, plan, target, result)
    if result.instances is not None:
        publish_instances(layers, plan, target, result.instances)
    return target


def _follow_source_name(layers, target: Labels, source) -> None:
    """Give an output the plugin named (the user did not rename it) its image's
    current name, with its maps and instances: after the image was renamed, the
    old name would say the labels are of an image no longer called so."""
    base = source.name + OUTPUT_SUFFIX
    old = target.name
    if is_renamed(target) or old == base or old.startswith(base + " ["):
        return
    target.name = unique_name(base, layers)
    target.metadata[NAME_KEY] = target.name
    owner = str(target.unique_id)
    for layer in layers:
        if (layer.metadata.get(IEM_KEY, {}).get("owner") == owner
                and layer.name.startswith(old + " ")):
            layer.name = target.name + layer.name[len(old):]


def _publish_lazy(layers, plan, result, meta: dict) -> Labels:
    """A new Labels layer over lazy level-0 labels (filled as napari shows them)."""
    target = Labels(result.labels, name=unique_name(plan.source.name + OUTPUT_SUFFIX, layers),
                    metadata={IEM_KEY: meta}, colormap=label_colormap(),
                    **spatial_kwargs(plan.source, plan.axes))
    mark_written(target, result.labels, None)
    layers.append(target)
    if plan.show_why and result.inpainted is not None:
        publish_inspection(layers, plan, target, result)
    return target


def publish_inspection(layers, plan, target: Labels, result) -> None:
    """Hidden Image layers beside ``target``: each region's inpainting, and the error."""
    source = plan.source
    inpainted = result.inpainted
    if inpainted.ndim == 4 and inpainted.shape[-1] != 3:
        inpainted = inpainted.mean(-1)  # several non-RGB channels: show their mean
    rgb = inpainted.ndim == 4
    look = {"rgb": True} if rgb else {"colormap": source.colormap}
    limits = source.contrast_limits if inpainted is result.inpainted else _limits(inpainted)
    for k, image in enumerate(inpainted):
        _put_image(layers, plan, target, f"inpainted {k}", image,
                   {"role": "inpainted", "region": k}, contrast_limits=limits, **look)
    _put_image(layers, plan, target, "error", result.error, {"role": "error"},
               colormap="magma", contrast_limits=_limits(result.error))
    for layer in owned_by(layers, target, "inpainted"):
        if layer.metadata[IEM_KEY]["region"] >= result.regions:
            layers.remove(layer)


def _put_image(layers, plan, target, what: str, data, info: dict, **kwargs) -> None:
    """Update ``target``'s Image layer of this role, or add it hidden."""
    info = {**info, "owner": str(target.unique_id)}
    old = next((layer for layer in owned_by(layers, target, info["role"])
                if layer.metadata[IEM_KEY].get("region") == info.get("region")), None)
    shape, index = tuple(plan.run_shape or plan.shape), tuple(plan.run_index or plan.index)
    fits = old is not None and old.data.shape[:len(shape)] == shape
    data = on_plane(old.data if fits else None, data, index, shape)
    if fits:
        old.data = data
        old.contrast_limits = kwargs["contrast_limits"]
        return
    if old is not None:
        layers.remove(old)
    layers.append(Image(data, name=f"{target.name} {what}", visible=False,
                        metadata={IEM_KEY: info}, **kwargs, **run_grid(plan)))


def _limits(data: np.ndarray) -> tuple[float, float]:
    """Contrast limits for a map: 0 to its maximum (or 1 when it is all 0)."""
    high = float(np.nanmax(data)) if data.size else 0.0
    return 0.0, high if high > 0 else 1.0


def publish_instances(layers, plan, target: Labels, instances: np.ndarray) -> Labels:
    """The instance labels of ``target``'s run, in a Labels layer beside it."""
    old = owned_by(layers, target, "instances")
    if old and old[0].data.shape == plan.shape:
        old[0].data = on_plane(old[0].data, instances, plan.index, plan.shape)
        return old[0]
    for layer in old:
        layers.remove(layer)
    layer = Labels(
        on_plane(None, instances, plan.index, plan.shape),
        name=unique_name(target.name + " instances", layers),
        metadata={IEM_KEY: {"role": "instances", "owner": str(target.unique_id)}},
        **spatial_kwargs(target, range(target.ndim)),
    )
    layers.append(layer)
    return layer


class Preview:
    """The labels of a run in progress: outlines in one colour, on the run's plane,
    removed when the run ends (whatever its outcome)."""

    def __init__(self, layers, plan):
        self.layers, self.plan, self.layer = layers, plan, None
        self._full = None  # the stack-shaped array a plane preview is drawn into

    @property
    def name(self) -> str:
        return self.plan.source.name + OUTPUT_SUFFIX + " preview"

    def show(self, labels: np.ndarray) -> None:
        """Draw ``labels`` (the run's output shape, or its plane)."""
        plan = self.plan
        self._full = on_plane(self._full, labels, tuple(plan.run_index or plan.index),
                              tuple(plan.run_shape or plan.shape))
        if self.layer is not None and self.layer in self.layers:
            self.layer.data = self._full
            return
        self.layer = Labels(
            self._full, name=self.name, metadata={IEM_KEY: {"role": "preview"}},
            colormap=DirectLabelColormap(color_dict={None: PREVIEW_COLOR, 0: "transparent"}),
            **PREVIEW_LOOK, **run_grid(plan),
        )
        self.layer.contour = PREVIEW_CONTOUR  # not a keyword of Labels()
        selection = set(self.layers.selection)
        self.layers.append(self.layer)
        self.layers.selection = selection  # adding it selected it

    def remove(self) -> None:
        if self.layer is not None and self.layer in self.layers:
            self.layers.remove(self.layer)
        self.layer = None


def is_preview(layer) -> bool:
    """True for the plugin's live preview layer."""
    return layer.metadata.get(IEM_KEY, {}).get("role") == "preview"
