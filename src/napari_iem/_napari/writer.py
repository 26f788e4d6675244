"""napari's "Save layer" for IEM labels: OME-TIFF or OME-Zarr, calibrated, with provenance.

The npe2 writer ``napari-iem.write_labels`` (a single-layer writer for Labels layers,
``.ome.tif``, ``.ome.tiff``, ``.tif`` and ``.zarr``) saves a layer so that what it
knows travels with the file: the layer's ``scale`` (and ``units``) as the physical
pixel sizes, and ``metadata["iem"]`` (the run's provenance,
:func:`napari_iem._napari.layers.run_metadata`) as the provenance napari-iem's other
outputs carry (:func:`napari_iem.files.ome.read_provenance`,
:func:`napari_iem.files.ome_zarr.read_ome_zarr_provenance` read it back).  napari's
own TIFF writer would keep the pixels only.

An existing file or folder is replaced only when napari-iem wrote it (its provenance
is there): napari asks before saving over a file, but a user's image of the same name
is never lost to a mistaken click.  No Qt here: the command runs headless too.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_labels"]

_TIFF = (".ome.tif", ".ome.tiff", ".tif", ".tiff")


def _axes(meta: dict, ndim: int) -> str:
    """NGFF axis names of the layer: its ``axis_labels`` when they are t, z, y, x
    (ending y, x), else the last ``ndim`` of ``tzyx`` (what an OME-TIFF is always
    given: :func:`~napari_iem.files.ome.label_metadata`)."""
    labels = [str(a).lower() for a in meta.get("axis_labels") or ()]
    if len(labels) == ndim and "".join(labels).endswith("yx") and \
            all(a in "tzyx" and len(a) == 1 for a in labels) and len(set(labels)) == ndim:
        return "".join(labels)
    if ndim > 4:
        raise ValueError(f"{ndim}-D labels: name their axes t, z, y, x (axis_labels) to "
                         "save them as OME")
    return "tzyx"[-ndim:]


def _calibration(meta: dict, axes: str) -> tuple[list | None, dict]:
    """The layer's scale on its axes and their NGFF units; ``None`` for an
    uncalibrated layer (scale all 1, no length units), so that no made-up
    micrometre is written."""
    from ..files.ome_zarr import UNIT_SYMBOLS

    scale = [float(v) for v in (meta.get("scale") if meta.get("scale") is not None
                                else [1.0] * len(axes))][-len(axes):]
    if len(scale) != len(axes) or not all(math.isfinite(v) and v > 0 for v in scale):
        scale = [1.0] * len(axes)
    raw = list(meta.get("units") or ())[-len(axes):]
    if not raw:  # older napari: the units the plugin kept in the provenance
        raw = list(((meta.get("metadata") or {}).get("iem") or {}).get("layer", {})
                   .get("units") or ())[-len(axes):]
    units = {a: str(u) for a, u in zip(axes, raw) if str(u) in UNIT_SYMBOLS}
    if not units and all(v == 1.0 for v in scale):
        return None, {}
    return scale, units


def _provenance(meta: dict) -> dict:
    """``metadata["iem"]``, or a record that says the labels came from napari (a layer
    painted by hand, or from another plugin), with the versions."""
    record = (meta.get("metadata") or {}).get("iem")
    if isinstance(record, dict) and record:
        return record
    from ..engine.finish import versions

    return {"versions": versions(), "settings": {}, "note": "labels saved from napari "
            "(not made by an IEM run of this session)", "layer": meta.get("name")}


def _refuse_foreign_tiff(path: Path) -> None:
    from ..files.ome import read_provenance
    from ..files.read import FileReadError

    if not (path.exists() or path.is_symlink()):
        return
    try:
        read_provenance(path)
    except (FileReadError, OSError):
        raise FileExistsError(f"{path} exists and was not written by napari-iem; it is "
                              "left alone (choose another name)") from None


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Save a Labels layer as OME-TIFF (``.ome.tif``, ``.tif``) or OME-Zarr (``.zarr``).

    Parameters
    ----------
    path : str
        Where to save, as chosen in napari (its suffix picks the format).
    data : array-like
        The layer's data: numpy, dask (written chunk by chunk to OME-Zarr), or a
        multiscale list (its full-resolution level is saved).
    meta : dict
        The layer's attributes (``scale``, ``units``, ``axis_labels``, ``metadata``).

    Returns
    -------
    list of str
        The path written.

    Raises
    ------
    FileExistsError
        A file or folder is at ``path`` that napari-iem did not write.
    ValueError
        Labels that are not integers, or a suffix this writer does not write.
    """
    from ..files.ome import label_metadata
    from ..files.ome_zarr import UNIT_SYMBOLS
    from ..files.ome_zarr_write import write_ome_zarr_labels
    from ..files.write import write_ome_labels_at

    if isinstance(data, (list, tuple)):  # multiscale: level 0 is the full resolution
        data = data[0]
    target = Path(path)
    name = target.name.lower()
    axes = _axes(meta, len(data.shape))
    scale, units = _calibration(meta, axes)
    record = _provenance(meta)
    if name.endswith(".zarr"):
        written = write_ome_zarr_labels(data, target, axes=axes, scale=scale,
                                        units=units, provenance=record)
        return [str(written)]
    if not name.endswith(_TIFF):
        raise ValueError(f"{target.name}: napari-iem saves labels as .ome.tif, .tif or "
                         ".zarr")
    _refuse_foreign_tiff(target)
    labels = np.asarray(data)
    ome = label_metadata(labels.ndim, None, scale, record)
    if ome is None:
        raise ValueError(f"{labels.ndim}-D labels cannot be saved as OME-TIFF; use .zarr")
    for axis, unit in units.items():
        if f"PhysicalSize{axis.upper()}" in ome:
            ome[f"PhysicalSize{axis.upper()}Unit"] = UNIT_SYMBOLS[unit]
    return [str(write_ome_labels_at(labels, target, ome))]
