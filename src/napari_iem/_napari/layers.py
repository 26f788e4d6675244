"""napari layers <-> engine arrays, with no Qt.

Everything the dock widget does to layers lives here: which 2-D plane of an Image layer
is segmented, how output layers are named, which spatial calibration they inherit, what
goes into their metadata, and how a layer the user painted is told apart from one the
plugin may update.

Each Labels layer the plugin writes carries three metadata entries:

``metadata["iem"]``
    A plain dict: the source layer, parameters, device, iterations, seconds...
``metadata["iem_written"]``
    A copy of the labels the plugin last wrote.  ``layer.data`` differing from it
    means the user edited the layer: a new run never overwrites it, and Refine locks
    the pixels that differ.
``metadata["iem_locked"]``
    The pixels locked by earlier refinements (bool), so that a fix stays fixed over
    several rounds of Refine.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np
from napari.layers import Image, Labels, Layer
from napari.utils.colormaps import DirectLabelColormap

from ..files.settings import settings_from_params

IEM_KEY = "iem"
WRITTEN_KEY = "iem_written"
LOCKED_KEY = "iem_locked"
OUTPUT_SUFFIX = " IEM"
# Region colours that stand out on photos and stains alike; 0 (background) is clear.
REGION_COLORS = (
    "#00e5ff", "#ffd400", "#ff3df5", "#7cff3d", "#3d6bff", "#ff8c1a", "#ffffff",
)


def label_colormap() -> DirectLabelColormap:
    """A fresh colormap for output labels: fixed colours for regions 1 to 7."""
    colors = {None: "#bbbbbb", 0: "transparent"}
    colors.update({k: c for k, c in enumerate(REGION_COLORS, start=1)})
    return DirectLabelColormap(color_dict=colors)


def image_plane(layer: Layer, world_point: Iterable[float] | None = None):
    """The 2-D plane (RGB(A) channels kept) of an Image layer to segment.

    Parameters
    ----------
    layer : napari.layers.Layer
        Must be an Image layer.  A multiscale layer gives its full-resolution level.
    world_point : sequence of float, optional
        The viewer's current position (``viewer.dims.point``).  For a layer of more
        than two spatial dimensions, the plane through this point along the last two
        axes is taken; ``None`` takes index 0 on the leading axes.

    Returns
    -------
    plane : ndarray, shape (H, W) or (H, W, C)
    index : tuple of int
        The index of ``plane`` on the leading axes (empty for a 2-D layer).

    Raises
    ------
    ValueError
        When ``layer`` is not an Image layer or has fewer than two spatial axes.
    """
    if not isinstance(layer, Image):
        kind = type(layer).__name__
        raise ValueError(
            f"'{layer.name}' is a {kind} layer: pick an Image layer to segment"
        )
    if layer.ndim < 2:
        raise ValueError(f"'{layer.name}' has {layer.ndim} dimension(s); IEM needs 2-D")
    data = layer.data[0] if layer.multiscale else layer.data
    lead = layer.ndim - 2
    index: tuple[int, ...] = ()
    if lead:
        point = np.zeros(layer.ndim) if world_point is None else np.asarray(world_point)
        coords = np.asarray(layer.world_to_data(point))[:lead]
        limits = np.asarray(data.shape[:lead]) - 1
        index = tuple(int(i) for i in np.clip(np.round(coords), 0, limits))
    return np.asarray(data[index]), index


def spatial_kwargs(layer: Layer) -> dict:
    """Scale, translate and units of ``layer``'s last two axes, for a 2-D output."""
    return {
        "scale": tuple(layer.scale[-2:]),
        "translate": tuple(layer.translate[-2:]),
        "units": tuple(layer.units[-2:]),
    }


def unique_name(base: str, layers: Iterable[Layer]) -> str:
    """``base``, or ``base [n]`` with the smallest n that no layer is called."""
    taken = {layer.name for layer in layers}
    if base not in taken:
        return base
    n = 1
    while f"{base} [{n}]" in taken:
        n += 1
    return f"{base} [{n}]"


def run_metadata(result, source: Layer, index: tuple[int, ...]) -> dict:
    """The ``metadata["iem"]`` entry describing one IEM run on ``source``."""
    return {
        "role": "labels",
        "source": source.name,
        "source_id": str(source.unique_id),
        "plane": list(index),
        "regions": int(result.regions),
        "params": dict(result.params),
        # the same settings the widget saves and `napari-iem segment --config` reads
        "settings": settings_from_params(result.params),
        "device": result.device,
        "iterations": int(result.iterations),
        "converged": bool(result.converged),
        "seconds": float(result.seconds),
        "objective": float(result.objective[-1]) if result.objective else None,
    }


def is_iem_output(layer: Layer, source: Layer | None = None) -> bool:
    """True for a Labels layer this plugin wrote (for ``source``, when given)."""
    info = layer.metadata.get(IEM_KEY) if isinstance(layer, Labels) else None
    if not info or info.get("role") != "labels" or WRITTEN_KEY not in layer.metadata:
        return False
    if info.get("layer_id") != str(layer.unique_id):
        return False  # a copy the user made (Duplicate Layer): theirs, not ours
    return source is None or info.get("source_id") == str(source.unique_id)


def is_edited(layer: Labels) -> bool:
    """True when ``layer.data`` differs from what the plugin last wrote into it."""
    written = layer.metadata[WRITTEN_KEY]
    data = np.asarray(layer.data)
    return data.shape != written.shape or not np.array_equal(data, written)


def outputs_of(layers: Iterable[Layer], source: Layer) -> list[Labels]:
    """The plugin's Labels layers made from ``source``, in layer-list order."""
    return [layer for layer in layers if is_iem_output(layer, source)]


def refine_target(layers, source: Layer, active: Layer | None = None) -> Labels | None:
    """The output layer Refine and Flip act on: ``active`` if it is one, else the last."""
    outputs = outputs_of(layers, source)
    if active is not None and any(active is out for out in outputs):
        return active
    return outputs[-1] if outputs else None


def mark_written(layer: Labels, data: np.ndarray, locked: np.ndarray | None) -> None:
    """Record ``data`` as what the plugin wrote, and the pixels locked so far."""
    layer.metadata[IEM_KEY]["layer_id"] = str(layer.unique_id)
    layer.metadata[WRITTEN_KEY] = np.array(data, copy=True)
    if locked is None or not locked.any():
        layer.metadata.pop(LOCKED_KEY, None)
    else:
        layer.metadata[LOCKED_KEY] = np.array(locked, dtype=bool, copy=True)


def refine_inputs(layer: Labels) -> tuple[np.ndarray, np.ndarray]:
    """Start labels and locked pixels for refining ``layer``.

    The locked pixels are those the user changed since the plugin last wrote the
    layer, together with those locked by earlier refinements.
    """
    data = np.array(layer.data, copy=True)
    written = layer.metadata[WRITTEN_KEY]
    if written.shape != data.shape:
        raise ValueError(
            f"'{layer.name}' changed shape since IEM wrote it: run IEM again instead"
        )
    locked = data != written
    previous = layer.metadata.get(LOCKED_KEY)
    if previous is not None:
        locked |= previous
    return data, locked


def publish_result(layers, source: Layer, result, index=()) -> Labels:
    """Show a finished run: update the plugin's unedited output layer, or add one.

    A layer the user edited is never overwritten: the result then goes to a new,
    uniquely named layer.  The per-region inpaintings and the error map follow.

    Parameters
    ----------
    layers : napari.components.LayerList
    source : napari.layers.Image
        The layer that was segmented.
    result : napari_iem.api.IEMResult
    index : tuple of int
        The plane of ``source`` that was segmented (see :func:`image_plane`).
    """
    target = next(
        (out for out in reversed(outputs_of(layers, source)) if not is_edited(out)),
        None,
    )
    meta = run_metadata(result, source, index)
    if target is None:
        target = Labels(
            result.labels,
            name=unique_name(source.name + OUTPUT_SUFFIX, layers),
            metadata={IEM_KEY: meta},
            colormap=label_colormap(),
            **spatial_kwargs(source),
        )
        mark_written(target, result.labels, None)
        layers.append(target)
    else:
        write_labels(target, result.labels, None, meta)
    publish_inspection(layers, source, target, result)
    return target


def publish_refinement(layers, source, target: Labels, result, init, locked) -> Labels:
    """Write a refinement into ``target``, keeping the user's locked pixels exactly.

    ``init`` is ``target``'s data when the refinement started.  If the user painted
    in ``target`` meanwhile, it is left alone and the refinement goes to a new layer
    (see :func:`publish_result`).  Returns the layer written.
    """
    labels = result.labels.copy()
    labels[locked] = init[locked]
    result = replace(result, labels=labels)
    plane = tuple(target.metadata[IEM_KEY]["plane"])
    if not np.array_equal(np.asarray(target.data), init):
        return publish_result(layers, source, result, plane)
    write_labels(target, labels, locked, run_metadata(result, source, plane))
    publish_inspection(layers, source, target, result)
    return target


def write_labels(target: Labels, labels, locked, meta: dict) -> None:
    """Replace ``target``'s data and metadata with a run's labels."""
    target.data = labels
    target.metadata[IEM_KEY] = meta
    mark_written(target, labels, locked)


def publish_inspection(layers, source: Layer, target: Labels, result) -> None:
    """Hidden Image layers: each region's inpainting, and the inpainting error."""
    owner = str(target.unique_id)
    spatial = spatial_kwargs(source)
    inpainted = result.inpainted
    if inpainted is not None and inpainted.ndim == 4 and inpainted.shape[-1] != 3:
        inpainted = inpainted.mean(-1)  # several non-RGB channels: show their mean
    rgb = inpainted is not None and inpainted.ndim == 4
    look = {"rgb": True} if rgb else {"colormap": source.colormap}
    limits = source.contrast_limits
    if inpainted is not None and inpainted is not result.inpainted:
        limits = _limits(inpainted)
    for k, image in enumerate([] if inpainted is None else inpainted):
        _put_image(
            layers, f"{target.name} inpainted {k}", image,
            {"role": "inpainted", "region": k, "owner": owner},
            contrast_limits=limits, **look, **spatial,
        )
    if result.error is None:
        return
    _put_image(
        layers, f"{target.name} error", result.error,
        {"role": "error", "owner": owner}, colormap="magma",
        contrast_limits=_limits(result.error), **spatial,
    )
    for layer in list(layers):
        info = layer.metadata.get(IEM_KEY, {})
        if info.get("owner") == owner and info.get("region", -1) >= result.regions:
            layers.remove(layer)


def _put_image(layers, name: str, data: np.ndarray, info: dict, **kwargs) -> None:
    """Update the plugin's Image layer ``name``, or add it hidden."""
    for layer in layers:
        old = layer.metadata.get(IEM_KEY, {})
        if isinstance(layer, Image) and old.get("owner") == info["owner"] and (
            old.get("role"), old.get("region")
        ) == (info["role"], info.get("region")):
            layer.data = data
            layer.contrast_limits = kwargs["contrast_limits"]
            return
    layers.append(
        Image(data, name=name, visible=False, metadata={IEM_KEY: info}, **kwargs)
    )


def _limits(data: np.ndarray) -> tuple[float, float]:
    """Contrast limits for a map: 0 to its maximum (or 1 when it is all 0)."""
    high = float(np.nanmax(data)) if data.size else 0.0
    return 0.0, high if high > 0 else 1.0


def flip_output(layers, target: Labels) -> None:
    """Swap foreground and background of a two-region output and its inpaintings.

    The user's edits and locks are kept: the record of what the plugin wrote flips
    too, so an edited layer stays edited at the same pixels.
    """
    data = np.asarray(target.data)
    if target.metadata[IEM_KEY]["regions"] != 2 or data.max(initial=0) > 1:
        raise ValueError(
            f"Flip swaps the two regions of a 2-partition result; '{target.name}' "
            "has more labels. Run with 2 partitions to flip."
        )
    target.data = (1 - data).astype(data.dtype)
    target.metadata[WRITTEN_KEY] = (1 - target.metadata[WRITTEN_KEY]).astype(data.dtype)
    owner = str(target.unique_id)
    maps = {
        layer.metadata[IEM_KEY]["region"]: layer
        for layer in layers
        if layer.metadata.get(IEM_KEY, {}).get("owner") == owner
        and layer.metadata[IEM_KEY]["role"] == "inpainted"
    }
    if set(maps) == {0, 1}:
        maps[0].data, maps[1].data = maps[1].data, maps[0].data
