"""Optional clean-up of a labelling: pieces too small to matter join their surroundings.

IEM's labels can hold specks (a few noisy pixels that flipped) and pinholes (a few
pixels inside an object that did not). With ``min_piece_size=N`` every connected piece
of any region smaller than ``N`` pixels (voxels in 3-D) takes the label of the nearest
pixel outside it that belongs to a piece big enough to keep.  For two regions this is
dropping specks from the foreground and filling holes smaller than ``N`` in it, in one
rule; with more regions it treats every region alike.  Off (``0``) by default: on the
development nuclei it changed nothing measurable (docs/evaluation.md), but a user with a
known smallest object size can remove what is below it.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import label


def drop_small_pieces(labels: np.ndarray, min_size: int) -> np.ndarray:
    """``labels`` with every connected piece smaller than ``min_size`` relabelled.

    Parameters
    ----------
    labels : ndarray of int
        A labelling of any dimension (2-D image, 3-D volume).
    min_size : int
        Pieces (face-connected) with fewer pixels than this take the label of the nearest
        pixel of a kept piece.  ``0`` or ``1`` returns ``labels`` unchanged.

    Returns
    -------
    ndarray
        Same shape and dtype as ``labels``.  When every piece is small, nothing changes
        (there is nothing to give them to).
    """
    if isinstance(min_size, bool) or int(min_size) != min_size or min_size < 0:
        raise ValueError(f"min_piece_size must be a whole number >= 0, got {min_size!r}")
    labels = np.asarray(labels)
    if min_size <= 1 or labels.size == 0:
        return labels
    # label() joins equal neighbouring values; +1 so that region 0 is not background
    pieces = label(labels.astype(np.int64) + 1, background=0, connectivity=1)
    small = np.bincount(pieces.ravel())[pieces] < min_size
    if not small.any() or small.all():
        return labels
    nearest = ndimage.distance_transform_edt(small, return_distances=False,
                                             return_indices=True)
    return labels[tuple(nearest)]
