"""One validated request: everything a run needs, checked before any work.

Every entry point (``segment``, ``iter_segment``, ``segment_batch``, the widget, the CLI
and the batch runner) turns what it was given into a :class:`SegmentRequest` with
:func:`build_request` and hands it to :mod:`napari_iem.engine.pipeline`.  All checks
happen here, once, with messages that name the knob, the value and what is allowed;
the pipeline can then trust its input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .autopreset import resolve_preset
from .caller import warn_at_caller
from .devices import resolve_device
from .knobs import RUN_KNOBS, check_knobs
from .layout import Layout, plan_layout, spatial_scale
from .memory import check_memory, estimate_bytes, input_words
from .preprocess import (check_image, plain_array, refuse_empty, refuse_unknown_size,
                         settle_intensity, working_shape)
from .presets import IEMParams, get_preset

__all__ = ["SegmentRequest", "build_request", "check_init", "check_instance_options",
           "check_keywords"]

#: Keywords besides the knobs: the data a run is about, and how to read its axes.
DATA_KEYWORDS = ("channel_axis", "init", "locked", "scale", "instance_options")


@dataclass(frozen=True)
class SegmentRequest:
    """A checked run: the image, how to read it, and every parameter settled.

    ``preset`` is the preset that runs (what ``"default"`` picked for this image);
    ``params`` are its parameters with the caller's overrides and the intensity rule
    settled for this image.  ``init`` and ``locked`` have the output's shape.
    """

    image: np.ndarray
    layout: Layout
    regions: int
    preset: str
    params: IEMParams
    device: torch.device
    scale: tuple[float, ...] | None = None
    sigma_units: str = "pixels"
    init: np.ndarray | None = None
    locked: np.ndarray | None = None
    flip: bool = False
    refine: bool = False
    instances: bool = False
    instance_options: dict = field(default_factory=dict)
    maps: bool = True


def build_request(image, regions=2, *, channel_axis=None, init=None, locked=None,
                  scale=None, instance_options=None, **knobs) -> SegmentRequest:
    """Check everything about a run and return it as a :class:`SegmentRequest`.

    Takes the arguments of :func:`napari_iem.segment`.  Raises a ValueError (a
    :class:`~napari_iem.engine.knobs.KnobError` for a knob) that says what is wrong and
    what is allowed, before any copy of the image is made.
    """
    given, init = check_keywords(regions, init, knobs)
    run = {k.name: given.pop(k.name, k.default) for k in RUN_KNOBS}
    if not hasattr(image, "shape"):  # a list, a PIL image: nothing lazy to wait for
        image = plain_array(image)
    # the shape alone first: a lazy array (dask, zarr) is read only once it fits
    refuse_unknown_size(image.shape)
    refuse_empty(image.shape)
    layout = plan_layout(image.shape, run["mode"], channel_axis)
    device = resolve_device(run["device"])
    _check_memory_early(layout, run, given, device, start=init is not None,
                        read=0 if isinstance(image, np.ndarray) else _bytes(image))
    image = check_image(plain_array(image))
    _warn_if_alpha_varies(image, layout)
    init, locked = check_init(init, locked, layout.output_shape, run["regions"])
    if locked is not None and run["flip"]:
        raise ValueError("flip would change locked pixels; flip the init labels instead")
    scale = spatial_scale(scale, layout)
    if run["sigma_units"] == "physical" and scale is None:
        raise ValueError("sigma_units='physical' needs the pixel spacing: pass scale=")
    instance_options = check_instance_options(instance_options, run["instances"],
                                              len(layout.spatial), scale)
    preset = resolve_preset(run["preset"], image, channel_axis)
    # intensity "auto" settled once for the whole input (a stack's slices alike)
    params = settle_intensity(get_preset(preset).replace(**given), image)
    if init is not None:  # the user's labels keep their numbers (no foreground rule)
        params = params.replace(foreground="init")
    return SegmentRequest(
        image=image, layout=layout, regions=run["regions"], preset=preset, params=params,
        device=device, scale=scale, sigma_units=run["sigma_units"], init=init,
        locked=locked, flip=run["flip"], refine=run["refine"],
        instances=run["instances"], instance_options=instance_options,
        maps=run["maps"],
    )


def check_keywords(regions, init, knobs: dict) -> tuple[dict, object]:
    """The knobs checked, and ``init`` as labels: a text ``init`` names a start (the
    ``init`` knob) instead, a :class:`torch.device` is the device it names; returns
    ``(knobs, labels or None)``.  Depends on no image, so that
    :func:`napari_iem.segment_batch` checks its keywords once."""
    if isinstance(init, str):
        knobs, init = {**knobs, "init": init}, None
    if isinstance(knobs.get("device"), torch.device):
        knobs = {**knobs, "device": str(knobs["device"])}
    return check_knobs({"regions": regions, **knobs}, also=DATA_KEYWORDS), init


def _bytes(array) -> int:
    """The bytes of ``array`` once read into memory (its dtype's, or 8 a value)."""
    itemsize = getattr(getattr(array, "dtype", None), "itemsize", 8)
    return math.prod(array.shape) * int(itemsize)


def _check_memory_early(layout, run: dict, given: dict, device, start: bool,
                        read: int) -> None:
    """Refuse from the shape alone, before the image is scanned or copied.

    The preset is not picked yet (``default`` looks at the pixels), so the working
    size is the caller's ``max_size`` or the named preset's; the pipeline checks again,
    exactly, once the preset is known.  ``start``: the caller gave start labels, which
    are copied as int64 (and their locks as bool) next to the image; ``read``: the
    bytes a lazy input (Dask, zarr) takes once read, which a numpy input has already.
    """
    name = run["preset"] if run["preset"] not in ("default", "auto") else "photo"
    max_size = given.get("max_size", get_preset(name).max_size)
    work = working_shape(layout.spatial, max_size)
    problems = math.prod(layout.lead) if layout.lead else 1
    need = estimate_bytes(layout.spatial, layout.channels, run["regions"], work,
                          maps=run["maps"], problems=problems)
    need["host"] += read + (9 * math.prod(layout.output_shape) if start else 0)
    check_memory(need, device, what=input_words(layout),
                 asked={"max_size": max_size, "mode": layout.mode, "maps": run["maps"]})


def _warn_if_alpha_varies(image: np.ndarray, layout: Layout) -> None:
    """Say so when a trailing axis of 4, read as RGBA, has a 4th channel that is not
    one value: it is dropped as alpha, but it may be transparency that matters or a
    fourth stain (a micrograph's four channels), which ``channel_axis=-1`` keeps."""
    if layout.rgb and layout.shape[-1] == 4:
        alpha = image[..., 3]
        if alpha.min() != alpha.max():
            warn_at_caller("the image's last axis of 4 is read as RGBA and its 4th "
                           "channel, which varies, is dropped as alpha; pass "
                           "channel_axis=-1 to segment all four channels")


def check_instance_options(options, instances: bool, nsp: int, scale) -> dict:
    """``options`` for :func:`~napari_iem.analysis.instances.split_instances`, tried
    on a small mask of the run's ``nsp`` axes now: a wrong keyword or value is
    refused before the run, not after it, when the split would fail."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"instance_options must be a dict of split_instances keywords, "
                         f"got {type(options).__name__}")
    if options and not instances:
        raise ValueError("instance_options set how objects are split: they need "
                         "instances=True")
    if options:
        from ..analysis.instances import split_instances

        mask = np.zeros((9,) * nsp, bool)
        mask[(slice(2, 7),) * nsp] = True
        try:  # with the spacing the run gives it (finish._split_all)
            split_instances(mask, **{"spacing": scale, **options})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"instance_options: {exc}") from None
    return dict(options)


def check_init(init, locked, shape, regions: int):
    """Validate a starting labelling and its locked pixels against the output ``shape``.

    Returns ``(init as int64, locked as bool)``, or ``(None, None)`` without ``init``.
    Labels must be whole numbers in ``0..regions-1`` (whole-valued floats are accepted,
    NaN and fractions are not: truncating them would silently change the user's
    labels); ``locked`` must be boolean or 0/1.
    """
    if init is None:
        if locked is not None:
            raise ValueError("locked pixels need an init labelling to lock")
        return None, None
    init = plain_array(init, "init")
    if init.shape != tuple(shape):
        raise ValueError(
            f"init labels have shape {init.shape}, the image (without channels) "
            f"{tuple(shape)}: they must match"
        )
    if init.dtype.kind == "f":
        if not np.isfinite(init).all() or not np.equal(np.mod(init, 1), 0).all():
            raise ValueError("init labels must be whole numbers (found NaN, infinite or "
                             "fractional values)")
    elif init.dtype.kind not in "biu":
        raise ValueError(f"init labels must be integers, got dtype {init.dtype}")
    if init.size and (init.min() < 0 or init.max() >= regions):
        raise ValueError(
            f"init labels must lie in 0..{regions - 1} for regions={regions}, "
            f"found {init.min()}..{init.max()}"
        )
    init = init.astype(np.int64)
    if locked is not None:
        locked = plain_array(locked, "locked")
        if locked.shape != init.shape:
            raise ValueError(f"locked mask has shape {locked.shape}, init {init.shape}")
        if locked.dtype != bool and not np.isin(locked, (0, 1)).all():
            raise ValueError("locked must be a boolean mask (True where a pixel's init "
                             "label must stay)")
        locked = locked.astype(bool)
    return init, locked
