"""napari layers <-> engine arrays, with no Qt: names, calibration, the written record.

Which plane of an Image layer a position points at, how output layers are named, which
spatial calibration they inherit, what goes into their metadata, and how a layer the
user painted is told apart from one the plugin may update.  Putting results into
layers is :mod:`napari_iem._napari.publish`.

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

from collections.abc import Iterable, Sequence

import numpy as np
from napari.layers import Image, Labels, Layer
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.transforms import CompositeAffine

from ..files.settings import settings_from_params
from .pyramid import level_array, level_index

IEM_KEY = "iem"
WRITTEN_KEY = "iem_written"
LOCKED_KEY = "iem_locked"
#: The name the plugin gave an output layer: one the user renamed is theirs to keep.
NAME_KEY = "iem_name"
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


def source_array(layer: Image):
    """The layer's full-resolution array, unread (a dask or zarr array stays lazy)."""
    return level_array(layer, 0)


def plane_index(layer: Layer, axes: Sequence[int], world_point=None) -> tuple[int, ...]:
    """The data index on ``axes`` of ``layer`` at the viewer position ``world_point``
    (``None``: index 0), clipped to the layer."""
    if not axes:
        return ()
    point = np.zeros(layer.ndim) if world_point is None else np.asarray(world_point)
    coords = np.asarray(layer.world_to_data(point))
    shape = source_array(layer).shape
    return tuple(int(np.clip(round(coords[a]), 0, shape[a] - 1)) for a in axes)


def image_plane(layer: Layer, world_point: Iterable[float] | None = None, level: int = 0):
    """The 2-D plane (RGB(A) channels kept) of an Image layer at ``world_point``.

    Parameters
    ----------
    layer : napari.layers.Layer
        Must be an Image layer.
    level : int
        The pyramid level to read, for a multiscale layer (0: full resolution).
    world_point : sequence of float, optional
        The viewer's current position (``viewer.dims.point``): for a layer of more than
        two dimensions, the plane through it along the last two axes; ``None`` takes
        index 0 on the leading axes.

    Returns
    -------
    plane : ndarray, shape (H, W) or (H, W, C)
    index : tuple of int
        The index of ``plane`` on the leading axes (empty for a 2-D layer), at level 0.

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
    lead = range(layer.ndim - 2)
    index = plane_index(layer, lead, world_point)
    return np.asarray(level_array(layer, level)[level_index(index, lead, layer, level)]), index


def spatial_kwargs(layer: Layer, axes: Sequence[int] | None = None) -> dict:
    """Scale, translate, units, rotation, shear and affine of ``layer`` on ``axes``
    (default: the last two): everything that places its pixels in the world, so that
    an output drawn with them overlays a rotated or sheared image too."""
    axes = list(range(layer.ndim - 2, layer.ndim) if axes is None else axes)
    placed = CompositeAffine(layer.scale, layer.translate, rotate=layer.rotate,
                             shear=layer.shear, ndim=layer.ndim).set_slice(axes)
    return {
        "scale": tuple(np.asarray(layer.scale)[axes]),
        "translate": tuple(np.asarray(layer.translate)[axes]),
        "units": tuple(layer.units[a] for a in axes),
        "rotate": placed.rotate,
        "shear": placed.shear,
        "affine": layer.affine.set_slice(axes).affine_matrix,
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


def run_metadata(result, source: Layer, index: tuple[int, ...], mode: str,
                 picked: dict | None = None, axes: Sequence[int] | None = None) -> dict:
    """The ``metadata["iem"]`` entry describing one IEM run on ``source``.

    Its record of how the labels were made is the one an OME-TIFF output carries
    (:func:`napari_iem.files.ome.provenance`: versions, settings, preset, parameters,
    iterations, converged, seconds, device, sigma units), so that saving the layer
    (napari's "Save layer" through the plugin's writer) keeps it; the engine's mode
    is ``engine_mode`` there, ``mode`` being the widget's ("current slice", ...), which
    Refine and reruns go by.  Beside it: the source, its plane, the layer's scale and
    units on the output's ``axes`` (default: the last two), the working shape, and
    ``picked``, how the ``default`` preset chose (``{"by": "default", "why": ...}``).
    """
    from ..files.ome import provenance

    # the same settings the widget saves and `napari-iem segment --config` reads
    settings = settings_from_params(result.params)
    record = provenance(result, {**settings, "mode": result.metadata.get("mode", "2d")})
    spatial = spatial_kwargs(source, axes)
    return {
        **record,
        "engine_mode": record.pop("mode"),
        "role": "labels",
        "mode": mode,
        "source": source.name,
        "source_id": str(source.unique_id),
        "plane": list(index),
        "regions": int(result.regions),
        "picked": picked,
        "settings": settings,
        "layer": {"scale": [float(v) for v in spatial["scale"]],
                  "translate": [float(v) for v in spatial["translate"]],
                  "units": [str(u) for u in spatial["units"]]},
        "working_shape": result.metadata.get("working_shape"),
        "iterations": int(result.iterations),
        "converged": bool(result.converged),
        "stopped_at_cap": bool(result.stopped_at_cap),
        "structure_found": bool(result.structure_found),
        "empty_planes": [list(i) for i in result.empty_problems if i],
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
    if layer.data is written:  # lazy labels as written: nothing read to tell
        return False
    data = np.asarray(layer.data)
    return data.shape != written.shape or not np.array_equal(data, written)


def is_renamed(layer: Labels) -> bool:
    """True when the user renamed an output (to keep it, as a name says): a rerun
    does not write into it, as into one they painted."""
    return layer.name != layer.metadata.get(NAME_KEY, layer.name)


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
    """Record ``data`` as what the plugin wrote, and the pixels locked so far (and, the
    first time, the name it gave the layer)."""
    layer.metadata[IEM_KEY]["layer_id"] = str(layer.unique_id)
    layer.metadata.setdefault(NAME_KEY, layer.name)
    # lazy labels (a dask array too large for memory) are their own record: unread
    layer.metadata[WRITTEN_KEY] = (np.array(data, copy=True) if isinstance(data, np.ndarray)
                                   else data)
    if locked is None or not locked.any():
        layer.metadata.pop(LOCKED_KEY, None)
    else:
        layer.metadata[LOCKED_KEY] = np.array(locked, dtype=bool, copy=True)


def end_history(layer: Labels) -> None:
    """Forget the brush strokes napari could undo in ``layer``, once the plugin has
    rewritten it: undoing one would stamp its old values over the new labels (a mix
    of two results, which the next Refine would lock as the user's edits).  napari's
    ``data`` setter keeps the history; its own reset, a private method, is the only
    way to end it (a napari without it keeps the history rather than fail the write)."""
    reset = getattr(layer, "_reset_history", None)
    if callable(reset):
        reset()


def write_labels(target: Labels, labels, locked, meta: dict) -> None:
    """Replace ``target``'s data and metadata with a run's labels."""
    target.data = labels
    end_history(target)
    target.metadata[IEM_KEY] = meta
    mark_written(target, labels, locked)


def refine_inputs(layer: Labels) -> tuple[np.ndarray, np.ndarray]:
    """Start labels and locked pixels for refining ``layer``.

    The locked pixels are those the user changed since the plugin last wrote the
    layer, together with those locked by earlier refinements.
    """
    data = np.array(layer.data, copy=True)
    written = _written_like(layer, data)
    locked = data != written
    previous = layer.metadata.get(LOCKED_KEY)
    if previous is not None:
        locked |= previous
    return data, locked


def _written_like(layer: Labels, data) -> np.ndarray:
    """What the plugin last wrote into ``layer``, which must have ``data``'s shape:
    labels of another shape (the user replaced them) cannot be refined or flipped
    pixel for pixel."""
    written = layer.metadata[WRITTEN_KEY]
    if written.shape != data.shape:
        raise ValueError(
            f"'{layer.name}' changed shape since IEM wrote it: run IEM again instead"
        )
    return written


def owned_by(layers, target: Labels, role: str) -> list[Layer]:
    """The plugin's layers of ``role`` (``"inpainted"``, ``"error"``, ``"instances"``)
    that belong to the output ``target``."""
    owner = str(target.unique_id)
    return [layer for layer in layers
            if layer.metadata.get(IEM_KEY, {}).get("owner") == owner
            and layer.metadata[IEM_KEY].get("role") == role]


def flip_output(layers, target: Labels) -> None:
    """Swap foreground and background of a two-region output and its inpaintings.

    The user's edits and locks are kept: the record of what the plugin wrote flips
    too, so an edited layer stays edited at the same pixels.  On a stack plane output
    only the planes IEM wrote flip (the others stay empty).  Lazy labels (too large
    for memory, and not painted) flip lazily, block by block as napari reads them.
    """
    lazy = target.data is target.metadata[WRITTEN_KEY] and not isinstance(
        target.data, np.ndarray)
    data = target.data if lazy else np.asarray(target.data)
    info = target.metadata[IEM_KEY]
    if info["regions"] != 2 or (not lazy and (data.max(initial=0) > 1
                                              or data.min(initial=0) < 0)):
        raise ValueError(
            f"Flip needs a 2-partition result of labels 0 and 1; '{target.name}' holds "
            "others: paint only 0 and 1, or run IEM again with 2 partitions."
        )
    planes = [tuple(p) for p in info.get("planes", [])] or [()]
    flipped, written = data.copy(), _written_like(target, data).copy()
    for plane in planes:
        flipped[plane] = 1 - data[plane]
        written[plane] = 1 - written[plane]
    target.data = flipped
    end_history(target)
    target.metadata[WRITTEN_KEY] = flipped if lazy else written  # lazy: its own record
    maps = {layer.metadata[IEM_KEY]["region"]: layer
            for layer in owned_by(layers, target, "inpainted")}
    if set(maps) == {0, 1}:
        maps[0].data, maps[1].data = maps[1].data, maps[0].data
