"""``preset="default"``: choose between the photo and the micrograph presets from the image.

IEM's two presets for real work differ in what they assume about the picture (see
:mod:`napari_iem.engine.presets`): ``photo`` starts from a centred square, for one object
near the middle of a photo; ``microscopy`` starts from a two-colour k-means partition
with a finer inpainter, for many small objects scattered over a micrograph.  The choice
uses only the image:

* not 8-bit, not three channels, or three equal channels (a grey picture stored as RGB):
  a micrograph (16-bit and float cameras, fluorescence, multichannel stacks);
* an 8-bit colour picture is a photo when the colours of its centre differ from those
  of the frame around it, and a micrograph when they do not.  The photo preset starts
  from the centred square (the middle three fifths of each axis) and bets on one
  object there; where the square and the frame share nearly all of their colours
  (Bhattacharyya coefficient of coarse L*a*b* histograms at least ``1 -
  MAX_CENTRE_CONTRAST``) there is no such object to start from, and objects are
  scattered over the field (stained tissue, H&E, a star field): the k-means start of
  ``microscopy`` is the one that can reach them.

The user can always name a preset instead of ``"default"``; the choice is recorded in
``result.params["preset"]``.
"""
from __future__ import annotations

import numpy as np

from .colour import is_grey_rgb
from .presets import DEFAULT_PRESET, preset_name

#: 1 - the Bhattacharyya coefficient below which the centre looks like the frame
MAX_CENTRE_CONTRAST = 0.05
ANALYSIS_SIZE = 256
BINS = 8  # per L*a*b* channel, between its 1st and 99th percentiles


def centre_contrast(rgb: np.ndarray) -> float:
    """How far the colours of the centre square of ``rgb`` are from those of its frame.

    ``1 - sum(sqrt(p_centre * p_frame))`` over coarse L*a*b* histograms: 0 when the
    centre square (the photo preset's start, ``[n // 5, n - n // 5)`` on each axis) and
    the frame around it have the same colour distribution, 1 when they share no colour.
    Computed at most ``ANALYSIS_SIZE`` pixels a side, so that it costs little on any
    image.
    """
    from skimage.color import rgb2lab
    from skimage.util import img_as_float

    from .resample import downsample

    step = max(rgb.shape[:2]) // (4 * ANALYSIS_SIZE)
    if step > 1:  # a whole slide: thin it out before the anti-aliased resize's copies
        rgb = rgb[::step, ::step]
    f = ANALYSIS_SIZE / max(rgb.shape[:2])
    if f < 1:  # skimage's anti-aliased resize, in a third of its time (engine/resample.py)
        work = tuple(max(1, round(n * f)) for n in rgb.shape[:2])
        rgb = np.moveaxis(downsample(np.moveaxis(img_as_float(rgb), -1, 0), work), 0, -1)
    h, w = rgb.shape[:2]
    lab = rgb2lab(rgb).reshape(-1, 3)
    low, high = np.percentile(lab, [1, 99], axis=0)
    q = ((lab - low) / np.maximum(high - low, 1e-6) * BINS).astype(int).clip(0, BINS - 1)
    colour = (q[:, 0] * BINS + q[:, 1]) * BINS + q[:, 2]
    centre = np.zeros((h, w), bool)
    centre[h // 5 : h - h // 5, w // 5 : w - w // 5] = True
    centre = centre.ravel()
    if centre.all() or not centre.any():  # too small to have a frame
        return 1.0
    p_centre = np.bincount(colour[centre], minlength=BINS**3) / centre.sum()
    p_frame = np.bincount(colour[~centre], minlength=BINS**3) / (~centre).sum()
    return float(1 - np.sqrt(p_centre * p_frame).sum())


def choose_preset(image: np.ndarray, channel_axis: int | None = None) -> str:
    """``"photo"`` or ``"microscopy"`` for ``image``; see the module doc."""
    return explain_choice(image, channel_axis)[0]


def explain_choice(image: np.ndarray, channel_axis: int | None = None) -> tuple[str, str]:
    """The preset :func:`choose_preset` picks for ``image`` and, in a few words, why
    (for the widget's tooltip)."""
    image = np.asarray(image)
    if channel_axis is not None:
        image = np.moveaxis(image, channel_axis, -1)
        if image.shape[-1] == 1:
            image = image[..., 0]
    if image.dtype != np.uint8:
        return "microscopy", f"{image.dtype} data, not an 8-bit picture"
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim != 3 or image.shape[-1] != 3:
        return "microscopy", "not a colour picture"
    if is_grey_rgb(image):
        return "microscopy", "a grey picture stored as RGB"
    contrast = centre_contrast(image)
    if contrast < MAX_CENTRE_CONTRAST:
        return "microscopy", (f"its centre looks like its frame (colour contrast "
                              f"{contrast:.2f}): objects all over")
    return "photo", (f"its centre differs from its frame (colour contrast {contrast:.2f}): "
                     "an object in the middle")


def resolve_preset(preset: str, image, channel_axis: int | None = None) -> str:
    """``preset`` itself, or for ``"default"`` the preset :func:`choose_preset` picks."""
    name = preset_name(preset)
    return choose_preset(image, channel_axis) if name == DEFAULT_PRESET else name


def group_by_preset(images, channel_axis: int | None = None) -> dict[str, list[int]]:
    """Indices of ``images`` per preset chosen for them by ``"default"``."""
    groups: dict[str, list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(choose_preset(image, channel_axis), []).append(i)
    return groups
