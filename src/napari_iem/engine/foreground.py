"""Which region is the foreground: the objective does not say, so a rule must.

IEM's objective is symmetric in its regions: swapping foreground and background leaves J
unchanged.  The paper keeps the region grown from its centred square; a tool must choose,
and its choice is what a user gets (fixed polarity), so the rules here are measured
(docs/evaluation.md, fixed beside best polarity).
"""
from __future__ import annotations

import numpy as np


def region_order(labels: np.ndarray, regions: int, rule: str) -> np.ndarray:
    """Old label of each new label: background first, by the ``foreground`` rule.

    ``"init"`` keeps the optimiser's labels (the paper's choice).  ``"border"`` makes the
    region with the largest share of the image border label 0 (background): objects of
    interest rarely fill the frame's edge.  ``"area"`` makes the largest region the
    background: in a micrograph the objects are many, small and scattered, so they meet
    the border about as often as their area predicts and the border says little, while
    the background is the bulk of the field.  ``"centre"`` makes the region lying
    farthest from the image centre on average (mean distance, each axis measured in
    half its length) the background: a photo frames its subject, so the object is the
    nearer region, whatever share of the border it touches and wherever the start grew
    (the centred square may grow into the background round an off-centre object).
    The other regions follow by decreasing area.
    """
    if rule == "init":
        return np.arange(regions)
    area = np.bincount(labels.ravel(), minlength=regions)
    if rule == "border":
        border = np.concatenate([  # every face of the image (volume), first then last
            face.ravel() for d in range(labels.ndim)
            for face in (labels.take(0, axis=d), labels.take(-1, axis=d))
        ])
        background = int(np.argmax(np.bincount(border, minlength=regions)))
    elif rule == "area":
        background = int(np.argmax(area))
    elif rule == "centre":
        background = int(np.argmax(_mean_distance(labels, regions)))
    else:
        raise ValueError("foreground rule must be 'init', 'border', 'area' or 'centre', "
                         f"got {rule!r}")
    others = sorted(
        (k for k in range(regions) if k != background), key=lambda k: (-area[k], k)
    )
    return np.array([background, *others])


def ordered_labels(labels: np.ndarray, regions: int, rule: str,
                   flip: bool = False) -> np.ndarray:
    """``labels`` renumbered by :func:`region_order` (background 0), reversed when
    ``flip``: what every path hands the caller."""
    order = region_order(labels, regions, rule)
    if flip:
        order = order[::-1]
    relabel = np.empty(regions, dtype=np.int64)
    relabel[order] = np.arange(regions)
    return relabel[labels]


def _mean_distance(labels: np.ndarray, regions: int) -> np.ndarray:
    """Mean distance of each region's pixels from the image centre, each axis in units
    of half its length (an empty region: -1, never the farthest)."""
    squared = sum(
        (((np.arange(n) - (n - 1) / 2) / (n / 2)) ** 2).reshape(
            [n if a == d else 1 for a in range(labels.ndim)])
        for d, n in enumerate(labels.shape))
    dist = np.sqrt(np.broadcast_to(squared, labels.shape)).ravel()
    total = np.bincount(labels.ravel(), weights=dist, minlength=regions)
    count = np.bincount(labels.ravel(), minlength=regions)
    return np.where(count > 0, total / np.maximum(count, 1), -1.0)
