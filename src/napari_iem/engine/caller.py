"""Warnings that point at the caller's line, whichever entry point it called.

``warnings.warn`` takes a fixed ``stacklevel``, but one check is reached through
:func:`napari_iem.segment`, :func:`~napari_iem.iter_segment` (a generator the caller
drives), :func:`~napari_iem.segment_batch` and the batch runner, each a different
number of frames deep; a fixed level points inside napari_iem for some of them, where
the user can neither see nor silence it by their own module.  Python 3.12's
``skip_file_prefixes`` does this; the package supports older versions.
"""
from __future__ import annotations

import os
import sys
import warnings

__all__ = ["warn_at_caller"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first frame outside
    napari_iem (the outermost frame, when every one is inside it)."""
    frame, level = sys._getframe(1), 2  # level 2: the function that called this one
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
