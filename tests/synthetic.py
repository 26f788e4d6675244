"""Synthetic test images with known answers (no files, no network)."""
from __future__ import annotations

import numpy as np


def textured_disc(size=64, radius=None, centre=None, seed=0, rgb=False):
    """A striped bright disc on a darker noisy background; returns (image uint8, truth)."""
    rng = np.random.default_rng(seed)
    radius = radius or size // 4
    cy, cx = centre or (size // 2, size // 2)
    yy, xx = np.mgrid[:size, :size]
    truth = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    fg = 175 + 35 * np.sin(xx / 1.5) + 10 * rng.standard_normal((size, size))
    bg = 70 + 25 * rng.standard_normal((size, size))
    image = np.where(truth, fg, bg).clip(0, 255).astype(np.uint8)
    if rgb:
        image = np.stack([image, image // 2 + 40, 255 - image], axis=-1)
    return image, truth


def three_regions(size=72, seed=0):
    """Background, a disc and a square, each with its own mean and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    truth = np.zeros((size, size), dtype=np.uint8)
    truth[(yy - size * 0.3) ** 2 + (xx - size * 0.3) ** 2 < (size * 0.18) ** 2] = 1
    truth[int(size * 0.55):int(size * 0.9), int(size * 0.5):int(size * 0.9)] = 2
    means = np.array([40.0, 130.0, 220.0])[truth]
    texture = np.where(truth == 1, 15 * np.sin(yy / 1.2), 8 * rng.standard_normal((size, size)))
    return (means + texture).clip(0, 255).astype(np.uint8), truth


def iou(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return (a & b).sum() / max((a | b).sum(), 1)


def textured_ball(shape=(32, 40, 40), radius=10, seed=0, dtype=np.uint16, gain=200):
    """A striped bright ball in a darker noisy volume; returns (volume, truth)."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    centre = [n / 2 for n in shape]
    truth = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 < radius**2
    fg = 175 + 35 * np.sin(xx / 1.5) + 10 * rng.standard_normal(shape)
    bg = 70 + 25 * rng.standard_normal(shape)
    vol = np.where(truth, fg, bg).clip(0, 255) * gain
    return vol.astype(dtype), truth


def touching_discs(size=64, radius=12, gap=-4, seed=0):
    """Two bright discs overlapping by ``-gap`` pixels (touching nuclei) on a dark
    background; returns (image uint16, instance truth 0/1/2)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cy = size // 2
    c1 = size // 2 - radius - gap // 2
    c2 = size // 2 + radius + gap // 2
    d1 = (yy - cy) ** 2 + (xx - c1) ** 2
    d2 = (yy - cy) ** 2 + (xx - c2) ** 2
    truth = np.zeros((size, size), dtype=np.int32)
    truth[d1 < radius**2] = 1
    truth[(d2 < radius**2) & (d2 < d1)] = 2
    image = np.where(truth > 0, 3000.0, 500.0) + 150 * rng.standard_normal((size, size))
    return image.clip(0, 65535).astype(np.uint16), truth
