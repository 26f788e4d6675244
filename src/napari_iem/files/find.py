"""Which inputs are images: files and folders expanded into a list of images.

An image is a file with an image suffix, or an OME-Zarr: a folder ``*.zarr`` that is
one image (its chunks are files too, and none of them is an image on its own), so a
search never descends into one.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "ZARR_SUFFIX", "find_images"]

#: Suffixes picked up when a folder is given as input (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: Suffix of a folder that is one image (an OME-Zarr).
ZARR_SUFFIX = ".zarr"


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    """The entries of ``folder`` but hidden ones (below it too when ``recursive``, as
    ``rglob`` would), never descending into a ``*.zarr`` folder, which is yielded whole."""
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and entry.suffix.lower() == ZARR_SUFFIX:
            if not entry.name.startswith("."):
                yield entry
        elif entry.is_dir():
            if recursive and not entry.is_symlink():
                yield from _walk(entry, recursive)
        elif not entry.name.startswith("."):
            yield entry


def _is_image(f: Path) -> bool:
    from .ome_zarr import is_ome_zarr

    if f.suffix.lower() == ZARR_SUFFIX:
        return is_ome_zarr(f)
    return f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES


def find_images(inputs: Iterable[str | os.PathLike], recursive: bool = False,
                exclude: Path | None = None) -> list[Path]:
    """Expand files and folders into a sorted, duplicate-free list of images.

    A folder contributes its files with an image suffix (:data:`IMAGE_SUFFIXES`,
    case-insensitive) and its OME-Zarr folders, hidden ones excluded, and none inside
    ``exclude`` (an output folder within an input folder); a file or OME-Zarr named
    directly is taken whatever its suffix and wherever it lies (so that a wrong file
    is reported, not silently dropped).

    Raises
    ------
    FileNotFoundError
        When an input does not exist.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    skip = exclude.resolve() if exclude is not None else None
    for item in inputs:
        p = Path(item)
        if p.is_dir() and p.suffix.lower() != ZARR_SUFFIX:
            found = sorted(
                f for f in _walk(p, recursive)
                if _is_image(f) and (skip is None or skip not in f.resolve().parents)
            )
        elif p.exists() or p.is_symlink():
            found = [p]
        else:
            raise FileNotFoundError(f"input not found: {p}")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out
