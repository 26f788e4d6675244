"""Overlays: an image with its regions tinted and outlined, for a quick look.

Drawn for display, not analysis: non-8-bit images are stretched by robust percentiles,
and every region boundary is drawn in yellow.  Written atomically like every output.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .write import atomic_output

__all__ = ["overlay_rgb", "write_overlay"]


def _display_rgb(image: np.ndarray) -> np.ndarray:
    """An image as float RGB in [0, 1] for display (robust contrast for non-8-bit)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3]
    elif img.ndim == 3:
        img = img[..., 0]
    elif img.ndim != 2:
        raise ValueError(f"an overlay needs a 2-D image, got shape {img.shape}")
    if img.dtype == np.uint8:
        f = img.astype(np.float32) / 255.0
    else:
        f = img.astype(np.float32)
        lo, hi = np.percentile(f, [0.5, 99.5]) if f.size else (0.0, 1.0)
        f = np.clip((f - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(f)
    if f.ndim == 2:
        f = np.repeat(f[..., None], 3, axis=-1)
    return f


def overlay_rgb(image: np.ndarray, labels: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """The image with regions tinted and their boundaries drawn, as uint8 RGB.

    Label 0 (background) is not tinted; every other region gets a colour, and all
    region boundaries are drawn in yellow.
    """
    from skimage.color import label2rgb
    from skimage.segmentation import mark_boundaries

    labels = np.asarray(labels)
    rgb = _display_rgb(image)
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image shape {rgb.shape[:2]} and labels shape {labels.shape} differ")
    tinted = label2rgb(labels, image=rgb, bg_label=0, bg_color=None, alpha=alpha,
                       image_alpha=1.0, kind="overlay", saturation=1.0)
    if labels.max() == 0:
        tinted = rgb
    marked = mark_boundaries(tinted, labels, color=(1.0, 1.0, 0.0), mode="inner")
    return np.clip(marked * 255 + 0.5, 0, 255).astype(np.uint8)


def write_overlay(image: np.ndarray, labels: np.ndarray, path: str | os.PathLike) -> Path:
    """Write :func:`overlay_rgb` of ``image`` and ``labels`` as a PNG, atomically."""
    import imageio.v3 as iio

    path = Path(path)
    rgb = overlay_rgb(image, labels)
    with atomic_output(path) as tmp:
        iio.imwrite(tmp, rgb, extension=".png")
    return path
