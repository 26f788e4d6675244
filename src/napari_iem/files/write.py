"""Writing outputs atomically: a reader (or a resumed run) never sees half a file.

Every file is written completely to a hidden temporary file in the target's folder and
renamed over the target with :func:`os.replace`, which is atomic on POSIX and Windows.
``os.replace`` replaces a symlink at the target rather than writing through it, so an
output name that is a link to a user's file never changes that file.

What may be replaced at all is not decided here: :mod:`napari_iem.files.manifest` knows
which files this tool wrote, and its callers ask it first.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .journal import before_rename
from .names import output_path

__all__ = [
    "LABEL_SUFFIXES",
    "TEMP_SUFFIX",
    "atomic_output",
    "existing_labels",
    "label_paths",
    "labels_suffix",
    "write_labels",
    "write_ome_labels",
    "write_ome_labels_at",
]

#: Suffixes of labels written by :func:`write_labels` and :func:`write_ome_labels`,
#: and of OME-Zarr labels (a folder: :mod:`napari_iem.files.ome_zarr_write`).
LABEL_SUFFIXES = (".png", ".tif", ".ome.zarr")
#: Suffix of temporary files of unfinished atomic writes (hidden, start with a dot).
TEMP_SUFFIX = ".iem-part"


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Write a file atomically: yields a temporary path in the same folder.

    Write the complete file to the yielded path; when the ``with`` block ends without an
    exception the file is flushed to disk and renamed to ``path`` (:func:`os.replace`).
    On any exception, ``KeyboardInterrupt`` included, the temporary file is removed and
    ``path`` is left as it was.

    Examples
    --------
    >>> with atomic_output("out/a.png") as tmp:          # doctest: +SKIP
    ...     imageio.v3.imwrite(tmp, labels, extension=".png")
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:  # created inside the try: a Ctrl-C right after it still removes it
        # open(..., "x") creates the file with the usual 0666 & ~umask permissions
        with open(tmp, "xb"):
            pass
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        before_rename(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def labels_suffix(labels: np.ndarray) -> str:
    """``".png"`` for 2-D labels that fit in 8 bits, ``".tif"`` otherwise."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and (labels.dtype in (np.uint8, np.bool_) or (
            np.issubdtype(labels.dtype, np.integer) and labels.size
            and labels.min() >= 0 and labels.max() <= 255)):
        return ".png"
    return ".tif"


def label_paths(out_dir: str | os.PathLike, stem: str) -> list[Path]:
    """Every path the labels of ``stem`` may be written to (one per suffix)."""
    return [Path(out_dir) / (stem + suffix) for suffix in LABEL_SUFFIXES]


def existing_labels(out_dir: str | os.PathLike, stem: str) -> Path | None:
    """The non-empty file (or OME-Zarr folder) at one of :func:`label_paths`, if any."""
    from .ome_zarr import is_ome_zarr

    for p in label_paths(out_dir, stem):
        if p.is_file() and p.stat().st_size > 0 or is_ome_zarr(p):
            return p
    return None


def write_labels(labels: np.ndarray, out_dir: str | os.PathLike, stem: str,
                 suffix: str | None = None) -> Path:
    """Write labels as ``out_dir/<stem>.png`` (2-D, 8-bit) or ``<stem>.tif``, atomically.

    Parameters
    ----------
    labels : ndarray of int
        0 background, 1..K-1 regions.
    out_dir : path-like
        Existing output folder.
    stem : str
        Output name without suffix; sanitised with :func:`safe_stem`.
    suffix : {None, ".png", ".tif"}
        The format asked for (``--format``); None: :func:`labels_suffix`.  A PNG holds
        2-D labels of at most 255 values only (a ValueError otherwise).

    Returns
    -------
    Path
        The file written.  Nothing else is touched: a file of the other suffix for the
        same stem is the caller's to remove, if its manifest says it may.
    """
    labels = _integers(labels)
    fits = labels_suffix(labels)
    if suffix == ".png" and fits != ".png":
        raise ValueError(f"a PNG holds 2-D labels of 0 to 255; these are {labels.ndim}-D "
                         f"with values up to {labels.max() if labels.size else 0} "
                         "(use --format tiff or ome-tiff)")
    suffix = suffix or fits
    path = output_path(out_dir, stem, suffix)
    with atomic_output(path) as tmp:
        if suffix == ".png":
            _write_palette_png(tmp, labels.astype(np.uint8))
        else:
            _write_tiff(tmp, labels)
    return path


def label_palette() -> list[int]:
    """256 RGB colours for label values: 0 black, then hues a golden angle apart
    (neighbouring labels far apart in colour), bright and saturated."""
    import colorsys

    colours = [0, 0, 0]
    for k in range(1, 256):
        r, g, b = colorsys.hsv_to_rgb((k * 0.618033988749895) % 1.0, 0.75, 1.0)
        colours += [round(255 * r), round(255 * g), round(255 * b)]
    return colours


def _write_palette_png(path: Path, labels: np.ndarray) -> None:
    """A palette PNG: the pixel values are the labels, unchanged (any label reader,
    Pillow, napari, ilastik, gets them back), and an image viewer shows each label in
    its own colour instead of a black picture of 0s and 1s."""
    from PIL import Image

    image = Image.fromarray(labels, mode="L").convert("P")  # indices = values
    image.putpalette(label_palette())
    image.save(path, format="PNG")


def write_ome_labels(labels: np.ndarray, out_dir: str | os.PathLike, stem: str,
                     metadata: dict) -> Path:
    """Write labels as the OME-TIFF ``out_dir/<stem>.tif``, atomically.

    As :func:`write_labels`, whatever the labels' size; ``metadata`` is the
    ``metadata=`` of ``tifffile.imwrite(..., ome=True)`` (axes, physical sizes,
    provenance: see :func:`napari_iem.files.ome.label_metadata`).
    """
    return write_ome_labels_at(labels, output_path(out_dir, stem, ".tif"), metadata)


def write_ome_labels_at(labels: np.ndarray, path: str | os.PathLike,
                        metadata: dict) -> Path:
    """Write labels as the OME-TIFF ``path`` itself (a name the user chose, e.g. in
    napari's Save dialog), atomically; otherwise as :func:`write_ome_labels`."""
    import tifffile

    labels = _integers(labels)
    path = Path(path)
    with atomic_output(path) as tmp:
        try:
            _write_tiff(tmp, labels, ome=True, metadata=metadata)
        except tifffile.OmeXmlError as exc:
            raise ValueError(f"cannot write OME-TIFF metadata: {exc}") from None
    return path


def _integers(labels) -> np.ndarray:
    """``labels`` as an array; a ValueError unless they are integers or booleans."""
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    return labels


def _write_tiff(tmp: Path, labels: np.ndarray, **options) -> None:
    """Labels into the TIFF ``tmp``: 16-bit when they fit, zlib-compressed."""
    import tifffile

    data = labels
    if labels.size and labels.min() >= 0 and labels.max() <= 65535:
        data = labels.astype(np.uint16)
    tifffile.imwrite(tmp, data, compression="zlib", photometric="minisblack", **options)
