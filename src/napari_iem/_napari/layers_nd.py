"""napari layers <-> n-D engine inputs: modes, channel axes, channel layers, scale.

The dock widget segments the displayed plane ("current slice", the 2-D path of
:mod:`._layers`), every plane of a layer ("every slice") or its last three axes as
volumes ("volume"); channels come from the layer's RGB axis, from one of its axes the
user names, or from several Image layers of one shape used together (as napari makes
them with ``viewer.add_image(data, channel_axis=...)``).  No Qt here.
"""
from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels, Layer

from .layers import IEM_KEY, label_colormap, mark_written, run_metadata, unique_name

#: Widget mode -> engine mode (None: the displayed plane through the 2-D path).
MODES = {"current slice": None, "every slice": "slices", "volume": "volume"}
NO_CHANNEL_AXIS = "none"


def _full_data(layer: Image) -> np.ndarray:
    data = layer.data[0] if layer.multiscale else layer.data
    return np.asarray(data)


def check_channel_layers(source: Image, extra) -> list[Image]:
    """Extra Image layers used as channels: same shape as ``source``, not RGB."""
    extra = [lay for lay in extra if lay is not source]
    for lay in [source, *extra] if extra else []:
        if lay.rgb:
            raise ValueError(f"'{lay.name}' is RGB: channel layers must be single-channel")
    shape = _full_data(source).shape
    for lay in extra:
        if _full_data(lay).shape != shape:
            raise ValueError(
                f"channel layer '{lay.name}' has shape {_full_data(lay).shape}, "
                f"'{source.name}' {shape}: channel layers must have one shape"
            )
    return extra


def gather(source: Image, mode: str, *, channel_axis=None, extra=(),
           world_point=None) -> dict:
    """The engine input for ``source`` in widget ``mode``.

    Returns a dict with ``data`` (the array), ``channel_axis`` (of ``data``, or None),
    ``index`` (the plane for "current slice", else ``()``), ``axes`` (the layer axes the
    output keeps, for its scale and translate) and ``engine_mode``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    engine_mode = MODES[mode]
    extra = check_channel_layers(source, extra)
    data = _full_data(source)
    ndim = source.ndim  # napari's dims (an RGB axis is not one)
    if channel_axis is not None and extra:
        raise ValueError("use either a channel axis or channel layers, not both")
    if source.rgb and channel_axis is not None:
        raise ValueError(f"'{source.name}' is RGB: its colour axis is the channel axis")
    nsp = 3 if engine_mode == "volume" else 2
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
    arrays = [data, *(_full_data(lay) for lay in extra)]
    index: tuple[int, ...] = ()
    if engine_mode is None:  # the displayed plane: index every leading axis
        lead = keep[:-2]
        if lead:
            point = np.zeros(ndim) if world_point is None else np.asarray(world_point)
            coords = np.asarray(source.world_to_data(point))
            index = tuple(
                int(np.clip(round(coords[a]), 0, data.shape[a] - 1)) for a in lead
            )
            take = [slice(None)] * data.ndim
            for a, i in zip(lead, index):
                take[a] = i
            arrays = [arr[tuple(take)] for arr in arrays]
            if channel_axis is not None:
                channel_axis -= sum(a < channel_axis for a in lead)
        axes = keep[-2:]
    else:
        axes = keep
    if extra:
        out = np.stack(arrays, axis=-1)
        channel_axis = out.ndim - 1
    else:
        out = arrays[0]
    if source.rgb:
        channel_axis = None  # the engine reads a trailing RGB(A) axis itself
    return {"data": out, "channel_axis": channel_axis, "index": index, "axes": axes,
            "engine_mode": engine_mode, "nsp": nsp}


def spatial_kwargs_for(layer: Layer, axes) -> dict:
    """Scale, translate and units of ``layer`` on ``axes`` (the output's axes)."""
    axes = list(axes)
    return {
        "scale": tuple(np.asarray(layer.scale)[axes]),
        "translate": tuple(np.asarray(layer.translate)[axes]),
        "units": tuple(layer.units[a] for a in axes),
    }


def spatial_scale(layer: Layer, axes, nsp: int):
    """The layer's spacing on the output's last ``nsp`` axes, or None if isotropic."""
    scale = tuple(float(s) for s in np.asarray(layer.scale)[list(axes)][-nsp:])
    return None if len(set(scale)) == 1 else scale


def publish_nd(layers, source: Layer, result, axes, mode: str) -> Labels:
    """Add (or update, when unedited) the Labels layer of a whole-layer run."""
    from .layers import is_edited, outputs_of, write_labels

    meta = run_metadata(result, source, ())
    meta["mode"] = mode
    kwargs = spatial_kwargs_for(source, axes)
    target = next(
        (out for out in reversed(outputs_of(layers, source))
         if not is_edited(out) and out.data.shape == result.labels.shape
         and out.metadata[IEM_KEY].get("mode") == mode),
        None,
    )
    if target is None:
        target = Labels(
            result.labels, name=unique_name(source.name + " IEM", layers),
            metadata={IEM_KEY: meta}, colormap=label_colormap(), **kwargs,
        )
        mark_written(target, result.labels, None)
        layers.append(target)
    else:
        write_labels(target, result.labels, None, meta)
    return target


def publish_instances(layers, target: Labels, instances: np.ndarray) -> Labels:
    """The instance labels of ``target``'s run, in a Labels layer beside it."""
    owner = str(target.unique_id)
    for layer in layers:
        info = layer.metadata.get(IEM_KEY, {})
        if isinstance(layer, Labels) and info.get("role") == "instances" and \
                info.get("owner") == owner:
            layer.data = instances
            return layer
    layer = Labels(
        instances, name=unique_name(target.name + " instances", layers),
        metadata={IEM_KEY: {"role": "instances", "owner": owner}},
        scale=target.scale, translate=target.translate, units=target.units,
    )
    layers.append(layer)
    return layer
