"""How an input array's axes are read: channels, stacks, time series, volumes, units.

An input array is read as ``(*leading, *spatial)`` plus one channel axis:

* ``mode="2d"`` (default): one 2-D image ``(Y, X)``; no leading axes allowed.
* ``mode="slices"``: the last two non-channel axes are a 2-D image; every leading axis
  (Z, T, ...) is iterated and each plane segmented on its own.
* ``mode="volume"``: the last three non-channel axes ``(Z, Y, X)`` are one 3-D problem
  (3-D separable Gaussian, 6-neighbour boundary band, 3x3x3 smoothing); leading axes
  (T) are iterated.

Channels: ``channel_axis`` names the axis holding channels (any position); without it a
trailing axis of length 3 or 4 beyond the spatial ones is RGB(A) (alpha dropped).  The
labels have the input's shape minus the channel axis.

Intensities are scaled once for the whole array (every slice and time point alike, per
channel; see :mod:`napari_iem.engine.preprocess` for the rule), so an empty slice stays dark
instead of being stretched into noise.

Anisotropy: ``scale`` gives the pixel spacing of the spatial axes (a napari layer's
``scale``).  With ``sigma_units="pixels"`` (default) ``sigma`` is in pixels of the finest
spatial axis and the coarser axes get proportionally smaller sigmas (a z step 5x the xy
step: ``sigma_z = sigma / 5``); with ``sigma_units="physical"`` it is in the scale's
units on every axis.  Either way it is measured on the working grid (after
``max_size``), like the 2-D engine's sigma.

3-D smoothing: the 2-D rule counts the label among 9 pixels; in 3-D the 27 voxels of the
3x3x3 neighbourhood are counted and the threshold keeps the same fraction,
``3 * smooth_threshold`` (4 of 9 -> 12 of 27, the default 5 of 9 -> 15 of 27).

"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

__all__ = ["MODES", "SIGMA_UNITS", "Layout", "plan_layout", "channels_last", "axis_sigmas",
           "smooth_threshold_for", "spatial_scale"]

MODES = ("2d", "slices", "volume")
SIGMA_UNITS = ("pixels", "physical")


@dataclass(frozen=True)
class Layout:
    """How an input array's axes are read."""

    shape: tuple[int, ...]  # the input's shape
    mode: str
    channel_axis: int | None  # non-negative, or None
    rgb: bool  # a trailing RGB(A) axis was detected
    lead: tuple[int, ...]  # iterated axes
    spatial: tuple[int, ...]  # 2 or 3 spatial axes
    channels: int  # C (1 for grey)

    @property
    def has_channels(self) -> bool:
        return self.channel_axis is not None or self.rgb

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.lead + self.spatial

    @property
    def problems(self) -> int:
        return math.prod(self.lead)


def plan_layout(shape, mode: str = "2d", channel_axis: int | None = None) -> Layout:
    """Read ``shape`` as leading, spatial and channel axes (see the module docstring)."""
    shape = tuple(int(n) for n in shape)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    nsp = 3 if mode == "volume" else 2
    rgb = False
    if channel_axis is not None:
        channel_axis = _axis(channel_axis, shape)
        rest = shape[:channel_axis] + shape[channel_axis + 1:]
        channels = shape[channel_axis]
    elif len(shape) > nsp and shape[-1] in (3, 4):
        rgb, rest, channels = True, shape[:-1], 3
    elif len(shape) == nsp == 3 and shape[-1] in (3, 4):  # too thin a volume anyway
        raise ValueError(
            f"mode='volume' reads shape {shape} as Z, Y, X, X of {shape[-1]} pixels: a "
            "colour image is one 2-D image; segment it without mode='volume' (or name "
            "its colour axis with channel_axis=)"
        )
    else:
        rest, channels = shape, 1
    if len(rest) < nsp:
        raise ValueError(
            f"mode={mode!r} needs {nsp} spatial axes; shape {shape} has {len(rest)} "
            "besides channels"
        )
    lead, spatial = rest[: len(rest) - nsp], rest[len(rest) - nsp:]
    if mode == "2d" and lead:
        raise ValueError(
            f"shape {shape} has more axes than a 2-D image: use mode='slices' to segment "
            "every 2-D plane, mode='volume' for a 3-D stack, or channel_axis= for the "
            "axis holding channels"
        )
    return Layout(shape, mode, channel_axis, rgb, lead, spatial, channels)


def _axis(channel_axis, shape: tuple[int, ...]) -> int:
    """``channel_axis`` as a non-negative axis of ``shape``; a ValueError naming it
    for anything else (a bool, a float, a text: numpy's own errors would not)."""
    try:
        axis = None if isinstance(channel_axis, bool) else operator.index(channel_axis)
    except TypeError:
        axis = None
    if axis is None or not -len(shape) <= axis < len(shape):
        raise ValueError(
            f"channel_axis={channel_axis!r} is not an axis of an array of shape {shape}: "
            f"give a whole number from {-len(shape)} to {len(shape) - 1}"
        )
    return axis % len(shape)


def channels_last(image: np.ndarray, layout: Layout) -> np.ndarray:
    """A view ``(*lead, *spatial, C)`` of ``image``."""
    if layout.channel_axis is not None:
        return np.moveaxis(image, layout.channel_axis, -1)
    if layout.rgb:
        return image[..., :3]
    return image[..., None]


def axis_sigmas(sigma: float, scale=None, units: str = "pixels", work_factor=None
                ) -> tuple[float, ...] | float:
    """Per-axis sigma in working pixels (see the module docstring).

    ``scale``: spacing per spatial axis (None: isotropic); ``work_factor``: full size
    over working size per axis (the working pixel is that many input pixels).
    """
    if units not in SIGMA_UNITS:
        raise ValueError(f"sigma_units must be one of {SIGMA_UNITS}, got {units!r}")
    if scale is None:
        if units == "physical":
            raise ValueError("sigma_units='physical' needs the pixel spacing: pass scale=")
        return sigma
    scale = np.asarray(scale, dtype=np.float64)
    if scale.ndim != 1 or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"scale must be positive numbers, one per spatial axis, got {scale}")
    factor = np.ones_like(scale) if work_factor is None else np.asarray(work_factor, float)
    spacing = scale * factor  # physical size of one working pixel
    if units == "physical":
        out = sigma / spacing
    else:
        out = sigma * spacing.min() / spacing
    return tuple(float(s) for s in out)


def smooth_threshold_for(threshold: int, nd: int) -> int:
    """The smoothing threshold among ``3**nd`` pixels that keeps the 2-D fraction."""
    return int(threshold) * 3 ** (nd - 2)


def spatial_scale(scale, layout: Layout):
    """The spacing of the spatial axes from a scale of every axis or of the spatial
    ones (None stays None), checked: positive finite numbers, one per axis (a text
    ``"11"`` would otherwise read as two spacings of 1)."""
    if scale is None:
        return None
    try:
        values = np.asarray(scale)
    except ValueError:  # ragged
        values = np.asarray(None)
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        raise ValueError(f"scale must be a sequence of numbers, the pixel spacing of "
                         f"each axis, e.g. scale=(2.0, 0.5, 0.5); got {scale!r}")
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"scale must be positive numbers (a spacing), got {scale!r}")
    scale = tuple(float(s) for s in values)
    nsp = len(layout.spatial)
    no_channel = len(layout.shape) - (1 if layout.has_channels else 0)
    if len(scale) == no_channel:  # a layer's scale: every non-channel axis
        return scale[-nsp:]
    if len(scale) == nsp:
        return scale
    every = f" or one per non-channel axis ({no_channel})" if no_channel != nsp else ""
    raise ValueError(  # "scale=": the command line says --scale, as its user typed
        f"give scale= one value per spatial axis ({nsp}){every}, got {len(scale)}"
    )
