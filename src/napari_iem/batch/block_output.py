"""Where block mode writes: ``OUT.partial``, checked before any work and renamed to
``OUT`` only when every block is written (:mod:`napari_iem.batch.blocks`).

An interrupted run leaves no output that claims to be finished, and nothing of the
user's is written into or removed: an ``OUT`` that exists, an ``OUT`` inside the input
(or holding it), and an ``OUT.partial`` that napari-iem did not mark as its own are
refused before the solve.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .guard import BatchError

__all__ = ["check_output", "finish_output", "output_array"]

#: Attribute of an unfinished output (``OUT.partial``), so that only ours is removed.
_PARTIAL = "napari_iem_partial"


def output_array(out, shape, dtype, block: int):
    """The zarr array the labels go to: ``OUT.partial`` (renamed when done), or in
    memory without ``out``."""
    import zarr

    if out is None:
        return zarr.create_array(store=zarr.storage.MemoryStore(), shape=shape,
                                 chunks=(block,) * len(shape), dtype=dtype), None
    partial = check_output(None, out)
    if partial.exists():
        shutil.rmtree(partial)  # an interrupted earlier run: never claimed finished
    return zarr.create_array(store=str(partial), shape=shape, chunks=(block,) * len(shape),
                             dtype=dtype, attributes={_PARTIAL: True}), partial


def check_output(source, out) -> Path:
    """``OUT.partial`` for ``out``, after refusing an ``out`` that exists, that lies in
    the input ``source`` (a path) or holds it, or whose ``OUT.partial`` is not an
    unfinished output of napari-iem (a user's folder of that name is never removed)."""
    from ..files.ome_zarr import ngff_attributes
    from ..files.read import FileReadError

    out = Path(out)
    if out.exists() or out.is_symlink():
        raise BatchError(f"{out} exists: remove it or choose another --out")
    if isinstance(source, (str, os.PathLike)):
        src, dst = Path(source).resolve(), out.resolve()
        if dst == src or src in dst.parents or dst in src.parents:
            raise BatchError(f"--out {out} is inside the input {source} (or holds it): "
                             "the labels would be written into it; choose another --out")
    partial = out.with_name(out.name + ".partial")
    if partial.exists() or partial.is_symlink():
        try:
            ours = (partial.is_dir() and not partial.is_symlink()
                    and ngff_attributes(partial)[0].get(_PARTIAL) is True)
        except (FileReadError, OSError):
            ours = False
        if not ours:
            raise BatchError(f"{partial} exists and was not made by napari-iem; it is "
                             "left alone: move it or choose another --out")
    return partial


def finish_output(target, partial: Path, out: Path, facts, provenance, block: int):
    """``OUT`` from the finished ``OUT.partial``: an NGFF label image for a name
    ending in ``.ome.zarr`` (written chunk by chunk by the OME-Zarr writer), else the
    zarr array itself, renamed."""
    import zarr

    if not out.name.endswith(".ome.zarr"):
        os.replace(partial, out)
        return zarr.open_array(str(out), mode="r")
    import dask.array as da

    from ..files.ome_zarr import write_ome_zarr_labels

    ndim = len(target.shape)
    axes = "".join(facts.get("axes") or "zyx"[-ndim:])
    scale = facts.get("scale") or [1.0] * ndim
    units = {k: v for k, v in (facts.get("units") or {}).items() if k in axes and v}
    written = write_ome_zarr_labels(da.from_zarr(target), out, axes=axes, scale=scale,
                                    provenance=provenance, chunks=(block,) * ndim,
                                    units=units)
    shutil.rmtree(partial, ignore_errors=True)
    node = zarr.open(str(written), mode="r")
    return node if hasattr(node, "shape") else node["0"]
