"""napari layers -> n-D engine inputs: modes, channel axes, channel layers, scale.

The dock widget segments the displayed plane ("current slice"), every plane of a layer
("every slice") or its last three axes as volumes ("volume"); channels come from the
layer's RGB axis, from one of its axes the user names, or from several Image layers of
one shape used together (as napari makes them with ``viewer.add_image(data,
channel_axis=...)``).  Only what a run needs is read, once: the displayed plane is taken
from a dask or zarr array before it is computed, every slice or volume is read in one
pass, and a multiscale layer is read at the level the run asks for
(:mod:`napari_iem._napari.pyramid`).  The displayed plane the ``default`` preset looks
at comes from what was read.  No Qt here.
"""
from __future__ import annotations

import numpy as np
from napari.layers import Image

from ..engine.preprocess import MIN_SIDE
from .layers import plane_index, source_array
from .pyramid import level_array, level_index

#: Widget mode -> engine mode.
MODES = {"current slice": "2d", "every slice": "slices", "volume": "volume"}
NO_CHANNEL_AXIS = "none"


def check_channel_layers(source: Image, extra) -> list[Image]:
    """Extra Image layers used as channels: same shape as ``source``, not RGB."""
    extra = [lay for lay in extra if lay is not source]
    for lay in [source, *extra] if extra else []:
        if lay.rgb:
            raise ValueError(f"'{lay.name}' is RGB: channel layers must be single-channel")
    shape = source_array(source).shape
    for lay in extra:
        if source_array(lay).shape != shape:
            raise ValueError(
                f"channel layer '{lay.name}' has shape {source_array(lay).shape}, "
                f"'{source.name}' {shape}: channel layers must have one shape"
            )
    return extra


def gather(source: Image, mode: str, *, channel_axis=None, extra=(),
           world_point=None, level: int = 0) -> dict:
    """The engine input for ``source`` in widget ``mode``, read from pyramid ``level``.

    Returns a dict with ``data`` (the array), ``channel_axis`` (of ``data``, or None),
    ``engine_mode``, ``axes`` (the layer axes the output keeps: every non-channel axis,
    for its shape, scale and translate), ``shape`` (the output's shape on those axes,
    at level 0), ``index`` (for "current slice", the plane's index on the leading ones
    of ``axes``, at level 0; else ``()``), ``nsp`` (2 or 3 spatial axes), the same
    at the level read (``run_shape``, ``run_index``) and ``plane``, the displayed plane
    of ``source`` at that level (RGB kept), taken from what was read.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    engine_mode = MODES[mode]
    extra = check_channel_layers(source, extra)
    full = source_array(source)
    ndim = source.ndim  # napari's dims (an RGB axis is not one)
    if channel_axis is not None and extra:
        raise ValueError("use either a channel axis or channel layers, not both")
    if source.rgb and channel_axis is not None:
        raise ValueError(f"'{source.name}' is RGB: its colour axis is the channel axis")
    nsp = 3 if engine_mode == "volume" else 2
    if ndim > 2 and not source.rgb and full.shape[-1] < MIN_SIDE:
        raise ValueError(
            f"'{source.name}' is {'x'.join(map(str, full.shape))}: napari shows it as "
            f"planes of {full.shape[-2]}x{full.shape[-1]} pixels. Channels last? Add it "
            "with viewer.add_image(data, channel_axis=-1) and pick the layers under "
            "more channels"
        )
    if channel_axis is not None:
        channel_axis = int(channel_axis) % ndim
        if channel_axis >= ndim - nsp:
            raise ValueError(
                f"channel axis {channel_axis} is one of the image axes of '{source.name}'"
                f" (the last {nsp}): pick a leading axis, or open the file with "
                "channel_axis= so that napari makes one layer per channel"
            )
    keep = [a for a in range(ndim) if a != channel_axis]
    if len(keep) < nsp:
        raise ValueError(f"'{source.name}' has {len(keep)} non-channel axes; "
                         f"mode '{mode}' needs {nsp}")
    arrays = [level_array(lay, level) for lay in (source, *extra)]
    index: tuple[int, ...] = ()
    run_index: tuple[int, ...] = ()
    lead: list[int] = []
    if engine_mode == "2d":  # the displayed plane: index every leading axis
        lead = keep[:-2]
        index = plane_index(source, lead, world_point)
        run_index = level_index(index, lead, source, level)
        take = [slice(None)] * full.ndim
        for a, i in zip(lead, run_index):
            take[a] = i
        arrays = [arr[tuple(take)] for arr in arrays]
        if channel_axis is not None:
            channel_axis -= sum(a < channel_axis for a in lead)
    run_shape = tuple(level_array(source, level).shape[a] for a in keep)
    arrays = [np.asarray(arr) for arr in arrays]  # read now, once, only what is needed
    rest = [a for a in range(ndim - 2) if a not in lead]  # leading axes still in it
    plane = arrays[0][level_index(plane_index(source, rest, world_point), rest, source,
                                  level)]
    if extra:
        data = np.stack(arrays, axis=-1)
        channel_axis = data.ndim - 1
    else:
        data = arrays[0]
    if source.rgb:
        channel_axis = None  # the engine reads a trailing RGB(A) axis itself
    return {"data": data, "channel_axis": channel_axis, "index": index, "axes": keep,
            "shape": tuple(full.shape[a] for a in keep), "engine_mode": engine_mode,
            "nsp": nsp, "run_shape": run_shape, "run_index": run_index, "plane": plane}

