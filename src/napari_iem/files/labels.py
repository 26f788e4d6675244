"""Label and mask images read as integers, one value per pixel.

Labels come from napari-iem, from other tools or from a person's drawing: palette PNGs,
grey PNGs, TIFFs, and colour-coded masks, each read through the bounded, header-first
reader of :mod:`napari_iem.files.read`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .read import (
    _AS_RGB,
    ImageReadError,
    _info,
    _open_image,
    _our_limit_not_pillows,
    read_image,
)

__all__ = ["read_labels"]


def _colours_to_ids(colour: np.ndarray) -> np.ndarray:
    """One label per distinct colour (black = 0), for colour-coded masks."""
    if (colour == colour[..., :1]).all():
        return colour[..., 0]
    flat = colour.reshape(-1, colour.shape[-1])
    uniq, inv = np.unique(flat, axis=0, return_inverse=True)
    black = np.flatnonzero((uniq == 0).all(axis=1))
    ids = np.arange(1, len(uniq) + 1)
    if black.size:
        ids[black[0]:] -= 1
        ids[black[0]] = 0
    return ids[inv.ravel()].reshape(colour.shape[:-1]).astype(np.min_scalar_type(len(uniq)))


def read_labels(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read a label or mask image as integers, one value per pixel.

    Palette PNGs give their indices, grey images their values.  A colour image (a PNG
    or JPEG of colours, a CMYK one by its RGB colours, a TIFF whose photometric tag
    says RGB) whose channels are all equal gives one channel; other colour images get
    one label per distinct colour (black = 0).  Other TIFFs stay as stored: a
    (Y, X, 3) stack is three planes.

    Raises
    ------
    ImageReadError
        As :func:`~napari_iem.files.read.read_image`; also for values that are not
        labels: complex numbers, NaN, infinities or negative numbers.
    """
    path = Path(path)
    if path.is_dir() and path.suffix.lower() == ".zarr":  # OME-Zarr labels, as stored
        from .ome_zarr import read_ome_zarr

        return _checked(path, read_ome_zarr(path, 0, max_pixels)[0])
    with _open_image(path, max_pixels) as (fh, fmt):
        info = _info(path, fh, fmt, max_pixels)
        if fmt != "tiff":
            from PIL import Image

            try:
                with _our_limit_not_pillows(), Image.open(fh) as im:
                    data = np.asarray(im.convert("RGB") if im.mode in _AS_RGB else im)
            except Exception as exc:  # noqa: BLE001 - the libraries raise many kinds
                raise ImageReadError(f"{path}: cannot read pixel data: {exc}") from None
    colour = info.colour_axis
    if fmt == "tiff":
        data = read_image(path, max_pixels)
        if colour is not None:
            data = np.moveaxis(data, colour, -1)
    elif data.ndim == 3:  # colour PNG/JPEG
        colour = -1
    if colour is not None:
        data = _colours_to_ids(data[..., : 3 if data.shape[-1] >= 3 else 1])
    return _checked(path, data)


def _checked(path: Path, data: np.ndarray) -> np.ndarray:
    """``data`` as labels (booleans as 0 and 1), refusing values that are not labels."""
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if data.dtype.kind not in "biuf":
        raise ImageReadError(f"{path}: labels must be integers or real numbers, got "
                             f"dtype {data.dtype}")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise ImageReadError(f"{path}: labels hold NaN or infinite values; write the "
                             "mask with whole numbers (0 background)")
    if data.dtype.kind in "if" and data.size and data.min() < 0:  # 255 saved as int8
        raise ImageReadError(f"{path}: labels hold negative values (a mask saved as "
                             "signed integers?); write it with whole numbers of 0 or "
                             "more (0 background), e.g. as uint8 or uint16")
    return data
