"""``preset="auto"``: choose between the photo and the micrograph defaults from the image.

IEM's two defaults differ in what they assume about the picture (see
:mod:`napari_iem.presets`): ``default`` starts from a centred square, for one object
near the middle of a photo; ``microscopy`` starts from a two-colour k-means partition
with a finer inpainter, for many small objects scattered over a micrograph.  The choice
uses only the image:

* not 8-bit, not three channels, or three equal channels (a grey picture stored as RGB):
  a micrograph (16-bit and float cameras, fluorescence, multichannel stacks);
* an 8-bit colour picture is a micrograph when its two-class Otsu partition (grey,
  lightly smoothed, at most 256 pixels a side) has many separate objects and no dominant
  one: at least ``MIN_OBJECTS`` components in the minority class and the largest holding
  less than ``MAX_LARGEST_SHARE`` of it (stained tissue, H&E); otherwise a photo.

The user can always name a preset instead of ``"auto"``; the choice is recorded in
``result.params["preset"]`` (with ``result.params["requested_preset"] == "auto"``).
"""
from __future__ import annotations

import numpy as np

from .colour import is_grey_rgb

MIN_OBJECTS = 8
MAX_LARGEST_SHARE = 0.4
#: components smaller than this share of the image do not count as objects
MIN_OBJECT_SHARE = 5e-4
ANALYSIS_SIZE = 256


def object_statistics(grey: np.ndarray) -> tuple[int, float]:
    """Objects in the minority class of Otsu's partition, and the largest one's share."""
    from skimage.filters import gaussian, threshold_otsu
    from skimage.measure import label
    from skimage.transform import resize

    g = grey.astype(np.float64)
    f = ANALYSIS_SIZE / max(g.shape)
    if f < 1:
        g = resize(g, tuple(max(1, round(n * f)) for n in g.shape), anti_aliasing=True)
    g = gaussian(g, 1.0)
    if g.min() == g.max():
        return 0, 1.0
    fg = g > threshold_otsu(g)
    if fg.mean() > 0.5:
        fg = ~fg
    sizes = np.bincount(label(fg).ravel())[1:]
    if sizes.size == 0:
        return 0, 1.0
    n = int((sizes >= MIN_OBJECT_SHARE * fg.size).sum())
    return n, float(sizes.max() / sizes.sum())


def choose_preset(image: np.ndarray, channel_axis: int | None = None) -> str:
    """``"default"`` (photos) or ``"microscopy"`` for ``image``; see the module doc."""
    image = np.asarray(image)
    if channel_axis is not None:
        image = np.moveaxis(image, channel_axis, -1)
        if image.shape[-1] == 1:
            image = image[..., 0]
    if image.dtype != np.uint8:
        return "microscopy"
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim != 3 or image.shape[-1] != 3 or is_grey_rgb(image):
        return "microscopy"
    n, largest = object_statistics(image.mean(-1))
    if n >= MIN_OBJECTS and largest < MAX_LARGEST_SHARE:
        return "microscopy"
    return "default"


AUTO = "auto"


def resolve_preset(preset: str, image, channel_axis: int | None = None) -> str:
    """``preset`` itself, or for ``"auto"`` the preset :func:`choose_preset` picks."""
    return choose_preset(image, channel_axis) if preset == AUTO else preset


def group_by_preset(images, channel_axis: int | None = None) -> dict[str, list[int]]:
    """Indices of ``images`` per preset chosen for them by ``"auto"``."""
    groups: dict[str, list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(choose_preset(image, channel_axis), []).append(i)
    return groups
