"""Offline sample images for the IEM plugin (File > Open Sample > IEM segmentation).

All come from images bundled with scikit-image or are generated: nothing is downloaded.
"""
from __future__ import annotations

import numpy as np
from skimage import data


def coffee():
    """A natural RGB photo: a cup of coffee on a saucer (scikit-image)."""
    return [(data.coffee(), {"name": "coffee", "rgb": True})]


def tissue():
    """Brightfield microscopy: immunohistochemistry-stained tissue, RGB (scikit-image)."""
    return [(data.immunohistochemistry(), {"name": "tissue (IHC)", "rgb": True})]


def cell():
    """Grey microscopy: a single cell floating in saline (scikit-image)."""
    return [(data.cell(), {"name": "cell"})]


def textured_disc(size: int = 128, seed: int = 0) -> np.ndarray:
    """A striped disc on a noisy background: the textbook IEM case.

    Parameters
    ----------
    size : int
        Side of the square image in pixels.
    seed : int
        Seed of the background noise.

    Returns
    -------
    ndarray of float32, shape (size, size), values in [0, 1]
    """
    yy, xx = np.mgrid[:size, :size] / size
    inside = (yy - 0.5) ** 2 + (xx - 0.45) ** 2 < 0.3**2
    stripes = 0.65 + 0.25 * np.sin(2 * np.pi * 8 * (xx + yy))
    noise = np.random.default_rng(seed).normal(0.25, 0.08, (size, size))
    return np.clip(np.where(inside, stripes, noise), 0, 1).astype(np.float32)


def disc():
    """The synthetic :func:`textured_disc`, 128x128."""
    return [(textured_disc(), {"name": "textured disc"})]
